"""Issue 11, item 5: the int8 schemes (`quantize --scheme`), and `auto` letting the gate pick.

The models are tiny random Qwen3s (`test_families.make_family`). They prove the plumbing: each
scheme builds a folder that encodes, the model JSON and the IR say what was done, `auto` tries
the schemes in order and records why it kept one. They are no evidence of any scheme's accuracy
on a real decoder (that is for `ipex-embed validate` on the real model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_families import SENTENCES, TEXTS, cosines, make_family

from ipex_embeddings import Encoder, ModelConfig
from ipex_embeddings.encoder import openvino_core
from ipex_embeddings_builder.bench.limit import count_macs
from ipex_embeddings_builder.calibration import CalibrationSet
from ipex_embeddings_builder.cli import main
from ipex_embeddings_builder.errors import OptionError, TuningError
from ipex_embeddings_builder.quantize import MODEL_FILE, QuantizeOptions, quantize_to_folder
from ipex_embeddings_builder.schemes import (
    AUTO_ORDER,
    candidate_schemes,
    parse_scheme,
    plan_scheme,
)
from ipex_embeddings_builder.source import inspect_source
from ipex_embeddings_builder.tuning import tune_to_folder

SCHEMES = ["static", "static-sq-0.5", "weights-int8"]
LOW_BITS = {"i8", "u8"}
# Ops between a weight constant and its MatMul (decompression, layout).
WEIGHT_PATH = {"Convert", "Subtract", "Multiply", "Reshape", "Transpose"}


def _calibration() -> CalibrationSet:
    return CalibrationSet(SENTENCES[:32], "test sentences", "0" * 64)


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Qwen3-Embedding-like source (lasttoken, instruction query prompt)."""
    return make_family(tmp_path_factory.mktemp("qwen3") / "source", "qwen3")


@pytest.fixture(scope="module")
def scheme_folders(tiny_qwen3: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """precision or scheme -> its folder: fp32 and one int8 folder per scheme."""
    root = tmp_path_factory.mktemp("schemes")
    source = inspect_source(str(tiny_qwen3))
    folders = {}
    for name in ["fp32", *SCHEMES]:
        options = QuantizeOptions(precision="fp32") if name == "fp32" else QuantizeOptions(
            scheme=name)
        quantize_to_folder(source, _calibration(), root / name, options)
        folders[name] = root / name
    return folders


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_builds_a_folder_that_encodes(scheme_folders, scheme: str) -> None:
    config = ModelConfig.load(scheme_folders[scheme])
    quantization = config.quantization
    assert config.precision == "int8" and quantization["scheme"] == scheme
    weight_only = scheme == "weights-int8"
    assert quantization["activations"] == ("float" if weight_only else "int8")
    assert quantization["method"] == ("nncf.compress_weights" if weight_only else "nncf.quantize")
    alpha = {"static": 0.95, "static-sq-0.5": 0.5, "weights-int8": None}[scheme]  # NNCF 3.4's
    assert quantization["smooth_quant_alpha"] == alpha
    if weight_only:  # no texts were read, so none are claimed
        assert quantization["samples"] == 0 and config.calibration_digest == ""
        assert "calibration_source" not in quantization
    else:
        assert quantization["samples"] == 32 and config.calibration_digest
    vectors = Encoder.load(scheme_folders[scheme], compile_cache=False).encode(TEXTS, "document")
    assert vectors.shape == (len(TEXTS), config.dimension) and np.isfinite(vectors).all()
    if weight_only:
        # Plumbing, not accuracy: the weights are the source's, rounded per output channel.
        fp32 = Encoder.load(scheme_folders["fp32"], compile_cache=False).encode(TEXTS, "document")
        assert cosines(vectors, fp32).mean() >= 0.99


def _weight_types(matmul) -> set[str]:
    """The element types of the constants feeding a MatMul's second input (its weight)."""
    found, todo = set(), [matmul.input_value(1).get_node()]
    while todo:
        node = todo.pop()
        if node.get_type_name() == "Constant":
            found.add(node.get_output_element_type(0).get_type_name())
        elif node.get_type_name() in WEIGHT_PATH:
            todo.extend(value.get_node() for value in node.input_values())
    return found


def _ir(folder: Path) -> tuple[list[str], list[set[str]]]:
    """The op types of a folder's IR, and the weight constants' types of its MatMuls."""
    model = openvino_core().read_model(folder / MODEL_FILE)
    ops = model.get_ordered_ops()
    weights = [_weight_types(op) for op in ops if op.get_type_name() == "MatMul"]
    return [op.get_type_name() for op in ops], [w for w in weights if w]


def test_weight_only_int8_has_int8_weights_and_float_activations(scheme_folders) -> None:
    types, weights = _ir(scheme_folders["weights-int8"])
    assert "FakeQuantize" not in types, "weights-int8 must leave activations float"
    assert weights and all(w & LOW_BITS for w in weights), weights  # every linear layer
    xml = scheme_folders["weights-int8"] / MODEL_FILE
    assert count_macs(xml, 1, 16).int8_matmul == 0  # no MatMul runs on int8 activations
    for scheme in ("static", "static-sq-0.5"):
        types, weights = _ir(scheme_folders[scheme])
        assert "FakeQuantize" in types, f"{scheme} quantizes activations"
        assert any(w & LOW_BITS for w in weights)
        assert count_macs(scheme_folders[scheme] / MODEL_FILE, 1, 16).int8_matmul > 0
    _, weights = _ir(scheme_folders["fp32"])
    assert not any(w & LOW_BITS for w in weights)


def test_auto_tries_the_schemes_fastest_first_and_keeps_the_first_that_passes(
    tiny_qwen3: Path, tmp_path: Path
) -> None:
    source, cache = inspect_source(str(tiny_qwen3)), tmp_path / "cache"
    options = QuantizeOptions(scheme="auto")
    settings = {"subset": 5, "cache_dir": cache, "max_steps": 0, "report": False}
    with pytest.raises(TuningError, match="No candidate lost at most -1000 %") as failed:
        tune_to_folder(source, _calibration(), tmp_path / "never", options, -1000.0, **settings)
    tried = failed.value.steps
    assert [step.scheme for step in tried] == list(AUTO_ORDER)
    assert not (tmp_path / "never").exists()

    # A limit only some schemes meet: the first of them (in AUTO_ORDER) must be kept.
    limit = min(step.worst_loss for step in tried)
    first = next(i for i, step in enumerate(tried) if step.worst_loss <= limit)
    result = tune_to_folder(source, _calibration(), tmp_path / "auto", options, limit, **settings)
    quantization = result.config.quantization
    assert quantization["scheme"] == tried[first].scheme
    tuning = quantization["tuning"]
    assert tuning["scheme"] == "auto" and tuning["max_loss"] == limit
    assert [(s["scheme"], s["losses"], s["passed"]) for s in tuning["steps"]] == [
        (s.scheme, s.losses, i == first) for i, s in enumerate(tried[:first + 1])
    ]
    assert tuning["choice"].startswith(f"{tried[first].scheme}: the first candidate")
    for step in tried[:first]:
        assert step.scheme in tuning["choice"]  # the ones it passed over, with their losses
    vectors = Encoder.load(tmp_path / "auto", compile_cache=False).encode(TEXTS[:8], "document")
    assert np.isfinite(vectors).all()


def test_cli_builds_a_scheme_and_records_it(tiny_qwen3: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["quantize", str(tiny_qwen3), "--output",
                                       str(tmp_path / "out"), "--scheme", "weights-int8"])
    assert result.exit_code == 0, result.output
    assert "int8 (weights-int8)" in result.output
    assert ModelConfig.load(tmp_path / "out").quantization["scheme"] == "weights-int8"


def test_auto_validates_decoders_and_leaves_encoders_as_they_were() -> None:
    assert plan_scheme("auto", "qwen3", None, 1.0) == ("auto", 1.0)
    assert plan_scheme("auto", "bert", None, 1.0) == ("static", None)
    assert plan_scheme("auto", "bert", 0.5, 1.0) == ("auto", 0.5)
    assert plan_scheme("static-sq-0.5", "qwen3", None, 1.0) == ("static-sq-0.5", None)
    assert [s.name for s in candidate_schemes("auto")] == list(AUTO_ORDER)
    assert parse_scheme("static-sq-0.75").smooth_quant_alpha == 0.75


@pytest.mark.parametrize("name", ["int4", "static-sq-1.5", "static-sq-", "Static", ""])
def test_unknown_schemes_are_refused_with_the_choices(name: str) -> None:
    with pytest.raises(OptionError, match=r"Unknown --scheme .*static-sq-0\.5.*weights-int8"):
        parse_scheme(name)
    with pytest.raises(OptionError, match="needs a loss limit"):
        parse_scheme("auto")  # a search, not a scheme: quantize_to_folder cannot build it


@pytest.mark.parametrize("args, message", [
    (["--scheme", "int4"], "Unknown --scheme 'int4'"),
    (["--precision", "fp32", "--scheme", "static"], "--scheme static is an int8 scheme"),
])
def test_cli_refuses_bad_schemes(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["quantize", "--output", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "x").exists()
