"""Pooling: token states to one sentence vector, inside the OpenVINO graph.

The model folder's IR ends at the transformer's `last_hidden_state` (float32, shape
[batch, tokens, hidden]). `add_pooling` appends the pooling the folder asks for, so the compiled
model returns [batch, hidden] float32 vectors and the token states never leave OpenVINO: no copy
of the largest tensor into numpy, no pooling in Python. The modes are sentence-transformers'
(`sentence_transformers.models.Pooling`): "cls" takes the first token's state, "mean" the mean
of the states under the attention mask.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops

__all__ = ["POOLING_MODES", "add_pooling", "pool"]

POOLING_MODES = ("cls", "mean")
"""The pooling modes a model folder may name."""
OUTPUT_NAME = "sentence_embedding"


def add_pooling(model: ov.Model, mode: str) -> ov.Model:
    """A new `ov.Model` whose one output is the pooled [batch, hidden] float32 vector.

    Args:
        model: the folder's IR, with an `attention_mask` input and the token states as its first
            output. It is not changed.
        mode: one of `POOLING_MODES`.

    Raises:
        ValueError: for an unknown mode, or a model without an `attention_mask` input.
    """
    if mode not in POOLING_MODES:
        raise ValueError(f"pooling={mode!r} is not supported; use one of {POOLING_MODES}.")
    mask_inputs = [p for p in model.get_parameters() if p.get_friendly_name() == "attention_mask"]
    if not mask_inputs:
        raise ValueError(
            "The model has no attention_mask input, so its padding cannot be pooled away; "
            "rebuild the folder with `ipex-embed quantize`."
        )
    model = model.clone()
    mask_inputs = [p for p in model.get_parameters() if p.get_friendly_name() == "attention_mask"]
    result = model.get_results()[0]
    hidden = result.input_value(0)
    if mode == "cls":
        pooled = ops.gather(hidden, ops.constant(0, ov.Type.i64), ops.constant(1, ov.Type.i64))
    else:
        mask = ops.convert(mask_inputs[0], ov.Type.f32)
        weights = ops.unsqueeze(mask, ops.constant([2], ov.Type.i64))
        summed = ops.reduce_sum(ops.multiply(hidden, weights), ops.constant([1], ov.Type.i64))
        counts = ops.reduce_sum(weights, ops.constant([1], ov.Type.i64))
        pooled = ops.divide(summed, ops.maximum(counts, ops.constant(1e-9, ov.Type.f32)))
    result.input(0).replace_source_output(pooled.output(0))
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    model.validate_nodes_and_infer_types()
    return model


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """The same pooling in numpy, for token states computed elsewhere (e.g. a reference model).

    Args:
        hidden: [batch, tokens, hidden] token states.
        mask: [batch, tokens] attention mask (1 for a token, 0 for padding).
        mode: one of `POOLING_MODES`.

    Returns:
        [batch, hidden] float32 vectors, not normalised.
    """
    if mode == "cls":
        return hidden[:, 0].astype(np.float32, copy=True)
    if mode != "mean":
        raise ValueError(f"pooling={mode!r} is not supported; use one of {POOLING_MODES}.")
    weights = mask[:, :, None].astype(np.float32)
    summed = np.einsum("bsh,bsx->bh", hidden, weights, dtype=np.float32)
    return summed / np.maximum(weights.sum(axis=1), 1e-9)
