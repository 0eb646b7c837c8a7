"""docs/troubleshooting.md has a section for every error class of the runtime and the builder."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
ERROR_MODULES = (
    ROOT / "src" / "ipex_embeddings" / "errors.py",
    ROOT / "builder" / "ipex_embeddings_builder" / "errors.py",
)


def _error_classes(path: Path) -> list[str]:
    """Every class the module defines (all of them are exceptions), read without importing."""
    return [node.name for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.ClassDef)]


def test_every_error_class_has_a_section() -> None:
    doc = (ROOT / "docs" / "troubleshooting.md").read_text()
    headings = {line.removeprefix("### ").strip() for line in doc.splitlines()
                if line.startswith("### ")}
    classes = [name for path in ERROR_MODULES for name in _error_classes(path)]
    assert len(classes) >= 18  # 4 runtime + 14 builder classes today: the parse found them
    assert sorted(set(classes) - headings) == []


def test_every_error_class_is_exported() -> None:
    import ipex_embeddings.errors as runtime
    import ipex_embeddings_builder.errors as builder

    for module, path in zip((runtime, builder), ERROR_MODULES, strict=True):
        assert set(_error_classes(path)) <= set(module.__all__), path
