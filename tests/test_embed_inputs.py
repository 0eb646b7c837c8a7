"""`ipex-embed embed`: repeated options, resumption keyed on the inputs, runs that embed
nothing, and CSV/id edge cases, each through the real CLI (or library) with the demo model."""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ipex_embeddings_builder.cli import main
from ipex_embeddings_builder.cli.embed import embed_command
from ipex_embeddings_builder.corpus import read_shards
from ipex_embeddings_builder.embed import model_digest

pytestmark = pytest.mark.filterwarnings("ignore::ipex_embeddings.TruncationWarning")


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def docs(prefix: str, n: int) -> list[dict]:
    return [{"_id": f"{prefix}{i}", "text": f"{prefix} document number {i}"} for i in range(n)]


def embed(model: Path, *args: str) -> click.testing.Result:
    return CliRunner().invoke(main, ["embed", str(model), *args])


def ids(output: Path) -> list[object]:
    return pq.read_table(sorted(output.glob("*.parquet"))).column("id").to_pylist()


# --- 1. every option takes all its values, or refuses a second one ---------------------------

def test_repeated_input_embeds_every_file_in_order(tmp_path, demo_int8_dir):
    a = jsonl(tmp_path / "b_first.jsonl", docs("a", 3))
    b = jsonl(tmp_path / "a.jsonl", docs("b", 2))
    out = tmp_path / "out"
    result = embed(demo_int8_dir, "--input", str(a), "--input", str(b), "-o", str(out),
                   "--id-field", "_id")
    assert result.exit_code == 0, result.output
    assert ids(out) == ["a0", "a1", "a2", "b0", "b1"]  # both files, in the order given
    twice = embed(demo_int8_dir, "-i", str(a), "-i", str(tmp_path / "*.jsonl"), "-o",
                  str(tmp_path / "o2"))
    assert twice.exit_code == 1 and "matched by both --input" in twice.output


def single_value_options() -> list[click.Option]:
    return [p for p in embed_command.params if isinstance(p, click.Option)
            and not (p.multiple or p.is_flag or p.count)]


@pytest.mark.parametrize("option", single_value_options(), ids=lambda o: o.opts[0])
def test_every_single_value_option_refuses_a_second_value(option, tmp_path):
    # parsing fails before the model or inputs are touched
    args = ["embed", "MODEL", "-i", "x.jsonl", "-o", str(tmp_path / "o"), option.opts[0], "1",
            option.opts[0], "2"]
    if option.opts[0] in ("--input", "--output"):
        args = ["embed", "MODEL", option.opts[0], "1", option.opts[0], "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{option.opts[0]} was given 2 times; it takes one value" in result.output


def test_multiple_options_are_the_declared_ones():
    multiple = {p.opts[0] for p in embed_command.params if getattr(p, "multiple", False)}
    assert multiple == {"--input", "--text-field"}


# --- 2. resumption is keyed on the inputs, rows per shard and model ---------------------------

def test_changed_input_is_refused_then_overwritten(tmp_path, demo_int8_dir):
    source = jsonl(tmp_path / "c.jsonl", docs("d", 4))
    out = tmp_path / "out"
    args = ["-i", str(source), "-o", str(out), "--id-field", "_id", "--shard-rows", "2"]
    assert embed(demo_int8_dir, *args).exit_code == 0
    again = embed(demo_int8_dir, *args)
    assert again.exit_code == 0 and "0 rows embedded into 0 new shard(s)" in again.output
    jsonl(source, docs("d", 5))  # a row appended
    changed = embed(demo_int8_dir, *args)
    assert changed.exit_code == 1
    assert f"{source.resolve()} changed (" in changed.output and "bytes)" in changed.output
    assert "new --output folder" in changed.output and "--overwrite" in changed.output
    jsonl(source, docs("e", 4))  # the first size, other content: the mtime tells
    os.utime(source, ns=(1, 1))
    assert "was modified since" in embed(demo_int8_dir, *args).output
    fresh = embed(demo_int8_dir, *args, "--overwrite")
    assert fresh.exit_code == 0 and "4 rows embedded into 2 new shard(s)" in fresh.output
    assert ids(out) == [f"e{i}" for i in range(4)]


def test_shards_without_a_key_are_refused(tmp_path, demo_int8_dir):
    source = jsonl(tmp_path / "c.jsonl", docs("d", 2))
    out = tmp_path / "out"
    assert embed(demo_int8_dir, "-i", str(source), "-o", str(out)).exit_code == 0
    (out / "_embed.json").unlink()
    result = embed(demo_int8_dir, "-i", str(source), "-o", str(out))
    assert result.exit_code == 1 and "no _embed.json" in result.output


def test_model_digest_follows_the_model_files(tmp_path):
    model = tmp_path / "m"
    (model / "openvino").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "openvino" / "model.bin").write_bytes(b"12345")
    before = model_digest(model)
    (model / "openvino" / "model.bin").write_bytes(b"123456")
    assert model_digest(model) != before and model_digest("user/repo") == "hub:user/repo"


# --- 3. a run that embeds nothing fails; bad rows are summarised -------------------------------

def test_misspelt_field_fails_at_once_even_skipping_bad_rows(tmp_path, demo_int8_dir):
    source = jsonl(tmp_path / "c.jsonl", docs("d", 3))
    out = tmp_path / "out"
    result = embed(demo_int8_dir, "-i", str(source), "-o", str(out), "--text-field", "txt",
                   "--skip-bad-rows")
    assert result.exit_code == 1
    assert "no row has field 'txt'; fields present: _id, text" in result.output
    assert not list(out.glob("*.parquet")) if out.exists() else True


def test_every_row_rejected_fails(tmp_path, demo_int8_dir):
    source = jsonl(tmp_path / "c.jsonl", [{"_id": i, "text": i} for i in range(3)])
    result = embed(demo_int8_dir, "-i", str(source), "-o", str(tmp_path / "o"),
                   "--skip-bad-rows")
    assert result.exit_code == 1 and "None of the 3 row(s)" in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    nothing = embed(demo_int8_dir, "-i", str(empty), "-o", str(tmp_path / "o2"))
    assert nothing.exit_code == 1 and "no rows; nothing to embed" in nothing.output


def test_bad_rows_of_one_cause_are_summarised(tmp_path, demo_int8_dir):
    source = jsonl(tmp_path / "c.jsonl", [{"text": "ok"}] + [{"body": "x"}] * 30)
    result = embed(demo_int8_dir, "-i", str(source), "-o", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert f"{source} 30 rows (2, 3, 4, 5, 6, ...): missing field 'text'" in result.output
    assert result.output.count("missing field") == 1


# --- 4. CSV and ids ----------------------------------------------------------------------------

def test_csv_values_spanning_lines_across_read_blocks(tmp_path):
    path = tmp_path / "big.csv"
    rows = [{"_id": str(i), "text": f"line one {i}\nline two, \"quoted\"\n" * 20}
            for i in range(3000)]  # about 2.5 MB: several of pyarrow's 1 MB blocks
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["_id", "title", "text"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    read = [r for s in read_shards([path], ["text"], "_id", 1000) for r in zip(s.ids, s.texts[0])]
    assert read == [(r["_id"], r["text"]) for r in rows]


def ragged_csv(tmp_path: Path) -> Path:
    path = tmp_path / "r.csv"
    path.write_text('_id,title,text\n1,a,"first\ntext"\n2,only two\n3,c,third\n')
    return path


def test_ragged_csv_row_is_named_or_rejected(tmp_path, demo_int8_dir):
    path = ragged_csv(tmp_path)
    bad = embed(demo_int8_dir, "-i", str(path), "-o", str(tmp_path / "o"))
    assert bad.exit_code == 1
    assert f"{path} row 2: 2 field(s), expected 3 ('2,only two')" in bad.output
    out = tmp_path / "o2"
    ok = embed(demo_int8_dir, "-i", str(path), "-o", str(out), "--skip-bad-rows")
    assert ok.exit_code == 0 and "2 rows embedded" in ok.output and "1 rejected" in ok.output
    assert ids(out) == ["r.csv:1", "r.csv:3"]  # the rows after it keep their numbers
    rejected = json.loads(next((out / "_rejects").glob("*.jsonl")).read_text())
    assert (rejected["row"], rejected["file"]) == (2, str(path))


def test_duplicate_ids_are_written_and_warned(tmp_path, demo_int8_dir, caplog):
    source = jsonl(tmp_path / "c.jsonl", docs("d", 3) + docs("d", 2))
    with caplog.at_level(logging.WARNING, logger="ipex_embeddings_builder.embed"):
        result = embed(demo_int8_dir, "-i", str(source), "-o", str(tmp_path / "o"),
                       "--id-field", "_id")
    assert result.exit_code == 0 and "2 with a repeated id" in result.output
    assert "2 row(s) have an id another row has too (first: 'd0' at c.jsonl row 1, c.jsonl " \
           "row 4" in caplog.text
    assert len(ids(tmp_path / "o")) == 5


def test_integer_ids_keep_their_type(tmp_path, demo_int8_dir, caplog):
    records = [{"_id": i * 10, "text": f"doc {i}"} for i in range(3)]
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    for source in (jsonl(tmp_path / "j.jsonl", records), parquet):
        out = tmp_path / source.suffix[1:]
        assert embed(demo_int8_dir, "-i", str(source), "-o", str(out), "--id-field",
                     "_id").exit_code == 0
        table = pq.read_table(sorted(out.glob("*.parquet")))
        assert table.schema.field("id").type == pa.int64() and ids(out) == [0, 10, 20]
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("_id,text\n007,a\n8,b\n")
    with caplog.at_level(logging.WARNING, logger="ipex_embeddings_builder.embed"):
        assert embed(demo_int8_dir, "-i", str(csv_path), "-o", str(tmp_path / "c"),
                     "--id-field", "_id").exit_code == 0
    assert ids(tmp_path / "c") == ["007", "8"] and "CSV has no types" in caplog.text


def test_a_damaged_folder_is_refused_before_ray_starts(tmp_path: Path) -> None:
    from ipex_embeddings import ModelFolderError
    from ipex_embeddings_builder.embed import EmbedOptions, embed_corpus

    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"_id": "1", "text": "a"}\n')
    (tmp_path / "model").mkdir()
    with pytest.raises(ModelFolderError, match="ipex_embeddings.json"):
        embed_corpus(tmp_path / "model", [corpus], tmp_path / "out", EmbedOptions(),
                     engine="ray")
