"""What this CPU offers int8 models.

OpenVINO's int8 matrix products are fast where the CPU has int8 dot-product instructions
(AVX-512 VNNI, AVX-VNNI or AMX). Without them (AVX2 only: Intel before Cascade Lake and Alder
Lake, AMD before Zen 4, and cloud VMs that hide AVX-512) the CPU plugin runs them with oneDNN's
AVX2 `jit_gemm_I8` kernels, which are slower than its fp32 kernels: on all-MiniLM-L6-v2, static
int8 ran at 0.75x-0.78x the fp32 model's throughput and 0.65x-0.73x its query speed on a
2-core AVX2 EPYC (three runs of
`benchmarks/int8_kernels.py`; results in benchmarks/results/int8-kernels-avx2). OpenVINO's own
tracker knows the effect (openvinotoolkit/openvino#4005). So on such CPUs "auto" runs the
folder's ONNX Runtime model instead (`ipex_embeddings.engines`); only a folder without one
(built before ipex-embeddings wrote it) left on OpenVINO there warns, once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from .config import ModelConfig

__all__ = ["INT8_DOT_PRODUCT_FLAGS", "Int8SpeedWarning", "cpu_flags", "has_int8_dot_product",
           "warn_if_int8_is_slow"]

INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""/proc/cpuinfo flags of the instructions that make int8 matrix products pay."""


class Int8SpeedWarning(UserWarning):
    """The model's activations are int8, and this CPU has no int8 dot-product instructions."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags (the `flags` line of /proc/cpuinfo), or None where there is none
    to read (not Linux, or not x86)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def has_int8_dot_product(flags: Iterable[str]) -> bool:
    """True when `flags` include AVX-512 VNNI, AVX-VNNI or AMX int8."""
    return not set(INT8_DOT_PRODUCT_FLAGS).isdisjoint(flags)


def warn_if_int8_is_slow(config: ModelConfig, flags: Iterable[str] | None = None) -> bool:
    """Warn (`Int8SpeedWarning`) when `config` is a static int8 model (int8 activations) and the
    CPU (`flags`, default `cpu_flags()`) has no int8 dot-product instructions; return whether
    it warned. Nothing is said where the flags cannot be read."""
    # Folders before `ipex-embed quantize --scheme` are all static int8 (no "activations" key).
    activations = config.quantization.get("activations", "int8")
    if config.precision != "int8" or activations != "int8":
        return False
    flags = cpu_flags() if flags is None else flags
    if flags is None or has_int8_dot_product(flags):
        return False
    fix = ('it has an ONNX Runtime model, which runs faster here: load it with engine="auto"'
           if config.onnx_file else "rebuild it with `ipex-embed quantize` (which adds an ONNX "
           "Runtime model that \"auto\" runs on such CPUs)")
    warnings.warn(
        f"{config.source_model or 'This model'} is a static int8 model, but this CPU has none of "
        "AVX-512 VNNI, AVX-VNNI or AMX, so OpenVINO runs its int8 matrix products with AVX2 "
        f"kernels that are slower than fp32 ones (see ipex_embeddings.cpu): {fix}.",
        Int8SpeedWarning,
        stacklevel=4,  # the caller of Encoder.load or CrossEncoder.load
    )
    return True
