"""The rerank part (cross-encoder folders): SciFact claims' BM25 candidates scored per query.

Each of the first N SciFact test claims brings its BM25 top 100 abstracts (`bm25.bm25_candidates`,
the first stage validation and calibration use); every system scores one claim's candidates in
one call of its public API, as a RAG pipeline reranks, with batch size 32. Figures: pairs/s over
the timed claims, the per-claim latency (p50, p90), and the ratio to sentence-transformers torch
fp32 taken within each round. The first round's scores are kept to set each system beside the
baseline's: the mean and lowest per-claim Spearman rank correlation (what a reranker's order
depends on) and the largest absolute difference of any score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .measure import Fleet, median_of_rounds, percentile, ratio_of_rounds, spread
from .systems import RERANK, SystemSpec

__all__ = ["RerankRow", "measure_rerank", "rerank_specs", "spearman", "write_rerank_texts"]

WARMUP = 2
"""Claims scored (untimed) before each round's timed claims."""


@dataclass
class RerankRow:
    """One system's reranking speed and its agreement with sentence-transformers torch fp32."""

    system: str
    queries: int
    pairs: int
    pairs_per_s: float
    round_pairs_per_s: list[float]
    speedup: float | None
    """Pairs/s over the baseline's (sentence-transformers torch fp32), median over rounds of the
    ratio within each round."""
    query_p50_ms: float
    query_p90_ms: float
    round_query_p50_ms: list[float]
    spearman_mean: float | None
    """Mean over claims of the Spearman correlation of its candidates' scores with the
    baseline's (None: no baseline measured)."""
    spearman_min: float | None
    max_abs_diff: float | None
    """Largest |score - baseline score| over every pair."""
    load_s: float | None = None
    pairs_per_s_spread: dict[str, float] | None = None


def rerank_specs(
    model_dir: Path, source: Path, precision: str, max_length: int, batch_size: int = 32,
    fp32_dir: Path | None = None,
) -> list[SystemSpec]:
    """sentence-transformers `CrossEncoder` (torch, onnx, openvino) and our `CrossEncoder`."""
    st = "sentence_transformers"

    def st_spec(backend: str, label: str, role: str = "peer") -> SystemSpec:
        return SystemSpec(f"st-{backend}", f"sentence-transformers CrossEncoder {label}", RERANK,
                          st, str(source), {"backend": backend, "max_length": max_length,
                                            "batch_size": batch_size}, peer=True, role=role)

    specs = [st_spec("torch", "torch fp32", "baseline"), st_spec("onnx", "onnx"),
             st_spec("openvino", "openvino"),
             SystemSpec("ours", f"ipex-embeddings CrossEncoder {precision}", RERANK, "core",
                        str(model_dir), {"batch_size": batch_size}, role="ours")]
    if fp32_dir is not None:
        specs.append(SystemSpec("ours-fp32", "ipex-embeddings CrossEncoder fp32", RERANK, "core",
                                str(fp32_dir), {"batch_size": batch_size}, role="ours"))
    return specs


def write_rerank_texts(
    path: Path, queries: int | None, depth: int
) -> tuple[dict[str, Any], list[int]]:
    """Write the first `queries` SciFact test claims (None: all) with their BM25 top `depth` as
    JSON at `path`; return what was written (for the report) and each claim's candidate count."""
    from ..bm25 import BM25_SETUP, bm25_candidates
    from ..data import SCIFACT_DIR, BeirData, document_text, load_beir

    data = load_beir(SCIFACT_DIR, "test")
    kept = list(data.queries)[: queries or None]
    chosen = BeirData(data.corpus, {q: data.queries[q] for q in kept},
                      {q: data.qrels[q] for q in kept if q in data.qrels})
    found = bm25_candidates(chosen, depth)
    # Each abstract once, claims by index: 300 claims x 100 candidates share ~5,000 abstracts.
    order = list(dict.fromkeys(d for q in kept for d, _ in found[q]))
    index = {d: i for i, d in enumerate(order)}
    items = [{"id": q, "query": data.queries[q], "candidates": [index[d] for d, _ in found[q]]}
             for q in kept]
    documents = [document_text(data.corpus[d]) for d in order]
    path.write_text(json.dumps({"documents": documents, "rerank": items}), encoding="utf-8")
    sizes = [len(item["candidates"]) for item in items]
    return {"dataset": "SciFact (BEIR, vendored)", "split": "test", "queries": len(items),
            "candidates_per_query": depth, "pairs": sum(sizes), "first_stage": BM25_SETUP,
            "warmup_queries": WARMUP}, sizes


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (as Spearman's correlation takes them)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two score lists: 1.0 when both are constant, 0.0 when
    only one is (it then orders nothing)."""
    ra, rb = _ranks(np.asarray(a)), _ranks(np.asarray(b))
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return 1.0 if np.ptp(ra) == np.ptp(rb) else 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _agreement(reference: np.ndarray, scores: np.ndarray,
               sizes: list[int]) -> tuple[float, float, float]:
    """(mean and min per-claim Spearman, max |difference|) of `scores` against `reference`."""
    bounds = np.cumsum([0, *sizes])
    per_claim = [spearman(reference[s:e], scores[s:e]) for s, e in zip(bounds, bounds[1:])]
    return (float(np.mean(per_claim)), float(np.min(per_claim)),
            float(np.max(np.abs(reference - scores))))


def measure_rerank(fleet: Fleet, rounds: int, scores_dir: Path,
                   sizes: list[int]) -> list[RerankRow]:
    """Pairs/s, per-claim latency and agreement, round-robin over the fleet.

    `sizes` is each claim's number of candidates (the scores are saved flat, claim by claim).
    """
    scores_dir.mkdir(parents=True, exist_ok=True)

    def task(point: str, round_index: int, system: str) -> dict[str, Any]:
        save = str(scores_dir / f"{system}.npy") if round_index == 0 else None
        return {"task": "rerank", "warmup": WARMUP, "save": save}

    results = fleet.run_rounds(["rerank"], task, rounds)
    base = next((s.key for s in fleet.statuses.values()
                 if s.role == "baseline" and s.key in results), None)
    reference = np.load(scores_dir / f"{base}.npy") if base else None
    rows = []
    for key, (replies,) in results.items():
        seconds = [sum(reply["times"]) for reply in replies]
        pairs = replies[0]["pairs"]
        agreement = (None, None, None) if reference is None else _agreement(
            reference, np.load(scores_dir / f"{key}.npy"), sizes)
        speedup = None if base is None else ratio_of_rounds(
            [sum(r["times"]) for r in results[base][0]], seconds)
        rates = [pairs / s for s in seconds]
        p50s = [1e3 * percentile(r["times"], 50) for r in replies]
        rows.append(RerankRow(
            key, len(replies[0]["times"]), pairs, pairs / median_of_rounds(seconds), rates,
            speedup, median_of_rounds(p50s),
            1e3 * median_of_rounds([percentile(r["times"], 90) for r in replies]), p50s,
            *agreement, fleet.statuses[key].load_s, spread(rates),
        ))
    return rows
