"""`ipex-embed bench`: latency, throughput and the peers, side by side, with plots.

`run_bench(model_dir, output_dir, quick=...)` is the library entry point (the `build` stage calls
it); the click command is `cli.bench`. Every import happens on first use, so importing this
package is cheap and needs nothing but the standard library: the worker processes import it in
the peers' environments, which have neither click nor OpenVINO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import BenchReport
    from .run import BenchPlan, run_bench

__all__ = ["BenchPlan", "BenchReport", "run_bench"]


def __getattr__(name: str) -> Any:
    if name in ("run_bench", "BenchPlan"):
        from . import run

        return getattr(run, name)
    if name == "BenchReport":
        from .report import BenchReport

        return BenchReport
    raise AttributeError(name)
