"""Apache Spark: embed a string column with `pyspark.ml.functions.predict_batch_udf`.

    from ipex_embeddings.spark import embedding_udf

    embed = embedding_udf("you/bge-small-int8", kind="document", threads=4)
    vectors = df.withColumn("embedding", embed("text"))      # array<float>, one per row

The model is loaded once per Python worker (`predict_batch_udf` caches the predict function a
worker builds) and reused for every batch it is given. The core (`ipex_embeddings.Encoder`) never
imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .batching import first_invalid_text

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["embed_column", "embedding_udf", "make_predict_fn", "require_pyspark"]


def require_pyspark() -> Any:
    """Import and return `pyspark`, or raise an ImportError with the install line."""
    try:
        import pyspark
        import pyspark.ml.functions  # noqa: F401
    except ImportError as err:
        raise ImportError(
            'PySpark is not installed; install it with: pip install "ipex-embeddings[spark]"'
        ) from err
    return pyspark


def make_predict_fn(
    model: str | os.PathLike[str],
    kind: Literal["document", "query"] = "document",
    batch_size: int = 32,
    threads: int | None = None,
    **load_options: Any,
) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
    """The `make_predict_fn` for `predict_batch_udf`: called once per Python worker, it loads the
    model and returns a function from a batch of texts (numpy array of str, shape (n,)) to their
    float32 (n, dimension) vectors. A null or non-string text raises a TypeError naming it."""

    def load() -> Callable[[np.ndarray], np.ndarray]:
        from .encoder import Encoder

        encoder = Encoder.load(model, threads=threads, **load_options)

        def predict(texts: np.ndarray) -> np.ndarray:
            items = texts.tolist()
            bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
            if bad is None:
                bad = first_invalid_text(items)
            if bad is not None:
                raise TypeError(
                    f"Text {bad} of a batch of {len(items)} is {type(items[bad]).__name__} "
                    f"{str(items[bad])[:40]!r}, not valid text; filter nulls "
                    "(df.where(col.isNotNull())) and clean lone surrogates before embedding."
                )
            return encoder.encode(items, kind, batch_size=batch_size, precision="float32")

        return predict

    return load


def embedding_udf(
    model: str | os.PathLike[str],
    *,
    kind: Literal["document", "query"] = "document",
    rows_per_batch: int = 1024,
    batch_size: int = 32,
    threads: int | None = None,
    **load_options: Any,
) -> Callable[..., Column]:
    """A pandas UDF (via `predict_batch_udf`) mapping a string column to `array<float>` vectors.

    Args:
        model: a model folder every executor can read, or a Hub repo id.
        kind: "document" or "query": which of the model's prompts is used.
        rows_per_batch: rows Spark hands the model at a time.
        batch_size: texts per inference call.
        threads: inference threads per Python worker (set it to spark.task.cpus; default: all
            cores, right for one worker per machine).
        **load_options: the other options of `Encoder.load`.

    Raises:
        ImportError: PySpark is not installed (with the pip line).
    """
    require_pyspark()
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    return predict_batch_udf(
        make_predict_fn(model, kind, batch_size, threads, **load_options),
        return_type=ArrayType(FloatType()),
        batch_size=rows_per_batch,
    )


def embed_column(
    df: DataFrame,
    model: str | os.PathLike[str],
    *,
    text_column: str = "text",
    output_column: str = "embedding",
    **udf_options: Any,
) -> DataFrame:
    """`df` with `output_column` (array<float>) holding the embeddings of `text_column`."""
    return df.withColumn(output_column, embedding_udf(model, **udf_options)(text_column))
