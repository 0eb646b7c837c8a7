"""Publishing to the Hub and loading back, over real HTTP against the local test Hub.

`ipex-embed publish` and `Encoder.load("user/repo")` run in subprocesses pointed at
tests/hub_server.py with HF_ENDPOINT (huggingface_hub reads it at import), with HF_HUB_DISABLE_XET=1
because the test Hub speaks git-LFS, not Xet. The demo int8 folder is the real one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hub_server import HubServer, client_env

WRITE_TOKEN, READ_TOKEN = "hf_test_write_alice", "hf_test_read_alice"
TOKENS = {WRITE_TOKEN: ("alice", "write"), READ_TOKEN: ("alice", "read")}


@pytest.fixture(scope="module")
def model_folder(demo_int8_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo int8 folder with its model card, as `ipex-embed build` leaves it."""
    from ipex_embeddings_builder.card import CardInputs, read_source_metadata, write_card
    from ipex_embeddings_builder.demo import DEMO_MODEL_ID, demo_model_path

    folder = tmp_path_factory.mktemp("publish") / "all-MiniLM-L6-v2-int8"
    shutil.copytree(demo_int8_dir, folder)
    write_card(CardInputs(
        folder=folder, command="ipex-embed build all-MiniLM-L6-v2 --output all-MiniLM-L6-v2-int8",
        repo_id="alice/minilm", source_metadata=read_source_metadata(
            demo_model_path(), DEMO_MODEL_ID, None),
    ))
    (folder / "build_state.json").write_text("{}")  # the build's own bookkeeping: never published
    return folder


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer(TOKENS) as server:
        yield server


def hub_env(hub: HubServer, home: Path, token: str | None = WRITE_TOKEN) -> dict[str, str]:
    return client_env(hub.url, home, token)


def publish(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ipex_embeddings_builder.cli.publish", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def run_python(env: dict[str, str], code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last, which is returned."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def published_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*") if p.is_file() and p.name != "build_state.json"
    }


def test_publish_sends_every_file_in_one_commit(
    hub: HubServer, model_folder: Path, tmp_path: Path
) -> None:
    done = publish(hub_env(hub, tmp_path), str(model_folder), "alice/minilm")
    assert done.returncode == 0, done.stderr
    assert "openvino/openvino_model.bin" in done.stdout and "one commit on main" in done.stdout
    commits = hub.uploads("alice/minilm")
    assert len(commits) == 1
    expected = published_files(model_folder)
    arrived = {p: b for p, b in commits[0].files.items() if p != ".gitattributes"}
    assert arrived.keys() == expected.keys()
    for path, data in expected.items():
        assert arrived[path] == data, f"{path} differs from the local file"
    assert "openvino/openvino_model.bin" in commits[0].lfs_paths  # large binary: LFS PUT
    assert "README.md" not in commits[0].lfs_paths
    paths = [path for _, path in hub.requests]
    assert paths.index("/api/whoami-v2") < paths.index("/api/repos/create")
    assert commits[0].oid in done.stdout
    assert not hub.repos["alice/minilm"].private


def test_load_published_repo_matches_local_folder(
    hub: HubServer, model_folder: Path, tmp_path: Path
) -> None:
    env = hub_env(hub, tmp_path)
    assert publish(env, str(model_folder), "alice/minilm").returncode == 0
    code = f"""
        import json, numpy as np
        from ipex_embeddings import Encoder
        texts = ["int8 embeddings on a CPU", "Cyclin D1 controls the cell cycle."]
        hub = Encoder.load("alice/minilm")
        local = Encoder.load({str(model_folder)!r})
        files = sorted(p.relative_to(hub.folder).as_posix()
                       for p in hub.folder.rglob("*") if p.is_file())
        print(json.dumps({{
            "folder": str(hub.folder), "files": files,
            "max_diff": float(np.abs(hub.encode(texts) - local.encode(texts)).max()),
        }}))
    """
    loaded = run_python(env, code)
    assert Path(loaded["folder"]).is_relative_to(tmp_path)  # the HF cache under HF_HOME
    for name in loaded["files"]:
        assert (Path(loaded["folder"]) / name).read_bytes() == (model_folder / name).read_bytes()
    assert {"ipex_embeddings.json", "tokenizer.json", "openvino/openvino_model.xml",
            "openvino/openvino_model.bin"} <= set(loaded["files"])
    assert "README.md" not in loaded["files"]  # only what the encoder needs is downloaded
    assert loaded["max_diff"] == 0.0

    # The card's usage examples (ipex-embeddings, LangChain, LlamaIndex) run as written.
    card = (model_folder / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)
    assert len(snippets) == 3 and all('"alice/minilm"' in code for code in snippets)
    examples = run_python(env, "\n".join([*snippets, textwrap.dedent("""
        import json
        print(json.dumps({"scores": scores.tolist(), "vector": len(vector),
                          "llama": len(Settings.embed_model.get_text_embedding("a cell"))}))
    """)]))
    (relevant, unrelated), = examples["scores"]
    assert relevant > unrelated  # exercise and heart disease: closer than the cell cycle
    assert examples["vector"] == examples["llama"] == 384

    # A second load works from the cache alone, with the Hub unreachable.
    offline = env | {"HF_HUB_OFFLINE": "1"}
    again = run_python(offline, """
        import json
        from ipex_embeddings import Encoder
        print(json.dumps({"dimension": Encoder.load("alice/minilm").dimension}))
    """)
    assert again["dimension"] == 384


def test_create_pr_and_private(hub: HubServer, model_folder: Path, tmp_path: Path) -> None:
    env = hub_env(hub, tmp_path)
    done = publish(env, str(model_folder), "alice/private-minilm", "--private", "--create-pr")
    assert done.returncode == 0, done.stderr
    repo = hub.repos["alice/private-minilm"]
    assert repo.private
    assert len(repo.commits) == 1  # main holds only the creation commit: the files are in the PR
    assert list(repo.pull_requests) == [1]
    assert repo.pull_requests[1].files["openvino/openvino_model.bin"] == (
        model_folder / "openvino/openvino_model.bin").read_bytes()
    assert "/alice/private-minilm/discussions/1" in done.stdout

    code = """
        import json
        from ipex_embeddings import Encoder, ModelFolderError
        try:
            encoder = Encoder.load("alice/private-minilm", revision="refs/pr/1")
            dimension, error = encoder.dimension, ""
        except ModelFolderError as err:
            dimension, error = 0, str(err)
        print(json.dumps({"dimension": dimension, "error": error}))
    """
    assert run_python(env, code) == {"dimension": 384, "error": ""}  # the owner, from the PR
    anonymous = run_python(hub_env(hub, tmp_path / "anonymous", token=None), code)
    assert anonymous["dimension"] == 0 and "token" in anonymous["error"]


def test_missing_token_uploads_nothing(hub: HubServer, model_folder: Path, tmp_path: Path) -> None:
    done = publish(hub_env(hub, tmp_path, token=None), str(model_folder), "alice/minilm")
    assert done.returncode != 0
    assert "No Hugging Face token found" in done.stderr and "HF_TOKEN" in done.stderr
    assert not [r for r in hub.requests if r[0] in ("POST", "PUT")]
    assert "alice/minilm" not in hub.repos


@pytest.mark.parametrize(("token", "message"), [
    ("hf_not_a_real_token", "rejected the token"),
    (READ_TOKEN, "read-only"),
])
def test_bad_token_is_refused_before_upload(
    hub: HubServer, model_folder: Path, tmp_path: Path, token: str, message: str
) -> None:
    done = publish(hub_env(hub, tmp_path, token=token), str(model_folder), "alice/minilm")
    assert done.returncode != 0
    assert message in done.stderr and "Nothing was uploaded" in done.stderr
    assert [path for _, path in hub.requests if path != "/api/agent-harnesses"] == [
        "/api/whoami-v2"]


def test_namespace_not_owned_is_refused(hub: HubServer, model_folder: Path, tmp_path: Path) -> None:
    done = publish(hub_env(hub, tmp_path), str(model_folder), "someone-else/minilm")
    assert done.returncode != 0
    assert "logged in as alice" in done.stderr
    assert "someone-else/minilm" not in hub.repos


def test_failed_upload_leaves_no_commit(hub: HubServer, model_folder: Path, tmp_path: Path) -> None:
    env = hub_env(hub, tmp_path)
    hub.fail_upload_status = 507  # the storage backend refuses the large file mid-upload
    done = publish(env, str(model_folder), "alice/minilm")
    assert done.returncode != 0
    assert "No commit was made" in done.stderr and "507" in done.stderr
    assert "PUT" in {method for method, _ in hub.requests}  # the upload had started
    assert hub.uploads("alice/minilm") == [] and hub.lfs_objects == {}

    hub.fail_upload_status = None  # the same command succeeds once the cause is gone
    assert publish(env, str(model_folder), "alice/minilm").returncode == 0
    assert len(hub.uploads("alice/minilm")) == 1


def test_rejected_commit_leaves_no_commit(
    hub: HubServer, model_folder: Path, tmp_path: Path
) -> None:
    hub.fail_commit_status = 500
    done = publish(hub_env(hub, tmp_path), str(model_folder), "alice/minilm")
    assert done.returncode != 0 and "No commit was made" in done.stderr
    assert hub.uploads("alice/minilm") == []


def test_dry_run_prints_the_plan_and_sends_nothing(
    hub: HubServer, model_folder: Path, tmp_path: Path
) -> None:
    done = publish(hub_env(hub, tmp_path), str(model_folder), "alice/minilm", "--dry-run",
                   "--create-pr")
    assert done.returncode == 0, done.stderr
    for name in published_files(model_folder):
        assert name in done.stdout
    assert "build_state.json" not in done.stdout
    assert "pull request" in done.stdout and "Dry run: nothing was uploaded." in done.stdout
    assert hub.requests == []


def test_publish_refuses_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    from ipex_embeddings_builder.cli.publish import publish_command

    (tmp_path / "notes.txt").write_text("not a model")
    result = CliRunner().invoke(publish_command, [str(tmp_path), "alice/x", "--dry-run"])
    assert result.exit_code == 1  # a clear error, not a traceback
    assert "Not publishing" in result.output and "ipex_embeddings.json" in result.output


def test_publish_refuses_a_bad_repo_id(model_folder: Path) -> None:
    from ipex_embeddings_builder.cli.publish import publish_command

    result = CliRunner().invoke(publish_command, [str(model_folder), "no-namespace", "--dry-run"])
    assert result.exit_code != 0 and "user/no-namespace" in result.output


def test_unsafe_and_foreign_repos_are_refused_with_the_rebuild_command(
    hub: HubServer, tmp_path: Path
) -> None:
    config = json.dumps({"model_type": "bert"}).encode()
    hub.add_repo("bob/pickle-only", {"config.json": config, "pytorch_model.bin": b"\x80\x04pickle"})
    hub.add_repo("bob/torchscript", {"config.json": config, "traced_model.pt": b"PK\x03\x04"})
    hub.add_repo("bob/plain-transformers", {"config.json": config, "model.safetensors": b"{}"})
    code = """
        import json
        from ipex_embeddings import Encoder, UnsafeModelError, ModelFolderError
        out = {}
        for repo in ("bob/pickle-only", "bob/torchscript", "bob/plain-transformers", "bob/none"):
            try:
                Encoder.load(repo)
                out[repo] = ["loaded", ""]
            except ModelFolderError as err:
                out[repo] = [type(err).__name__, str(err)]
        print(json.dumps(out))
    """
    out = run_python(hub_env(hub, tmp_path, token=None), code)
    for repo in ("bob/pickle-only", "bob/torchscript"):
        kind, message = out[repo]
        assert kind == "UnsafeModelError"
        assert "never loads" in message and "ipex-embed build" in message
    kind, message = out["bob/plain-transformers"]
    assert kind == "ModelFolderError" and "ipex-embed build" in message
    assert out["bob/none"][0] == "ModelFolderError"
    downloads = [path for method, path in hub.requests if "/resolve/" in path]
    assert downloads == []  # refused from the file listing: nothing unsafe was even fetched
