"""OpenVINO properties as the bench records them: plain text, whatever type OpenVINO returns."""

from __future__ import annotations

from typing import Any

__all__ = ["property_text"]


def property_text(compiled: Any, name: str) -> str:
    """An OpenVINO compiled-model property as plain text ("f32", not "<Type: 'float32'>")."""
    value = compiled.get_property(name)
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)
