"""Scoring retrieved texts against a query: bi-encoder cosine, optionally fused with the
first stage's ranking (reciprocal rank fusion), for the rerankers of both adapters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from .encoder import Encoder, Truncation

__all__ = ["Fusion", "RRF_K", "cosine_scores", "reciprocal_rank_fusion"]

Fusion = Literal["none", "rrf"]
RRF_K = 60  # the constant of Cormack et al. (2009), used as is: nothing is tuned on test data


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
