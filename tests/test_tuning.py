"""Accuracy-aware quantization: layer groups, the search, and what it records.

The search runs on the demo model with a small deterministic subset of SciFact's train queries
and a short calibration; its fp32 reference scores come from the cache test_validate.py fills.
"""

from __future__ import annotations

import json
from pathlib import Path

import openvino as ov
import pytest

from ipex_embeddings.encoder import openvino_core
from ipex_embeddings_builder.calibration import load_calibration
from ipex_embeddings_builder.quantize import MODEL_FILE, QuantizeOptions
from ipex_embeddings_builder.source import inspect_source
from ipex_embeddings_builder.tuning import (
    PASS_THROUGH,
    TUNING_REFERENCES,
    TUNING_SPLIT,
    TuningError,
    layer_groups,
    tune_to_folder,
)

SUBSET = 20


@pytest.fixture(scope="session")
def reference_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 reference scores, shared with test_validate.py (the same path in both modules)."""
    path = tmp_path_factory.getbasetemp() / "fp32-reference-cache"
    path.mkdir(exist_ok=True)
    return path


def _quantized_inputs(model: ov.Model, name: str) -> list[str]:
    """FakeQuantize nodes feeding op `name` (through reshapes and transposes)."""
    op = next(o for o in model.get_ops() if o.get_friendly_name() == name)
    found, todo = [], [op]
    while todo:
        node = todo.pop()
        for value in node.input_values():
            parent = value.get_node()
            if parent.get_type_name() == "FakeQuantize":
                found.append(parent.get_friendly_name())
            elif parent.get_type_name() in PASS_THROUGH:
                todo.append(parent)
    return found


def test_layer_groups_cover_every_quantized_op(demo_int8_dir: Path, demo_fp32_dir: Path) -> None:
    core = openvino_core()
    int8 = core.read_model(demo_int8_dir / MODEL_FILE)
    fp32_ops = {
        op.get_friendly_name(): op.get_type_name()
        for op in core.read_model(demo_fp32_dir / MODEL_FILE).get_ops()
    }
    groups = layer_groups(int8)
    ops = [op for group in groups for op in group.ops]
    assert len(ops) == len(set(ops)), "an op belongs to one group"
    assert set(ops) <= fp32_ops.keys(), "ignored-scope names must exist in the exported model"
    assert {n for n, t in fp32_ops.items() if t == "MatMul"} <= set(ops)
    # all-MiniLM-L6-v2 has six layers: each group is one role in every one of them.
    assert all(len(group.ops) % 6 == 0 for group in groups)
    assert any(".N.output.dense/" in group.name for group in groups)
    assert all(_quantized_inputs(int8, op) for op in ops)


def test_tune_keeps_the_most_sensitive_layers(reference_cache: Path, tmp_path: Path) -> None:
    output = tmp_path / "tuned"
    # max_loss 0: no loss at all on the tuning queries, which full int8 does not reach here.
    result = tune_to_folder(
        inspect_source("all-MiniLM-L6-v2"),
        load_calibration(samples=32),
        output,
        max_loss=0.0,
        subset=SUBSET,
        cache_dir=reference_cache,
        ranking_samples=8,
        report=False,
    )
    steps = result.steps
    assert steps[0].kept == [] and not steps[0].passed, "full int8 should lose something"
    assert all(max(s.losses.values()) > 0.0 for s in steps[:-1])
    assert steps[-1].passed and max(steps[-1].losses.values()) <= 0.0
    assert set(steps[-1].losses) == {"SciFact", "SciFactReranking"}

    # The ranking measured every group; the best one lifts the cosine to fp32 above full int8's.
    cosines = [group.cosine for group in result.ranking]
    assert cosines == sorted(cosines, reverse=True)
    assert cosines[0] > result.int8_cosine
    for count, step in enumerate(steps[1:], 1):
        assert step.kept_groups == [g.name for g in result.ranking[:count]]

    config = json.loads((output / "ipex_embeddings.json").read_text())
    quantization = config["quantization"]
    assert quantization["keep_higher_precision"] == steps[-1].kept
    assert quantization["tuning"]["split"] == TUNING_SPLIT
    assert quantization["tuning"]["reference"] == TUNING_REFERENCES["torch"]
    assert quantization["tuning"]["steps"][-1]["losses"] == steps[-1].losses
    tuned = openvino_core().read_model(output / MODEL_FILE)
    for op in steps[-1].kept:
        assert _quantized_inputs(tuned, op) == [], f"{op} is still quantized"
    assert any(o.get_type_name() == "FakeQuantize" for o in tuned.get_ops()), "the rest is int8"


def test_tune_fails_clearly_when_no_candidate_meets_the_target(tiny_bert, tmp_path: Path) -> None:
    source = inspect_source(str(tiny_bert("tiny", pooling="mean")))
    output = tmp_path / "never"
    with pytest.raises(TuningError, match="No candidate lost at most -1000 %"):
        tune_to_folder(
            source,
            load_calibration(samples=32),
            output,
            max_loss=-1000.0,
            subset=5,
            cache_dir=tmp_path / "cache",
            max_steps=0,
            report=False,
        )
    assert not output.exists()


def test_max_loss_needs_int8(tmp_path: Path) -> None:
    from ipex_embeddings_builder.errors import OptionError

    with pytest.raises(OptionError, match="--precision int8"):
        tune_to_folder(
            inspect_source("all-MiniLM-L6-v2"),
            load_calibration(samples=32),
            tmp_path / "x",
            QuantizeOptions(precision="fp32"),
            max_loss=1.0,
        )


def test_tuning_can_score_against_the_fp32_ir(tiny_bert, tmp_path: Path) -> None:
    """reference="ir": the tuning split's fp32 scores come from our fp32 IR, cached apart from
    PyTorch's (their key names the runtime and the IR's digest)."""
    source = inspect_source(str(tiny_bert("tiny", pooling="mean")))
    cache = tmp_path / "cache"
    result = tune_to_folder(
        source, load_calibration(samples=32), tmp_path / "tuned", max_loss=1000.0, subset=5,
        cache_dir=cache, report=False, reference="ir",
    )
    assert result.config.quantization["tuning"]["reference"] == TUNING_REFERENCES["ir"]
    # Kept in mteb's ResultCache, one revision folder per question, its key written beside it.
    keys = [json.loads(p.read_text()) for p in sorted(cache.glob("mteb/results/*/*/"
                                                                  "ipex_embeddings_key.json"))]
    assert len(keys) == 2
    assert all(key["reference_runtime"].startswith("openvino-fp32-ir:") for key in keys)
