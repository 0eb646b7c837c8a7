"""Read a corpus (JSONL, Parquet or CSV; a file, a folder or a glob) as fixed row-range shards.

A shard is a fixed range of `shard_rows` rows of one input file, so a re-run maps every row to the
same shard. Parquet and CSV are read with pyarrow. JSONL is read line by line with the `json`
module: pyarrow's JSON reader aborts the whole file at the first value of another type (it cannot
report the bad row) and cannot keep a lone surrogate escape, which we must report, not re-encode.
"""

from __future__ import annotations

import glob
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BadRow", "CorpusError", "FORMATS", "Shard", "ShardRows", "check_rows", "find_inputs",
    "read_shard", "read_shards",
]

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


def find_inputs(spec: str | Path) -> list[Path]:
    """The input files of `spec`: a file, a folder (its JSONL/Parquet/CSV files) or a glob.

    Raises:
        CorpusError: nothing matches, or a file has an unsupported suffix.
    """
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
        CorpusError: a Parquet or CSV file lacks one of the fields, or cannot be parsed.
    """
    fields = [*text_fields, *([id_field] if id_field else [])]
    for file_index, file in enumerate(files):
        records = _records(file, fields)
        for index in itertools.count():
            block = list(itertools.islice(records, shard_rows))
            if not block:
                break
            shard = Shard(file, file_index, index, index * shard_rows, len(block))
            yield _shard_rows(shard, block, len(text_fields), id_field is not None)


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


def _records(file: Path, fields: list[str], skip: int = 0) -> Iterator[tuple[int, list[object]]]:
    kind = FORMATS[file.suffix.lower()]
    if kind == "jsonl":
        return _jsonl_records(file, fields, skip)
    return _arrow_records(file, fields, kind, skip)


def _jsonl_records(
    file: Path, fields: list[str], skip: int = 0
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
            yield line_number, [record.get(field, _MISSING) for field in fields]


@dataclass(frozen=True)
class _NotJson:
    error: str


def _not_an_object(record: object) -> object:
    return record if isinstance(record, _NotJson) else _NotJson(
        f"the line is a JSON {type(record).__name__}, not an object"
    )


def _arrow_records(
    file: Path, fields: list[str], kind: str, skip: int = 0
) -> Iterator[tuple[int, list[object]]]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    row = 0
    try:
        if kind == "parquet":
            parquet = pq.ParquetFile(file)
            _check_columns(file, fields, parquet.schema_arrow.names)
            groups = list(range(parquet.num_row_groups))
            while groups and row + parquet.metadata.row_group(groups[0]).num_rows <= skip:
                row += parquet.metadata.row_group(groups.pop(0)).num_rows  # skipped unread
            batches = parquet.iter_batches(
                batch_size=8192, row_groups=groups, columns=list(dict.fromkeys(fields))
            )
        else:
            header = pacsv.open_csv(file).schema.names
            _check_columns(file, fields, header)
            convert = pacsv.ConvertOptions(
                column_types={field: pa.string() for field in fields},
                include_columns=list(dict.fromkeys(fields)),
            )
            batches = pacsv.open_csv(file, convert_options=convert)
        for batch in batches:
            columns = [batch.column(field).to_pylist() for field in fields]
            for values in zip(*columns):
                row += 1
                if row > skip:
                    yield row, list(values)
    except (pa.ArrowInvalid, OSError) as err:
        raise CorpusError(f"{file}: cannot be read as {kind}: {err}") from err


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
        for field, values in zip(text_fields, rows.texts):
            reason = reason or _text_problem(field, values[i])
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


def _id_problem(field: str, value: object) -> str | None:
    if isinstance(value, _NotJson):
        return f"not valid JSON ({value.error})"
    if value is _MISSING or value is None:
        return f"missing id field {field!r}"
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return f"id field {field!r} is {type(value).__name__}; ids must be strings or integers"
    return None
