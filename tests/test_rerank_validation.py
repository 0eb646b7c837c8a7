"""The fp32 reference of cross-encoder validation: one score per pair whatever the head."""

from __future__ import annotations

import numpy as np
import pytest

from ipex_embeddings_builder.rerank_validation import ranking_scores


def test_two_logits_rank_as_softmax_does() -> None:
    logits = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    positive = (exp / exp.sum(axis=1, keepdims=True))[:, 1]
    scores = ranking_scores(logits)
    assert scores.shape == (50,)
    assert np.array_equal(np.argsort(-scores, kind="stable"),
                          np.argsort(-positive, kind="stable"))


def test_one_logit_is_kept_and_other_shapes_are_refused() -> None:
    one = np.array([0.3, -1.0, 2.0], dtype=np.float32)
    assert ranking_scores(one) is one
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        ranking_scores(np.zeros((4, 3)))
