"""Validate a cross-encoder folder: rerank SciFact's BM25 candidates, int8 next to fp32.

Each SciFact TEST claim's BM25 top `depth` (`bm25.Bm25Index`) is reranked twice: by the folder's
model (`ipex_embeddings.CrossEncoder`, on the engine this CPU picks) and by its fp32 source run by
sentence-transformers' `CrossEncoder` (PyTorch). Each ranking is scored by pytrec_eval (the
evaluator BEIR and MTEB use): NDCG@10 (`ndcg_cut_10`) and MAP (`map`, over the reranked top
`depth`), averaged over every judged claim. A metric that loses more than `max_loss` percent of
the fp32 score fails the gate. The report is the bi-encoder's `ValidationReport` (so build's gate,
card and publish read it alike), with rows named by metric.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bm25 import BM25_SETUP, Bm25Index
from .commandline import command_line
from .data import BeirData, load_beir
from .validation_report import (
    DEFAULT_MAX_LOSS,
    ENGINE_LABELS,
    ValidationReport,
    ValidationRow,
    relative_loss,
)

__all__ = [
    "DEFAULT_DEPTH", "MAX_SCORE_SHIFT", "METRICS", "RerankReport", "rerank_metrics",
    "score_agreement", "validate_cross_encoder",
]

logger = logging.getLogger(__name__)

DEFAULT_DEPTH = 100
METRICS = {"ndcg_at_10": ("ndcg_cut.10", "ndcg_cut_10"), "map": ("map", "map")}
"""Our metric name -> (pytrec_eval measure, its key in pytrec_eval's results)."""
TASK = "SciFact BM25 rerank"
Run = dict[str, dict[str, float]]


MAX_SCORE_SHIFT = 0.25
"""The score gate: the median |score - fp32 score| over all pairs may be at most this share of
the fp32 scores' standard deviation. int8 moves scores far less; a different activation or scale
(a sigmoid where the source gives raw logits moved scores by up to 1.3) moves them by about
their spread, which the ranking metrics cannot see (the activations are monotonic)."""


def score_agreement(model: np.ndarray, fp32: np.ndarray) -> dict[str, Any]:
    """How far the folder's scores are from fp32's on the same pairs, and the score gate."""
    diff = np.abs(np.asarray(model, np.float64) - np.asarray(fp32, np.float64))
    spread = float(np.std(fp32))
    median = float(np.median(diff)) if diff.size else 0.0
    return {"median_abs_diff": median, "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "fp32_std": spread, "max_shift": MAX_SCORE_SHIFT,
            "passed": median <= MAX_SCORE_SHIFT * spread or median < 1e-6}


@dataclass
class RerankReport(ValidationReport):
    """A `ValidationReport` whose table says what was reranked and by which evaluator, with the
    agreement of the scores themselves (`score_agreement`), which is part of the gate."""

    first_stage: str = ""
    depth: int = DEFAULT_DEPTH
    evaluator: str = ""
    scores: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return super().passed and (self.scores is None or bool(self.scores["passed"]))

    def to_markdown(self) -> str:
        """The bi-encoder table, with the first stage and the evaluator named under it."""
        text = super().to_markdown().replace(
            f" mteb {self.mteb_version}.",
            f" Candidates: the {self.first_stage} top {self.depth} of each claim; metrics by "
            f"{self.evaluator}.",
        )
        return text

    def gate_notes(self) -> list[str]:
        """The score gate's line, after the bi-encoder's notes."""
        if self.scores is None:
            return super().gate_notes()
        s = self.scores
        return [*super().gate_notes(), (
            f"Scores against fp32 on the same pairs: median |difference| "
            f"{s['median_abs_diff']:.4f}, largest {s['max_abs_diff']:.4f}, fp32 scores' "
            f"standard deviation {s['fp32_std']:.4f}. Gate: median at most {s['max_shift']:g} "
            f"of that deviation: **{'PASSED' if s['passed'] else 'FAILED'}**.")]


def _subset(data: BeirData, limit: int | None) -> BeirData:
    if limit is None:
        return data
    kept = sorted(data.qrels)[:limit]
    return BeirData(data.corpus, {q: data.queries[q] for q in kept},
                    {q: data.qrels[q] for q in kept})


def rerank_metrics(qrels: dict[str, dict[str, int]], run: Run) -> dict[str, float]:
    """pytrec_eval's NDCG@10 and MAP of `run`, averaged over every judged query (0 if absent)."""
    import pytrec_eval

    measures = {measure for measure, _ in METRICS.values()}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    return {
        name: float(np.mean([per_query.get(q, {}).get(key, 0.0) for q in qrels]))
        for name, (_, key) in METRICS.items()
    }


def _run(candidates: dict[str, list[str]], scores: np.ndarray) -> Run:
    """Scores (flat, in candidate order) back into a run; pytrec_eval ranks by score."""
    run: Run = {}
    start = 0
    for qid, doc_ids in candidates.items():
        chunk = scores[start:start + len(doc_ids)]
        run[qid] = {d: float(s) for d, s in zip(doc_ids, chunk)}
        start += len(doc_ids)
    return run


def _pairs(data: BeirData, index: Bm25Index, depth: int) -> tuple[dict, list[tuple[str, str]]]:
    found = index.search(data.queries, depth)
    candidates = {q: [d for d, _ in found[q]] for q in found}
    pairs = [(data.queries[q], index.texts[d]) for q, docs in candidates.items() for d in docs]
    return candidates, pairs


def _fp32_scores(reference: Path, max_length: int, pairs: list[tuple[str, str]]) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(reference), device="cpu", max_length=max_length,
                         local_files_only=True)
    return ranking_scores(np.asarray(model.predict(pairs, batch_size=32,
                                                   show_progress_bar=False)))


def ranking_scores(scores: np.ndarray) -> np.ndarray:
    """One score per pair from sentence-transformers' `predict`: float [n] as it is, and for a
    two-logit (negative, positive) model, whose `predict` gives [n, 2], the positive margin,
    which orders pairs as softmax's positive-class probability does."""
    if scores.ndim == 2 and scores.shape[1] == 2:
        return scores[:, 1] - scores[:, 0]
    if scores.ndim != 1:
        raise ValueError(f"expected one or two logits per pair, got scores of shape {scores.shape}")
    return scores


def _scored(model_dir: Path, reference: Path, pairs: list) -> tuple[Any, dict[str, np.ndarray]]:
    """(the folder's config, the scores of both models with their seconds)."""
    from ipex_embeddings import CrossEncoder, TruncationWarning

    model = CrossEncoder.load(model_dir)
    engine = ENGINE_LABELS.get(model.engine.name, model.engine.name)
    logger.info("  scoring %d pairs with %s (%s), then fp32 (sentence-transformers)",
                len(pairs), model.config.precision, engine)
    scores, seconds = {}, {}
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Most abstracts are longer than max_seq_length; both models score their start.
        warnings.simplefilter("ignore", TruncationWarning)
        scores["model"] = model.predict(pairs, batch_size=32)
    seconds["model"] = time.perf_counter() - started
    started = time.perf_counter()
    scores["fp32"] = _fp32_scores(reference, model.max_seq_length, pairs)
    seconds["fp32"] = time.perf_counter() - started
    return model.config, {"scores": scores, "seconds": seconds, "engine": engine}


def _source_folder(config: Any, reference: str | Path | None) -> Path:
    from .errors import SourceModelError
    from .source import local_copy

    if reference is not None and Path(reference).expanduser().is_dir():
        return Path(reference).expanduser()
    name = str(reference or config.source_model)
    try:
        return local_copy(name, config.source_revision or None)[0]
    except SourceModelError as err:
        raise SourceModelError(
            f"The fp32 source {name!r} of this cross-encoder cannot be found ({err}). Pass the "
            "source folder as the reference (`ipex-embed validate --reference FOLDER`)."
        ) from err


def validate_cross_encoder(
    model_dir: Path,
    *,
    max_loss: float = DEFAULT_MAX_LOSS,
    subset: int | None = None,
    reference: str | Path | None = None,
    depth: int = DEFAULT_DEPTH,
    write: bool = True,
) -> RerankReport:
    """Rerank SciFact test claims' BM25 candidates with the folder and its fp32 source; gate.

    Args:
        model_dir: a cross-encoder model folder (kind "cross-encoder").
        max_loss: the gate: largest loss per metric, in percent of the fp32 score.
        subset: the first `subset` test claims only (quick checks).
        reference: the fp32 source folder (or Hub id); None: the folder's `source_model`.
        depth: BM25 candidates reranked per claim.
        write: write validation.json and validation.md into `model_dir`.

    Raises:
        SourceModelError: the fp32 source cannot be found.
    """
    import pytrec_eval

    model_dir = Path(model_dir)
    data = _subset(load_beir(split="test"), subset)
    logger.info("BM25 top %d of %d SciFact test claims", depth, len(data.queries))
    candidates, pairs = _pairs(data, Bm25Index.build(data.corpus), depth)
    from ipex_embeddings import ModelConfig

    source = _source_folder(ModelConfig.load(model_dir), reference)
    config, result = _scored(model_dir, source, pairs)
    found = {k: rerank_metrics(data.qrels, _run(candidates, s))
             for k, s in result["scores"].items()}
    seconds = {"fp32": round(result["seconds"]["fp32"], 1),
               config.precision: round(result["seconds"]["model"], 1)}
    rows = [
        ValidationRow(task=TASK, metric=name, fp32=found["fp32"][name],
                      quantized=found["model"][name], task_type="Reranking",
                      relative_loss=relative_loss(found["fp32"][name], found["model"][name]),
                      seconds=seconds)
        for name in METRICS
    ]
    for row in rows:
        logger.info("  %s: fp32 %.4f, %s %.4f (%+.2f %%)", row.metric, row.fp32,
                    config.precision, row.quantized, row.relative_loss)
    report = RerankReport(
        rows=rows, max_loss=max_loss, model=model_dir.resolve().name,
        precision=config.precision, reference=Path(str(reference)).name if reference
        else config.source_model, subset=subset, first_stage=BM25_SETUP, depth=depth,
        evaluator=f"pytrec_eval {getattr(pytrec_eval, '__version__', '')}".strip(),
        scores=score_agreement(result["scores"]["model"], result["scores"]["fp32"]),
        engine=result["engine"],
        command=command_line("validate", model_dir.resolve().name, options=[
            ("--max-loss", None if max_loss == DEFAULT_MAX_LOSS else float(max_loss)),
            ("--subset", subset)]),
    )
    if write:
        report.write(model_dir)
    return report
