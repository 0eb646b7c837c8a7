"""`ipex-embed bench`: latency, throughput and the peers, side by side, with plots.

`run_bench(model_dir, output_dir, quick=...)` is the library entry point (the `build` stage calls
it); `bench_command` is the click command. Every import happens on first use, so importing this
package is cheap and needs nothing but the standard library: the worker processes import it in
the peers' environments, which have neither click nor OpenVINO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .command import bench_command
    from .report import BenchReport
    from .run import BenchPlan, run_bench

__all__ = ["BenchPlan", "BenchReport", "bench_command", "run_bench"]


def __getattr__(name: str) -> Any:
    if name in ("run_bench", "BenchPlan"):
        from . import run

        return getattr(run, name)
    if name == "BenchReport":
        from .report import BenchReport

        return BenchReport
    if name == "bench_command":
        from .command import bench_command

        return bench_command
    raise AttributeError(name)
