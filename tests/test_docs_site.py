"""The documentation site (mkdocs.yml, docs/) stays whole without building it: every public name
of the documented modules has an API page directive, every directive names a real object, the
nav and the pages agree, and every relative link in docs/ resolves.

Reads files only (the sources with `ast`, mkdocs.yml with a few regular expressions): neither
mkdocs (the `docs` extra, which CI does not install) nor pyyaml is needed, and nothing is
imported, so the optional extras need not be installed either. One directive per public object
(`::: ipex_embeddings.ranking.rerank`); a module directive only shows the module's docstring.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src"

DOCUMENTED_MODULES = (
    "ipex_embeddings",
    "ipex_embeddings.encoder",
    "ipex_embeddings.cross_encoder",
    "ipex_embeddings.config",
    "ipex_embeddings.errors",
    "ipex_embeddings.output",
    "ipex_embeddings.ranking",
    "ipex_embeddings.langchain",
    "ipex_embeddings.llama_index",
    "ipex_embeddings.ray",
    "ipex_embeddings.spark",
    "ipex_embeddings.serve",
)
"""The public runtime API that docs/api/ documents: each name in their `__all__` has a page."""

NOT_DOCUMENTED = frozenset({
    # Error-message helpers ("did you mean 'normalize'?") shared by the runtime's own modules.
    "ipex_embeddings.config.closest",
    "ipex_embeddings.config.did_you_mean",
    # A test hook: the Ray tests use it to kill an actor mid-run; nothing for users.
    "ipex_embeddings.ray.crash_hook_for_tests",
})
"""Public names left out of the API pages on purpose, each with its reason."""

DIRECTIVE = re.compile(r"^::: *([\w.]+) *$", re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def module_file(module: str) -> Path:
    path = SRC.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def module_tree(module: str) -> ast.Module:
    return ast.parse(module_file(module).read_text(), filename=str(module_file(module)))


def public_names(module: str) -> list[str]:
    """The names in `module`'s `__all__`."""
    for node in module_tree(module).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{module} has no __all__")


def qualified_names(module: str, name: str) -> set[str]:
    """`module.name`, and where `module` imports `name` from a module of the package, its
    qualified names there too (`ipex_embeddings.Encoder` is `ipex_embeddings.encoder.Encoder`)."""
    names = {f"{module}.{name}"}
    path = module_file(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(module_tree(module)):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        source = f"{base}.{node.module}" if node.module else base
        for alias in node.names:
            if (alias.asname or alias.name) == name and module_file(source).is_file():
                names |= qualified_names(source, alias.name)
    return names


def top_level_names(module: str) -> set[str]:
    """Names `module` defines or imports at its top level."""
    names: set[str] = set()
    for node in module_tree(module).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def api_pages() -> list[Path]:
    return sorted((DOCS / "api").glob("*.md"))


def directive_targets() -> dict[str, Path]:
    """Each `::: target` of the API pages -> its page."""
    return {target: page for page in api_pages() for target in DIRECTIVE.findall(page.read_text())}


def nav_pages() -> list[str]:
    """The pages in mkdocs.yml's nav, in order (paths relative to docs_dir)."""
    lines = (ROOT / "mkdocs.yml").read_text().splitlines()
    pages = []
    for line in lines[lines.index("nav:") + 1:]:
        if line.strip() and not line.startswith((" ", "#")):
            break  # the next top-level key
        match = re.search(r"(?:^\s*-\s*|:\s+)([\w./-]+\.md)\s*$", line)
        if match:
            pages.append(match.group(1))
    return pages


@pytest.mark.parametrize("module", DOCUMENTED_MODULES)
def test_every_public_name_has_an_api_directive(module: str) -> None:
    targets = set(directive_targets())
    missing = [
        name for name in public_names(module)
        if f"{module}.{name}" not in NOT_DOCUMENTED and not qualified_names(module, name) & targets
    ]
    assert missing == [], (
        f"{module}.__all__ has {missing} but no docs/api page documents them: add a "
        f"`::: {module}.NAME` directive to its page, or list the name in NOT_DOCUMENTED with why."
    )


def test_every_directive_names_a_real_object() -> None:
    targets = directive_targets()
    assert targets, "docs/api has no ::: directives"
    for target, page in targets.items():
        if module_file(target).is_file():
            continue  # a module: its docstring
        module, _, name = target.rpartition(".")
        assert module_file(module).is_file(), f"{page.name}: ::: {target}: no module {module}"
        assert name in top_level_names(module), f"{page.name}: ::: {target}: {module} has no {name}"


def test_the_nav_and_the_pages_agree() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert re.search(r"^docs_dir: docs$", config, re.MULTILINE)
    pages = nav_pages()
    assert len(pages) == len(set(pages)), "a page is in mkdocs.yml's nav twice"
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert missing == [], f"mkdocs.yml's nav lists pages that do not exist: {missing}"
    left_out = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")
                      if str(p.relative_to(DOCS)) not in pages)
    assert left_out == [], f"add these pages to mkdocs.yml's nav: {left_out}"


def test_every_relative_link_in_docs_resolves() -> None:
    broken = []
    for page in sorted(DOCS.rglob("*.md")):
        for target in LINK.findall(page.read_text()):
            path = target.split("#", 1)[0]
            if not path or re.match(r"[a-z]+:", path):
                continue  # an anchor on the page, or a URL
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
