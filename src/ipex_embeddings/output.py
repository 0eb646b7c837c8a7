"""Smaller vectors: Matryoshka truncation (`truncate_dim`) and output precision.

The output precisions are sentence-transformers' (`quantize_embeddings`): "float32", "int8",
"uint8" (scalar quantization over per-dimension ranges), "binary" and "ubinary" (one bit per
dimension, `x > 0`, packed eight to a byte). `quantize` gives exactly what sentence-transformers'
`util.quantization.quantize_embeddings(vectors, precision, ranges=ranges)` gives (checked for
every precision by tests/test_output_size.py).

The name: `ModelConfig.precision` already says how the *weights* are stored (int8, bf16, fp32),
so the folder, `Encoder.load` and the adapters call this one `output_precision`; `Encoder.encode`
takes it per call as `precision`, sentence-transformers' spelling, since there is no ambiguity in
an `encode` call.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FLOAT_PRECISION", "OUTPUT_PRECISIONS", "check_output_precision", "check_truncate_dim",
    "quantization_ranges", "quantize", "truncate",
]

OUTPUT_PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
FLOAT_PRECISION = "float32"
SCALAR_PRECISIONS = ("int8", "uint8")
"""Need `ranges`: the per-dimension minimum and maximum that the 256 buckets span."""


def check_truncate_dim(truncate_dim: int | None, dimension: int) -> None:
    """Refuse a `truncate_dim` that is not None or an int in [1, dimension].

    Raises:
        ValueError: naming the value and the model's dimension.
    """
    if truncate_dim is None:
        return
    if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int | np.integer) or not (
        1 <= truncate_dim <= dimension
    ):
        raise ValueError(
            f"truncate_dim={truncate_dim!r} is not valid for this model of dimension {dimension}; "
            f"give an int from 1 to {dimension}, or None for full-size vectors."
        )


def check_output_precision(
    precision: str, ranges: np.ndarray | None, dimension: int, name: str = "precision"
) -> None:
    """Refuse an unknown precision, int8/uint8 without `ranges`, or ranges of the wrong shape.

    Args:
        precision: one of `OUTPUT_PRECISIONS`.
        ranges: float array of shape (2, dimension): per-dimension min (row 0) and max (row 1).
        dimension: the width of the vectors being quantized (after truncation).
        name: the option the caller passed it as ("precision", or "output_precision" at load),
            for the error.

    Raises:
        ValueError: naming the problem and the fix.
    """
    if precision not in OUTPUT_PRECISIONS:
        raise ValueError(
            f"{name}={precision!r} is not supported; use one of {OUTPUT_PRECISIONS}."
        )
    if precision not in SCALAR_PRECISIONS:
        return
    if ranges is None:
        raise ValueError(
            f'precision="{precision}" needs ranges: the (2, {dimension}) per-dimension min and '
            "max of a representative set of this model's float32 vectors, e.g. "
            "`quantization_ranges(encoder.encode(sample_texts))`. They are never computed from "
            "the texts of one call, which would make a text's vector depend on its batch-mates."
        )
    if np.shape(ranges) != (2, dimension):
        raise ValueError(
            f"ranges has shape {np.shape(ranges)}; it must be (2, {dimension}): the min and max "
            "of each output dimension (after truncate_dim)."
        )


def quantization_ranges(vectors: np.ndarray) -> np.ndarray:
    """The per-dimension (min, max) of float `vectors` (n, d): a float32 (2, d) array, as
    sentence-transformers computes them from its `calibration_embeddings`.

    Raises:
        ValueError: fewer than two vectors.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ValueError(
            f"quantization_ranges needs a (n, d) array of at least two vectors, got shape "
            f"{vectors.shape}; embed a representative sample of your texts (hundreds)."
        )
    return np.vstack((vectors.min(axis=0), vectors.max(axis=0)))


def truncate(vectors: np.ndarray, truncate_dim: int | None, normalize: bool) -> np.ndarray:
    """The first `truncate_dim` columns of float32 `vectors` (n, d), L2-normalised again when
    `normalize` (a model that normalises gives unit vectors at any size). A new array; the input
    is never changed. None returns `vectors` as they are."""
    if truncate_dim is None or truncate_dim == vectors.shape[1]:
        return vectors
    out = np.array(vectors[:, :truncate_dim], dtype=np.float32)
    if normalize:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def quantize(vectors: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """float32 `vectors` (n, d) at `precision`, as sentence-transformers' `quantize_embeddings`.

    Returns float32 (n, d) for "float32"; int8 or uint8 (n, d) for "int8"/"uint8" (bucket
    floor((x - min) / ((max - min) / 255)) clipped to [0, 255], less 128 for int8); int8 or uint8
    (n, ceil(d / 8)) for "binary"/"ubinary" (bits x > 0, big-endian packed; binary less 128).

    Raises:
        ValueError: see `check_output_precision`.
    """
    check_output_precision(precision, ranges, vectors.shape[1])
    if precision == FLOAT_PRECISION:
        return vectors
    if precision in SCALAR_PRECISIONS:
        bounds = np.asarray(ranges).astype(np.float32, copy=False)
        steps = (bounds[1] - bounds[0]) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((vectors - bounds[0]) / steps), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    bits = np.packbits(vectors > 0, axis=-1)
    return bits if precision == "ubinary" else (bits - 128).astype(np.int8)
