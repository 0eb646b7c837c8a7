"""Reranking retrieved texts against a query, for the rerankers of both adapters.

Bi-encoder cosine, or a cross-encoder's relevance score, optionally fused with the first stage's
ranking (reciprocal rank fusion); `rerank` does the scoring, fusing, ordering, `top_n` cut and
the metadata the rerankers add, so LangChain's `IPEXRerankCompressor` and LlamaIndex's
`IPEXRerank` rank alike by construction.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .batching import first_invalid_text
from .cross_encoder import CrossEncoder
from .encoder import Encoder, Truncation
from .errors import InvalidTextError

__all__ = [
    "COSINE_KEY", "FUSIONS", "Fusion", "RELEVANCE_KEY", "RETRIEVAL_KEY", "RRF_K", "RankedText",
    "SameModelWarning", "cosine_scores", "reciprocal_rank_fusion", "rerank",
]

Fusion = Literal["none", "rrf"]
FUSIONS = ("none", "rrf")
COSINE_KEY = "cosine_score"
"""Metadata key of the cosine to the query; the rerankers set it with a bi-encoder."""
RELEVANCE_KEY = "relevance_score"
"""Metadata key of the cross-encoder's score; the rerankers set it with a cross-encoder."""
RETRIEVAL_KEY = "retrieval_score"
"""Metadata key of the first stage's score, set with keep_retrieval_score=True (None if none)."""
RRF_K = 60  # the constant of Cormack et al. (2009), used as is: nothing is tuned on test data
SAME_SCORE_TOLERANCE = 1e-3
"""First-stage scores this close to a bi-encoder's cosines come from the same model."""


class SameModelWarning(UserWarning):
    """A bi-encoder reranks candidates retrieved by the same model: the order cannot change."""


def cosine_scores(
    encoder: Encoder,
    query: str,
    texts: list[str],
    *,
    batch_size: int = 32,
    truncation: Truncation = "warn",
) -> np.ndarray:
    """Cosine of each text to the query: one core call, or two when the prompts differ."""
    options = {"batch_size": batch_size, "truncation": truncation, "normalize": True}
    if encoder.config.query_prompt == encoder.config.document_prompt:
        vectors = encoder.encode([query, *texts], "document", **options)  # type: ignore[arg-type]
        return vectors[1:] @ vectors[0]
    query_vector = encoder.encode([query], "query", **options)[0]  # type: ignore[arg-type]
    return encoder.encode(texts, "document", **options) @ query_vector  # type: ignore[arg-type]


def _ranks(scores: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks


def reciprocal_rank_fusion(
    dense_scores: np.ndarray, first_stage_scores: Sequence[float | None], k: int = RRF_K
) -> np.ndarray:
    """RRF of the bi-encoder's ranking and the first stage's: sum of 1 / (k + rank).

    A text without a first-stage score (None) is ranked by the first stage after all scored ones,
    in input order, which is the order the first stage returned them in.
    """
    given = np.array(
        [-np.inf if s is None else float(s) for s in first_stage_scores], dtype=np.float64
    )
    first = _ranks(given)
    return 1.0 / (k + _ranks(np.asarray(dense_scores, dtype=np.float64))) + 1.0 / (k + first)


@dataclass(frozen=True)
class RankedText:
    """One candidate kept by `rerank`."""

    index: int
    """Its position in the candidates passed in."""
    score: float
    """The sorting score: the cosine or cross-encoder score (fusion="none") or the RRF value
    (fusion="rrf")."""
    metadata: dict[str, float | None]
    """What the rerankers add to its metadata: COSINE_KEY (bi-encoder) or RELEVANCE_KEY
    (cross-encoder), and RETRIEVAL_KEY if asked."""


def rerank(
    encoder: Encoder | CrossEncoder,
    query: str,
    texts: list[str],
    first_stage_scores: Sequence[float | None] | None = None,
    *,
    top_n: int,
    fusion: Fusion = "none",
    keep_retrieval_score: bool = False,
    batch_size: int = 32,
    truncation: Truncation = "warn",
    where: str = "texts[{i}]",
) -> list[RankedText]:
    """Score `texts` against `query`, order them best first and keep the `top_n` best.

    Args:
        encoder: an `Encoder` (cosine of the query and text vectors, with their prompts) or a
            `CrossEncoder` (each (query, text) pair's score, with its activation).
        query, texts: the query and the candidates' contents.
        first_stage_scores: one per text, higher is better, None where a text has none (ranked
            after the scored ones, in input order); None for all: the input order is the first
            stage's ranking.
        fusion: "none" sorts by the model's score; "rrf" by reciprocal rank fusion (k=60) of
            the model's ranking and the first stage's.
        keep_retrieval_score: also put the first-stage score in metadata[RETRIEVAL_KEY].
        where: how the errors name a text, with `{i}` for its index (e.g. "nodes[{i}]").

    Returns:
        At most `top_n` RankedText, best first; ties keep their input order.

    Raises:
        ValueError: an unknown `fusion`, `top_n` < 1, or not one first-stage score per text.
        InvalidTextError: a text holds a lone surrogate; names it by `where`.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion={fusion!r} is not supported; use one of {FUSIONS}.")
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}.")
    if not texts:
        return []
    given = [None] * len(texts) if first_stage_scores is None else list(first_stage_scores)
    if len(given) != len(texts):
        raise ValueError(
            f"{len(given)} first-stage scores for {len(texts)} texts; give one per text "
            "(None where a text has none), or None for all."
        )
    try:
        key, model_scores = _model_scores(encoder, query, texts, batch_size, truncation)
    except InvalidTextError:
        _raise_for_bad_text(texts, where)
        raise  # the query (or a prompt): already named as well as it can be
    if key == COSINE_KEY:
        _warn_if_same_model(model_scores, given)
    scores = reciprocal_rank_fusion(model_scores, given) if fusion == "rrf" else model_scores
    ranked = []
    for i in np.argsort(-scores, kind="stable")[:top_n]:
        metadata: dict[str, float | None] = {key: float(model_scores[i])}
        if keep_retrieval_score:
            metadata[RETRIEVAL_KEY] = given[i]
        ranked.append(RankedText(int(i), float(scores[i]), metadata))
    return ranked


def _model_scores(
    model: Encoder | CrossEncoder, query: str, texts: list[str], batch_size: int,
    truncation: Truncation,
) -> tuple[str, np.ndarray]:
    """The metadata key of the model's scores, and the scores: cross-encoder or cosine."""
    if isinstance(model, CrossEncoder):
        scores = model.score(query, texts, batch_size=batch_size, truncation=truncation)
        return RELEVANCE_KEY, scores
    scores = cosine_scores(model, query, texts, batch_size=batch_size, truncation=truncation)
    return COSINE_KEY, scores


def _warn_if_same_model(cosines: np.ndarray, first_stage: list[float | None]) -> None:
    """Warn when every first-stage score equals the bi-encoder's cosine (a vector index built
    with this same model): reranking then returns the retriever's order and only costs time."""
    if len(first_stage) < 2 or any(s is None for s in first_stage):
        return
    given = np.asarray(first_stage, dtype=np.float64)
    if np.abs(given - cosines).max() <= SAME_SCORE_TOLERANCE:
        warnings.warn(
            f"The {len(given)} candidates' retrieval scores equal this reranker's cosines (to "
            f"{SAME_SCORE_TOLERANCE}): they were retrieved with the same bi-encoder, so "
            "reranking with it keeps their order. Rerank with a cross-encoder folder "
            "(`ipex-embed quantize cross-encoder/ms-marco-MiniLM-L6-v2 -o reranker-int8`) or "
            "another bi-encoder, or leave the reranker out.",
            SameModelWarning,
            stacklevel=4,
        )


def _raise_for_bad_text(texts: list[str], where: str) -> None:
    """Name the first text holding a lone surrogate by `where` (the core counts the query in)."""
    bad = first_invalid_text(texts)
    if bad is not None:
        raise InvalidTextError(where.format(i=bad), texts[bad]) from None
