"""Ray Data: embed a column of a `ray.data.Dataset` on a cluster, one model per actor.

    import ray
    from ipex_embeddings.ray import embed_dataset

    ds = ray.data.read_parquet("s3://bucket/corpus/")
    ds = embed_dataset(ds, "you/bge-small-int8", text_column="text", actors=8, threads_per_actor=4)
    ds.write_parquet("s3://bucket/vectors/")

`RayEmbedder` is the callable class behind it, for your own `map_batches(RayEmbedder,
batch_format="pyarrow", compute=ActorPoolStrategy(size=N), num_cpus=T,
fn_constructor_kwargs={...})`: Ray builds it once per actor (the model is loaded once per actor,
with T inference threads), and it adds a `fixed_size_list<float32>[dimension]` column. The core
(`ipex_embeddings.Encoder`) never imports this module.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .batching import first_invalid_text
from .encoder import Encoder

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

__all__ = ["RayEmbedder", "crash_hook_for_tests", "embed_dataset", "require_ray", "vector_column"]

logger = logging.getLogger(__name__)

CRASH_DIR_ENV = "IPEX_EMBEDDINGS_TEST_CRASH_DIR"
"""Test hook: a folder; a file `armed` holding N there makes one actor exit after N batches."""


def require_ray() -> Any:
    """Import and return `ray` (with Ray Data), or raise an ImportError with the install line."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError(
            'Ray Data is not installed; install it with: pip install "ipex-embeddings[ray]"'
        ) from err
    return ray


def vector_column(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """A float32 (n, dim) array as an Arrow `fixed_size_list<float32>[dim]` array (no copy)."""
    import pyarrow as pa

    array = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def crash_hook_for_tests(batches_done: int) -> None:
    """Documented test hook: kill this worker process after `batches_done` batches, once.

    Does nothing unless $IPEX_EMBEDDINGS_TEST_CRASH_DIR names a folder holding a file `armed`
    with a number N. The first actor to reach N batches renames it to `fired` (only one rename
    can win) and exits at once, as a killed node would; the tests then check that Ray retried
    the batch and that nothing was lost or duplicated.
    """
    folder = os.environ.get(CRASH_DIR_ENV)
    if not folder:
        return
    armed = Path(folder) / "armed"
    try:
        if batches_done < int(armed.read_text()):
            return
        os.rename(armed, Path(folder) / "fired")
    except (OSError, ValueError):
        return  # not armed, or another actor fired first
    logger.warning("test hook: this actor exits now (after %d batches)", batches_done)
    os._exit(1)


class RayEmbedder:
    """A callable class for `Dataset.map_batches(..., batch_format="pyarrow")`: loads the model
    once per actor and appends the embeddings of `text_column` as `output_column`.

    Args:
        model: a model folder (that every node can read) or a Hub repo id.
        text_column: the column of texts (str; a null or non-string raises a TypeError naming
            its row, or its id with `id_column`).
        output_column: the new column, `fixed_size_list<float32>[dimension]`.
        kind: "document" or "query": which of the model's prompts is used.
        batch_size: texts per inference call inside a Ray batch.
        threads: inference threads of this actor (match `num_cpus`).
        id_column: a column to name bad rows by in errors.
        **load_options: the other options of `Encoder.load` (streams, compile_cache, prompts,
            revision, cache_dir, token).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        text_column: str = "text",
        output_column: str = "embedding",
        kind: Literal["document", "query"] = "document",
        batch_size: int = 32,
        threads: int | None = 1,
        id_column: str | None = None,
        **load_options: Any,
    ) -> None:
        self.encoder = Encoder.load(model, threads=threads, **load_options)
        self.text_column = text_column
        self.output_column = output_column
        self.kind = kind
        self.batch_size = batch_size
        self.id_column = id_column
        self.batches_done = 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Embed one batch: a table with `text_column` -> the same table plus `output_column`."""
        if self.text_column not in batch.column_names:
            raise KeyError(
                f"The dataset has no column {self.text_column!r} (its columns: "
                f"{', '.join(batch.column_names)}); pass text_column=."
            )
        texts = batch.column(self.text_column).to_pylist()
        self._check(batch, texts)
        self.batches_done += 1
        crash_hook_for_tests(self.batches_done)
        vectors = self.encoder.encode(  # a float32 column whatever the folder's default
            texts, self.kind, batch_size=self.batch_size, precision="float32"
        )
        return batch.append_column(self.output_column, vector_column(vectors))

    def _check(self, batch: pa.Table, texts: list[object]) -> None:
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if bad is None:
            bad = first_invalid_text(texts)  # type: ignore[arg-type]
        if bad is None:
            return
        where = (f"the row with {self.id_column}={batch.column(self.id_column)[bad].as_py()!r}"
                 if self.id_column else f"row {bad} of a batch of {len(texts)}")
        raise TypeError(
            f"Column {self.text_column!r}: {where} holds {type(texts[bad]).__name__} "
            f"{str(texts[bad])[:40]!r}, not valid text; filter or clean such rows first "
            f"(e.g. ds.filter(expr='{self.text_column} IS NOT NULL')), or use `ipex-embed "
            "embed --engine ray --skip-bad-rows`, which writes them to rejects files."
        )


def embed_dataset(
    dataset: ray.data.Dataset,
    model: str | os.PathLike[str],
    *,
    text_column: str = "text",
    output_column: str = "embedding",
    kind: Literal["document", "query"] = "document",
    actors: int = 1,
    threads_per_actor: int = 1,
    rows_per_batch: int = 1024,
    max_restarts: int = 3,
    **embedder_options: Any,
) -> ray.data.Dataset:
    """Add the embeddings of `text_column` to `dataset` (lazily, as Ray Data does).

    `actors` actors each load the model once and run `threads_per_actor` inference threads
    (reserve `threads_per_actor` CPUs each; actors x threads = cores is the usual choice). A
    killed actor is restarted and its batch retried, up to `max_restarts` times.

    Returns:
        The dataset with `output_column`: fixed_size_list<float32>[dimension], one per row.

    Raises:
        ImportError: Ray Data is not installed (with the pip line).
    """
    ray = require_ray()
    return dataset.map_batches(
        RayEmbedder,
        batch_format="pyarrow",
        batch_size=rows_per_batch,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads_per_actor,
        fn_constructor_args=(str(model),),
        fn_constructor_kwargs={
            "text_column": text_column, "output_column": output_column, "kind": kind,
            "threads": threads_per_actor, **embedder_options,
        },
        max_restarts=max_restarts,
        max_task_retries=max_restarts,
    )
