"""`ipex-embed bench`: latency, throughput and the peers, side by side, with plots.

`run_bench(model_dir, output_dir, quick=...)` is the library entry point (the `build` stage calls
it); `bench_command` is the click command. Heavy imports happen inside, so importing this package
is cheap (the worker processes import it too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .command import bench_command

if TYPE_CHECKING:
    from .report import BenchReport
    from .run import BenchPlan

__all__ = ["BenchPlan", "BenchReport", "bench_command", "run_bench"]


def __getattr__(name: str) -> Any:
    if name in ("run_bench", "BenchPlan"):
        from . import run

        return getattr(run, name)
    if name == "BenchReport":
        from .report import BenchReport

        return BenchReport
    raise AttributeError(name)
