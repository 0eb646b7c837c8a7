"""`ipex-embed embed`: embed a large corpus into Parquet shards, resumably.

Each shard is a fixed row range of one input file (see `corpus.Shard`), written to a temporary
name and renamed when complete; a re-run skips the shards already there, so an interruption loses
at most the shards in flight. Every row is checked before anything is written: a bad row stops
the run with its file and row, or, with `skip_bad_rows`, goes to a rejects file beside its shard.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ipex_embeddings import Encoder

from .corpus import (
    BadRow,
    CorpusError,
    Shard,
    ShardRows,
    check_rows,
    find_inputs,
    read_shards,
)

__all__ = [
    "BadRowsError", "EmbedOptions", "EmbedResult", "ShardOutcome", "embed_corpus",
    "plan_shards", "shard_table", "write_shard",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "_embed.json"
REJECTS_DIR = "_rejects"


class BadRowsError(CorpusError):
    """Rows cannot be embedded; nothing was written. `rows` holds (up to 1,000 of) them."""

    def __init__(self, rows: list[BadRow], total: int) -> None:
        self.rows = rows
        self.total = total
        shown = "\n".join(f"  {row}" for row in rows[:20])
        more = f"\n  ... and {total - 20} more" if total > 20 else ""
        super().__init__(
            f"{total} row(s) cannot be embedded; nothing was written:\n{shown}{more}\n"
            "Fix them, or pass --skip-bad-rows to write them to rejects files and embed the rest."
        )


@dataclass(frozen=True)
class EmbedOptions:
    """How to read and embed a corpus."""

    text_fields: tuple[str, ...] = ("text",)
    """Fields holding the text; several are joined with a space (e.g. title and text)."""
    id_field: str | None = None
    """Field holding each row's id; None: "<file name>:<row>"."""
    kind: Literal["document", "query"] = "document"
    """Which of the model's prompts goes before each text."""
    batch_size: int = 32
    """Texts per inference call."""
    shard_rows: int = 10_000
    """Input rows per output shard (fixed: a re-run maps rows to the same shards)."""
    include_text: bool = False
    """Also write the embedded text into the shards."""
    skip_bad_rows: bool = False
    """Write bad rows to rejects files and embed the rest, instead of stopping."""
    threads: int | None = None
    """Inference threads (default: every core)."""


@dataclass
class EmbedResult:
    """What a run did. Rows of skipped (already complete) shards are not counted as embedded."""

    output: Path
    rows_embedded: int = 0
    rows_rejected: int = 0
    shards_written: list[Path] = field(default_factory=list)
    shards_skipped: int = 0
    rejects: list[Path] = field(default_factory=list)

    def add(self, outcome: ShardOutcome) -> None:
        """Count one written shard."""
        self.shards_written.append(outcome.path)
        self.rows_embedded += outcome.embedded
        self.rows_rejected += outcome.rejected
        if outcome.rejects is not None:
            self.rejects.append(outcome.rejects)

    def log(self) -> None:
        """Log the totals."""
        logger.info("embedded %d rows into %d new shard(s) (%d already done), %d rejected",
                    self.rows_embedded, len(self.shards_written), self.shards_skipped,
                    self.rows_rejected)


def embed_corpus(
    model: str | os.PathLike[str] | Encoder,
    inputs: str | Path,
    output: Path,
    options: EmbedOptions,
    *,
    engine: Literal["local", "ray"] = "local",
    ray_options: dict[str, object] | None = None,
) -> EmbedResult:
    """Embed every row of `inputs` with `model` (a folder, Hub repo id or loaded `Encoder`) into
    Parquet shards in `output`.

    Each shard holds `id` (string), `embedding` (fixed_size_list<float32>[dimension]) and, with
    `include_text`, `text`; the vectors equal `Encoder.encode` on the same texts bit for bit.
    `engine="ray"` writes the same shards from actors on a Ray cluster (`ray_options`: see
    `embed_ray.embed_on_ray`); `output` and `inputs` must then be paths every node can reach.

    Raises:
        CorpusError: no input files, an unsupported format, a missing column, or `output` holds
            shards from a run with other settings.
        BadRowsError: some rows are bad and `skip_bad_rows` is off (nothing is written).
        ModelFolderError: `model` is not a usable model folder.
    """
    if options.shard_rows < 1:
        raise ValueError(f"shard_rows must be at least 1, got {options.shard_rows}.")
    files = find_inputs(inputs)
    shards, total = plan_shards(files, options)
    if engine == "ray":
        from .embed_ray import embed_on_ray

        model = model.folder if isinstance(model, Encoder) else model
        _claim_output(output, model, files, options)
        return embed_on_ray(model, shards, output, options, **(ray_options or {}))
    encoder = model if isinstance(model, Encoder) else Encoder.load(model, threads=options.threads)
    _claim_output(output, encoder.folder, files, options)
    result = EmbedResult(output)
    with _progress(total) as progress:
        for rows in read_shards(files, options.text_fields, options.id_field, options.shard_rows):
            if (output / rows.shard.name).exists():
                result.shards_skipped += 1
            else:
                result.add(write_shard(encoder, rows, output, options))
            progress.update(len(rows.rows))
    result.log()
    return result


def plan_shards(files: Sequence[Path], options: EmbedOptions) -> tuple[list[Shard], int]:
    """Cheap first pass over the text and id columns: the shards and the number of rows.

    Raises:
        BadRowsError: bad rows were found and `options.skip_bad_rows` is off.
    """
    shards, total, bad_count, bad = [], 0, 0, []
    for rows in read_shards(files, options.text_fields, options.id_field, options.shard_rows):
        shards.append(rows.shard)
        total += len(rows.rows)
        _, shard_bad = check_rows(rows, options.text_fields, options.id_field)
        bad_count += len(shard_bad)
        bad.extend(shard_bad[: max(0, 1000 - len(bad))])
    if bad_count and not options.skip_bad_rows:
        raise BadRowsError(bad, bad_count)
    return shards, total


def _claim_output(
    output: Path, model: str | os.PathLike[str], files: Sequence[Path], options: EmbedOptions
) -> None:
    """Create `output` with its run settings, or check that a re-run asks for the same ones."""
    settings = {
        "model": str(model),
        "inputs": [str(file.resolve()) for file in files],
        **{key: value for key, value in asdict(options).items() if key != "threads"},
    }
    settings["text_fields"] = list(options.text_fields)
    output.mkdir(parents=True, exist_ok=True)
    path = output / CONFIG_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        changed = sorted(key for key in settings if previous.get(key) != settings[key])
        if changed:
            raise CorpusError(
                f"{output} holds shards of a run with other settings ({', '.join(changed)} "
                f"differ; see {path}); resume with the same settings, or use a new --output."
            )
        return
    _write_atomically(path, lambda tmp: tmp.write_text(json.dumps(settings, indent=2)))


@dataclass(frozen=True)
class ShardOutcome:
    """One written shard: its path, rows embedded, rows rejected and the rejects file."""

    path: Path
    embedded: int
    rejected: int
    rejects: Path | None


def write_shard(
    encoder: Encoder, rows: ShardRows, output: Path, options: EmbedOptions
) -> ShardOutcome:
    """Embed one shard's good rows and write it (and its rejects) under temporary names, renamed
    when complete, so a shard file that exists is always whole."""
    good, bad = check_rows(rows, options.text_fields, options.id_field)
    texts = [" ".join(str(values[i]) for values in rows.texts) for i in good]
    # float32 shards whatever the folder's output_precision (truncate_dim is honoured).
    vectors = encoder.encode(texts, options.kind, batch_size=options.batch_size,
                             precision="float32")
    if rows.ids is None:
        ids = [f"{rows.shard.file.name}:{rows.rows[i]}" for i in good]
    else:
        ids = [str(rows.ids[i]) for i in good]
    table = shard_table(ids, vectors, texts if options.include_text else None)
    rejects = None
    if bad:  # rejects first: a shard that exists always has its rejects written
        rejects = output / REJECTS_DIR / rows.shard.name.replace(".parquet", ".jsonl")
        rejects.parent.mkdir(exist_ok=True)
        _write_atomically(rejects, lambda tmp: tmp.write_text(
            "".join(json.dumps(asdict(row)) + "\n" for row in bad)))
        logger.warning("%d bad row(s) of %s written to %s", len(bad), rows.shard.file, rejects)
    shard_path = output / rows.shard.name
    _write_atomically(shard_path, lambda tmp: _write_parquet(table, tmp))
    return ShardOutcome(shard_path, len(good), len(bad), rejects)


def shard_table(ids: Sequence[str], vectors: object, texts: Sequence[str] | None = None) -> object:
    """The Arrow table of one shard: `id` string, `embedding` fixed_size_list<float32>[dim]
    from a float32 (n, dim) array, and optionally `text`."""
    import numpy as np
    import pyarrow as pa

    array = np.ascontiguousarray(vectors, dtype=np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])
    columns = {"id": pa.array(list(ids), pa.string()), "embedding": embedding}
    if texts is not None:
        columns["text"] = pa.array(list(texts), pa.string())
    return pa.table(columns)


def _write_parquet(table: object, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def _write_atomically(path: Path, write: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)  # type: ignore[operator]
    os.replace(tmp, path)


def _progress(total: int) -> object:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Embedding", unit="doc", unit_scale=True, smoothing=0.1)
