"""What ran a system, as the bench records it: OpenVINO properties as plain text, and our
models' own report of their engine and settings."""

from __future__ import annotations

from typing import Any

__all__ = ["property_text", "runtime_info"]


def property_text(compiled: Any, name: str) -> str:
    """An OpenVINO compiled-model property as plain text ("f32", not "<Type: 'float32'>")."""
    value = compiled.get_property(name)
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def runtime_info(model: Any) -> dict[str, Any]:
    """What ran one of our models, as the runtime reports it (`info()`: engine, threads, streams,
    precisions), less the folder's local path, which a published report must not hold."""
    return {key: value for key, value in model.info().items() if key != "folder"}
