"""The layout holds: no import cycles, and no module takes another module's private names.

Read from the code with `ast` (nothing is imported), for the runtime (`src/ipex_embeddings`) and
the builder (`builder/ipex_embeddings_builder`). An import inside a function counts like one at the
top: a cycle that only works because one side imports late is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "ipex_embeddings": ROOT / "src" / "ipex_embeddings",
    "ipex_embeddings_builder": ROOT / "builder" / "ipex_embeddings_builder",
}


def _module_name(package: str, path: Path) -> str:
    parts = list(path.relative_to(PACKAGES[package]).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(package: str, path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) of every import in `path`."""
    module = _module_name(package, path)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, path.name == "__init__.py", node)
            found += [(source, alias.name, node.lineno) for alias in node.names]
    return found


def _graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (a package's `from . import x` is
    an import of x)."""
    modules = {_module_name(package, p): p for p in PACKAGES[package].rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for source, name, _ in _imports(package, path):
            target = f"{source}.{name}" if f"{source}.{name}" in modules else source
            if target in modules and target != module and not module.startswith(target + "."):
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _private_imports(package: str) -> list[str]:
    problems = []
    for path in sorted(PACKAGES[package].rglob("*.py")):
        for source, name, line in _imports(package, path):
            dunder = name.startswith("__") and name.endswith("__")  # __version__ is public
            private = (name.startswith("_") and not dunder) or any(
                part.startswith("_") and not part.startswith("__") for part in source.split(".")
            )
            if private and source.split(".")[0] in PACKAGES:
                where = path.relative_to(PACKAGES[package].parent)
                problems.append(f"{where}:{line} imports {name or source} from {source}")
    return problems


@pytest.mark.parametrize("package", ["ipex_embeddings", "ipex_embeddings_builder"])
def test_no_import_cycles(package: str) -> None:
    assert _cycles(_graph(package)) == []


@pytest.mark.parametrize("package", ["ipex_embeddings", "ipex_embeddings_builder"])
def test_no_private_names_across_modules(package: str) -> None:
    assert _private_imports(package) == []


def test_the_checks_catch_a_cycle_and_a_private_import(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def f():\n    from .c import _hidden\n")
    (package / "c.py").write_text("from pkg import a\n_hidden = 1\n")
    monkeypatch.setitem(PACKAGES, "pkg", package)
    assert _cycles(_graph("pkg")) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert _private_imports("pkg") == ["pkg/b.py:2 imports _hidden from pkg.c"]


def _documented_keys() -> dict[str, str]:
    """Key -> its row in docs/model-folder.md's `ipex_embeddings.json` table."""
    rows = {}
    for line in (ROOT / "docs" / "model-folder.md").read_text().splitlines():
        if line.startswith("| `"):
            cell = line.split("|")[1]
            for key in cell.replace("`", "").split(","):
                rows[key.strip()] = line
    return rows


def test_the_folder_format_doc_matches_the_code() -> None:
    from dataclasses import fields

    from ipex_embeddings.config import ACTIVATIONS, KINDS, PRECISIONS, ModelConfig
    from ipex_embeddings.pooling import POOLING_MODES

    documented = _documented_keys()
    assert sorted(documented) == sorted(f.name for f in fields(ModelConfig))
    for key, values in (("pooling", POOLING_MODES), ("activation", ACTIVATIONS),
                        ("kind", KINDS), ("precision", PRECISIONS)):
        row = documented[key].split("|")[2]
        assert all(f'"{value}"' in row for value in values), (key, row)
