"""`ipex-embed embed --engine ray`: the same shards as the local engine, written by Ray actors.

The driver plans the shards (and checks every row) as the local engine does; a Ray Dataset of the
shards still missing is mapped over `actors` actors, each loading the model once, reading its
shards straight from the input files and writing them under temporary names, renamed when
complete. A killed actor is restarted and its shard retried: a rename is all or nothing, so
nothing is lost or written twice. Inputs and output must be paths every node can reach (a shared
file system); the model a folder every node can read, or a Hub repo id.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import (
    EmbedOptions,
    EmbedResult,
    Shard,
    ShardOutcome,
    progress_bar,
    read_shard,
    write_shard,
)

__all__ = ["ShardWriter", "embed_on_ray", "warn_if_actors_idle"]

logger = logging.getLogger(__name__)


class ShardWriter:
    """A callable class for `map_batches(batch_size=1)`: writes the shards of its batch."""

    def __init__(
        self, model: str, output: str, options: dict[str, Any], id_type: str = "string"
    ) -> None:
        from ipex_embeddings import Encoder

        self.id_type = id_type
        self.options = EmbedOptions(**{**options, "text_fields": tuple(options["text_fields"])})
        self.output = Path(output)
        self.encoder = Encoder.load(model, threads=self.options.threads)
        self.batches_done = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        """Write each shard of `batch` (columns file, file_index, index, start) -> outcomes."""
        from ipex_embeddings.ray import crash_hook_for_tests

        self.batches_done += 1
        crash_hook_for_tests(self.batches_done)
        outcomes: list[ShardOutcome] = []
        for file, file_index, index, start in zip(
            batch["file"], batch["file_index"], batch["index"], batch["start"]
        ):
            shard = Shard(Path(str(file)), int(file_index), int(index), int(start))
            rows = read_shard(shard, self.options.text_fields, self.options.id_field,
                              self.options.shard_rows)
            outcomes.append(write_shard(self.encoder, rows, self.output, self.options,
                                        self.id_type))  # type: ignore[arg-type]
        return {
            "path": [str(o.path) for o in outcomes],
            "embedded": [o.embedded for o in outcomes],
            "rejected": [o.rejected for o in outcomes],
            "rejects": [str(o.rejects or "") for o in outcomes],
        }


def embed_on_ray(
    model: str | os.PathLike[str],
    shards: list[Shard],
    output: Path,
    options: EmbedOptions,
    *,
    address: str | None = None,
    actors: int = 1,
    max_restarts: int = 3,
    id_type: str = "string",
) -> EmbedResult:
    """Write the missing `shards` on a Ray cluster (`address`; None: the running one, else a
    new local one) with `actors` actors of `options.threads` (default 1) threads each; `id_type`
    is the `id` column's type (see `corpus.shard_table`). The caller (`embed.embed_corpus`) has
    checked that the shards in `output` are of this run.

    Raises:
        ImportError: Ray Data is not installed (with the pip line).
    """
    from ipex_embeddings.ray import require_ray

    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    result = EmbedResult(output)
    todo = [shard for shard in shards if not (output / shard.name).exists()]
    result.shards_skipped = len(shards) - len(todo)
    if not todo:
        return result
    warn_if_actors_idle(len(todo), actors, options.shard_rows)
    threads = options.threads or 1
    items = [{"file": str(s.file.resolve()), "file_index": s.file_index, "index": s.index,
              "start": s.start} for s in todo]
    settings = {**asdict(options), "threads": threads}
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardWriter,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads,
        fn_constructor_args=(str(model), str(output.resolve()), settings, id_type),
        max_restarts=max_restarts,
        max_task_retries=max_restarts,
    )
    with progress_bar(sum(shard.rows for shard in todo)) as progress:  # type: ignore[attr-defined]
        for row in dataset.iter_rows():
            result.add(ShardOutcome(Path(row["path"]), int(row["embedded"]),
                                    int(row["rejected"]), Path(row["rejects"]) if row["rejects"]
                                    else None))
            progress.update(int(row["embedded"]) + int(row["rejected"]))
    result.shards_written.sort()
    result.log()
    return result


def warn_if_actors_idle(shards: int, actors: int, shard_rows: int) -> bool:
    """Warn (and return True) when fewer shards are left than actors: a shard is one actor's
    unit of work, so the other actors would load the model and then wait."""
    if shards >= actors:
        return False
    logger.warning(
        "Only %d shard(s) of %d rows are left for %d actors: %d actor(s) will have nothing to "
        "do. For a new output folder, pass a smaller --shard-rows (at most %d rows here gives "
        "every actor a shard), or fewer --actors.",
        shards, shard_rows, actors, actors - shards, max(1, shard_rows * shards // actors))
    return True
