"""Find a model folder on disk or on the Hugging Face Hub, and check it before loading."""

from __future__ import annotations

import os
from pathlib import Path

from .config import CONFIG_NAME, ModelConfig
from .errors import ModelFolderError, UnsafeModelError

__all__ = ["resolve_model_folder", "check_model_folder"]

# Weight files that can only be read by unpickling (or by running TorchScript): never loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Files fetched from a Hub repo: the IR, the tokenizer, our JSON; nothing else is needed.
HUB_PATTERNS = [CONFIG_NAME, "tokenizer.json", "openvino/*", "*.xml", "*.bin"]
REBUILD_HINT = (
    "Rebuild it as a safe OpenVINO int8 folder with `ipex-embed build SOURCE_MODEL --output DIR` "
    "(or `ipex-embed quantize`), then load that folder."
)


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_model_folder(
    path_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
) -> Path:
    """Return a local folder for `path_or_repo_id`, downloading a Hub repo into the HF cache."""
    name = os.fspath(path_or_repo_id)
    local = Path(name).expanduser()
    if local.exists():
        return local
    if not _looks_like_repo_id(name):
        raise ModelFolderError(
            f"{name!r} is neither an existing folder nor a Hugging Face repo id (user/name). "
            "Check the path, or make a model folder with `ipex-embed quantize MODEL --output DIR`."
        )
    from huggingface_hub import list_repo_files, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        files = list_repo_files(name, revision=revision, token=token)
    except HfHubHTTPError as err:
        raise ModelFolderError(
            f"Could not list Hugging Face repo {name!r}: {err}. Check the id, your network, "
            "and for a private repo your token (HF_TOKEN or `hf auth login`)."
        ) from err
    except Exception as err:  # HF_HUB_OFFLINE=1 or no network: a copy in the HF cache will do
        return _cached_snapshot(name, revision, cache_dir, err)
    if CONFIG_NAME not in files:
        _raise_foreign(name, files)
    folder = snapshot_download(
        name, revision=revision, cache_dir=cache_dir, token=token, allow_patterns=HUB_PATTERNS
    )
    return Path(folder)


def _cached_snapshot(
    name: str, revision: str | None, cache_dir: str | os.PathLike[str] | None, cause: Exception
) -> Path:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            name, revision=revision, cache_dir=cache_dir, allow_patterns=HUB_PATTERNS,
            local_files_only=True,
        )
    except Exception as err:  # LocalEntryNotFoundError and kin: it was never downloaded here
        raise ModelFolderError(
            f"Could not reach the Hugging Face Hub for {name!r} ({cause}) and it is not in the "
            "local cache. Load it once with network access (HF_HUB_OFFLINE unset), or pass a "
            "local model folder."
        ) from err
    return Path(folder)


def _raise_foreign(name: str, files: list[str]) -> None:
    has_pickle = any(f.endswith(PICKLE_SUFFIXES) for f in files)
    has_ir = any(f.endswith(".xml") for f in files)
    if has_pickle and not has_ir and not any(f.endswith(".safetensors") for f in files):
        raise UnsafeModelError(
            f"{name} only offers pickle or TorchScript weights, which ipex-embeddings never loads "
            f"(unpickling can run arbitrary code). {REBUILD_HINT}"
        )
    raise ModelFolderError(
        f"{name} has no {CONFIG_NAME}: it is not an ipex-embeddings model. {REBUILD_HINT}"
    )


# The class that loads each kind of folder, for the error when the other one is asked to.
LOADER_OF_KIND = {"bi-encoder": "Encoder", "cross-encoder": "CrossEncoder"}


def check_model_folder(folder: Path, kind: str | None = None) -> ModelConfig:
    """Read the folder's config and make sure the IR and tokenizer it names are there.

    Args:
        kind: "bi-encoder" or "cross-encoder" to refuse a folder of the other kind; None: any.

    Raises:
        ModelFolderError: no config, an incomplete folder, or a folder of the wrong kind (the
            message names the class that loads it).
    """
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is a file, not a model folder.")
    if not (folder / CONFIG_NAME).is_file():
        files = [p.name for p in folder.rglob("*") if p.is_file()]
        _raise_foreign(str(folder), files)
    config = ModelConfig.load(folder)
    if kind is not None and config.kind != kind:
        loader = LOADER_OF_KIND[config.kind]
        raise ModelFolderError(
            f"{folder} holds a {config.kind}, not a {kind}: load it with "
            f"ipex_embeddings.{loader}.load (or pass it to IPEXRerank / IPEXRerankCompressor, "
            "which take either kind)."
        )
    xml = folder / config.model_file
    needed = [xml, xml.with_suffix(".bin"), folder / "tokenizer.json"]
    missing = [str(p.relative_to(folder)) for p in needed if not p.is_file()]
    if missing:
        raise ModelFolderError(
            f"{folder} is missing {missing}. The folder is incomplete: copy it again, or "
            "rebuild it with `ipex-embed quantize`."
        )
    return config
