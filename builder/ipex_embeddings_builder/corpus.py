"""Read a corpus (JSONL, Parquet or CSV; files, folders or globs) as fixed row-range shards, and
write each shard's vectors: the pieces both engines (`embed`, `embed_ray`) share.

A shard is a fixed range of `shard_rows` rows of one input file, so a re-run maps every row to the
same shard. Parquet and CSV are read with pyarrow (CSV with quoted values that may span lines; a
row with the wrong number of fields is a bad row, reported with its row like any other). JSONL is
read line by line with the `json` module: pyarrow's JSON reader aborts the whole file at the first
value of another type (it cannot report the bad row) and cannot keep a lone surrogate escape,
which we must report, not re-encode.
"""

from __future__ import annotations

import glob
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "BadRow", "CorpusError", "EmbedOptions", "EmbedResult", "FORMATS", "REJECTS_DIR", "Shard",
    "ShardOutcome", "ShardRows", "check_rows", "find_inputs", "progress_bar", "read_shard",
    "read_shards", "shard_table", "write_atomically", "write_shard",
]

logger = logging.getLogger(__name__)

REJECTS_DIR = "_rejects"

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
           ".csv": "csv"}
"""Input file suffix -> format."""


class CorpusError(ValueError):
    """The input cannot be read as asked: no files, an unknown format, a field not in a file."""


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be embedded: `file`, its 1-based data `row`, and why."""

    file: str
    row: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file} row {self.row}: {self.reason}"


@dataclass(frozen=True)
class Shard:
    """Rows [start, start + shard_rows) of input file number `file_index` (sorted order);
    `rows`: how many there are (0: not counted yet)."""

    file: Path
    file_index: int
    index: int
    start: int
    rows: int = 0

    @property
    def name(self) -> str:
        """Deterministic output name: `<file index>-<file stem>-<shard index>.parquet`."""
        return f"{self.file_index:05d}-{self.file.stem}-{self.index:05d}.parquet"


@dataclass
class ShardRows:
    """One shard's raw values: 1-based data row numbers, ids (None: no id field) and texts."""

    shard: Shard
    rows: list[int]
    ids: list[object] | None
    texts: list[list[object]]  # one list per text field


_MISSING = object()


def find_inputs(specs: str | Path | Sequence[str | Path]) -> list[Path]:
    """The input files of `specs`, in the order given: each a file, a folder (its JSONL, Parquet
    and CSV files, sorted) or a glob (sorted).

    Raises:
        CorpusError: a spec matches nothing, a file has an unsupported suffix, or one file is
            matched twice (its rows would be embedded twice).
    """
    specs = [specs] if isinstance(specs, (str, Path)) else list(specs)
    files: list[Path] = []
    given_by: dict[Path, str] = {}
    for spec in specs:
        for file in _files_of(spec):
            first = given_by.setdefault(file.resolve(), str(spec))
            if first != str(spec) or file in files:
                raise CorpusError(
                    f"{file} is matched by both --input {first} and --input {spec}; give each "
                    "file once (its rows would be embedded twice)."
                )
            files.append(file)
    return files


def _files_of(spec: str | Path) -> list[Path]:
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
    if not files:
        raise CorpusError(
            f"No input files at {spec!s}: give a JSONL, Parquet or CSV file, a folder holding "
            "them, or a glob such as 'data/*.parquet'."
        )
    for file in files:
        if file.suffix.lower() not in FORMATS:
            raise CorpusError(
                f"{file}: unsupported input format {file.suffix!r}; use one of "
                f"{', '.join(sorted(FORMATS))}."
            )
    return files


def read_shards(
    files: Sequence[Path], text_fields: Sequence[str], id_field: str | None, shard_rows: int
) -> Iterator[ShardRows]:
    """Yield every input file's rows, `shard_rows` at a time, as `ShardRows` (raw values).

    Raises:
        CorpusError: a file lacks one of the fields (a Parquet or CSV column, or a JSONL field no
            row has), or cannot be parsed.
    """
    fields = [*text_fields, *([id_field] if id_field else [])]
    for file_index, file in enumerate(files):
        seen: set[str] = set()
        records = _records(file, fields, seen=seen)
        for index in itertools.count():
            block = list(itertools.islice(records, shard_rows))
            if not block:
                break
            shard = Shard(file, file_index, index, index * shard_rows, len(block))
            yield _shard_rows(shard, block, len(text_fields), id_field is not None)
        if FORMATS[file.suffix.lower()] == "jsonl" and index:
            _check_fields_seen(file, fields, seen)


def _check_fields_seen(file: Path, fields: list[str], seen: set[str]) -> None:
    """A field that no row of a JSONL file has is a wrong name, not a file of bad rows."""
    missing = [name for name in fields if name not in seen]
    if missing:
        present = ", ".join(sorted(seen)) or "none (no line is a JSON object)"
        raise CorpusError(
            f"{file}: no row has field {missing[0]!r}; fields present: {present}. Name the right "
            "one with --text-field / --id-field."
        )


def read_shard(
    shard: Shard, text_fields: Sequence[str], id_field: str | None, shard_rows: int
) -> ShardRows:
    """Read the rows of one shard alone (as a worker on a cluster does); rows before it are
    skipped without parsing where the format allows (JSONL lines, Parquet row groups)."""
    fields = [*text_fields, *([id_field] if id_field else [])]
    block = list(itertools.islice(_records(shard.file, fields, shard.start), shard_rows))
    return _shard_rows(shard, block, len(text_fields), id_field is not None)


def _shard_rows(
    shard: Shard, block: list[tuple[int, list[object]]], text_count: int, has_id: bool
) -> ShardRows:
    return ShardRows(
        shard,
        [row for row, _ in block],
        [values[-1] for _, values in block] if has_id else None,
        [[values[i] for _, values in block] for i in range(text_count)],
    )


def _records(
    file: Path, fields: list[str], skip: int = 0, seen: set[str] | None = None
) -> Iterator[tuple[int, list[object]]]:
    kind = FORMATS[file.suffix.lower()]
    if kind == "jsonl":
        return _jsonl_records(file, fields, skip, set() if seen is None else seen)
    if kind == "csv":
        return _csv_records(file, fields, skip)
    return _parquet_records(file, fields, skip)


def _jsonl_records(
    file: Path, fields: list[str], skip: int, seen: set[str]
) -> Iterator[tuple[int, list[object]]]:
    # The row number is the line number (blank lines are skipped but keep their numbers).
    with file.open(encoding="utf-8", errors="surrogateescape") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if skip:
                skip -= 1
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                record = _NotJson(str(err))
            if not isinstance(record, dict):
                yield line_number, [_not_an_object(record)] * len(fields)
                continue
            seen.update(record)
            yield line_number, [record.get(field, _MISSING) for field in fields]


@dataclass(frozen=True)
class _NotJson:
    error: str


def _not_an_object(record: object) -> object:
    return record if isinstance(record, _NotJson) else _NotJson(
        f"the line is a JSON {type(record).__name__}, not an object"
    )


def _parquet_records(
    file: Path, fields: list[str], skip: int = 0
) -> Iterator[tuple[int, list[object]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        parquet = pq.ParquetFile(file)
        _check_columns(file, fields, parquet.schema_arrow.names)
        groups = list(range(parquet.num_row_groups))
        while groups and row + parquet.metadata.row_group(groups[0]).num_rows <= skip:
            row += parquet.metadata.row_group(groups.pop(0)).num_rows  # skipped unread
        batches = parquet.iter_batches(
            batch_size=8192, row_groups=groups, columns=list(dict.fromkeys(fields))
        )
        for batch in batches:
            columns = [batch.column(name).to_pylist() for name in fields]
            for values in zip(*columns):
                row += 1
                if row > skip:
                    yield row, list(values)
    except (pa.ArrowInvalid, OSError) as err:
        raise CorpusError(f"{file}: cannot be read as parquet: {err}") from err


@dataclass(frozen=True)
class _Ragged:
    """A CSV row with the wrong number of fields (pyarrow skips it; we report it)."""

    expected: int
    actual: int
    text: str


def _csv_records(
    file: Path, fields: list[str], skip: int = 0
) -> Iterator[tuple[int, list[object]]]:
    """CSV rows, numbered as data records from 1 (a quoted value may span lines; blank lines do
    not count). Every field is read as text: CSV has no types, and "007" must stay "007"."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ragged: list[tuple[int, _Ragged]] = []  # (data row, what) in file order

    def keep_ragged(bad: pacsv.InvalidRow) -> str:
        number = bad.number - 1 if bad.number is not None else None  # number 1 is the header
        ragged.append((number or 0, _Ragged(bad.expected_columns, bad.actual_columns, bad.text)))
        return "skip"

    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=keep_ragged)
    row = 0
    try:
        header = pacsv.open_csv(file, parse_options=pacsv.ParseOptions(
            newlines_in_values=True, invalid_row_handler=lambda _: "skip")).schema.names
        _check_columns(file, fields, header)
        convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in fields},
                                       include_columns=list(dict.fromkeys(fields)))
        batches = pacsv.open_csv(file, read_options=pacsv.ReadOptions(use_threads=False),
                                 parse_options=parse, convert_options=convert)
        for batch in batches:
            columns = [batch.column(name).to_pylist() for name in fields]
            for values in zip(*columns):
                while ragged and ragged[0][0] <= row + 1:  # a skipped row takes its number
                    row += 1
                    yield from _after_skip(row, skip, [ragged.pop(0)[1]] * len(fields))
                row += 1
                yield from _after_skip(row, skip, list(values))
        for _, what in ragged:
            row += 1
            yield from _after_skip(row, skip, [what] * len(fields))
    except (pa.ArrowInvalid, OSError) as err:
        raise CorpusError(f"{file}: cannot be read as csv: {err}") from err


def _after_skip(
    row: int, skip: int, values: list[object]
) -> Iterator[tuple[int, list[object]]]:
    if row > skip:
        yield row, values


def _check_columns(file: Path, fields: list[str], columns: list[str]) -> None:
    missing = [field for field in fields if field not in columns]
    if missing:
        raise CorpusError(
            f"{file} has no column {missing[0]!r} (its columns: {', '.join(columns)}); name the "
            "right one with --text-field / --id-field."
        )


def check_rows(rows: ShardRows, text_fields: Sequence[str], id_field: str | None) -> tuple[
    list[int], list[BadRow]
]:
    """Split a shard into the positions of good rows and the `BadRow`s (missing field, null,
    non-string text, or text that is not valid UTF-8, e.g. a lone surrogate)."""
    good: list[int] = []
    bad: list[BadRow] = []
    name = str(rows.shard.file)
    for i, row in enumerate(rows.rows):
        reason = None
        for text_field, values in zip(text_fields, rows.texts):
            reason = reason or _text_problem(text_field, values[i])
        if reason is None and rows.ids is not None:
            reason = _id_problem(id_field or "", rows.ids[i])
        if reason is None:
            good.append(i)
        else:
            bad.append(BadRow(name, row, reason))
    return good, bad


def _text_problem(field: str, value: object) -> str | None:
    if isinstance(value, _NotJson):
        return f"not valid JSON ({value.error})"
    if isinstance(value, _Ragged):
        return _ragged_reason(value)
    if value is _MISSING:
        return f"missing field {field!r}"
    if value is None:
        return f"field {field!r} is null"
    if not isinstance(value, str):
        return f"field {field!r} is {type(value).__name__}, not a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return (
            f"field {field!r} is not valid text: lone surrogate {value[err.start]!r} at "
            f"character {err.start}; clean it (e.g. .encode('utf-16', 'surrogatepass')"
            ".decode('utf-16', 'replace'))"
        )
    return None


def _ragged_reason(value: _Ragged) -> str:
    text = value.text if len(value.text) <= 60 else value.text[:57] + "..."
    return (f"{value.actual} field(s), expected {value.expected} ({text!r}); quote values that "
            "hold a comma or a line break")


def _id_problem(field: str, value: object) -> str | None:
    if isinstance(value, _NotJson):
        return f"not valid JSON ({value.error})"
    if isinstance(value, _Ragged):
        return _ragged_reason(value)
    if value is _MISSING or value is None:
        return f"missing id field {field!r}"
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return f"id field {field!r} is {type(value).__name__}; ids must be strings or integers"
    return None


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


@dataclass(frozen=True)
class ShardOutcome:
    """One written shard: its path, rows embedded, rows rejected and the rejects file."""

    path: Path
    embedded: int
    rejected: int
    rejects: Path | None


@dataclass
class EmbedResult:
    """What a run did. Rows of skipped (already complete) shards are not counted as embedded;
    `duplicate_ids`: rows whose id another row of the corpus has too (written, and warned of)."""

    output: Path
    rows_embedded: int = 0
    rows_rejected: int = 0
    shards_written: list[Path] = field(default_factory=list)
    shards_skipped: int = 0
    rejects: list[Path] = field(default_factory=list)
    duplicate_ids: int = 0

    def add(self, outcome: ShardOutcome) -> None:
        """Count one written shard."""
        self.shards_written.append(outcome.path)
        self.rows_embedded += outcome.embedded
        self.rows_rejected += outcome.rejected
        if outcome.rejects is not None:
            self.rejects.append(outcome.rejects)

    def log(self) -> None:
        """Log the totals (debug: the command's report line and the returned result say it)."""
        logger.debug("embedded %d rows into %d new shard(s) (%d already done), %d rejected",
                    self.rows_embedded, len(self.shards_written), self.shards_skipped,
                    self.rows_rejected)


def write_shard(
    encoder: object, rows: ShardRows, output: Path, options: EmbedOptions,
    id_type: Literal["string", "int64"] = "string",
) -> ShardOutcome:
    """Embed one shard's good rows with `encoder` (an `Encoder`) and write it (and its rejects)
    under temporary names, renamed when complete, so a shard file that exists is always whole.
    `id_type`: the `id` column's type, the same for every shard of a run."""
    good, bad = check_rows(rows, options.text_fields, options.id_field)
    texts = [" ".join(str(values[i]) for values in rows.texts) for i in good]
    # float32 shards whatever the folder's output_precision (truncate_dim is honoured).
    vectors = encoder.encode(texts, options.kind, batch_size=options.batch_size,  # type: ignore[attr-defined]
                             precision="float32")
    if rows.ids is None:
        ids: list[object] = [f"{rows.shard.file.name}:{rows.rows[i]}" for i in good]
    else:
        ids = [rows.ids[i] if id_type == "int64" else str(rows.ids[i]) for i in good]
    table = shard_table(ids, vectors, texts if options.include_text else None, id_type)
    rejects = None
    if bad:  # rejects first: a shard that exists always has its rejects written
        rejects = output / REJECTS_DIR / rows.shard.name.replace(".parquet", ".jsonl")
        rejects.parent.mkdir(exist_ok=True)
        write_atomically(rejects, lambda tmp: tmp.write_text(
            "".join(json.dumps(asdict(row)) + "\n" for row in bad)))
        logger.warning("%d bad row(s) of %s written to %s", len(bad), rows.shard.file, rejects)
    shard_path = output / rows.shard.name
    write_atomically(shard_path, lambda tmp: _write_parquet(table, tmp))
    return ShardOutcome(shard_path, len(good), len(bad), rejects)


def shard_table(
    ids: Sequence[object], vectors: object, texts: Sequence[str] | None = None,
    id_type: Literal["string", "int64"] = "string",
) -> object:
    """The Arrow table of one shard: `id` (`id_type`: string, or int64 when every id of the
    corpus is an integer), `embedding` fixed_size_list<float32>[dim] from a float32 (n, dim)
    array, and optionally `text`."""
    import numpy as np
    import pyarrow as pa

    array = np.ascontiguousarray(vectors, dtype=np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])
    columns = {"id": pa.array(list(ids), getattr(pa, id_type)()), "embedding": embedding}
    if texts is not None:
        columns["text"] = pa.array(list(texts), pa.string())
    return pa.table(columns)


def _write_parquet(table: object, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write `path` through `write(tmp)` on a temporary name, then rename: all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def progress_bar(total: int) -> object:
    """A tqdm bar over `total` documents, with docs/s and the ETA."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Embedding", unit="doc", unit_scale=True, smoothing=0.1)
