"""`ipex-embed quantize`: what it writes, and the errors it gives instead of a broken folder."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ipex_embeddings import Encoder, ModelConfig
from ipex_embeddings_builder.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["quantize", *args])
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_demo_folder_format(demo_int8_dir: Path) -> None:
    config = ModelConfig.load(demo_int8_dir)
    assert (config.pooling, config.dimension, config.max_seq_length) == ("mean", 384, 256)
    assert (config.precision, config.normalize) == ("int8", True)
    assert config.source_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert config.quantization["samples"] == 300 and len(config.calibration_digest) == 64
    for name in (
        "openvino/openvino_model.xml",
        "openvino/openvino_model.bin",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
    ):
        assert (demo_int8_dir / name).is_file(), name
    assert not list(demo_int8_dir.rglob("*.safetensors"))  # no torch weights ride along


def test_int8_cli_on_tiny_model_with_jsonl_calibration(tiny_bert, tmp_path: Path) -> None:
    source = tiny_bert(pooling="mean", prompts={"query": "query: "})
    calibration = tmp_path / "calib.jsonl"
    calibration.write_text(
        "\n".join(json.dumps({"title": "t", "text": f"cell protein gene {i}"}) for i in range(40))
    )
    code, output = run(
        str(source),
        "--output",
        str(tmp_path / "out"),
        "--calibration",
        str(calibration),
        "--samples",
        "32",
    )
    assert code == 0, output
    config = ModelConfig.load(tmp_path / "out")
    assert (config.pooling, config.query_prompt, config.precision) == ("mean", "query: ", "int8")
    assert Encoder.load(tmp_path / "out").encode(["cell"]).shape == (1, 32)


def test_model_without_pooling_files_needs_pooling(tiny_bert, tmp_path: Path) -> None:
    source = tiny_bert(pooling=None)
    code, output = run(str(source), "--output", str(tmp_path / "out"), "--precision", "fp32")
    assert code != 0 and "--pooling cls" in output and "--pooling mean" in output
    assert not (tmp_path / "out").exists()
    code, output = run(
        str(source), "--output", str(tmp_path / "out"), "--precision", "fp32", "--pooling", "cls"
    )
    assert code == 0, output
    assert ModelConfig.load(tmp_path / "out").pooling == "cls"


def test_foreign_model_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    code, output = run(str(folder), "--output", str(tmp_path / "out"))
    assert code != 0 and "not a supported text encoder" in output
    code, output = run(str(tmp_path / "empty"), "--output", str(tmp_path / "out"))
    assert code != 0 and "neither a folder nor a Hugging Face model id" in output


def test_calibration_too_small(tiny_bert, tmp_path: Path) -> None:
    source = tiny_bert()
    few = tmp_path / "few.txt"
    few.write_text("\n".join(f"text {i}" for i in range(10)))
    code, output = run(str(source), "--output", str(tmp_path / "out"), "--calibration", str(few))
    assert code != 0 and "fewer than the minimum of 32" in output
    code, output = run(str(source), "--output", str(tmp_path / "out"), "--samples", "8")
    assert code != 0 and "below the minimum" in output
    assert not (tmp_path / "out").exists()


def test_failed_run_leaves_no_partial_output(tiny_bert, tmp_path: Path) -> None:
    source = tiny_bert()
    (source / "model.safetensors").write_bytes(b"corrupt")  # fails inside export, mid-write
    code, _ = run(str(source), "--output", str(tmp_path / "out"), "--samples", "32")
    assert code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_existing_output_needs_overwrite(tiny_bert, tmp_path: Path) -> None:
    source = tiny_bert()
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, output = run(str(source), "--output", str(out), "--precision", "fp32")
    assert code != 0 and "--overwrite" in output and (out / "keep.txt").read_text() == "mine"
    code, output = run(str(source), "--output", str(out), "--precision", "fp32", "--overwrite")
    assert code == 0, output
    assert not (out / "keep.txt").exists() and ModelConfig.load(out).precision == "fp32"
