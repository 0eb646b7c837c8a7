"""Read what a Hugging Face embedding model says about itself: pooling, prompts, length."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .demo import DEMO_MODEL, DEMO_MODEL_ID, DEMO_REVISION, demo_model_path
from .errors import SourceModelError

__all__ = ["SUPPORTED_MODEL_TYPES", "SourceModel", "SourceModelError", "inspect_source"]

# Encoder-only architectures whose export to OpenVINO and int8 quantization we support.
SUPPORTED_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra", "camembert"}
)
SOURCE_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*", "README.md"]


@dataclass
class SourceModel:
    """A local copy of the source model and the settings its own files declare."""

    path: Path
    model_id: str
    revision: str
    model_type: str
    pooling: str
    normalize: bool
    max_seq_length: int
    query_prompt: str
    document_prompt: str
    dimension: int


def _read_json(path: Path) -> dict | list | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SourceModelError(f"{path} is not valid JSON ({err}).") from err


def _local_copy(model: str, revision: str | None) -> tuple[Path, str]:
    if model in (DEMO_MODEL, DEMO_MODEL_ID) and not Path(model).exists():
        return demo_model_path(), DEMO_REVISION
    path = Path(model).expanduser()
    if path.is_dir():
        return path, revision or ""
    if path.exists() or model.count("/") != 1:
        raise SourceModelError(
            f"{model!r} is neither a folder nor a Hugging Face model id (user/name)."
        )
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(model, revision=revision, allow_patterns=SOURCE_PATTERNS)
    except Exception as err:  # network, auth, missing repo: all end the same way for the user
        raise SourceModelError(
            f"Could not download {model!r} from the Hugging Face Hub ({err}). Check the id and "
            "your network, or pass a local folder."
        ) from err
    return Path(folder), Path(folder).name  # snapshot folders are named by commit


def _pooling_from_files(path: Path) -> str | None:
    modules = _read_json(path / "modules.json") or []
    pooling_dir = next(
        (m["path"] for m in modules if str(m.get("type", "")).endswith("Pooling")), "1_Pooling"
    )
    if any(str(m.get("type", "")).endswith(("Dense", "LayerNorm")) for m in modules):
        raise SourceModelError(
            f"{path} has a Dense or LayerNorm module after pooling, which ipex-embeddings does "
            "not export yet. Only Transformer -> Pooling -> Normalize models are supported."
        )
    config = _read_json(path / pooling_dir / "config.json")
    if config is None:
        return None
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v is True]
    mode = config.get("pooling_mode")
    if mode:
        modes = [f"pooling_mode_{mode}"]
    names = {
        "pooling_mode_cls_token": "cls",
        "pooling_mode_cls": "cls",
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_mean": "mean",
    }
    if len(modes) != 1 or modes[0] not in names:
        raise SourceModelError(
            f"{path / pooling_dir / 'config.json'} asks for pooling {modes}; ipex-embeddings "
            "supports exactly one of cls or mean. Pass --pooling cls|mean to override."
        )
    return names[modes[0]]


def _prompts(path: Path) -> tuple[str, str]:
    config = _read_json(path / "config_sentence_transformers.json") or {}
    prompts = config.get("prompts") or {}
    query = prompts.get("query", "")
    document = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
    return query, document


def _recorded_id(model: str) -> str:
    """The source's name in the model JSON, which is published: the demo's Hub id, a Hub id or a
    relative folder as given, an absolute (or ~) folder by its name only."""
    if model == DEMO_MODEL:
        return DEMO_MODEL_ID
    path = Path(model).expanduser()
    return path.name if path.is_absolute() else model


def inspect_source(
    model: str,
    *,
    revision: str | None = None,
    pooling: str | None = None,
    max_seq_length: int | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> SourceModel:
    """Find the model and read its settings; options given here override its files."""
    path, resolved_revision = _local_copy(model, revision)
    config = _read_json(path / "config.json")
    if not isinstance(config, dict):
        raise SourceModelError(
            f"{path} has no config.json, so it is not a Hugging Face transformers model."
        )
    model_type = str(config.get("model_type", ""))
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise SourceModelError(
            f"{path} is a {model_type or 'unknown'!r} model, not a supported text encoder "
            f"({', '.join(sorted(SUPPORTED_MODEL_TYPES))})."
        )
    if not any(path.glob("*.safetensors")):
        raise SourceModelError(
            f"{path} has no .safetensors weights. ipex-embeddings never unpickles model files; "
            "use a revision with model.safetensors (most Hub models have one)."
        )
    if not (path / "tokenizer.json").is_file():
        raise SourceModelError(
            f"{path} has no tokenizer.json (a fast tokenizer). Save one with transformers' "
            "AutoTokenizer.from_pretrained(path).save_pretrained(path), then retry."
        )
    found_pooling = _pooling_from_files(path)
    if pooling is None and found_pooling is None:
        raise SourceModelError(
            f"{path} does not say how to pool (no sentence-transformers 1_Pooling/config.json). "
            "Pass --pooling cls (BGE-style models) or --pooling mean (MiniLM, E5, GTE), as the "
            "model's card says."
        )
    modules = _read_json(path / "modules.json") or []
    has_st_files = bool(modules)
    normalize = (
        any(str(m.get("type", "")).endswith("Normalize") for m in modules) if has_st_files else True
    )
    st_config = _read_json(path / "sentence_bert_config.json") or {}
    limit = int(config.get("max_position_embeddings", 512))
    if model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # their position ids start after the padding index
    length = max_seq_length or int(st_config.get("max_seq_length") or limit)
    if length > limit:
        raise SourceModelError(
            f"max_seq_length={length} exceeds the model's {limit} positions; pass a smaller one."
        )
    found_query, found_document = _prompts(path)
    return SourceModel(
        path=path,
        model_id=_recorded_id(model),
        revision=resolved_revision,
        model_type=model_type,
        pooling=pooling or found_pooling or "",
        normalize=normalize,
        max_seq_length=length,
        query_prompt=found_query if query_prompt is None else query_prompt,
        document_prompt=found_document if document_prompt is None else document_prompt,
        dimension=int(config.get("hidden_size") or config.get("dim") or 0),
    )
