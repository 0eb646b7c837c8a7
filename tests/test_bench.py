"""`ipex-embed bench`: a --quick smoke run whose outputs must exist and parse, and the parts of
the bench that are pure arithmetic. Timings are never asserted: they depend on the machine."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ipex_embeddings.config import ModelConfig
from ipex_embeddings_builder.bench.end_to_end import EndToEndRow
from ipex_embeddings_builder.bench.hardware import Hardware, int8_peak
from ipex_embeddings_builder.bench.limit import count_macs
from ipex_embeddings_builder.bench.measure import Fleet, SystemStatus, spread
from ipex_embeddings_builder.bench.report import BenchReport
from ipex_embeddings_builder.bench.run import FULL, run_bench
from ipex_embeddings_builder.bench.scaling import SHAPES, Shape
from ipex_embeddings_builder.bench.systems import MODEL_LEVEL, SystemSpec
from ipex_embeddings_builder.card import CardInputs, render_card
from ipex_embeddings_builder.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# MiniLM-L6 at 256 tokens: 6 layers x (4 x 384^2 + 2 x 384 x 1536) x 256 tokens.
MINILM_INT8_MACS_256 = 6 * (4 * 384 * 384 + 2 * 384 * 1536) * 256


@pytest.fixture(scope="module")
def quick_run(
    demo_int8_dir: Path, demo_fp32_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("bench") / "out"
    no_peers = tmp_path_factory.mktemp("no-peers")  # an empty --peers-dir: every peer skipped
    result = CliRunner().invoke(main, [
        "bench", str(demo_int8_dir), "--quick", "--output", str(output),
        "--fp32-dir", str(demo_fp32_dir), "--docs", "32", "--queries", "5",
        "--peers-dir", str(no_peers),
    ])
    assert result.exit_code == 0, result.output
    return output, json.loads((output / "bench.json").read_text())


def _status(data: dict, kind: str, key: str) -> dict:
    return next(s for s in data["systems"] if s["kind"] == kind and s["key"] == key)


def test_quick_bench_writes_json_markdown_and_plots(quick_run: tuple[Path, dict]) -> None:
    output, data = quick_run
    assert data["schema_version"] == 2 and data["mode"] == "quick"
    assert data["plots"] == ["latency_vs_seq_len.png", "throughput_vs_batch.png", "end_to_end.png"]
    for name in data["plots"]:
        assert (output / name).read_bytes()[:8] == PNG_MAGIC
    markdown = (output / "bench.md").read_text()
    for heading in ("## Systems", "## Latency at batch 1", "## Throughput at 256 tokens",
                    "## End to end on SciFact", "## Distance to the limit (int8)"):
        assert heading in markdown
    assert data["hardware"]["threads"] >= 1 and data["hardware"]["versions"]["openvino"]
    assert "scaling (BGE-base/large shapes)" in data["skipped_parts"]


def test_quick_bench_measures_every_system_or_says_why_not(quick_run: tuple[Path, dict]) -> None:
    _, data = quick_run
    for status in data["systems"]:
        assert status["status"] in ("ok", "skipped", "failed")
        assert status["status"] == "ok" or status["reason"], status
    for kind, key in [("model", "torch-fp32"), ("model", "ov-fp32"), ("model", "ov-int8"),
                      ("e2e", "st-torch"), ("e2e", "ours")]:
        assert _status(data, kind, key)["status"] == "ok", _status(data, kind, key)
    measured = {s["key"] for s in data["systems"] if s["kind"] == "model" and s["status"] == "ok"}
    assert {(r["system"], r["seq_len"]) for r in data["latency"]} == {
        (key, n) for key in measured for n in (16, 128)
    }
    for row in data["latency"]:
        assert 0 < row["median_ms"] <= row["p90_ms"] and math.isfinite(row["p90_ms"])
        assert row["runs_per_round"] == 5 and len(row["round_medians_ms"]) == 3
    baseline = [r for r in data["latency"] + data["throughput"] if r["system"] == "torch-fp32"]
    assert baseline and all(r["speedup"] == 1.0 for r in baseline)


def test_quick_bench_end_to_end_systems_agree_with_the_baseline(
    quick_run: tuple[Path, dict],
) -> None:
    _, data = quick_run
    rows = {r["system"]: r for r in data["end_to_end"]}
    assert data["corpus"]["documents"] == 32 and data["corpus"]["corpus_size"] == 5183
    assert rows["st-torch"]["speedup"] == 1.0
    assert rows["st-torch"]["cosine_to_baseline_min"] == pytest.approx(1.0, abs=1e-5)
    # The same texts through our int8 model: close to the fp32 torch vectors, or the bench
    # would be comparing speed of different work.
    assert rows["ours"]["cosine_to_baseline_min"] > 0.97
    for row in rows.values():
        assert row["documents"] == 32 and row["queries"] == 5
        assert row["docs_per_s"] > 0 and 0 < row["query_p50_ms"] <= row["query_p90_ms"]
        assert row["load_s"] > 0 and len(row["round_docs_per_s"]) == 3
        spread = row["docs_per_s_spread"]
        assert spread["min"] <= row["docs_per_s"] <= spread["max"]


def test_quick_bench_records_the_load_average_and_whether_its_figures_can_be_published(
    quick_run: tuple[Path, dict],
) -> None:
    output, data = quick_run
    for phase in ("model", "e2e"):
        rounds = data["round_loads"][phase]
        # The model level runs its rounds twice (latency, then throughput).
        assert len(rounds) in (3, 6)
        assert all(r["before"] >= 0 and r["after"] >= 0 for r in rounds)
    trust = data["speed_trust"]
    assert trust["trusted"] == (not trust["reasons"])
    assert {"ours docs/s", "ours query p50", "int8 latency 16 tokens"} <= set(trust["spreads"])
    assert "Speed figures fit to publish: " in (output / "bench.md").read_text()


def test_a_missing_peer_environment_is_skipped_with_its_set_up_command(
    quick_run: tuple[Path, dict],
) -> None:
    _, data = quick_run
    peers = {"genai-ours": "ovgenai", "genai-export": "ovgenai", "fastembed-fp32": "fastembed",
             "fastembed-int8": "fastembed", "llamaindex-ov-int8": "optimum", "ipex-int8": "ipex"}
    for key, env in peers.items():
        status = _status(data, "e2e", key)
        assert status["status"] == "skipped"
        assert f"benchmarks/peers/setup_{env}.sh" in status["reason"], status["reason"]


def test_quick_bench_distance_to_the_limit_counts_the_int8_macs(
    quick_run: tuple[Path, dict],
) -> None:
    _, data = quick_run
    (entry,) = data["limit"]
    assert entry["seq_len"] == 256 and entry["int8_macs_per_doc"] == MINILM_INT8_MACS_256
    assert entry["achieved_int8_ops_per_s"] == pytest.approx(
        2 * MINILM_INT8_MACS_256 * entry["docs_per_s"]
    )
    if data["peak"]["ops_per_s"]:
        assert entry["percent_of_peak"] == pytest.approx(
            100 * entry["achieved_int8_ops_per_s"] / data["peak"]["ops_per_s"]
        )


def test_scaling_builds_a_shape_with_our_pipeline_and_compares_the_int8_gain_by_size(
    demo_int8_dir: Path, demo_fp32_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tiny shape stands in for BGE-base/large (minutes to build and time): the same code path.
    tiny = Shape("Tiny", hidden=64, layers=2, heads=2, intermediate=128)
    monkeypatch.setitem(SHAPES, "tiny", tiny)
    plan = dataclasses.replace(
        FULL, rounds=1, latency_seq_lens=(16, 128), latency_runs=2, throughput_batches=(4,),
        throughput_runs=1, scaling=("tiny",), scaling_runs=2, scaling_batches=(4,),
        parts=("model", "scaling"), build_missing=False, torch_bf16=False,
    )
    output = tmp_path / "out"
    run_bench(demo_int8_dir, output, plan=plan, fp32_dir=demo_fp32_dir,
              work_dir=tmp_path / "work")
    data = json.loads((output / "bench.json").read_text())

    assert "scaling.png" in data["plots"]
    assert (output / "scaling.png").read_bytes()[:8] == PNG_MAGIC
    built = json.loads((tmp_path / "work" / "scaling-tiny" / "int8" / "ipex_embeddings.json")
                       .read_text())
    assert built["precision"] == "int8" and built["dimension"] == 64
    rows = [r for r in data["latency"] if r["model"] == tiny.label]
    assert {(r["system"], r["seq_len"]) for r in rows} == {
        (key, n) for key in ("torch-fp32", "ov-fp32", "ov-bf16", "ov-int8") for n in (16, 128)
    }
    summary = data["scaling_summary"]
    assert {(e["model"], e["point"].split(",")[0]) for e in summary} == {
        (model, point) for model in (data["model"]["name"], tiny.label)
        for point in ("latency", "throughput")
    }
    for entry in summary:  # int8 vs PyTorch fp32 is the int8 row's own speedup, and so on
        table = data["latency" if entry["point"].startswith("latency") else "throughput"]
        int8 = next(r for r in table if r["model"] == entry["model"]
                    and r["system"] == "ov-int8" and r["seq_len"] in (128, 256))
        assert entry["torch-fp32"] == pytest.approx(int8["speedup"])
        assert entry["torch-bf16"] is None  # not measured in this plan: shown as "-"
    markdown = (output / "bench.md").read_text()
    assert "## Scaling: the int8 gain by model size" in markdown
    assert "| ipex-embeddings bf16 |" in markdown and "| ov-bf16 |" not in markdown


@pytest.mark.parametrize("family", ["modernbert", "qwen3"])
def test_scaling_builds_the_decoder_and_modernbert_families_with_our_pipeline(
    tmp_path: Path, family: str
) -> None:
    """The ModernBERT-base and Qwen3-0.6B shapes' code path on a tiny shape of each family: the
    random source runs in PyTorch (the baseline system) and its int8 folder in our core, on the
    bench's synthetic tokens. A smoke test: nothing is timed."""
    from ipex_embeddings_builder.bench.scaling import POOLING, build_scaling_models
    from ipex_embeddings_builder.bench.systems import CoreModel, TorchModel, token_inputs
    from ipex_embeddings_builder.demo import demo_model_path

    tiny = Shape(f"Tiny-{family}", hidden=64, layers=3, heads=4, intermediate=96, family=family,
                 kv_heads=2 if family == "qwen3" else None)
    source, folders = build_scaling_models(tmp_path, tiny, demo_model_path(),
                                           precisions=("int8",), samples=32)
    assert json.loads((source / "config.json").read_text())["model_type"] == family
    config = ModelConfig.load(folders["int8"])
    assert config.pooling == POOLING[family] and config.precision == "int8"
    assert config.quantization["scheme"] == "static"
    inputs = token_inputs(2, 40, 30522, 101, 102)
    TorchModel(str(source), threads=1).infer(inputs)
    CoreModel(str(folders["int8"]), threads=1).infer(inputs)
    built_again = build_scaling_models(tmp_path, tiny, demo_model_path(), precisions=("int8",),
                                       samples=32)
    assert built_again == (source, folders)  # reused, as a second bench run reuses them


def test_the_new_scaling_shapes_have_the_real_models_sizes() -> None:
    """Weights outside the embedding table, against the model cards: ModernBERT-base 149M in all
    (110M without its 50,368 x 768 table), Qwen3-0.6B 0.44B without embeddings."""
    import torch
    from transformers import AutoModel

    from ipex_embeddings_builder.bench.scaling import _model_config

    ids = {"[PAD]": 0, "[CLS]": 101, "[SEP]": 102}
    for name, expected in (("modernbert-base", 110.3e6), ("qwen3-0.6b", 440.4e6)):
        with torch.device("meta"):
            model = AutoModel.from_config(_model_config(SHAPES[name], 30522, ids))
        table = model.get_input_embeddings().weight.numel()
        count = sum(p.numel() for p in model.parameters()) - table
        assert count == pytest.approx(expected, rel=0.01), (name, count)
    assert {"base", "large"} <= set(SHAPES) and FULL.scaling == ("base", "large")


def test_count_macs_splits_int8_and_float(demo_fp32_dir: Path) -> None:
    xml = demo_fp32_dir / "openvino" / "openvino_model.xml"
    macs = count_macs(xml, batch=2, seq_len=64)
    assert macs.int8_matmul == 0
    assert macs.float_matmul == 2 * 6 * (4 * 384 * 384 + 2 * 384 * 1536) * 64
    assert macs.attention == 2 * 6 * 12 * 64 * 64 * (32 + 32)  # heads x Lq x Lk x (d + dv)


def _hardware(**flags: bool) -> Hardware:
    return Hardware(
        cpu_model="test", physical_cores=4, logical_cpus=8, threads=8, clock_ghz=2.0,
        clock_source="test", flags=flags, memory_gib=None, load_average=[], python="3",
        platform="test",
    )


def test_int8_peak_uses_amx_only_where_the_cpu_has_it() -> None:
    amx = int8_peak(_hardware(amx_int8=True, avx512_vnni=True))
    assert amx.ops_per_s == 4 * 2.0e9 * 1024 * 2 and amx.unit.startswith("AMX")
    vnni = int8_peak(_hardware(avx512_vnni=True), vnni_ports=2)
    assert vnni.ops_per_s == 4 * 2.0e9 * 64 * 2 * 2 and "assumed" in vnni.unit
    assert int8_peak(_hardware(avx512_vnni=True), vnni_ports=1).ops_per_s == vnni.ops_per_s / 2
    assert int8_peak(_hardware()).ops_per_s is None


def test_a_system_that_cannot_start_or_load_is_skipped_with_the_reason(tmp_path: Path) -> None:
    missing = SystemSpec("st-x", "peer", "e2e", "sentence_transformers", str(tmp_path),
                         {"backend": "torch"}, peer=True)
    broken = SystemSpec("ov-x", "ours", MODEL_LEVEL, "core", str(tmp_path), role="ours")
    with Fleet([missing, broken], threads=1, setup={}, peers_python=str(tmp_path / "python"),
               log_dir=tmp_path / "logs") as fleet:
        assert fleet.active == []
        assert fleet.statuses["st-x"].status == "skipped"
        assert "could not start" in fleet.statuses["st-x"].reason
        assert fleet.statuses["ov-x"].status == "skipped"
        assert "ModelFolderError" in fleet.statuses["ov-x"].reason
        # bench.json is published with the model: the interpreter by name, never its path
        assert fleet.statuses["ov-x"].python == Path(sys.executable).name
        assert all("/" not in status.python for status in fleet.statuses.values())


@pytest.mark.parametrize("args, message", [
    (["--seq-lens", "16,x"], "comma-separated list of integers"),
    (["--parts", "model,speed"], "unknown part(s) ['speed']"),
    (["--scaling", "huge"], "unknown shape(s) ['huge']"),
    (["--peer-env", "ovgenai"], "is not NAME=PYTHON"),
    (["--peer-env", "vllm=/usr/bin/python"], "unknown peer environment 'vllm'"),
])
def test_bad_options_are_refused_with_the_fix(
    demo_int8_dir: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["bench", str(demo_int8_dir), *args])
    assert result.exit_code == 2 and message in result.output


def _report_with(loads: list[float], docs_per_s: list[float]) -> BenchReport:
    """A bench result as the card reads it: our end-to-end row over len(loads) rounds."""
    rounds = len(docs_per_s)
    report = BenchReport(
        mode="quick", command="ipex-embed bench m --quick", model={"name": "m int8"},
        settings={"rounds": rounds, "throughput_seq_len": 256, "scaling_batches": [4]},
        hardware={"logical_cpus": 2, "threads": 2}, peak={},
        systems=[SystemStatus("ours", "ipex-embeddings Encoder int8", "e2e", "ours")],
    )
    report.end_to_end.append(EndToEndRow(
        "ours", 64, statistics.median(docs_per_s), docs_per_s, 2.2, 10, 22.5, 45.3, 0.998,
        0.99, [22.5] * rounds, 1.5, spread(docs_per_s), spread([22.5] * rounds),
    ))
    report.round_loads["e2e"] = [{"before": load, "after": load} for load in loads]
    return report


@pytest.mark.parametrize("loads, docs_per_s, why", [
    ([0.9, 1.1, 1.0], [150.0, 152.0, 149.0], None),
    ([5.2, 6.8, 7.1], [150.0, 152.0, 149.0], "the machine was busy: load average up to 7.10"),
    ([0.9, 1.1, 1.0], [150.0, 95.0, 149.0], "ours docs/s varied by 37%"),
    ([0.9], [150.0], "1 round(s): fewer than 3"),
])
def test_the_card_leaves_out_speed_figures_from_a_busy_or_unsteady_run(
    tmp_path: Path, loads: list[float], docs_per_s: list[float], why: str | None,
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    ModelConfig(pooling="mean", dimension=384, max_seq_length=256,
                source_model="sentence-transformers/all-MiniLM-L6-v2").save(folder)
    report = _report_with(loads, docs_per_s)
    (folder / "bench").mkdir()
    (folder / "bench" / "bench.json").write_text(report.to_json())
    (folder / "bench" / "bench.md").write_text("| ours | 150.0 docs/s | 2.20x | 22.50 ms |\n")
    card = render_card(CardInputs(folder=folder, command="ipex-embed build m"))
    speed = card.split("## Speed", 1)[1].split("## Usage", 1)[0]
    assert report.speed_trust()["trusted"] == (why is None)
    if why is None:
        assert "150.0 docs/s" in speed and "left out" not in speed
    else:
        assert "150.0 docs/s" not in speed and "2.20x" not in speed
        assert "left out of this card" in speed and why in speed


def test_the_ipex_torchscript_loads_only_as_built(tmp_path: Path) -> None:
    """torch.jit.load unpickles: the IPEX peer's file is handed to it only when its sha256 is
    the one the bench's build wrote, never a file without one or a changed one."""
    from ipex_embeddings_builder.bench.peer_builds import IPEX_MODEL, saved_torchscript
    from ipex_embeddings_builder.digest import sha256

    model = tmp_path / IPEX_MODEL
    model.write_bytes(b"frozen TorchScript bytes")
    with pytest.raises(RuntimeError, match="not the TorchScript this bench built"):
        saved_torchscript(tmp_path)  # no recorded digest
    (tmp_path / f"{IPEX_MODEL}.sha256").write_text(sha256(files=[model]))
    assert saved_torchscript(tmp_path) == model
    model.write_bytes(b"something else")
    with pytest.raises(RuntimeError, match="torch.jit.load unpickles"):
        saved_torchscript(tmp_path)
