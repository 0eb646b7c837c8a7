"""Pooling: token states to one sentence vector, inside the OpenVINO graph.

The model folder's IR ends at the transformer's `last_hidden_state` (float32, shape
[batch, tokens, hidden]). `add_pooling` appends the pooling the folder asks for, so the compiled
model returns [batch, hidden] float32 vectors and the token states never leave OpenVINO: no copy
of the largest tensor into numpy, no pooling in Python. The modes are sentence-transformers'
(`sentence_transformers.models.Pooling`, version 6.2), computed as it computes them for
right-padded inputs (the only padding the runtime makes):

- "cls": the state of the first token under the pooling mask;
- "max": the element-wise maximum over the masked tokens;
- "mean": the mean over the masked tokens; "mean_sqrt_len_tokens": their sum / sqrt(count);
- "weightedmean": the mean weighted by position (1, 2, 3, ...), as in SGPT;
- "lasttoken": the state of the last masked token (decoders such as Qwen3-Embedding).

With `exclude_prompt` (sentence-transformers' `include_prompt: false`) the pooled model takes one
more input, `prompt_length` (int64 scalar): the first `prompt_length` positions are left out of
the pooling mask, as sentence-transformers zeroes them; attention itself still sees them.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops

__all__ = ["POOLING_MODES", "PROMPT_LENGTH_INPUT", "add_pooling", "pool"]

POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
"""The pooling modes a model folder may name (sentence-transformers' names)."""
OUTPUT_NAME = "sentence_embedding"
PROMPT_LENGTH_INPUT = "prompt_length"
"""The extra scalar input of a model pooled with `exclude_prompt=True`."""


def _check_mode(mode: str) -> None:
    if mode not in POOLING_MODES:
        raise ValueError(f"pooling={mode!r} is not supported; use one of {POOLING_MODES}.")


def _i64(value: object) -> ov.Node:
    return ops.constant(value, ov.Type.i64)


def _pooling_mask(mask_input: ov.Node, model: ov.Model, exclude_prompt: bool) -> tuple:
    """The [batch, tokens] float32 pooling mask and the [1, tokens] int64 positions 0..T-1."""
    mask = ops.convert(mask_input, ov.Type.f32)
    width = ops.gather(ops.shape_of(mask_input, ov.Type.i64), _i64(1), _i64(0))
    positions = ops.unsqueeze(ops.range(_i64(0), width, _i64(1), ov.Type.i64), _i64([0]))
    if exclude_prompt:
        prompt_length = ops.parameter([], ov.Type.i64, name=PROMPT_LENGTH_INPUT)
        prompt_length.output(0).get_tensor().set_names({PROMPT_LENGTH_INPUT})
        model.add_parameters([prompt_length])
        kept = ops.convert(ops.greater_equal(positions, prompt_length), ov.Type.f32)
        mask = ops.multiply(mask, kept)
    return mask, positions


def _gather_rows(hidden: ov.Node, index: ov.Node) -> ov.Node:
    """hidden[b, index[b]] for each row b: [batch, hidden]."""
    return ops.gather(hidden, index, _i64(1), batch_dims=1)


def _pooled(hidden: ov.Node, mask: ov.Node, positions: ov.Node, mode: str) -> ov.Node:
    """The pooled [batch, hidden] vectors of `mode` (see the module docstring)."""
    weights = ops.unsqueeze(mask, _i64([2]))
    axis = _i64([1])
    on = ops.greater(mask, ops.constant(0.0, ov.Type.f32))
    if mode in ("cls", "lasttoken"):
        width = ops.gather(ops.shape_of(mask, ov.Type.i64), _i64(1), _i64(0))
        if mode == "cls":  # torch's argmax: the first masked position, else 0
            found = ops.reduce_min(ops.select(on, positions, width), axis, keep_dims=False)
            index = ops.select(ops.equal(found, width), _i64(0), found)
            return _gather_rows(hidden, index)
        found = ops.reduce_max(ops.select(on, positions, _i64(-1)), axis, keep_dims=False)
        index = ops.select(ops.less(found, _i64(0)), _i64(0), found)
        return _gather_rows(ops.multiply(hidden, weights), index)
    if mode == "max":
        minus_inf = ops.constant(float("-inf"), ov.Type.f32)
        return ops.reduce_max(ops.select(ops.unsqueeze(on, _i64([2])), hidden, minus_inf), axis)
    if mode == "weightedmean":  # right padding: the weights are the positions 1..T
        weights = ops.multiply(
            weights, ops.unsqueeze(ops.convert(ops.add(positions, _i64(1)), ov.Type.f32), _i64([2]))
        )
    summed = ops.reduce_sum(ops.multiply(hidden, weights), axis)
    counts = ops.maximum(ops.reduce_sum(weights, axis), ops.constant(1e-9, ov.Type.f32))
    return ops.divide(summed, ops.sqrt(counts) if mode == "mean_sqrt_len_tokens" else counts)


def add_pooling(model: ov.Model, mode: str, *, exclude_prompt: bool = False) -> ov.Model:
    """A new `ov.Model` whose one output is the pooled [batch, hidden] float32 vector.

    Args:
        model: the folder's IR, with an `attention_mask` input and the token states as its first
            output. It is not changed.
        mode: one of `POOLING_MODES`.
        exclude_prompt: add the `prompt_length` input; its first positions are not pooled.

    Raises:
        ValueError: for an unknown mode, or a model without an `attention_mask` input.
    """
    _check_mode(mode)
    if not any(p.get_friendly_name() == "attention_mask" for p in model.get_parameters()):
        raise ValueError(
            "The model has no attention_mask input, so its padding cannot be pooled away; "
            "rebuild the folder with `ipex-embed quantize`."
        )
    model = model.clone()
    parameters = model.get_parameters()
    mask_input = next(p for p in parameters if p.get_friendly_name() == "attention_mask")
    result = model.get_results()[0]
    mask, positions = _pooling_mask(mask_input, model, exclude_prompt)
    pooled = _pooled(result.input_value(0), mask, positions, mode)
    result.input(0).replace_source_output(pooled.output(0))
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    model.validate_nodes_and_infer_types()
    return model


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str, prompt_length: int = 0) -> np.ndarray:
    """The same pooling in numpy, for token states computed elsewhere (e.g. a reference model).

    Args:
        hidden: [batch, tokens, hidden] token states.
        mask: [batch, tokens] attention mask (1 for a token, 0 for padding), right-padded.
        mode: one of `POOLING_MODES`.
        prompt_length: leading positions left out of the pooling (`include_prompt: false`).

    Returns:
        [batch, hidden] float32 vectors, not normalised.
    """
    _check_mode(mode)
    hidden = hidden.astype(np.float32, copy=False)
    mask = mask.astype(np.float32, copy=True)
    mask[:, :prompt_length] = 0
    rows = np.arange(len(hidden))
    on = mask > 0
    if mode == "cls":
        return hidden[rows, on.argmax(axis=1)].copy()
    if mode == "lasttoken":
        last = np.where(on.any(axis=1), mask.shape[1] - 1 - on[:, ::-1].argmax(axis=1), 0)
        return (hidden * mask[:, :, None])[rows, last]
    if mode == "max":
        return np.where(on[:, :, None], hidden, -np.inf).max(axis=1).astype(np.float32)
    weights = mask[:, :, None]
    if mode == "weightedmean":
        weights = weights * np.arange(1, mask.shape[1] + 1, dtype=np.float32)[None, :, None]
    summed = np.einsum("bsh,bsx->bh", hidden, weights, dtype=np.float32)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    return summed / (np.sqrt(counts) if mode == "mean_sqrt_len_tokens" else counts)
