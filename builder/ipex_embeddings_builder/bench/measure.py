"""Run systems round-robin in worker processes, and reduce their timings to medians and ratios.

In each round every point (a sequence length, a batch size, the corpus) is measured on every
system before the next point, and the order of the systems rotates from round to round, so that
drift (another process, the clock, the page cache) hits all systems alike. A figure is the median
over rounds of each round's statistic; a ratio is the median over rounds of the ratio taken
within each round, so a slow round moves both sides of it.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .systems import SystemSpec
from .worker import SystemProcess, WorkerError

__all__ = ["Fleet", "SystemStatus", "median_of_rounds", "percentile", "ratio_of_rounds"]


@dataclass
class SystemStatus:
    """What became of one system: measured ("ok"), "skipped" (could not load) or "failed"."""

    key: str
    label: str
    kind: str
    role: str
    status: str = "ok"
    reason: str = ""
    python: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def median_of_rounds(per_round: Sequence[float]) -> float:
    return float(statistics.median(per_round))


def ratio_of_rounds(baseline: Sequence[float], system: Sequence[float]) -> float:
    """Median over rounds of baseline/system (both per-round figures, e.g. seconds)."""
    return float(statistics.median(b / s for b, s in zip(baseline, system, strict=True) if s > 0))


class Fleet:
    """The worker processes of one phase of the bench, one per system."""

    def __init__(
        self,
        specs: Sequence[SystemSpec],
        *,
        threads: int,
        setup: dict[str, Any],
        peers_python: str,
        log_dir: Path,
        echo: Callable[[str], None],
    ) -> None:
        self.echo = echo
        self.statuses: dict[str, SystemStatus] = {}
        self.processes: dict[str, SystemProcess] = {}
        log_dir.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            python = peers_python if spec.peer else sys.executable
            status = SystemStatus(spec.key, spec.label, spec.kind, spec.role, python=python)
            self.statuses[spec.key] = status
            try:
                self.processes[spec.key] = SystemProcess(
                    spec, python, threads, setup, log_dir / f"{spec.kind}-{spec.key}.log"
                )
            except WorkerError as err:
                self._drop(spec.key, "skipped", str(err))
        # Every worker loads at once (nothing is timed while loading); wait for each in turn.
        for key in list(self.processes):
            try:
                self.processes[key].wait_ready()
            except WorkerError as err:
                self._drop(key, "skipped", str(err))
                continue
            status = self.statuses[key]
            status.info, status.versions = self.processes[key].info, self.processes[key].versions
            echo(f"  loaded {status.label}")

    def add_skipped(self, spec: SystemSpec, reason: str) -> None:
        """Record a system that was not started at all, with the reason."""
        self.statuses[spec.key] = SystemStatus(
            spec.key, spec.label, spec.kind, spec.role, status="skipped", reason=reason
        )
        self.echo(f"  skipped {spec.label}: {reason}")

    def _drop(self, key: str, status: str, reason: str) -> None:
        entry = self.statuses[key]
        entry.status, entry.reason = status, reason
        process = self.processes.pop(key, None)
        if process is not None:
            process.close()
        self.echo(f"  {status} {entry.label}: {reason}")

    @property
    def active(self) -> list[str]:
        return list(self.processes)

    def run_rounds(
        self, points: Sequence[Any], task: Callable[[Any, int, str], dict[str, Any]], rounds: int
    ) -> dict[str, list[list[dict[str, Any]]]]:
        """results[system][point index] = the replies of each round, in round order.

        `task(point, round, system)` builds the task sent to a system for a point. A system that
        fails a task is dropped with the reason, and none of its figures are kept.
        """
        results = {key: [[] for _ in points] for key in self.active}
        for round_index in range(rounds):
            for point_index, point in enumerate(points):
                order = self.active
                shift = round_index % len(order) if order else 0
                for key in order[shift:] + order[:shift]:
                    try:
                        reply = self.processes[key].call(task(point, round_index, key))
                    except WorkerError as err:
                        self._drop(key, "failed", str(err))
                        results.pop(key, None)
                        continue
                    results[key][point_index].append(reply)
            self.echo(f"  round {round_index + 1}/{rounds} done")
        return results

    def close(self) -> None:
        for process in self.processes.values():
            process.close()
        self.processes.clear()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
