"""`ipex-embed quantize` and `ipex-embed build` on a cross-encoder source, through the CLI.

A tiny random BertForSequenceClassification (made by test_cross_encoder's helper) goes through
the real stages: calibration on SciFact pairs with BM25 hard negatives, int8 export, validation
by reranking the BM25 candidates of a few SciFact test claims against sentence-transformers'
fp32 `CrossEncoder`, the card and the commit plan. Random weights: the figures say nothing of
accuracy; the tests check the folder's kind, the report's fields and the gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from test_cross_encoder import make_cross_encoder

from ipex_embeddings import CrossEncoder, ModelConfig
from ipex_embeddings_builder.cli import main

QUICK_BUILD = ["--dry-run", "--bench", "skip", "--validation-subset", "3", "--samples", "16"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cross_encoder(tmp_path_factory.mktemp("xsrc") / "tiny-reranker", "bert")


def _invoke(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_quantize_builds_a_cross_encoder_folder(source: Path, tmp_path: Path) -> None:
    result = _invoke("quantize", source, "-o", tmp_path / "int8", "--samples", "16")
    assert result.exit_code == 0, result.output
    assert "cross-encoder" in result.output
    config = ModelConfig.load(tmp_path / "int8")
    assert (config.kind, config.precision, config.activation) == ("cross-encoder", "int8",
                                                                  "sigmoid")
    assert config.quantization["samples"] == 16
    assert "BM25 hard negatives" in config.quantization["calibration_source"]
    scores = CrossEncoder.load(tmp_path / "int8").score("cancer risk", ["the gene", "a cell"])
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_quantize_refuses_bi_encoder_options_for_a_cross_encoder(
    source: Path, tmp_path: Path
) -> None:
    result = _invoke("quantize", source, "-o", tmp_path / "x", "--pooling", "mean")
    assert result.exit_code == 2 and "--pooling" in result.output
    assert "cross-encoder" in result.output and not (tmp_path / "x").exists()


def test_three_labels_are_refused_by_name(tmp_path: Path) -> None:
    folder = make_cross_encoder(tmp_path / "three", "bert", num_labels=3)
    result = _invoke("quantize", folder, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "3 labels" in result.output


def test_build_validates_by_reranking_and_writes_the_card(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipex_embeddings_builder import rerank_validation

    # The workflow, not the score gate (tests/test_rerank_validation.py holds that): a random
    # tiny reranker's scores barely spread (std 0.06), and its int8 shifts them by a median
    # 0.4-0.65 of that on an AVX2 CPU (either engine), over the gate's 0.25.
    monkeypatch.setattr(rerank_validation, "MAX_SCORE_SHIFT", 10.0)
    output = tmp_path / "tiny-reranker-int8"
    result = _invoke("build", source, "-o", output, *QUICK_BUILD, "--max-loss", "100")
    assert result.exit_code == 0, result.output
    assert ModelConfig.load(output).kind == "cross-encoder"
    report = json.loads((output / "validation.json").read_text())
    assert [row["metric"] for row in report["rows"]] == ["ndcg_at_10", "map"]
    for row in report["rows"]:
        assert row["task_type"] == "Reranking" and 0 <= row["int8"] <= 1
        assert 0 <= row["fp32"] <= 1 and set(row["seconds"]) == {"fp32", "int8"}
    assert (report["subset"], report["depth"], report["max_loss"]) == (3, 100, 100.0)
    assert report["passed"] is True and report["reference"] == "tiny-reranker"
    assert "bm25s" in report["first_stage"] and report["evaluator"].startswith("pytrec_eval")
    assert "top 100" in (output / "validation.md").read_text()
    card = (output / "README.md").read_text()
    assert "cross-encoder" in card and "pipeline_tag: text-ranking" in card
    assert "CrossEncoder.load" in card and "IPEXRerank(" in card and "IPEXRerankCompressor(" in card
    assert "ipex-embed build" in card and str(tmp_path) not in card
    rerun = _invoke("build", source, "-o", output, *QUICK_BUILD, "--max-loss", "100")
    assert rerun.exit_code == 0 and rerun.output.count("up to date") == 3


def test_build_stops_at_the_gate(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipex_embeddings_builder import rerank_validation
    from ipex_embeddings_builder.data import document_text, load_beir

    data = load_beir(split="test")
    judged = {(data.queries[q], document_text(data.corpus[d])) for q in data.qrels
              for d in data.qrels[q]}

    def perfect(reference: Path, max_length: int, pairs: list) -> np.ndarray:
        return np.array([float(pair in judged) for pair in pairs])

    # An fp32 reference that ranks every judged abstract first: the random model loses to it.
    monkeypatch.setattr(rerank_validation, "_fp32_scores", perfect)
    output = tmp_path / "gated"
    result = _invoke("build", source, "-o", output, *QUICK_BUILD, "--max-loss", "1")
    assert result.exit_code == 1
    assert "failed its accuracy gate" in result.output and "Nothing was published" in result.output
    report = json.loads((output / "validation.json").read_text())
    assert report["passed"] is False and report["rows"][0]["fp32"] > report["rows"][0]["int8"]
    assert not (output / "README.md").exists()
