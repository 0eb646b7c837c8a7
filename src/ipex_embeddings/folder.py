"""Find a model folder on disk or on the Hugging Face Hub, and check it before loading.

The check is cheap (no weights are read) and catches what a copy or a download damages: a cut
or empty `.bin`, an IR that is cut short, not XML or an HTML page saved in its place, a Git LFS
pointer instead of the file, and a cut `tokenizer.json`; each error names the file and the fix,
instead of the C++ error OpenVINO or tokenizers would give later.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from .config import CONFIG_NAME, ModelConfig
from .errors import FOLDER_FIX, ModelFolderError, UnsafeModelError

__all__ = [
    "check_ir", "check_model_folder", "check_tokenizer_file", "missing_local_folder",
    "resolve_model_folder",
]

# Weight files that can only be read by unpickling (or by running TorchScript): never loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Files fetched from a Hub repo: the IR, the tokenizer, our JSON; nothing else is needed.
HUB_PATTERNS = [CONFIG_NAME, "tokenizer.json", "openvino/*", "onnx/*", "*.xml", "*.bin"]
REBUILD_HINT = (
    "Rebuild it as a safe OpenVINO int8 folder with `ipex-embed build SOURCE_MODEL --output DIR` "
    "(or `ipex-embed quantize`), then load that folder."
)


def _looks_like_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def missing_local_folder(name: str) -> ModelFolderError | None:
    """The error for `name` when it can only be a local path (it is not shaped like a Hub repo
    id, or its first part is a folder here, as `models/` in `models/minilm-int8`); else None."""
    first = name.split("/")[0]
    if _looks_like_repo_id(name):
        if not Path(first).expanduser().is_dir():
            return None
        why = (f"{name!r} is read as a local path, not a Hugging Face repo id, because "
               f"{first!r} is a folder in the working directory; but")
    else:
        why = f"{name!r} is neither an existing folder nor a Hugging Face repo id (user/name):"
    absolute = Path(os.path.abspath(Path(name).expanduser()))
    return ModelFolderError(
        f"{why} the folder {absolute} does not exist (working directory: {Path.cwd()}). "
        f"{_close_folders(absolute)}Check the path, or make a model folder with "
        "`ipex-embed quantize MODEL --output DIR`."
    )


def _close_folders(absolute: Path) -> str:
    """'Close matches in PARENT: a, b. ' for folders named like `absolute` beside it."""
    parent = absolute.parent
    if not parent.is_dir():
        return f"Its parent folder {parent} does not exist either. "
    try:
        names = sorted(p.name for p in parent.iterdir() if p.is_dir())[:10_000]
    except OSError:
        return ""
    wanted = absolute.name.lower()
    folded = {n.lower(): n for n in names}
    close = difflib.get_close_matches(wanted, list(folded), n=5, cutoff=0.5)
    close += [n for n in folded if wanted and wanted in n and n not in close][: 5 - len(close)]
    if not close:
        return f"{parent} holds no folder with a similar name. "
    return f"Close matches in {parent}: {', '.join(folded[n] for n in close)}. "


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
    missing = missing_local_folder(name)
    if missing is not None:  # said at once: never retried on the Hub and blamed on the network
        raise missing
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
    """Read the folder's config and make sure the IR and tokenizer it names are there and whole.

    Cheap: the IR's XML is read (not the weights), the `.bin`'s size compared with the largest
    weight offset the XML names, and `tokenizer.json` parsed as JSON.

    Args:
        kind: "bi-encoder" or "cross-encoder" to refuse a folder of the other kind; None: any.

    Raises:
        ModelFolderError: no config or a damaged one, an incomplete folder, a damaged IR or
            tokenizer (the message names the file and the fix), or a folder of the wrong kind
            (the message names the class that loads it).
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
    xml = folder / _inside(folder, config.model_file, "model_file")
    needed = [xml, xml.with_suffix(".bin"), folder / "tokenizer.json"]
    if config.onnx_file:
        needed.append(folder / _inside(folder, config.onnx_file, "onnx_file"))
    missing = [str(p.relative_to(folder)) for p in needed if not p.is_file()]
    if missing:
        raise ModelFolderError(
            f"{folder} is missing {missing}. The folder is incomplete: copy it again, or "
            "rebuild it with `ipex-embed quantize`."
        )
    check_ir(xml)
    check_tokenizer_file(folder / "tokenizer.json")
    if config.onnx_file:
        damaged = _not_the_file(folder / config.onnx_file)
        if damaged:
            raise damaged
    return config


def _inside(folder: Path, model_file: str, key: str) -> str:
    """`model_file` (the JSON's `key`), once it is known to be a relative path inside the
    folder."""
    parts = PurePosixPath(model_file.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or Path(model_file).is_absolute():
        example = "onnx/model_int8.onnx" if key == "onnx_file" else "openvino/openvino_model.xml"
        raise ModelFolderError(
            f"{folder / CONFIG_NAME}: {key}={model_file!r} points outside the folder; it "
            f"must be a path inside it, e.g. {example!r}; {FOLDER_FIX}."
        )
    return model_file


LFS_POINTER = b"version https://git-lfs"
HTML_STARTS = (b"<!doctype html", b"<html")


def _head(path: Path, size: int = 512) -> bytes:
    with path.open("rb") as file:
        return file.read(size)


def _not_the_file(path: Path) -> ModelFolderError | None:
    """The error when `path` holds a Git LFS pointer or an HTML page instead of the file."""
    head = _head(path)
    if head.startswith(LFS_POINTER):
        return ModelFolderError(
            f"{path} is a Git LFS pointer ({len(head)} bytes of text), not the file: the folder "
            "was cloned without Git LFS. Run `git lfs pull` in the clone, download it with "
            f"`hf download REPO --local-dir DIR`, or {FOLDER_FIX}."
        )
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(HTML_STARTS):
        return ModelFolderError(
            f"{path} is an HTML page, not the model file: a web page (a Hub file page, a login or "
            "an error page) was saved in its place. Download the file itself (`hf download REPO "
            f"--local-dir DIR`, or a .../resolve/... link), or {FOLDER_FIX}."
        )
    return None


def check_ir(xml: Path) -> None:
    """Check that `xml` is an OpenVINO IR and its `.bin` holds every weight the IR names.

    Raises:
        ModelFolderError: the XML is not XML (cut short, an HTML page, a Git LFS pointer), its
            root is not `<net>`, or the `.bin` is empty or shorter than the IR's largest weight
            offset + size (a cut copy).
    """
    bin_path = xml.with_suffix(".bin")
    for path in (xml, bin_path):
        wrong = _not_the_file(path)
        if wrong is not None:
            raise wrong
    needed = _weight_bytes(xml)
    size = bin_path.stat().st_size
    if size == 0:
        raise ModelFolderError(
            f"{bin_path} is empty (0 bytes): the copy or download stopped before its weights; "
            f"{FOLDER_FIX}."
        )
    if size < needed:
        raise ModelFolderError(
            f"{bin_path} is cut short: it has {size} bytes, but {xml.name} reads weights up to "
            f"byte {needed}; the copy or download did not finish. {FOLDER_FIX[0].upper()}"
            f"{FOLDER_FIX[1:]}."
        )


def _weight_bytes(xml: Path) -> int:
    """The size the `.bin` must have: the largest offset + size of the IR's Const layers."""
    spans = []
    try:
        with xml.open("rb") as file:
            events = ElementTree.iterparse(file, events=("start", "end"))
            _, root = next(events)
            if root.tag != "net":
                raise ModelFolderError(
                    f"{xml} is XML but not an OpenVINO IR: its root element is <{root.tag}>, "
                    f"not <net>; {FOLDER_FIX}."
                )
            for event, element in events:
                if event == "end" and element.tag == "layer":
                    data = element.find("data") if element.get("type") == "Const" else None
                    if data is not None and data.get("size") is not None:
                        spans.append((data.get("offset", "0"), data.get("size"),
                                      element.get("name")))
                    element.clear()
    except ElementTree.ParseError as err:
        raise ModelFolderError(
            f"{xml} is not valid XML ({err}): it was cut short or is not an OpenVINO IR; "
            f"{FOLDER_FIX}."
        ) from None
    return max((_span_end(xml, *span) for span in spans), default=0)


def _span_end(xml: Path, offset: str, size: str, layer: str | None) -> int:
    try:
        return int(offset) + int(size)
    except ValueError:
        raise ModelFolderError(
            f"{xml}: the Const layer {layer!r} has offset={offset!r} size={size!r}, which are not "
            f"byte counts; the IR is damaged: {FOLDER_FIX}."
        ) from None


def check_tokenizer_file(path: Path) -> None:
    """Check that `path` is a whole `tokenizers` tokenizer.json (valid JSON with a "model").

    Raises:
        ModelFolderError: naming the file and the fix.
    """
    wrong = _not_the_file(path)
    if wrong is not None:
        raise wrong
    try:
        raw = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFolderError(
            f"{path} is not valid JSON ({err}): it was cut short or damaged; {FOLDER_FIX}."
        ) from None
    if not isinstance(raw, dict) or "model" not in raw:
        raise ModelFolderError(
            f"{path} is JSON but not a tokenizer (no \"model\" in it): the folder needs the "
            f"`tokenizers` file of the source model; {FOLDER_FIX}."
        )
