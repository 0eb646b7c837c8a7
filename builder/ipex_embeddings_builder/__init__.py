"""The `ipex-embed` builder: quantize, validate, benchmark, card and publish int8 models."""

from __future__ import annotations

__all__: list[str] = []
