"""Which engine runs a model folder: the registry, and the "auto" rule per CPU.

`OpenVINOEngine` (static int8 from NNCF, `ipex_embeddings.engine`) is the fastest measured where
the CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX). On CPUs without them
(AVX2 only) OpenVINO's int8 kernels are slower than its fp32 ones, and ONNX Runtime's MLAS
kernels lead: `OnnxRuntimeEngine` runs the folder's `onnx_file` there when the folder has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .config import ModelConfig, did_you_mean
from .cpu import cpu_flags, has_int8_dot_product
from .engine import Engine, Head, OpenVINOEngine
from .onnxruntime_engine import OnnxRuntimeEngine

__all__ = ["ENGINES", "open_engine", "pick_engine"]

ENGINES: dict[str, type] = {
    OpenVINOEngine.name: OpenVINOEngine,
    OnnxRuntimeEngine.name: OnnxRuntimeEngine,
}
"""The engines by name; "auto" (`pick_engine`) chooses among them from the CPU."""


def pick_engine(
    name: str, config: ModelConfig, flags: Iterable[str] | None = None
) -> str:
    """The engine to run `config`'s folder: `name` itself, or for "auto" the fastest measured
    on this CPU (`flags`, default `cpu_flags()`): ONNX Runtime where the CPU has no int8
    dot-product instructions and the folder has an ONNX model, else OpenVINO.

    Raises:
        ValueError: an unknown engine name (the message lists the known ones).
    """
    if name == "auto":
        flags = cpu_flags() if flags is None else flags
        slow_int8 = flags is not None and not has_int8_dot_product(flags)
        if slow_int8 and config.onnx_file:
            return OnnxRuntimeEngine.name
        return OpenVINOEngine.name
    if name not in ENGINES:
        names = ["auto", *ENGINES]
        raise ValueError(
            f"engine={name!r} is not supported; use one of {names}{did_you_mean(name, names)}."
        )
    return name


def open_engine(
    name: str,
    folder: Path,
    config: ModelConfig,
    head: Head,
    **settings: object,
) -> Engine:
    """The engine `name` (or "auto") over `folder`'s model with `head` appended.

    Args:
        settings: threads, streams, compile_cache (see `OpenVINOEngine`, `OnnxRuntimeEngine`).

    Raises:
        ValueError: an unknown engine, or threads/streams below 1.
        ModelFolderError: the engine cannot read the folder's model (e.g. "onnxruntime" for a
            folder without an ONNX model).
    """
    return ENGINES[pick_engine(name, config)](folder, config, head, **settings)
