"""Run systems round-robin in worker processes, and reduce their timings to medians and ratios.

In each round every point (a sequence length, a batch size, the corpus) is measured on every
system before the next point, and the order of the systems rotates from round to round, so that
drift (another process, the clock, the page cache) hits all systems alike. A figure is the median
over rounds of each round's statistic; a ratio is the median over rounds of the ratio taken
within each round, so a slow round moves both sides of it.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..log import report_logger
from .systems import SystemSpec
from .worker import SystemProcess, WorkerError

progress = report_logger(__name__)

__all__ = ["Fleet", "SystemStatus", "load_average", "median_of_rounds", "percentile",
           "ratio_of_rounds", "spread"]


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
    load_s: float | None = None
    """Seconds from the worker's start (imports included) to its first vector (end to end) or
    its loaded model (model level); systems load one at a time, nothing else computing."""


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def median_of_rounds(per_round: Sequence[float]) -> float:
    return float(statistics.median(per_round))


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def spread(values: Sequence[float]) -> dict[str, float]:
    """Min, max and (max - min) / median of per-round figures: how far the rounds disagree."""
    middle = statistics.median(values)
    return {"min": float(min(values)), "max": float(max(values)),
            "relative": float((max(values) - min(values)) / middle) if middle else 0.0}


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
        peer_envs: dict[str, str | None] | None = None,
    ) -> None:
        self.statuses: dict[str, SystemStatus] = {}
        self.processes: dict[str, SystemProcess] = {}
        self.round_loads: list[dict[str, float | None]] = []
        """The 1-minute load average before and after each round."""
        log_dir.mkdir(parents=True, exist_ok=True)
        # One worker loads at a time, so each load time is its own, not a share of the cores.
        for spec in specs:
            python = (peer_envs or {}).get(spec.env) if spec.env else None
            python = python or (peers_python if spec.peer else sys.executable)
            # the interpreter's name only: bench.json is published, local paths are not
            name = Path(python).name if python else ""
            status = SystemStatus(spec.key, spec.label, spec.kind, spec.role, python=name)
            self.statuses[spec.key] = status
            try:
                process = SystemProcess(
                    spec, python, threads, setup, log_dir / f"{spec.kind}-{spec.key}.log"
                )
                self.processes[spec.key] = process
                process.wait_ready()
            except WorkerError as err:
                self._drop(spec.key, "skipped", str(err))
                continue
            status.info, status.versions = process.info, process.versions
            status.load_s = process.load_s
            progress.info(f"  loaded {status.label} in {process.load_s or 0:.1f} s")

    def add_skipped(self, spec: SystemSpec, reason: str) -> None:
        """Record a system that was not started at all, with the reason."""
        self.statuses[spec.key] = SystemStatus(
            spec.key, spec.label, spec.kind, spec.role, status="skipped", reason=reason
        )
        progress.info(f"  skipped {spec.label}: {reason}")

    def _drop(self, key: str, status: str, reason: str) -> None:
        entry = self.statuses[key]
        entry.status, entry.reason = status, reason
        process = self.processes.pop(key, None)
        if process is not None:
            process.close()
        progress.info(f"  {status} {entry.label}: {reason}")

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
            before = load_average()
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
            self.round_loads.append({"before": before, "after": load_average()})
            after = self.round_loads[-1]["after"]
            loads = "" if before is None or after is None else (
                f" (load average {before:.2f} -> {after:.2f})")
            progress.info(f"  round {round_index + 1}/{rounds} done{loads}")
        return results

    def close(self) -> None:
        for process in self.processes.values():
            process.close()
        self.processes.clear()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
