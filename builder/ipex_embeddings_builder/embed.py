"""`ipex-embed embed`: embed a large corpus into Parquet shards, resumably.

Each shard is a fixed row range of one input file (see `corpus.Shard`), written to a temporary
name and renamed when complete; a re-run skips the shards already there, so an interruption loses
at most the shards in flight. The output folder's `_embed.json` keys a run on what its shards
depend on (settings, each input's size and mtime, the rows per shard, a digest of the model's
files): a re-run with anything changed is refused, never resumed into a mix of two runs. Every
row is checked before anything is written: bad rows stop the run with their file and row, or,
with `skip_bad_rows`, go to a rejects file beside their shard; a run that would embed nothing
fails.

Layering: `corpus` (reading, checking and writing shards) <- `embed_ray` <- `embed`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ipex_embeddings import Encoder
from ipex_embeddings.folder import check_model_folder, resolve_model_folder

from .corpus import (
    FORMATS,
    REJECTS_DIR,
    BadRow,
    CorpusError,
    EmbedOptions,
    EmbedResult,
    Shard,
    ShardOutcome,
    ShardRows,
    check_rows,
    find_inputs,
    progress_bar,
    read_shards,
    shard_table,
    write_atomically,
    write_shard,
)
from .embed_ray import embed_on_ray

__all__ = [
    "BadRowsError", "EmbedOptions", "EmbedResult", "Plan", "ShardOutcome", "claim_output",
    "embed_corpus", "model_digest", "plan_shards", "shard_table", "write_shard",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "_embed.json"
MANIFEST_FORMAT = 2
_SHARD_NAME = re.compile(r"^\d{5}-.+-\d{5}\.parquet$")


class BadRowSummary:
    """Bad rows grouped by file and reason: a count and the first rows of each group."""

    GROUPS = 1000
    FIRST = 5

    def __init__(self) -> None:
        self.total = 0
        self.rows: list[BadRow] = []  # the first 1,000
        self.groups: dict[tuple[str, str], list[int]] = {}  # -> [count, first rows...]
        self.other = 0  # rows of groups beyond GROUPS

    def add(self, bad: Sequence[BadRow]) -> None:
        """Count `bad`."""
        self.total += len(bad)
        self.rows.extend(bad[: max(0, 1000 - len(self.rows))])
        for row in bad:
            group = self.groups.get((row.file, row.reason))
            if group is None and len(self.groups) >= self.GROUPS:
                self.other += 1
                continue
            group = self.groups.setdefault((row.file, row.reason), [0])
            group[0] += 1
            if len(group) <= self.FIRST:
                group.append(row.row)

    def describe(self, limit: int = 10) -> str:
        """One line per group, up to `limit` groups."""
        lines = []
        for (file, reason), (count, *first) in list(self.groups.items())[:limit]:
            rows = ", ".join(map(str, first)) + (", ..." if count > len(first) else "")
            where = f"row {rows}" if count == 1 else f"{count} rows ({rows})"
            lines.append(f"  {file} {where}: {reason}")
        hidden = self.total - sum(g[0] for g in list(self.groups.values())[:limit])
        if hidden:
            lines.append(f"  ... and {hidden} more row(s) of other causes")
        return "\n".join(lines)


class BadRowsError(CorpusError):
    """Rows cannot be embedded; nothing was written. `rows` holds (up to 1,000 of) them."""

    def __init__(self, summary: BadRowSummary) -> None:
        self.rows = summary.rows
        self.total = summary.total
        super().__init__(
            f"{summary.total} row(s) cannot be embedded; nothing was written:\n"
            f"{summary.describe()}\n"
            "Fix them, or pass --skip-bad-rows to write them to rejects files and embed the rest."
        )


@dataclass
class Plan:
    """The first pass over a corpus: its shards, rows, rows to embed, and the ids' type and
    duplicates."""

    shards: list[Shard]
    total: int
    good: int
    id_type: Literal["string", "int64"]
    duplicate_ids: int


def embed_corpus(
    model: str | os.PathLike[str] | Encoder,
    inputs: str | Path | Sequence[str | Path],
    output: Path,
    options: EmbedOptions,
    *,
    engine: Literal["local", "ray"] = "local",
    ray_options: dict[str, object] | None = None,
    overwrite: bool = False,
) -> EmbedResult:
    """Embed every row of `inputs` (a file, folder or glob, or a sequence of them, embedded in
    that order) with `model` (a folder, Hub repo id or loaded `Encoder`) into Parquet shards in
    `output`.

    Each shard holds `id` (int64 when every id is an integer, else string), `embedding`
    (fixed_size_list<float32>[dimension]) and, with `include_text`, `text`; the vectors equal
    `Encoder.encode` on the same texts bit for bit. `engine="ray"` writes the same shards from
    actors on a Ray cluster (`ray_options`: see `embed_ray.embed_on_ray`); `output` and `inputs`
    must then be paths every node can reach. `overwrite` deletes the shards of an earlier run in
    `output` instead of refusing a run that differs from it.

    Raises:
        CorpusError: no input files, an unsupported format, a missing field, nothing to embed,
            or `output` holds shards of a run with other settings, inputs or model.
        BadRowsError: some rows are bad and `skip_bad_rows` is off (nothing is written).
        ModelFolderError: `model` is not a usable model folder.
    """
    if options.shard_rows < 1:
        raise ValueError(f"shard_rows must be at least 1, got {options.shard_rows}.")
    if engine == "ray":  # the actors load it: refuse a damaged folder here, before any input
        model = model.folder if isinstance(model, Encoder) else resolve_model_folder(model)
        check_model_folder(Path(model), "bi-encoder")
    files = find_inputs(inputs)
    plan = plan_shards(files, options)
    if engine == "ray":
        claim_output(output, model, files, plan, options, overwrite=overwrite)
        result = embed_on_ray(model, plan.shards, output, options, id_type=plan.id_type,
                              **(ray_options or {}))  # type: ignore[arg-type]
    else:
        encoder = model if isinstance(model, Encoder) else Encoder.load(
            model, threads=options.threads)
        claim_output(output, encoder.folder, files, plan, options, overwrite=overwrite)
        result = _embed_locally(encoder, files, output, options, plan)
    result.duplicate_ids = plan.duplicate_ids
    return result


def _embed_locally(
    encoder: Encoder, files: Sequence[Path], output: Path, options: EmbedOptions, plan: Plan
) -> EmbedResult:
    result = EmbedResult(output)
    with progress_bar(plan.total) as progress:  # type: ignore[attr-defined]
        for rows in read_shards(files, options.text_fields, options.id_field, options.shard_rows):
            if (output / rows.shard.name).exists():
                result.shards_skipped += 1
            else:
                result.add(write_shard(encoder, rows, output, options, plan.id_type))
            progress.update(len(rows.rows))
    result.log()
    return result


def plan_shards(files: Sequence[Path], options: EmbedOptions) -> Plan:
    """Cheap first pass over the text and id columns: the shards, the rows, and every check
    that must fail before anything is written.

    Raises:
        BadRowsError: bad rows were found and `options.skip_bad_rows` is off.
        CorpusError: a field no row has, no rows at all, or no row that can be embedded.
    """
    shards, total, good_count = [], 0, 0
    bad, census = BadRowSummary(), _IdCensus()
    for rows in read_shards(files, options.text_fields, options.id_field, options.shard_rows):
        shards.append(rows.shard)
        total += len(rows.rows)
        good, shard_bad = check_rows(rows, options.text_fields, options.id_field)
        good_count += len(good)
        bad.add(shard_bad)
        census.add(rows, good)
    names = ", ".join(map(str, files))
    if not total:
        raise CorpusError(f"{names}: no rows; nothing to embed. Check the input files.")
    if bad.total and not options.skip_bad_rows:
        raise BadRowsError(bad)
    if not good_count:
        raise CorpusError(
            f"None of the {total} row(s) of {names} can be embedded; nothing was written:\n"
            f"{bad.describe()}\nCheck --text-field / --id-field and the rows above."
        )
    duplicates = census.duplicates()
    if duplicates:
        examples = _duplicate_examples(files, options, census)
        logger.warning(
            "%d row(s) have an id another row has too (first: %s); all are embedded and "
            "written. Make the ids unique (or omit --id-field for <file name>:<row> ids) if your "
            "index needs unique keys.", duplicates, examples)
    return Plan(shards, total, good_count, census.id_type(files, options.id_field), duplicates)


class _IdCensus:
    """The ids of the good rows: whether all are integers, and 64-bit hashes to find repeats in
    8 bytes per row (ids themselves could be far larger)."""

    def __init__(self) -> None:
        self.hashes: list[object] = []
        self.types: set[str] = set()
        self.repeated: set[int] = set()

    def add(self, rows: ShardRows, good: Sequence[int]) -> None:
        import numpy as np

        if rows.ids is None:
            ids: list[object] = [f"{rows.shard.file.name}:{rows.rows[i]}" for i in good]
        else:
            ids = [rows.ids[i] for i in good]
        self.types.update("int" if _is_int64(v) else type(v).__name__ for v in ids)
        self.hashes.append(np.array([_hash(v) for v in ids], dtype=np.uint64))

    def duplicates(self) -> int:
        """Rows whose id an earlier row has too."""
        import numpy as np

        if not self.hashes:
            return 0
        hashes = np.concatenate(self.hashes)  # type: ignore[arg-type]
        self.repeated = set(_repeated(hashes).tolist())  # type: ignore[attr-defined]
        return int(len(hashes) - len(np.unique(hashes)))

    def id_type(self, files: Sequence[Path], id_field: str | None) -> Literal["string", "int64"]:
        """int64 when every id is an integer (the input's type kept), else string."""
        if self.types == {"int"}:
            return "int64"
        if "int" in self.types:
            logger.warning("The ids are of mixed types (%s): all are written as strings.",
                           ", ".join(sorted(self.types)))
        csvs = [f.name for f in files if FORMATS[f.suffix.lower()] == "csv"]
        if id_field and csvs:
            logger.warning("Ids read from CSV (%s) are written as strings: CSV has no types "
                           "(and '007' must stay '007'); cast the id column if you need "
                           "integers, or give Parquet or JSONL input.", ", ".join(csvs))
        return "string"


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def _hash(value: object) -> int:
    digest = hashlib.blake2b(str(value).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def _repeated(hashes: object) -> object:
    import numpy as np

    values, counts = np.unique(hashes, return_counts=True)  # type: ignore[call-overload]
    return values[counts > 1]


def _duplicate_examples(files: Sequence[Path], options: EmbedOptions, census: _IdCensus) -> str:
    """A second read, only when ids repeat: the first few repeated ids and where they are."""
    found: dict[str, list[str]] = {}
    for rows in read_shards(files, options.text_fields, options.id_field, options.shard_rows):
        good, _ = check_rows(rows, options.text_fields, options.id_field)
        for i in good:
            value = (f"{rows.shard.file.name}:{rows.rows[i]}" if rows.ids is None
                     else str(rows.ids[i]))
            if _hash(value) in census.repeated and (value in found or len(found) < 3):
                found.setdefault(value, []).append(f"{rows.shard.file.name} row {rows.rows[i]}")
    return "; ".join(f"{value!r} at {', '.join(where[:3])}" for value, where in found.items())


def claim_output(
    output: Path, model: str | os.PathLike[str], files: Sequence[Path], plan: Plan,
    options: EmbedOptions, *, overwrite: bool = False,
) -> None:
    """Create `output` with the key of this run, or check that a re-run has the same key:
    settings, inputs (size and mtime), rows per shard and model files.

    Raises:
        CorpusError: `output` holds shards of a run that differs (says what changed), or shards
            without a key; pass `overwrite` to delete them and start again.
    """
    key = _run_key(model, files, plan, options)
    output.mkdir(parents=True, exist_ok=True)
    path = output / CONFIG_FILE
    if overwrite:
        _clear_output(output)
    elif path.exists():
        changed = _changes(json.loads(path.read_text()), key)
        if changed:
            raise CorpusError(
                f"{output} holds shards of another run: {changed} (see {path}). Resuming would "
                "mix the two. Embed into a new --output folder, or pass --overwrite to delete "
                f"{output}'s shards and embed again."
            )
        return
    elif any(_SHARD_NAME.match(p.name) for p in output.iterdir()):
        raise CorpusError(
            f"{output} holds shards but no {CONFIG_FILE}, so nothing says what they were "
            "embedded from. Use a new --output folder, or pass --overwrite to delete them."
        )
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(key, indent=2)))


def _run_key(
    model: str | os.PathLike[str], files: Sequence[Path], plan: Plan, options: EmbedOptions
) -> dict[str, object]:
    settings = {k: v for k, v in asdict(options).items() if k not in ("threads", "batch_size")}
    return {
        "format": MANIFEST_FORMAT,
        "settings": {**settings, "text_fields": list(options.text_fields)},
        "model": str(model),
        "model_digest": model_digest(model),
        "inputs": [{"path": str(f.resolve()), "size": f.stat().st_size,
                    "mtime_ns": f.stat().st_mtime_ns} for f in files],
        "shards": {shard.name: shard.rows for shard in plan.shards},
        "id_type": plan.id_type,
    }


def _changes(previous: dict[str, object], key: dict[str, object]) -> str:
    """What differs between two run keys, in words ("" if nothing)."""
    if previous.get("format") != MANIFEST_FORMAT:
        return "it was written by an older ipex-embed that did not record its inputs"
    settings = previous["settings"]
    changed = [name for name in key["settings"] if settings.get(name) != key["settings"][name]]  # type: ignore[index,union-attr]
    if changed:
        return f"other settings ({', '.join(changed)} differ)"
    before = {i["path"]: i for i in previous["inputs"]}  # type: ignore[attr-defined,index]
    now = {i["path"]: i for i in key["inputs"]}  # type: ignore[attr-defined]
    problems = [f"{p} was added" for p in now if p not in before]
    problems += [f"{p} was removed" for p in before if p not in now]
    for p in (p for p in now if p in before):
        if before[p]["size"] != now[p]["size"]:
            problems.append(f"{p} changed ({before[p]['size']} -> {now[p]['size']} bytes)")
        elif before[p]["mtime_ns"] != now[p]["mtime_ns"]:
            problems.append(f"{p} was modified since (same size, new mtime)")
    if not problems and list(before) != list(now):
        problems.append("the inputs are in another order")
    if not problems and previous["shards"] != key["shards"]:
        problems.append("the rows per shard differ")
    if previous.get("model_digest") != key["model_digest"]:
        problems.append(f"the model's files differ (now {key['model']})")
    return "; ".join(problems)


def model_digest(model: str | os.PathLike[str]) -> str:
    """A digest of a model folder's config and IR files (names and sizes); a Hub id as is."""
    folder = Path(model)
    if not folder.is_dir():
        return f"hub:{model}"
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".xml", ".bin", ".txt", ".model"):
            digest.update(f"{path.relative_to(folder).as_posix()}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def _clear_output(output: Path) -> None:
    """Delete what a run writes into `output` (shards, rejects, key, temporary files) only."""
    for path in output.iterdir():
        written = _SHARD_NAME.match(path.name) or path.name == CONFIG_FILE or (
            path.name.startswith(".") and path.name.endswith(".tmp"))
        if written and path.is_file():
            path.unlink()
    if (output / REJECTS_DIR).is_dir():
        shutil.rmtree(output / REJECTS_DIR)
    logger.warning("--overwrite: deleted the shards of the earlier run in %s", output)
