"""Model level: latency at batch 1 against sequence length, throughput against batch size.

Token ids go straight into each model (no tokenizer, no pooling), so a sequence length is exact
and may exceed the model's max_seq_length up to its position table (MiniLM: 256 and 512).
Systems: PyTorch fp32 eager (the baseline) and bf16 autocast via transformers, and our core's
compiled model in fp32, bf16 and int8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .measure import Fleet, median_of_rounds, percentile, ratio_of_rounds
from .systems import MODEL_LEVEL, SystemSpec

__all__ = [
    "LatencyRow",
    "ThroughputRow",
    "measure_latency",
    "measure_throughput",
    "model_level_specs",
]

CORE_LABELS = {"fp32": "ipex-embeddings fp32", "bf16": "ipex-embeddings bf16",
               "int8": "ipex-embeddings int8"}


@dataclass
class LatencyRow:
    """One system at one sequence length: per-call latency in milliseconds."""

    model: str
    system: str
    batch: int
    seq_len: int
    median_ms: float
    p90_ms: float
    round_medians_ms: list[float]
    runs_per_round: int
    speedup: float | None
    """Baseline latency / this latency, median over rounds of the same run (None: no baseline)."""


@dataclass
class ThroughputRow:
    """One system at one batch size: documents per second."""

    model: str
    system: str
    batch: int
    seq_len: int
    docs_per_s: float
    round_docs_per_s: list[float]
    runs_per_round: int
    speedup: float | None
    """This throughput / the baseline's, median over rounds of the same run."""


def model_level_specs(
    source: Path, folders: dict[str, Path], *, torch_bf16: bool = True
) -> list[SystemSpec]:
    """PyTorch on the source model, and our core on each of `folders` (precision -> folder)."""
    specs = [SystemSpec("torch-fp32", "PyTorch fp32 eager", MODEL_LEVEL, "torch", str(source),
                        role="baseline")]
    if torch_bf16:
        specs.append(SystemSpec("torch-bf16", "PyTorch bf16 autocast", MODEL_LEVEL, "torch",
                                str(source), {"bf16_autocast": True}))
    for precision in ("fp32", "bf16", "int8"):
        if precision in folders:
            specs.append(SystemSpec(f"ov-{precision}", CORE_LABELS[precision], MODEL_LEVEL,
                                    "core", str(folders[precision]), role="ours"))
    return specs


def _timings(
    fleet: Fleet, points: Sequence[tuple[int, int]], runs: int, warmup: int, rounds: int
) -> dict[str, list[list[list[float]]]]:
    """timings[system][point][round] = the per-call seconds of that round."""

    def task(point: tuple[int, int], _round: int, _system: str) -> dict[str, object]:
        batch, seq_len = point
        return {"task": "latency", "batch": batch, "seq_len": seq_len, "runs": runs,
                "warmup": warmup}

    results = fleet.run_rounds(points, task, rounds)
    return {key: [[reply["times"] for reply in per_point] for per_point in per_system]
            for key, per_system in results.items()}


def _baseline(fleet: Fleet) -> str | None:
    return next((s.key for s in fleet.statuses.values()
                 if s.role == "baseline" and s.status == "ok"), None)


def measure_latency(
    fleet: Fleet, model: str, seq_lens: Sequence[int], *, batch: int = 1, runs: int, warmup: int,
    rounds: int,
) -> list[LatencyRow]:
    """Latency of one call of `batch` sequences, for each length in `seq_lens`."""
    points = [(batch, n) for n in seq_lens]
    timings = _timings(fleet, points, runs, warmup, rounds)
    base = _baseline(fleet)
    rows = []
    for key, per_point in timings.items():
        for index, ((point_batch, seq_len), per_round) in enumerate(
            zip(points, per_point, strict=True)
        ):
            medians = [median_of_rounds(times) for times in per_round]
            p90s = [percentile(times, 90) for times in per_round]
            speedup = None
            if base is not None and base in timings:
                base_medians = [median_of_rounds(t) for t in timings[base][index]]
                speedup = ratio_of_rounds(base_medians, medians)
            rows.append(LatencyRow(
                model, key, point_batch, seq_len, 1e3 * median_of_rounds(medians),
                1e3 * median_of_rounds(p90s), [1e3 * m for m in medians], runs, speedup,
            ))
    return rows


def measure_throughput(
    fleet: Fleet, model: str, batches: Sequence[int], *, seq_len: int, runs: int, warmup: int,
    rounds: int,
) -> list[ThroughputRow]:
    """Documents per second of one call of each batch size at `seq_len` tokens."""
    points = [(b, seq_len) for b in batches]
    timings = _timings(fleet, points, runs, warmup, rounds)
    base = _baseline(fleet)
    rows = []
    for key, per_point in timings.items():
        for index, ((batch, length), per_round) in enumerate(zip(points, per_point, strict=True)):
            medians = [median_of_rounds(times) for times in per_round]
            speedup = None
            if base is not None and base in timings:
                base_medians = [median_of_rounds(t) for t in timings[base][index]]
                speedup = ratio_of_rounds(base_medians, medians)
            rows.append(ThroughputRow(
                model, key, batch, length, batch / median_of_rounds(medians),
                [batch / m for m in medians], runs, speedup,
            ))
    return rows
