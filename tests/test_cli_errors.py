"""The command line turns the runtime's documented errors into one line and exit 1, everywhere.

Unit tier: the model folders are hand-made and damaged (see test_model_folder.py), so every
command fails at its folder check, before any model or task data is loaded.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from test_model_folder import make_folder

import ipex_embeddings.errors as runtime_errors
from ipex_embeddings import InvalidTextError, ModelFolderError, TruncationError
from ipex_embeddings_builder.cli import LazyGroup, main
from ipex_embeddings_builder.cli.options import RUNTIME_ERRORS, library_errors


def _one_clean_line(result: click.testing.Result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not a traceback
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_every_runtime_error_is_translated() -> None:
    documented = [obj for _, obj in inspect.getmembers(runtime_errors, inspect.isclass)
                  if issubclass(obj, ValueError) and obj.__module__ == runtime_errors.__name__]
    assert documented and all(issubclass(error, RUNTIME_ERRORS) for error in documented)


@pytest.mark.parametrize("error", [
    ModelFolderError("folder x is damaged;\ncopy it again"),
    TruncationError([3], 8),
    InvalidTextError("texts[0]", "a\ud800b"),
])
def test_library_errors_print_a_runtime_error_on_one_line(error: ValueError) -> None:
    @click.command()
    def command() -> None:
        with library_errors():
            raise error

    line = _one_clean_line(CliRunner().invoke(command))
    assert line == "Error: " + " ".join(str(error).split())


def test_a_command_that_forgot_its_translation_still_prints_one_line() -> None:
    @click.group(cls=LazyGroup)
    def group() -> None:
        pass

    @group.command("load")
    def load() -> None:
        raise ModelFolderError("models/x is missing ['tokenizer.json'].")

    line = _one_clean_line(CliRunner().invoke(group, ["load"]))
    assert line == "Error: models/x is missing ['tokenizer.json']."


def test_validate_checks_the_folder_before_loading_any_data(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    (folder / "openvino" / "openvino_model.bin").write_bytes(b"")
    result = CliRunner().invoke(main, ["validate", str(folder), "--task", "SciFact"])
    line = _one_clean_line(result)
    assert "openvino_model.bin is empty" in line and "ipex-embed quantize" in line
    assert "Validating" not in result.output  # it stopped before the tasks were built


def test_validate_on_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "notes")])
    line = _one_clean_line(result)
    assert "not an ipex-embeddings model" in line and "Validating" not in result.output


def test_embed_with_a_damaged_folder_prints_one_line(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    (folder / "tokenizer.json").write_text('{"model": {"type": "Word')
    source = tmp_path / "corpus.jsonl"
    source.write_text(json.dumps({"text": "hello"}) + "\n")
    result = CliRunner().invoke(
        main, ["embed", str(folder), "--input", str(source), "--output", str(tmp_path / "o")]
    )
    line = _one_clean_line(result)
    assert "tokenizer.json is not valid JSON" in line and "ipex-embed quantize" in line


def test_a_source_path_typo_fails_at_once_without_the_hub(tmp_path: Path, monkeypatch) -> None:
    import time

    (tmp_path / "models" / "all-MiniLM-L6-v2").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["quantize", "models/all-MiniLM-L6-v2x", "-o", "out"])
    assert time.perf_counter() - started < 5
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "does not exist" in result.output and "all-MiniLM-L6-v2" in result.output
