"""Which parts of an int8 folder run in bf16 (`ipex_embeddings.attention`), on the real demo."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from ipex_embeddings import Encoder, ModelConfig, ModelFolderError
from ipex_embeddings.attention import ATTENTION_OP, convert_attention_to_bf16, run_precisions
from ipex_embeddings.engine import native_bf16, openvino_core


def _config(**changes: object) -> ModelConfig:
    return ModelConfig(pooling="mean", dimension=8, max_seq_length=16, **changes)


@pytest.mark.parametrize(
    ("changes", "native", "expected"),
    [
        ({"inference_precision": "auto"}, True, ("bf16", "bf16")),
        ({"inference_precision": "auto"}, False, ("f32", "f32")),
        ({}, True, ("f32", "bf16")),  # a folder from before "auto": f32 layers, bf16 attention
        ({}, False, ("f32", "f32")),
        ({"attention_precision": "f32"}, True, ("f32", "f32")),
        ({"precision": "fp32"}, True, ("f32", "f32")),  # an fp32 folder stays f32
        ({"precision": "fp32", "inference_precision": "bf16"}, True, ("bf16", "bf16")),
        ({"precision": "fp32", "inference_precision": "bf16"}, False, ("bf16", "f32")),
    ],
)
def test_run_precisions(changes: dict, native: bool, expected: tuple[str, str]) -> None:
    assert run_precisions(_config(**changes), native) == expected


def test_a_misspelt_attention_precision_is_refused() -> None:
    with pytest.raises(ModelFolderError, match=r"attention_precision='bf61'.*did you mean 'bf16'"):
        _config(attention_precision="bf61")


def test_the_attention_runs_in_bf16_without_its_fake_quantized_inputs(demo_int8_dir: Path) -> None:
    """MiniLM's six attention ops get bf16 inputs; the query and key fake-quantizations NNCF put
    before them (which OpenVINO's bf16 mode computes wrongly) are taken out, the rest kept."""
    encoder = Encoder.load(demo_int8_dir, compile_cache=False, engine="openvino")
    model = openvino_core().read_model(demo_int8_dir / encoder.config.model_file)

    def count(kind: str) -> int:
        return sum(op.get_type_name() == kind for op in model.get_ordered_ops())

    before = count("FakeQuantize")
    assert convert_attention_to_bf16(model) == count(ATTENTION_OP) == 6
    assert count("FakeQuantize") == before - 12
    attention = [op for op in model.get_ordered_ops() if op.get_type_name() == ATTENTION_OP]
    assert all(op.get_input_element_type(i) == ov.Type.bf16 for op in attention for i in (0, 1, 2))
    assert convert_attention_to_bf16(model) == 0  # nothing f32 is left to convert

    info = encoder.info()
    assert info["attention_precision"] == ("bf16" if native_bf16() else "f32")


@pytest.mark.skipif(not native_bf16(), reason="needs a CPU with native bf16 (AMX, AVX512_BF16)")
def test_bf16_attention_keeps_vectors_close_and_batch_invariant(demo_int8_dir: Path) -> None:
    base = Encoder.load(demo_int8_dir, compile_cache=False, engine="openvino")
    texts = ["Vitamin D and bone fractures.", "", "a", "Der Patient erhielt 5 mg/kg Körpergewicht.",
             "COVID-19 & SARS-CoV-2: 95% CI [1.2-3.4]"]
    f32 = Encoder(demo_int8_dir, dataclasses.replace(
        base.config, inference_precision="f32", attention_precision="f32"), compile_cache=False)
    bf16 = Encoder(demo_int8_dir, dataclasses.replace(
        base.config, inference_precision="bf16", attention_precision="bf16"),
        compile_cache=False)
    vectors = bf16.encode(texts)
    # bf16 everywhere once the attention's inputs are not fake-quantized: as close to the f32
    # run as int8 itself is (the fake-quantized bf16 run fell to 0.59 on short texts)
    assert (vectors * f32.encode(texts)).sum(1).min() > 0.99
    alone = np.stack([bf16.encode([t])[0] for t in texts])
    np.testing.assert_array_equal(vectors, alone)
