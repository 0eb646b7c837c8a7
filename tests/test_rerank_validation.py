"""The fp32 reference of cross-encoder validation: one score per pair whatever the head."""

from __future__ import annotations

import numpy as np
import pytest

from ipex_embeddings_builder.rerank_validation import ranking_scores, score_agreement


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


def test_the_score_gate_sees_a_wrong_activation_that_rankings_cannot() -> None:
    """A sigmoid where the source gives raw logits keeps every ranking (it is monotonic) but
    moves the scores by about their spread: the score gate fails it; int8-sized noise passes."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, 2000)
    wrong = score_agreement(1 / (1 + np.exp(-logits)), logits)
    assert not wrong["passed"] and wrong["median_abs_diff"] > 0.25 * wrong["fp32_std"]
    noisy = score_agreement(logits + rng.normal(0.0, 0.05, logits.size), logits)
    assert noisy["passed"] and noisy["max_abs_diff"] > 0.1
    assert score_agreement(logits, logits)["passed"]
