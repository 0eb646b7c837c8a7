"""The int8 speed warning: static int8 models warn on CPUs without int8 dot-product
instructions, where OpenVINO's int8 kernels are slower than fp32 (benchmarks/int8_kernels.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ipex_embeddings import Int8SpeedWarning, ModelConfig
from ipex_embeddings.cpu import cpu_flags, has_int8_dot_product, warn_if_int8_is_slow

AVX2_ONLY = {"fpu", "sse2", "avx2", "fma"}


def _config(**fields: object) -> ModelConfig:
    return ModelConfig(pooling="mean", dimension=8, max_seq_length=16,
                       source_model="org/model", **fields)


@pytest.mark.parametrize("flag", ["avx512_vnni", "avx_vnni", "amx_int8"])
def test_any_int8_dot_product_instruction_counts(flag: str) -> None:
    assert has_int8_dot_product(AVX2_ONLY | {flag})
    assert not has_int8_dot_product(AVX2_ONLY | {"avx512f", "avx512bw", "avx512_bf16"})


def test_static_int8_warns_without_them_and_names_the_way_out() -> None:
    with pytest.warns(Int8SpeedWarning, match=r"org/model is a static int8 model.*"
                                              r"rebuild it with `ipex-embed quantize`"):
        assert warn_if_int8_is_slow(_config(), AVX2_ONLY)
    with_onnx = _config(onnx_file="onnx/model_int8.onnx")
    with pytest.warns(Int8SpeedWarning, match=r'ONNX Runtime model.*engine="auto"'):
        assert warn_if_int8_is_slow(with_onnx, AVX2_ONLY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_int8_is_slow(_config(), AVX2_ONLY | {"avx512_vnni"})
        assert not warn_if_int8_is_slow(_config(precision="fp32"), AVX2_ONLY)
        weights_only = _config(quantization={"scheme": "weights-int8", "activations": "float"})
        assert not warn_if_int8_is_slow(weights_only, AVX2_ONLY)


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_vnni\nbugs\t: none\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512_vnni"}
    assert cpu_flags(tmp_path / "missing") is None


@pytest.mark.skipif(cpu_flags() is None, reason="no /proc/cpuinfo flags on this machine")
def test_this_machine_warns_exactly_when_it_lacks_the_instructions() -> None:
    flags = cpu_flags()
    assert flags is not None and "sse2" in flags
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warned = warn_if_int8_is_slow(_config())
    assert warned == (not has_int8_dot_product(flags))
    assert [w.category for w in caught] == ([Int8SpeedWarning] if warned else [])
