"""`ipex-embed embed`: JSONL/Parquet/CSV in, resumable Parquet shards out, bad rows reported."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ipex_embeddings import Encoder
from ipex_embeddings_builder.cli import main
from ipex_embeddings_builder.corpus import CorpusError
from ipex_embeddings_builder.embed import BadRowsError, EmbedOptions, embed_corpus

SCIFACT = Path(__file__).parents[1] / "builder/ipex_embeddings_builder/data/scifact/corpus.jsonl"
DOCS = 120
pytestmark = pytest.mark.filterwarnings("ignore::ipex_embeddings.TruncationWarning")
OPTIONS = EmbedOptions(text_fields=("title", "text"), id_field="_id", shard_rows=50)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    """The first SciFact documents, abstracts cut to 300 characters to keep the tests quick."""
    with SCIFACT.open() as handle:
        records = [json.loads(line) for _, line in zip(range(DOCS), handle)]
    return [{"_id": r["_id"], "title": r["title"], "text": r["text"][:300]} for r in records]


@pytest.fixture(scope="module")
def encoder(demo_int8_dir: Path) -> Encoder:
    return Encoder.load(demo_int8_dir)


@pytest.fixture(scope="module")
def expected(encoder: Encoder, corpus: list[dict]) -> dict[str, np.ndarray]:
    vectors = encoder.encode([f"{d['title']} {d['text']}" for d in corpus], "document")
    return {d["_id"]: v for d, v in zip(corpus, vectors)}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_output(output: Path) -> pa.Table:
    return pq.read_table(sorted(output.glob("*.parquet")))


def assert_equal_vectors(table: pa.Table, expected: dict[str, np.ndarray]) -> None:
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(expected), "every id exactly once"
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy()
    vectors = vectors.reshape(len(ids), -1)
    assert np.array_equal(vectors, np.stack([expected[i] for i in ids]))  # bit for bit


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
def test_formats_give_encoder_vectors(fmt, tmp_path, encoder, corpus, expected):
    source = write_jsonl(tmp_path / "corpus.jsonl", corpus)
    if fmt != "jsonl":
        table = pa.Table.from_pylist(corpus)
        source = tmp_path / f"corpus.{fmt}"
        pq.write_table(table, source) if fmt == "parquet" else pacsv.write_csv(table, source)
    result = embed_corpus(encoder, source, tmp_path / "out", OPTIONS)
    assert (result.rows_embedded, len(result.shards_written)) == (DOCS, 3)
    table = read_output(tmp_path / "out")
    field = table.schema.field("embedding")
    assert pa.types.is_fixed_size_list(field.type) and field.type.value_type == pa.float32()
    assert field.type.list_size == 384
    assert_equal_vectors(table, expected)


def test_folder_and_glob_inputs_default_ids_and_text(tmp_path, encoder, corpus):
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", corpus[:30])
    write_jsonl(folder / "b.jsonl", corpus[30:50])
    options = EmbedOptions(kind="query", include_text=True, shard_rows=25)
    for spec, out in [(folder, "o1"), (str(folder / "*.jsonl"), "o2")]:
        embed_corpus(encoder, spec, tmp_path / out, options)
        table = read_output(tmp_path / out)
        assert table.column("id").to_pylist()[:2] == ["a.jsonl:1", "a.jsonl:2"]
        assert table.num_rows == 50
        texts = [d["text"] for d in corpus[:50]]
        assert table.column("text").to_pylist() == texts
        vectors = table.column("embedding").combine_chunks().flatten().to_numpy()
        assert np.array_equal(vectors.reshape(50, -1), encoder.encode(texts, "query"))


def test_resume_rewrites_only_missing_shards(tmp_path, encoder, corpus, expected):
    source = write_jsonl(tmp_path / "corpus.jsonl", corpus)
    output = tmp_path / "out"
    first = embed_corpus(encoder, source, output, OPTIONS)
    kept = first.shards_written[0]
    stamp = kept.stat().st_mtime_ns
    first.shards_written[1].unlink()  # as if killed while the second shard was in flight
    (output / f".{first.shards_written[1].name}.tmp").write_bytes(b"half a shard")
    again = embed_corpus(encoder, source, output, OPTIONS)
    assert (again.shards_skipped, again.shards_written) == (2, [first.shards_written[1]])
    assert kept.stat().st_mtime_ns == stamp
    assert_equal_vectors(read_output(output), expected)
    with pytest.raises(CorpusError, match="other settings.*shard_rows"):
        embed_corpus(encoder, source, output, EmbedOptions(
            text_fields=("title", "text"), id_field="_id", shard_rows=40))


def bad_corpus(tmp_path: Path, corpus: list[dict]) -> Path:
    lines = [json.dumps(r) for r in corpus[:10]]
    lines[2] = json.dumps({"_id": "x2", "text": 5})
    lines[4] = json.dumps({"_id": "x4"})
    lines[6] = '{"_id": "x6", "text": "lone \\ud800 surrogate"}'
    lines[7] = '{"_id": "x7", "text": '
    lines[8] = json.dumps({"text": "no id"})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_rows_stop_before_any_write(tmp_path, encoder, corpus):
    path = bad_corpus(tmp_path, corpus)
    options = EmbedOptions(id_field="_id", shard_rows=4)
    with pytest.raises(BadRowsError) as info:
        embed_corpus(encoder, path, tmp_path / "out", options)
    message = str(info.value)
    for row, reason in [(3, "'text' is int, not a string"), (5, "missing field 'text'"),
                        (7, "lone surrogate"), (8, "not valid JSON"), (9, "missing id field")]:
        assert f"{path} row {row}: " in message and reason in message
    assert "--skip-bad-rows" in message and info.value.total == 5
    assert not (tmp_path / "out").exists()


def test_skip_bad_rows_writes_rejects_and_loses_nothing(tmp_path, encoder, corpus):
    path = bad_corpus(tmp_path, corpus)
    options = EmbedOptions(id_field="_id", shard_rows=4, skip_bad_rows=True)
    result = embed_corpus(encoder, path, tmp_path / "out", options)
    assert (result.rows_embedded, result.rows_rejected) == (5, 5)
    rejected = [json.loads(line) for f in result.rejects for line in f.read_text().splitlines()]
    assert [r["row"] for r in rejected] == [3, 5, 7, 8, 9]
    assert all(r["file"] == str(path) for r in rejected)
    good_ids = [corpus[i]["_id"] for i in (0, 1, 3, 5, 9)]
    assert sorted(read_output(tmp_path / "out").column("id").to_pylist()) == sorted(good_ids)


def test_missing_column_and_no_inputs(tmp_path, encoder, corpus):
    source = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(corpus[:5]), source)
    with pytest.raises(CorpusError, match=r"no column 'body' \(its columns: _id, title, text"):
        embed_corpus(encoder, source, tmp_path / "o", EmbedOptions(text_fields=("body",)))
    with pytest.raises(CorpusError, match="No input files"):
        embed_corpus(encoder, tmp_path / "nothing*.jsonl", tmp_path / "o", EmbedOptions())


def test_cli(tmp_path, demo_int8_dir, corpus, expected):
    source = write_jsonl(tmp_path / "corpus.jsonl", corpus)
    args = ["embed", str(demo_int8_dir), "--input", str(source), "--output", str(tmp_path / "o"),
            "--text-field", "title", "--text-field", "text", "--id-field", "_id"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"{DOCS} rows embedded into 1 new shard(s)" in result.output
    # the summary once: not again as a log line, nor twice through a root handler
    assert result.output.count("embedded") == 1, result.output
    assert_equal_vectors(read_output(tmp_path / "o"), expected)
    bad = CliRunner().invoke(main, ["embed", str(demo_int8_dir), "--input",
                                    str(bad_corpus(tmp_path, corpus)), "-o", str(tmp_path / "b")])
    assert bad.exit_code == 1 and "row 3: field 'text' is int" in bad.output


def test_faiss_example(demo_int8_dir):
    import subprocess
    import sys

    example = Path(__file__).parents[1] / "examples/index_scifact_faiss.py"
    out = subprocess.run([sys.executable, str(example), str(demo_int8_dir), "--judged-only"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Indexed 283 abstracts (384-d) in FAISS" in out.stdout
    found, total = map(int, re.search(r"top 10 for (\d+) of (\d+) test", out.stdout).groups())
    assert total == 300 and found >= 0.8 * total  # a broken index or id mapping finds few
