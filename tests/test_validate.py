"""`ipex-embed validate`: local mteb tasks, the model wrappers, the gate, and its errors.

The model runs use a small deterministic subset of SciFact (the full runs are the CLI's job) on
the train split, so that the tuning tests reuse these fp32 reference scores from the cache.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_model_folder import make_folder

from ipex_embeddings_builder.cli import main
from ipex_embeddings_builder.data import SCIFACT_DIR, load_beir
from ipex_embeddings_builder.fidelity import DEFAULT_MIN_COSINE

SUBSET = 20
SPLIT = "train"


@pytest.fixture(scope="session")
def reference_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 reference scores, shared with test_tuning.py (the same path in both modules)."""
    path = tmp_path_factory.getbasetemp() / "fp32-reference-cache"
    path.mkdir(exist_ok=True)
    return path


def _copy(folder: Path, tmp_path: Path) -> Path:
    # validate writes its report into the folder: never into the shared session fixtures.
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _write_beir(folder: Path, docs: list[str], qrels: list[tuple[str, str]]) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": f"text {d}"}) + "\n" for d in docs)
    )
    queries = sorted({q for q, _ in qrels})
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": f"query {q}"}) + "\n" for q in queries)
    )
    rows = "".join(f"{q}\t{d}\t1\n" for q, d in qrels)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def _scifact_slice(folder: Path, split: str, queries: int) -> Path:
    """A user's BEIR folder: a few SciFact queries with their judged and some other documents."""
    from ipex_embeddings_builder.mteb_tasks import subset_beir

    data = subset_beir(load_beir(SCIFACT_DIR, split), queries, seed=1)
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for doc_id, doc in data.corpus.items():
            f.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for query_id, text in data.queries.items():
            f.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    rows = [f"{q}\t{d}\t{s}\n" for q, docs in data.qrels.items() for d, s in docs.items()]
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(rows))
    return folder


def test_subset_is_deterministic_and_keeps_the_judged_documents() -> None:
    from ipex_embeddings_builder.mteb_tasks import OTHER_DOCS_PER_QUERY, subset_beir

    data = load_beir(SCIFACT_DIR, "test")
    subset = subset_beir(data, SUBSET)
    assert subset == subset_beir(data, SUBSET)
    assert len(subset.queries) == SUBSET and subset.queries.keys() == subset.qrels.keys()
    judged = {d for docs in subset.qrels.values() for d in docs}
    assert judged <= subset.corpus.keys()
    assert len(subset.corpus) == len(judged) + OTHER_DOCS_PER_QUERY * SUBSET
    assert all(subset.corpus[d] == data.corpus[d] for d in subset.corpus)


def test_bm25_candidates_are_reproducible_and_hold_the_judged_documents() -> None:
    from ipex_embeddings_builder.mteb_tasks import bm25_top_ranked, subset_beir

    data = subset_beir(load_beir(SCIFACT_DIR, "test"), SUBSET)
    candidates = bm25_top_ranked(data, 10)
    assert candidates == bm25_top_ranked(data, 10)
    found_by_bm25 = 0
    for qid, docs in candidates.items():
        assert len(docs) == len(set(docs))
        assert set(data.qrels[qid]) <= set(docs)
        assert 10 <= len(docs) <= 10 + len(data.qrels[qid])
        found_by_bm25 += any(d in data.qrels[qid] for d in docs[:10])
    # Lexical ranking, not an arbitrary order: chance alone would put a judged document in the
    # top 10 of 220 for about one query in twenty.
    assert found_by_bm25 >= SUBSET // 2


def test_reranking_task_is_mteb_reranking_over_its_candidates() -> None:
    from ipex_embeddings_builder.mteb_tasks import LOCAL_TASKS, SciFactReranking
    from ipex_embeddings_builder.validate import LOCAL_TASK_NAMES

    assert tuple(LOCAL_TASKS) == LOCAL_TASK_NAMES
    task = SciFactReranking(split="test", subset=SUBSET)
    task.load_data()
    split = task.dataset["default"]["test"]
    assert task.metadata.type == "Reranking"
    assert set(split["top_ranked"]) == set(split["queries"]["id"])
    assert set(split["corpus"]["id"]) == {d for ds in split["top_ranked"].values() for d in ds}


def test_report_gate_markdown_and_json() -> None:
    from ipex_embeddings_builder.validate import ValidationReport, ValidationRow, relative_loss

    assert relative_loss(0.5, 0.49) == pytest.approx(2.0)
    assert relative_loss(0.5, 0.51) == pytest.approx(-2.0)
    rows = [
        ValidationRow("A", "ndcg_at_10", 0.6, 0.597, relative_loss(0.6, 0.597)),
        ValidationRow("B", "map_at_1000", 0.8, 0.78, relative_loss(0.8, 0.78)),
    ]
    report = ValidationReport(rows, max_loss=1.0, model="m", precision="int8", reference="r")
    assert not report.passed and [r.task for r in report.failures] == ["B"]
    assert "FAILED" in report.to_markdown() and "| A | ndcg_at_10 | 0.6000 | 0.5970 |" in (
        report.to_markdown()
    )
    data = json.loads(report.to_json())
    assert data["passed"] is False and data["rows"][1]["relative_loss"] == pytest.approx(2.5)
    report.max_loss = 2.6
    assert report.passed and "PASSED" in report.to_markdown()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "NoSuchTask"], "Unknown task 'NoSuchTask'"),
        (["--task", "SciFacts"], "Did you mean: 'SciFact'"),
    ],
)
def test_unknown_task_exits_nonzero(tmp_path: Path, args: list[str], message: str) -> None:
    # a folder that passes the model check (validate checks it first), so the task is at fault
    model = make_folder(tmp_path / "model")
    result = CliRunner().invoke(main, ["validate", str(model), *args])
    assert result.exit_code != 0
    assert message in result.output


def test_beir_folder_missing_files_exits_nonzero(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n')
    model = make_folder(tmp_path / "model")
    result = CliRunner().invoke(main, ["validate", str(model), "--beir-dir", str(folder)])
    assert result.exit_code != 0
    assert "queries.jsonl" in result.output and "missing" in result.output


def test_qrels_naming_unknown_documents_exit_nonzero(tmp_path: Path) -> None:
    folder = _write_beir(tmp_path / "beir", ["d1", "d2"], [("q1", "d1"), ("q1", "nowhere")])
    model = make_folder(tmp_path / "model")
    result = CliRunner().invoke(main, ["validate", str(model), "--beir-dir", str(folder)])
    assert result.exit_code != 0
    assert "not in corpus.jsonl" in result.output and "nowhere" in result.output


def test_validate_scores_both_models_and_gates(
    demo_int8_dir: Path, reference_cache: Path, tmp_path: Path
) -> None:
    folder = _copy(demo_int8_dir, tmp_path)
    beir = _scifact_slice(tmp_path / "my-beir", SPLIT, 5)
    base = ["validate", str(folder), "--split", SPLIT, "--subset", str(SUBSET)]
    base += ["--cache-dir", str(reference_cache), "--task", "SciFact", "--task", "SciFactReranking"]
    base += ["--beir-dir", str(beir)]
    lenient = CliRunner().invoke(main, [*base, "--max-loss", "100"])
    assert lenient.exit_code == 0, lenient.output
    report = json.loads((folder / "validation.json").read_text())
    assert report["passed"] is True and report["split"] == SPLIT and report["subset"] == SUBSET
    assert [(r["task"], r["metric"]) for r in report["rows"]] == [
        ("SciFact", "ndcg_at_10"),
        ("SciFactReranking", "map_at_1000"),
        ("BEIR-my-beir", "ndcg_at_10"),
    ]
    for row in report["rows"]:
        assert 0 < row["fp32"] <= 1 and 0 < row["int8"] <= 1
        assert row["relative_loss"] == pytest.approx(
            100 * (row["fp32"] - row["int8"]) / row["fp32"]
        )
    assert "| SciFactReranking | map_at_1000 |" in (folder / "validation.md").read_text()
    fidelity = report["fidelity"]
    assert fidelity["passed"] and fidelity["min_cosine"] == DEFAULT_MIN_COSINE
    assert DEFAULT_MIN_COSINE <= fidelity["min"] <= fidelity["mean"] < 1.0
    assert set(fidelity["groups"]) == {"short", "medium", "long"}
    assert "Fidelity to fp32" in (folder / "validation.md").read_text()
    assert report["model"] == folder.name and str(tmp_path) not in json.dumps(report)

    # A gate just under the measured loss must fail, with the report, from cached fp32 scores.
    worst = max(r["relative_loss"] for r in report["rows"])
    strict = CliRunner().invoke(main, [*base, "--max-loss", f"{worst - 0.01:.4f}"])
    assert strict.exit_code == 1, strict.output
    assert "lost more than --max-loss" in strict.output and "FAILED" in strict.output
    assert strict.output.count("(cached in") == 3
    again = json.loads((folder / "validation.json").read_text())
    assert [r["fp32"] for r in again["rows"]] == [r["fp32"] for r in report["rows"]]
    assert [r["int8"] for r in again["rows"]] == pytest.approx([r["int8"] for r in report["rows"]])

    # The fidelity gate fails a model on its own, with the text that is furthest from fp32.
    close = CliRunner().invoke(main, [*base, "--max-loss", "100", "--min-cosine", "0.99999"])
    assert close.exit_code == 1, close.output
    assert "under --min-cosine 0.99999" in close.output
    assert "lost more than" not in close.output
    assert not json.loads((folder / "validation.json").read_text())["passed"]


def test_fp32_ir_scores_as_the_pytorch_reference(
    demo_fp32_dir: Path, reference_cache: Path, tmp_path: Path
) -> None:
    """The harness check: the same weights in OpenVINO fp32 and in PyTorch must score alike, so
    prompts, truncation, pooling and similarity are the same on both sides."""
    from ipex_embeddings_builder.validate import run_validation

    report = run_validation(
        _copy(demo_fp32_dir, tmp_path), split=SPLIT, subset=SUBSET, cache_dir=reference_cache
    )
    assert report.precision == "fp32"
    for row in report.rows:
        assert abs(row.relative_loss) < 0.1, report.to_markdown()
    assert report.fidelity is not None and report.fidelity["min"] >= 0.9999, report.fidelity


def test_prompt_type_maps_to_the_folders_prompts(tiny_bert, tmp_path: Path) -> None:
    from mteb.models import EncoderProtocol
    from mteb.types import PromptType

    from ipex_embeddings import Encoder
    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.mteb_model import EncoderModel, SourceReferenceModel
    from ipex_embeddings_builder.mteb_tasks import SciFactLocal
    from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    source = tiny_bert(
        "prompted", pooling="mean", prompts={"query": "query: ", "document": "doc: "}
    )
    folder = tmp_path / "fp32"
    quantize_to_folder(
        inspect_source(str(source)),
        load_calibration(samples=32),
        folder,
        QuantizeOptions(precision="fp32"),
    )
    encoder = Encoder.load(folder)
    ours, reference = EncoderModel(encoder), SourceReferenceModel(source)
    assert isinstance(ours, EncoderProtocol) and isinstance(reference, EncoderProtocol)
    texts = ["cell protein study", "gene risk in patients", ""]
    batches = [{"text": texts[:2]}, {"text": texts[2:]}]
    context = {"task_metadata": SciFactLocal.metadata, "hf_split": "test", "hf_subset": "default"}
    for prompt_type, kind in ((PromptType.query, "query"), (PromptType.document, "document")):
        vectors = ours.encode(batches, prompt_type=prompt_type, **context)
        np.testing.assert_allclose(vectors, encoder.encode(texts, kind), atol=1e-6)
        expected = reference.encode(batches, prompt_type=prompt_type, **context)
        assert np.sum(vectors * expected, axis=1) == pytest.approx(1.0, abs=1e-5)
    queries = ours.encode(batches, prompt_type=PromptType.query, **context)
    documents = ours.encode(batches, prompt_type=PromptType.document, **context)
    assert not np.allclose(queries, documents)


def test_missing_source_model_asks_for_reference(demo_int8_dir: Path, tmp_path: Path) -> None:
    from ipex_embeddings_builder.validate import run_validation

    folder = _copy(demo_int8_dir, tmp_path)
    config = json.loads((folder / "ipex_embeddings.json").read_text())
    config["source_model"] = ""
    (folder / "ipex_embeddings.json").write_text(json.dumps(config))
    with pytest.raises(Exception, match="--reference"):
        run_validation(folder, tasks=["SciFact"], subset=2, cache_dir=tmp_path / "cache")


def test_the_reference_is_the_source_as_shipped(demo_source_dir: Path) -> None:
    """`SentenceTransformer(source)` gives the demo the vectors the reference rebuilt from the
    imported settings gave (Transformer -> Pooling -> Normalize), so its scores are unchanged."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from ipex_embeddings_builder.mteb_model import SourceReferenceModel
    from ipex_embeddings_builder.source import inspect_source

    source = inspect_source(str(demo_source_dir))
    rebuilt = SentenceTransformer(modules=[
        Transformer(str(demo_source_dir), max_seq_length=source.max_seq_length,
                    model_kwargs={"use_safetensors": True, "dtype": torch.float32}),
        Pooling(source.dimension, pooling_mode=source.pooling),
        Normalize(),
    ], device="cpu").eval()
    data = load_beir(SCIFACT_DIR, "test")
    texts = [d["text"] for d in list(data.corpus.values())[:12]]
    texts += [*list(data.queries.values())[:5], "", " ", "日本語", "x " * 600]
    shipped = SourceReferenceModel(demo_source_dir)
    for kind in ("query", "document"):
        expected = rebuilt.encode(texts, batch_size=32, convert_to_numpy=True)
        np.testing.assert_allclose(shipped.embed(texts, kind, 32), expected, atol=1e-6)


def test_the_reference_picks_the_sources_own_prompt_names(tiny_bert) -> None:
    """E5-style "passage" is the document prompt, though sentence-transformers adds an empty
    "document" prompt to every model."""
    from ipex_embeddings_builder.mteb_model import SourceReferenceModel

    source = tiny_bert("e5", pooling="mean", prompts={"query": "query: ", "passage": "passage: "})
    reference = SourceReferenceModel(source)
    assert reference.prompt_names == {"query": "query", "document": "passage"}
    plain = SourceReferenceModel(tiny_bert("plain", pooling="mean"))
    assert plain.prompt_names == {"query": None, "document": None}


def test_a_higher_int8_score_reads_as_a_gain() -> None:
    from ipex_embeddings_builder.validation_report import change_text, relative_loss

    assert change_text(relative_loss(0.6451, 0.6479)) == "+0.43 % (gain)"
    assert change_text(relative_loss(0.9170, 0.8895)) == "-3.00 % (loss)"
    assert change_text(relative_loss(0.5, 0.5)) == "0.00 %"
