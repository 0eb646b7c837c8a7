"""`ipex-embed bench` on a cross-encoder folder: the rerank part, end to end through the CLI.

A tiny random BertForSequenceClassification (test_cross_encoder's helper) is built to int8 here;
the bench reranks the BM25 top 100 of three SciFact test claims with it, with the fp32 folder it
builds from the source, and with sentence-transformers' CrossEncoder in every backend this
interpreter can load. Timings are never asserted (they depend on the machine), only that each
figure is there and sane, and that the fp32 folder agrees with sentence-transformers' fp32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from test_cross_encoder import build, make_cross_encoder

from ipex_embeddings_builder.bench.rerank import spearman
from ipex_embeddings_builder.cli import main

RERANK_KEYS = ("st-torch", "st-onnx", "st-openvino", "ours", "ours-fp32")


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the source folder, its int8 folder)."""
    base = tmp_path_factory.mktemp("xbench")
    # 256 tokens: the tiny vocabulary spells most words letter by letter, and the runtime
    # refuses a claim that alone fills max_seq_length (120 would not hold SciFact's second).
    source = make_cross_encoder(base / "tiny-reranker", "bert", max_length=256)
    rng = np.random.default_rng(0)
    words = ["cancer", "risk", "gene", "cell", "protein", "patients", "study", "the", "of"]
    pairs = [(" ".join(rng.choice(words, 3)), " ".join(rng.choice(words, 12)))
             for _ in range(24)]
    return source, build(source, base / "tiny-reranker-int8", "int8", calibration_pairs=pairs)


def _invoke(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def rerank_run(reranker: tuple[Path, Path],
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    source, int8 = reranker
    base = tmp_path_factory.mktemp("xbench-out")
    # One thread per system: the test's figures are not timings, and one thread stays quick on
    # a machine that is busy with other work.
    result = _invoke("bench", int8, "--queries", "3", "--rounds", "2", "--threads", "1",
                     "--source", source,
                     "--work-dir", base / "work", "--output", base / "out")
    assert result.exit_code == 0, result.output
    return base / "out", json.loads((base / "out" / "bench.json").read_text())


def test_the_rerank_part_measures_each_system_or_says_why_not(
    rerank_run: tuple[Path, dict],
) -> None:
    _, data = rerank_run
    setup = data["rerank_setup"]
    assert (setup["queries"], setup["candidates_per_query"], setup["pairs"]) == (3, 100, 300)
    assert "bm25s" in setup["first_stage"]
    statuses = {s["key"]: s for s in data["systems"] if s["kind"] == "rerank"}
    assert set(statuses) == set(RERANK_KEYS)
    for status in statuses.values():
        assert status["status"] == "ok" or status["reason"], status
    for key in ("st-torch", "ours", "ours-fp32"):  # ours-fp32: built from --source
        assert statuses[key]["status"] == "ok", statuses[key]
    assert statuses["ours"]["info"]["precision"] == "int8"
    rows = {r["system"]: r for r in data["rerank"]}
    assert set(rows) == {k for k, s in statuses.items() if s["status"] == "ok"}
    for row in rows.values():
        assert row["queries"] == 3 and row["pairs"] == 300
        assert row["pairs_per_s"] > 0 and len(row["round_pairs_per_s"]) == 2
        assert 0 < row["query_p50_ms"] <= row["query_p90_ms"] and row["speedup"] > 0
        assert -1 <= row["spearman_min"] <= row["spearman_mean"] <= 1
        assert row["max_abs_diff"] >= 0 and row["load_s"] > 0
    assert rows["st-torch"]["speedup"] == 1.0 and rows["st-torch"]["max_abs_diff"] == 0
    # Our fp32 folder scores as sentence-transformers' fp32 does (measured: 2e-7 elsewhere).
    assert rows["ours-fp32"]["max_abs_diff"] < 1e-4 and rows["ours-fp32"]["spearman_min"] > 0.99
    assert "model level, end to end, scaling" in data["skipped_parts"]
    assert data["latency"] == [] and data["end_to_end"] == []
    targets = data["targets"]
    assert ">= 4x sentence-transformers CrossEncoder torch fp32" in targets[0]["target"]
    assert ">= 1.3x the fastest sentence-transformers backend" in targets[1]["target"]
    assert len(targets) == 2 and all(t["measured"] > 0 for t in targets)


def test_the_rerank_part_writes_its_table_with_the_command(rerank_run: tuple[Path, dict]) -> None:
    output, data = rerank_run
    markdown = (output / "bench.md").read_text()
    assert "## Reranking on SciFact (cross-encoder)" in markdown
    assert "| system | pairs/s (spread) | vs ST torch fp32 | claim p50 ms |" in markdown
    assert "| ipex-embeddings CrossEncoder int8 |" in markdown
    assert "| sentence-transformers CrossEncoder torch fp32 |" in markdown
    assert "ipex-embed bench" in data["command"] and f"`{data['command']}`" in markdown
    assert "## Targets (int8 cross-encoder, reranking)" in markdown
    assert data["plots"] == ["rerank.png"]
    assert (output / "rerank.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--parts", "e2e"], "the part(s) e2e do not apply to it"),
    (["--bf16-dir", "{int8}"], "--bf16-dir does not apply to a cross-encoder"),
])
def test_bi_encoder_parts_are_refused_for_a_cross_encoder(
    reranker: tuple[Path, Path], args: list[str], message: str, tmp_path: Path
) -> None:
    _, int8 = reranker
    args = [a.format(int8=int8) for a in args]
    result = _invoke("bench", int8, *args, "--output", tmp_path / "out")
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "out").exists()


def test_spearman_takes_ties_as_mean_ranks() -> None:
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(1)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1)
    # ranks (0.5, 0.5, 2) against (0, 1, 2): Pearson of the ranks is sqrt(3)/2
    assert spearman(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(
        np.sqrt(3) / 2)
    assert spearman(np.ones(4), np.ones(4)) == 1.0 and spearman(np.ones(3), np.arange(3)) == 0.0
