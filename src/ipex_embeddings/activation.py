"""The cross-encoder's activation, inside the OpenVINO graph (as pooling is for a bi-encoder).

A cross-encoder's IR ends at its classification head's logits (float32 [batch, 1 or 2]).
`add_scores` appends what turns them into scores, so the compiled model returns float32
[batch, 2]: column `SIGMOID` holds the sigmoid of the margin, column `MARGIN` the margin itself.
The margin is the one logit, or for two logits (negative, positive) their difference, whose
sigmoid is exactly the softmax's positive-class probability. So every activation a folder or a
call may ask for ("sigmoid", "softmax", "none") is one column of the same inference.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops

__all__ = ["MARGIN", "SCORE_COLUMNS", "SIGMOID", "add_scores", "column_of", "scores_array",
           "scores_of"]

SIGMOID, MARGIN = 0, 1
SCORE_COLUMNS = 2
"""Columns of the scored model's output: the sigmoid of the margin, and the margin."""
OUTPUT_NAME = "scores"


def column_of(activation: str) -> int:
    """The output column of `activation`: "sigmoid" and "softmax" read the sigmoid of the margin
    (equal to the softmax's positive class for two logits), "none" the margin."""
    return MARGIN if activation == "none" else SIGMOID


def add_scores(model: ov.Model) -> ov.Model:
    """A new `ov.Model` whose one output is float32 [batch, 2]: (sigmoid(margin), margin).

    Args:
        model: a cross-encoder IR whose first output is its [batch, 1 or 2] logits. It is not
            changed.

    Raises:
        ValueError: the logits are not [batch, 1] or [batch, 2].
    """
    labels = model.output(0).get_partial_shape()
    if labels.rank.is_dynamic or labels.rank.get_length() != 2 or labels[1].is_dynamic or \
            labels[1].get_length() not in (1, 2):
        raise ValueError(
            f"The cross-encoder IR's output has shape {labels}, not [batch, 1 or 2] logits; "
            "rebuild the folder with `ipex-embed quantize`."
        )
    model = model.clone()
    result = model.get_results()[0]
    logits = result.input_value(0)
    if labels[1].get_length() == 1:
        margin = logits
    else:
        positive = ops.gather(logits, ops.constant([1], ov.Type.i64), ops.constant(1, ov.Type.i64))
        negative = ops.gather(logits, ops.constant([0], ov.Type.i64), ops.constant(1, ov.Type.i64))
        margin = ops.subtract(positive, negative)
    margin = ops.convert(margin, ov.Type.f32)
    scores = ops.concat([ops.sigmoid(margin), margin], axis=1)
    result.input(0).replace_source_output(scores.output(0))
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    model.validate_nodes_and_infer_types()
    return model


def scores_array(logits: np.ndarray) -> np.ndarray:
    """What `add_scores` appends, in numpy: float32 [batch, 1 or 2] logits to float32 [batch, 2]
    (sigmoid(margin), margin), for engines that run the bare cross-encoder.

    Raises:
        ValueError: the logits are not [batch, 1] or [batch, 2].
    """
    if logits.ndim != 2 or logits.shape[1] not in (1, 2):
        raise ValueError(
            f"The cross-encoder's output has shape {logits.shape}, not [batch, 1 or 2] logits; "
            "rebuild the folder with `ipex-embed quantize`."
        )
    logits = logits.astype(np.float32, copy=False)
    margin = logits[:, :1] if logits.shape[1] == 1 else logits[:, 1:2] - logits[:, 0:1]
    sigmoid = (1.0 / (1.0 + np.exp(-margin))).astype(np.float32)
    return np.concatenate([sigmoid, margin], axis=1)


def scores_of(outputs: np.ndarray, activation: str) -> np.ndarray:
    """The float32 [batch] scores of `activation` from the scored model's [batch, 2] output."""
    return np.ascontiguousarray(outputs[:, column_of(activation)], dtype=np.float32)
