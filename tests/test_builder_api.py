"""The builder as a library: public runtime names only, plain exceptions, one command renderer.

Fast and offline: these read source files and small JSON, no model runs.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "builder" / "ipex_embeddings_builder"
RUNTIME = ROOT / "src" / "ipex_embeddings"
# The package's version attribute, public by convention though not in `__all__`.
ALLOWED_DUNDERS = {"__version__"}


def _runtime_all(module: str) -> set[str]:
    """`__all__` of a runtime module, read from its source (importing would need its extras)."""
    parts = module.split(".")[1:]
    path = RUNTIME.joinpath(*parts[:-1], f"{parts[-1]}.py") if parts else RUNTIME / "__init__.py"
    if not path.is_file():
        path = RUNTIME.joinpath(*parts, "__init__.py")
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{module} has no __all__")


def _is_runtime(module: str | None) -> bool:
    return module == "ipex_embeddings" or (module or "").startswith("ipex_embeddings.")


def _private(name: str) -> bool:
    return name.startswith("_") and name not in ALLOWED_DUNDERS


def _problems(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text())
    where = path.relative_to(root)
    found, runtime_names = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_runtime(node.module):
            module = node.module or ""
            if any(_private(part) for part in module.split(".")):
                found.append(f"{where}:{node.lineno} imports private module {module}")
                continue
            public = _runtime_all(module)
            for alias in node.names:
                runtime_names.add(alias.asname or alias.name)
                if _private(alias.name) or (
                    alias.name not in public and alias.name not in ALLOWED_DUNDERS
                ):
                    found.append(f"{where}:{node.lineno} imports {module}.{alias.name}, "
                                 f"not in its __all__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_runtime(alias.name):
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"{where}:{node.lineno} imports private {alias.name}")
                    runtime_names.add((alias.asname or alias.name).split(".")[0])
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        base = node.value
        name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
        if name in runtime_names or "encoder" in name.lower():
            found.append(f"{where}:{node.lineno} reads private attribute {name}.{node.attr}")
    return found


def test_the_builder_uses_only_the_runtimes_public_names() -> None:
    problems = [p for path in sorted(BUILDER.rglob("*.py")) for p in _problems(path)]
    assert problems == []


def test_the_checker_catches_private_imports_and_attributes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from ipex_embeddings.encoder import _compile, openvino_core\n"
        "from ipex_embeddings.batching import NOT_PUBLIC\n"
        "from ipex_embeddings import Encoder\n"
        "encoder = Encoder.load('x')\n"
        "encoder._request\n"
    )
    found = _problems(bad, tmp_path)
    assert len(found) == 3, found
    assert any("_compile" in p for p in found) and any("NOT_PUBLIC" in p for p in found)
    assert any("encoder._request" in p for p in found)


def test_stage_modules_raise_plain_exceptions_and_never_import_click() -> None:
    cli = BUILDER / "cli"
    for path in BUILDER.rglob("*.py"):
        if cli in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "click" for n in names), path


def test_every_builder_error_is_a_plain_exception() -> None:
    import click

    from ipex_embeddings_builder import errors

    for name in errors.__all__:
        error = getattr(errors, name)
        assert issubclass(error, errors.BuilderError)
        assert not issubclass(error, click.ClickException)


def test_library_errors_become_click_errors_with_their_exit_codes() -> None:
    import click
    from click.testing import CliRunner

    from ipex_embeddings_builder.cli.options import library_errors
    from ipex_embeddings_builder.errors import BuildError, OptionError

    @click.command()
    @click.argument("kind")
    def command(kind: str) -> None:
        with library_errors():
            raise (OptionError if kind == "option" else BuildError)(f"{kind} went wrong")

    option = CliRunner().invoke(command, ["option"])
    assert option.exit_code == 2 and "option went wrong" in option.output
    build = CliRunner().invoke(command, ["build"])
    assert build.exit_code == 1 and "Error: build went wrong" in build.output


def test_command_line_quotes_and_leaves_out_unset_options() -> None:
    from ipex_embeddings_builder.commandline import command_line

    line = command_line(
        "build", "my model", options=[("--max-loss", 1.0), ("--samples", None), ("--task", "a"),
                                      ("--task", "b")], flags=["--no-tune"],
    )
    assert line == "ipex-embed build 'my model' --max-loss 1 --task a --task b --no-tune"


def test_a_newer_format_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    from ipex_embeddings import ModelConfig, ModelFolderError
    from ipex_embeddings.config import FORMAT_VERSION

    path = ModelConfig(pooling="mean", dimension=4, max_seq_length=8).save(tmp_path)
    assert ModelConfig.load(tmp_path).format_version == FORMAT_VERSION
    raw = json.loads(path.read_text())
    newer = FORMAT_VERSION + 1
    path.write_text(json.dumps({**raw, "format_version": newer}))
    with pytest.raises(ModelFolderError, match=f"format_version {newer}") as caught:
        ModelConfig.load(tmp_path)
    assert "pip install -U ipex-embeddings" in str(caught.value)
