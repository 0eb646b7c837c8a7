"""Damaged model folders and mistyped paths fail at load, naming the file and the fix.

Unit tier: the folders here are hand-made (a tiny IR whose XML names two weights, a .bin of their
size, a tokenizer.json), so nothing is built and OpenVINO never runs: every check happens before
it would (`folder.check_model_folder`, `ModelConfig.load`, `resolve_model_folder`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ipex_embeddings import Encoder, ModelConfig, ModelFolderError
from ipex_embeddings.batching import TextTokenizer
from ipex_embeddings.config import CONFIG_NAME, FORMAT_VERSION
from ipex_embeddings.folder import check_model_folder, resolve_model_folder

IR = """<?xml version="1.0"?>
<net name="tiny" version="11">
	<layers>
		<layer id="0" name="input_ids" type="Parameter" version="opset1">
			<data shape="?,?" element_type="i64" />
		</layer>
		<layer id="1" name="weight" type="Const" version="opset1">
			<data element_type="f32" shape="4, 8" offset="0" size="128" />
		</layer>
		<layer id="2" name="bias" type="Const" version="opset1">
			<data element_type="f32" shape="8" offset="128" size="32" />
		</layer>
	</layers>
	<edges />
</net>
"""
WEIGHT_BYTES = 160  # the largest offset + size above
TOKENIZER = {"version": "1.0", "model": {"type": "WordLevel", "vocab": {"[UNK]": 0},
                                          "unk_token": "[UNK]"}}
FIX = "ipex-embed quantize"


def make_folder(folder: Path, **config: object) -> Path:
    """A folder that passes every check: the config, the tiny IR, its .bin and a tokenizer."""
    (folder / "openvino").mkdir(parents=True)
    ModelConfig(pooling="mean", dimension=8, max_seq_length=16).save(folder)
    if config:
        path = folder / CONFIG_NAME
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    (folder / "openvino" / "openvino_model.xml").write_text(IR)
    (folder / "openvino" / "openvino_model.bin").write_bytes(bytes(WEIGHT_BYTES))
    (folder / "tokenizer.json").write_text(json.dumps(TOKENIZER))
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "model")


def test_a_whole_folder_passes(folder: Path) -> None:
    assert check_model_folder(folder).dimension == 8


# --- the IR and its weights --------------------------------------------------------------------


def _damage(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(("name", "content", "says"), [
    ("openvino/openvino_model.bin", b"", r"is empty \(0 bytes\)"),
    ("openvino/openvino_model.bin", bytes(100),
     r"cut short: it has 100 bytes, but openvino_model.xml reads weights up to byte 160"),
    ("openvino/openvino_model.bin", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n",
     "Git LFS pointer"),
    ("openvino/openvino_model.xml", IR[: len(IR) // 2].encode(), "is not valid XML"),
    ("openvino/openvino_model.xml", b"", "is not valid XML"),
    ("openvino/openvino_model.xml",
     b"<!DOCTYPE html>\n<html><head><meta charset='utf-8'></head><body>Hub</body></html>",
     "is an HTML page, not the model file"),
    ("openvino/openvino_model.xml", b"<?xml version='1.0'?><config><a/></config>",
     r"is XML but not an OpenVINO IR: its root element is <config>, not <net>"),
    ("openvino/openvino_model.xml", IR.replace('offset="128"', 'offset="x"').encode(),
     r"Const layer 'bias' has offset='x'"),
    ("tokenizer.json", json.dumps(TOKENIZER)[:30].encode(), "is not valid JSON"),
    ("tokenizer.json", b"", "is not valid JSON"),
    ("tokenizer.json", b'{"vocab": {}}', r'is JSON but not a tokenizer \(no "model"'),
])
def test_a_damaged_file_is_named_with_the_fix(
    folder: Path, name: str, content: bytes, says: str
) -> None:
    path = _damage(folder, name, content)
    with pytest.raises(ModelFolderError, match=says) as caught:
        check_model_folder(folder)
    assert str(path) in str(caught.value) and FIX in str(caught.value)
    with pytest.raises(ModelFolderError, match=says):  # and so at load, before OpenVINO
        Encoder.load(folder, compile_cache=False)


def test_the_bin_may_be_larger_than_the_ir_needs(folder: Path) -> None:
    _damage(folder, "openvino/openvino_model.bin", bytes(WEIGHT_BYTES + 64))
    check_model_folder(folder)


def test_a_model_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model", model_file="../elsewhere/model.xml")
    with pytest.raises(ModelFolderError, match="points outside the folder"):
        check_model_folder(folder)


def test_an_unreadable_tokenizer_names_its_file(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"model": {"type": "NoSuchModel"}}))  # JSON, not for tokenizers
    with pytest.raises(ModelFolderError, match="cannot be read by `tokenizers`") as caught:
        TextTokenizer(path, 16, ["input_ids", "attention_mask"])
    assert str(path) in str(caught.value) and FIX in str(caught.value)


def test_the_kind_is_still_checked_before_the_files(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    _damage(folder, "openvino/openvino_model.bin", b"")
    with pytest.raises(ModelFolderError, match="holds a bi-encoder"):
        check_model_folder(folder, "cross-encoder")


# --- ipex_embeddings.json ----------------------------------------------------------------------


@pytest.mark.parametrize(("edit", "says"), [
    ({"dimension": "384"}, r'"dimension" is "384" \(a string\).*write "dimension": 384'),
    ({"normalize": "yes"}, r'"normalize" is "yes".*true or false.*write "normalize": true'),
    ({"normalize": "no"}, 'write "normalize": false'),
    ({"max_seq_length": 256.0}, 'write "max_seq_length": 256'),
    ({"dimension": True}, r'"dimension" is true'),
    ({"query_prompt": None}, r'"query_prompt" is null, but it must be a string'),
    ({"quantization": []}, r'"quantization" is \[\] \(a list\)'),
    ({"truncate_dim": "8"}, r'"truncate_dim" is "8".*a whole number or null'),
    ({"pooling": "MEAN"}, r"pooling='MEAN' is not supported.*did you mean 'mean'"),
    ({"kind": "bi_encoder"}, r"kind='bi_encoder' is not supported.*did you mean 'bi-encoder'"),
    ({"output_precision": "fp16"}, r"output_precision='fp16' is not supported"),
    ({"format_version": "2"}, r'"format_version" is "2", but it must be a whole number'),
])
def test_a_hand_edited_value_is_refused_at_load(tmp_path: Path, edit: dict, says: str) -> None:
    folder = make_folder(tmp_path / "model", **edit)
    with pytest.raises(ModelFolderError, match=says) as caught:
        ModelConfig.load(folder)
    message = str(caught.value)
    assert str(folder / CONFIG_NAME) in message and FIX in message
    assert "newer" not in message


def test_a_misspelt_key_gets_the_closest_key_not_an_upgrade(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model", normalise=False)
    with pytest.raises(ModelFolderError, match=r"unknown key 'normalise' \(did you mean "
                       r"'normalize'\?\); rename it to 'normalize'") as caught:
        ModelConfig.load(folder)
    assert "newer" not in str(caught.value) and "pip install" not in str(caught.value)
    folder = make_folder(tmp_path / "other", colour="blue")
    with pytest.raises(ModelFolderError, match="unknown key 'colour'; remove it"):
        ModelConfig.load(folder)


def test_only_a_newer_format_version_blames_the_version(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model", format_version=FORMAT_VERSION + 1, new_key=1)
    with pytest.raises(ModelFolderError, match="written by a newer ipex-embeddings"):
        ModelConfig.load(folder)


@pytest.mark.parametrize(("content", "says"), [
    ('{"pooling": "mean", ', "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
])
def test_a_cut_or_foreign_config_is_named(tmp_path: Path, content: str, says: str) -> None:
    folder = make_folder(tmp_path / "model")
    (folder / CONFIG_NAME).write_text(content)
    with pytest.raises(ModelFolderError, match=says) as caught:
        check_model_folder(folder)
    assert str(folder / CONFIG_NAME) in str(caught.value) and FIX in str(caught.value)


# --- a local path that does not exist -----------------------------------------------------------


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every Hub listing instead of making it (it then fails as offline would)."""
    import huggingface_hub

    asked: list[str] = []

    def list_repo_files(name: str, **_: object) -> list[str]:
        asked.append(name)
        raise RuntimeError("the Hub was asked")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    return asked


def test_a_mistyped_local_path_is_named_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    here = Path.cwd()  # the real path, as the message gives it
    (here / "models" / "all-MiniLM-L6-v2-int8").mkdir(parents=True)
    (here / "models" / "bge-small-en-v1.5-int8").mkdir()
    start = time.perf_counter()
    with pytest.raises(ModelFolderError) as caught:
        resolve_model_folder("models/minilm-int8")
    assert time.perf_counter() - start < 1 and no_hub == []
    message = str(caught.value)
    assert "read as a local path, not a Hugging Face repo id" in message
    assert str(here / "models" / "minilm-int8") in message
    assert f"working directory: {here}" in message
    assert "Close matches in" in message and "all-MiniLM-L6-v2-int8" in message
    assert "bge-small" not in message and "network" not in message


@pytest.mark.parametrize("name", ["./minilm-int8", "../minilm-int8", "~/no-such-ipex-model/x",
                                  "a/b/c"])
def test_a_path_that_cannot_be_a_repo_id_is_never_sent_to_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub: list[str], name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFolderError, match="neither an existing folder") as caught:
        resolve_model_folder(name)
    assert no_hub == []
    absolute = os.path.abspath(os.path.expanduser(name))
    assert absolute in str(caught.value) and "ipex-embed quantize" in str(caught.value)


def test_a_repo_id_whose_owner_is_no_local_folder_still_goes_to_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_hub: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFolderError, match="Could not reach the Hugging Face Hub"):
        resolve_model_folder("someone/some-model-int8")
    assert no_hub == ["someone/some-model-int8"]
