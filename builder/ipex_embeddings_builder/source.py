"""Read what a Hugging Face embedding model says about itself: pooling, prompts, length.

Every sentence-transformers module and setting the source declares is either honoured or refused
with an error naming the file, the key and the way out; nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipex_embeddings.folder import missing_local_folder
from ipex_embeddings.pooling import POOLING_MODES

from .demo import DEMO_MODEL, DEMO_MODEL_ID, DEMO_REVISION, demo_model_path
from .errors import SourceModelError

__all__ = [
    "DECODER_MODEL_TYPES", "DenseLayer", "SUPPORTED_MODEL_TYPES", "SourceModel", "SourceModelError",
    "check_code",
    "inspect_source", "local_copy", "read_st_config", "recorded_id",
]

logger = logging.getLogger(__name__)

DECODER_MODEL_TYPES = frozenset({"qwen3"})
"""Causal decoders exported with use_cache=False and pooled on their last token."""
# Architectures whose export to OpenVINO and int8 quantization we support (tests/test_families.py).
SUPPORTED_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra", "camembert", "modernbert"}
) | DECODER_MODEL_TYPES
SOURCE_PATTERNS = [
    "*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*", "*Dense*/*", "README.md"
]
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
"""The prompt names sentence-transformers' `encode_document` looks for, in its order."""
NO_LIMIT = 10**29
"""transformers' model_max_length when a tokenizer sets none (int(1e30))."""


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
    include_prompt: bool = True
    """False: prompt tokens are left out of the pooling (`1_Pooling/config.json`)."""
    do_lower_case: bool = False
    """Lowercase texts before tokenizing (`sentence_bert_config.json`); put into tokenizer.json."""
    trust_remote_code: bool = False
    """The source's own modelling code (config.json `auto_map`) may run, as the user allowed."""
    dense: tuple[DenseLayer, ...] = ()
    """Dense modules after pooling, exported token by token before it (see `_dense_layer`)."""
    truncate_dim: int | None = None
    """config_sentence_transformers.json's Matryoshka size, recorded in the folder (None: full)."""


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SourceModelError(f"{path} is not valid JSON ({err}).") from err


def local_copy(model: str, revision: str | None) -> tuple[Path, str]:
    """(folder, revision) of `model`: the demo, a local folder, or a Hub snapshot of its sources."""
    if model in (DEMO_MODEL, DEMO_MODEL_ID) and not Path(model).exists():
        return demo_model_path(), DEMO_REVISION
    path = Path(model).expanduser()
    if path.is_dir():
        return path, revision or ""
    if path.exists():
        raise SourceModelError(f"{model!r} is a file, not a model folder or a Hub id.")
    missing = missing_local_folder(model)  # e.g. models/typo, when models/ is a folder here
    if missing is not None:
        raise SourceModelError(str(missing))
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(model, revision=revision, allow_patterns=SOURCE_PATTERNS)
    except Exception as err:  # network, auth, missing repo: all end the same way for the user
        raise SourceModelError(
            f"Could not download {model!r} from the Hugging Face Hub ({err}). Check the id and "
            "your network, or pass a local folder."
        ) from err
    return Path(folder), Path(folder).name  # snapshot folders are named by commit


def _module_kind(module: dict) -> str:
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def _check_modules(path: Path, modules: list[dict]) -> tuple[str | None, bool]:
    """(the Pooling module's folder or None, whether a Normalize module ends the pipeline).

    Only Transformer -> Pooling [-> Dense ...] [-> Normalize] is exported; any other module or
    order is refused by name.
    """
    kinds = [_module_kind(m) for m in modules]
    where = path / "modules.json"
    if not kinds:
        return None, True
    names = [str(m.get("name", m.get("idx"))) for m in modules]
    if len(set(names)) != len(names):
        raise SourceModelError(
            f"{where} names two modules alike ({names}); sentence-transformers then keeps only "
            "the last of them. Give each module its own name, as it saves them."
        )
    for module, kind in zip(modules, kinds):
        if kind not in ("Transformer", "Pooling", "Dense", "Normalize"):
            raise SourceModelError(
                f"{where} has a {module.get('type')} module ({module.get('path')!r}), which "
                "ipex-embed quantize cannot export: only Transformer -> Pooling [-> Dense] "
                "[-> Normalize] models are built, since dropping a module would change every "
                "vector. Use the model in sentence-transformers, or pick a model without it."
            )
    if kinds[0] != "Transformer" or modules[0].get("path", "") != "":
        raise SourceModelError(
            f"{where} must start with a Transformer module stored at the folder's root; it has "
            f"{kinds[0]} at {modules[0].get('path')!r}. Re-save it with sentence-transformers."
        )
    middle = [k for k in kinds[1:] if k != "Normalize"]
    if kinds.count("Normalize") > 1 or "Normalize" in kinds[:-1] or (
        middle and (middle[0] != "Pooling" or "Pooling" in middle[1:])
    ):
        raise SourceModelError(
            f"{where} has the modules {kinds}; ipex-embed quantize builds Transformer -> Pooling "
            "[-> Dense ...] [-> Normalize] only, in that order."
        )
    pooling_dir = next((m.get("path") for m, k in zip(modules, kinds) if k == "Pooling"), None)
    return pooling_dir, kinds[-1] == "Normalize"


def _pooling_modes(where: Path, config: dict) -> list[str]:
    """The pooling modes a Pooling config names (new `pooling_mode` or legacy booleans)."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        return [mode] if isinstance(mode, str) else list(mode)
    modes = [LEGACY_POOLING_KEYS[k] for k in LEGACY_POOLING_KEYS if config.get(k) is True]
    return modes or ["mean"]  # sentence-transformers' default when no flag is set


def _read_pooling(path: Path, pooling_dir: str, override: str | None) -> tuple[str, bool]:
    """(mode, include_prompt) from the Pooling module's config; `override` wins over its mode."""
    where = path / pooling_dir / "config.json"
    config = _read_json(where)
    if not isinstance(config, dict):
        raise SourceModelError(
            f"{where} is missing, so the Pooling module is not described. Re-save the model with "
            "sentence-transformers, or pass --pooling."
        )
    known = {"word_embedding_dimension", "embedding_dimension", "pooling_mode", "include_prompt"}
    unknown = sorted(set(config) - known - set(LEGACY_POOLING_KEYS))
    if unknown:
        raise SourceModelError(
            f"{where} has settings ipex-embeddings does not know ({unknown}); they may change "
            "the vectors, so the model is refused. Remove them if they are inert, then retry."
        )
    modes = _pooling_modes(where, config)
    if override is None and (len(modes) != 1 or modes[0] not in POOLING_MODES):
        raise SourceModelError(
            f"{where} asks for pooling {modes} (key pooling_mode); ipex-embeddings pools with "
            f"exactly one of {', '.join(POOLING_MODES)} (several modes would be concatenated). "
            "Pass --pooling MODE to pool differently (the vectors will differ from the source's)."
        )
    return override or modes[0], bool(config.get("include_prompt", True))


DENSE_ACTIVATIONS = {
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.GELU": "gelu",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
}
"""Dense activations exported (sentence-transformers names them by class; Tanh is its default)."""


@dataclass
class DenseLayer:
    """A sentence-transformers Dense module: `activation(linear(x))`, weights in safetensors."""

    weights: Path
    in_features: int
    out_features: int
    activation: str


def _dense_layer(path: Path, module_dir: str, pooling: str) -> DenseLayer:
    """One Dense module, checked to be exact when applied to every token before pooling.

    Applied token by token, a Dense layer equals sentence-transformers' Dense after pooling
    when the pooling selects one token (cls, lasttoken), or when it averages (mean,
    weightedmean) and the layer is linear (Identity activation).
    """
    where = path / module_dir / "config.json"
    config = _read_json(where) or {}
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    unknown = sorted(set(config) - {"in_features", "out_features", "bias", "activation_function",
                                    "module_input_name", "module_output_name", "use_residual"})
    if unknown or config.get("use_residual") or activation not in DENSE_ACTIVATIONS or any(
        config.get(k, "sentence_embedding") != "sentence_embedding"
        for k in ("module_input_name", "module_output_name")
    ):
        raise SourceModelError(
            f"{where} asks for a Dense layer ipex-embed quantize cannot export (settings "
            f"{unknown or 'use_residual/module names'}, activation {activation!r}); the "
            f"activations it exports are {', '.join(DENSE_ACTIVATIONS)}, without a residual."
        )
    name = DENSE_ACTIVATIONS[activation]
    if pooling not in ("cls", "lasttoken") and not (
        pooling in ("mean", "weightedmean") and name == "identity"
    ):
        raise SourceModelError(
            f"{where}: a Dense layer with activation {name} after {pooling} pooling cannot be "
            "folded into the exported graph exactly (it is, after cls or lasttoken pooling, or "
            "when linear after mean pooling). Use the model in sentence-transformers."
        )
    weights = path / module_dir / "model.safetensors"
    if not weights.is_file():
        raise SourceModelError(
            f"{path / module_dir} has no model.safetensors; ipex-embeddings never unpickles "
            "pytorch_model.bin. Re-save the model with sentence-transformers 3 or later."
        )
    return DenseLayer(weights, int(config["in_features"]), int(config["out_features"]), name)


def _dense_layers(path: Path, pooling: str, hidden: int) -> tuple[DenseLayer, ...]:
    """The Dense modules after pooling, in order, each fitting the width before it."""
    modules = _read_json(path / "modules.json") or []
    layers = []
    for module in modules:
        if _module_kind(module) == "Dense":
            layer = _dense_layer(path, str(module.get("path")), pooling)
            if layer.in_features != hidden:
                raise SourceModelError(
                    f"{path / str(module.get('path'))} takes {layer.in_features} features but "
                    f"gets {hidden}; the model's files disagree. Re-save it."
                )
            layers.append(layer)
            hidden = layer.out_features
    return tuple(layers)


def _check_transformer_config(path: Path) -> dict:
    """`sentence_bert_config.json` (the Transformer module's settings), every key checked."""
    where = path / "sentence_bert_config.json"
    config = _read_json(where) or {}
    for key, value in config.items():
        if key in ("max_seq_length", "do_lower_case"):
            continue
        if key == "transformer_task" and value != "feature-extraction":
            raise SourceModelError(
                f"{where} has transformer_task={value!r}; ipex-embed quantize builds "
                "bi-encoders from a feature-extraction transformer only."
            )
        if key == "modality_config" and set(value or {}) - {"text"}:
            raise SourceModelError(
                f"{where} has modality_config for {sorted(value)}; only text models are built."
            )
        if key == "module_output_name" and value != "token_embeddings":
            raise SourceModelError(f"{where} has module_output_name={value!r}; only "
                                   "'token_embeddings' (the last hidden state) is exported.")
        if key in ("model_args", "model_kwargs", "config_args", "config_kwargs", "tokenizer_args",
                   "processor_kwargs") and set(value or {}) - {"model_max_length"}:
            raise SourceModelError(
                f"{where} passes {key}={value}, which ipex-embed quantize does not apply; the "
                "vectors could differ. Remove them if they are inert (e.g. a dtype), then retry."
            )
        if key not in ("transformer_task", "modality_config", "module_output_name", "model_args",
                       "model_kwargs", "config_args", "config_kwargs", "tokenizer_args",
                       "processor_kwargs"):
            raise SourceModelError(
                f"{where} has the setting {key!r}, which ipex-embeddings does not know; it may "
                "change the vectors, so the model is refused. Remove it if it is inert, then retry."
            )
    return config


def _max_seq_length(path: Path, config: dict, st_config: dict, override: int | None) -> int:
    """The longest input, where the source keeps it, as sentence-transformers 6.2 reads it:
    sentence_bert_config.json's max_seq_length, else the tokenizer's model_max_length (capped at
    max_position_embeddings); never more than the model's positions."""
    limit = int(config.get("max_position_embeddings") or 512)
    if str(config.get("model_type")) in ("roberta", "xlm-roberta", "camembert", "mpnet"):
        limit -= 2  # their position ids start after the padding index
    found = st_config.get("max_seq_length")
    for kwargs in ("processor_kwargs", "tokenizer_args"):
        found = found or (st_config.get(kwargs) or {}).get("model_max_length")
    tokenizer_config = _read_json(path / "tokenizer_config.json") or {}
    from_tokenizer = int(tokenizer_config.get("model_max_length") or NO_LIMIT)
    length = override or (int(found) if found else min(from_tokenizer, limit))
    if length > limit:
        raise SourceModelError(
            f"max_seq_length={length} exceeds the model's {limit} positions "
            "(config.json max_position_embeddings); pass --max-seq-length with a smaller one."
        )
    return length


def _prompts(path: Path) -> tuple[str, str]:
    """(query, document) prompts as sentence-transformers' encode_query/encode_document pick
    them; every other key of config_sentence_transformers.json is checked."""
    where = path / "config_sentence_transformers.json"
    config = _read_json(where) or {}
    unknown = sorted(set(config) - {"__version__", "prompts", "default_prompt_name",
                                    "similarity_fn_name", "model_type", "truncate_dim"})
    if unknown:
        raise SourceModelError(
            f"{where} has settings ipex-embeddings does not know ({unknown}); refused, as they "
            "may change the vectors. Remove them if they are inert, then retry."
        )
    if config.get("similarity_fn_name") not in (None, "cosine", "dot"):
        raise SourceModelError(
            f"{where} sets similarity_fn_name={config['similarity_fn_name']!r}; ipex-embeddings "
            "ranks by cosine or dot product only. Set it to 'cosine' if that suits the model."
        )
    prompts = config.get("prompts") or {}
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise SourceModelError(f"{where} names default_prompt_name={default!r}, which is not in "
                               "its prompts; fix the file or remove the key.")
    fallback = prompts[default] if default is not None else ""
    query = prompts.get("query", fallback)
    document = next((prompts[k] for k in DOCUMENT_PROMPT_NAMES if k in prompts), fallback)
    others = sorted(set(prompts) - {"query", *DOCUMENT_PROMPT_NAMES})
    if others:
        logger.warning("%s: the prompts %s are not used (ipex-embeddings encodes queries and "
                       "documents); pass --query-prompt/--document-prompt to use one.", where,
                       others)
    return query, document


def read_st_config(path: Path) -> dict[str, Any]:
    """The source folder's config_sentence_transformers.json, unchecked; {} when it has none.

    Raises:
        SourceModelError: the file is not valid JSON.
    """
    config = _read_json(path / "config_sentence_transformers.json")
    return config if isinstance(config, dict) else {}


def _truncate_dim(path: Path, dimension: int) -> int | None:
    """config_sentence_transformers.json's `truncate_dim` (the authors' Matryoshka size), checked
    to fit the model's `dimension`; recorded in the folder, where `Encoder` honours it."""
    where = path / "config_sentence_transformers.json"
    value = read_st_config(path).get("truncate_dim")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= dimension:
        raise SourceModelError(
            f"{where} sets truncate_dim={value!r}, but the model gives {dimension}-dimensional "
            f"vectors; set it to an int from 1 to {dimension}, or remove it for full size."
        )
    return value


def _check_kind(path: Path, config: dict) -> None:
    """Refuse cross-encoders and other heads: ipex-embed quantize builds bi-encoders."""
    st_type = (_read_json(path / "config_sentence_transformers.json") or {}).get("model_type")
    heads = [a for a in config.get("architectures") or [] if "For" in a and not a.endswith(
        ("ForMaskedLM", "ForPreTraining", "ForCausalLM"))]
    if st_type not in (None, "SentenceTransformer") or heads or "sentence_transformers" in config:
        what = ", ".join(heads) or st_type or "a sentence-transformers CrossEncoder"
        raise SourceModelError(
            f"{path} has a task head ({what}) and is not a cross-encoder ipex-embed builds: it "
            "builds bi-encoders (text -> vector; building this one would drop its head) and "
            "cross-encoders (*ForSequenceClassification with one or two labels, or a "
            "sentence-transformers CrossEncoder folder). Use an embedding model or a reranker."
        )


def check_code(path: Path, config: dict, trust_remote_code: bool) -> None:
    """Refuse a model whose config.json runs its own code (auto_map), unless trusted."""
    if config.get("auto_map") and not trust_remote_code:
        raise SourceModelError(
            f"{path}/config.json has auto_map: the model runs its own Python code "
            f"({', '.join(sorted(config['auto_map']))}), which transformers' built-in "
            f"{config.get('model_type')!r} class would replace with randomly initialised layers. "
            "Read that code, then pass --trust-remote-code to run it."
        )


def recorded_id(model: str) -> str:
    """The source's name in the model JSON, which is published: the demo's Hub id, a Hub id or a
    relative folder as given, an absolute (or ~) folder by its name only."""
    if model == DEMO_MODEL:
        return DEMO_MODEL_ID
    path = Path(model).expanduser()
    return path.name if path.is_absolute() else model


def _check_files(path: Path, config: Any, trust_remote_code: bool) -> str:
    """The model type, once the folder is known to hold a supported, safe, bi-encoder model."""
    if not isinstance(config, dict):
        raise SourceModelError(
            f"{path} has no config.json, so it is not a Hugging Face transformers model."
        )
    model_type = str(config.get("model_type", ""))
    _check_kind(path, config)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise SourceModelError(
            f"{path} is a {model_type or 'unknown'!r} model, not a supported text encoder "
            f"({', '.join(sorted(SUPPORTED_MODEL_TYPES))})."
        )
    check_code(path, config, trust_remote_code)
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
    return model_type


def _pooling(path: Path, override: str | None) -> tuple[str, bool, bool]:
    """(mode, include_prompt, normalize) from modules.json and the Pooling config."""
    modules = _read_json(path / "modules.json") or []
    pooling_dir, normalize = _check_modules(path, modules)
    if pooling_dir is not None:
        return (*_read_pooling(path, pooling_dir, override), normalize)
    if override is None:
        raise SourceModelError(
            f"{path} does not say how to pool (no sentence-transformers 1_Pooling/config.json). "
            "Pass --pooling cls (BGE-style models), --pooling mean (MiniLM, E5, GTE) or "
            "--pooling lasttoken (decoders such as Qwen3-Embedding), as the model's card says."
        )
    return override, True, normalize


def inspect_source(
    model: str,
    *,
    revision: str | None = None,
    pooling: str | None = None,
    max_seq_length: int | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    trust_remote_code: bool = False,
) -> SourceModel:
    """Find the model and read its settings; options given here override its files.

    Raises:
        SourceModelError: naming the file and key that cannot be honoured, and the way out.
    """
    if pooling is not None and pooling not in POOLING_MODES:
        raise SourceModelError(f"--pooling {pooling} is not one of {', '.join(POOLING_MODES)}.")
    path, resolved_revision = local_copy(model, revision)
    config = _read_json(path / "config.json")
    model_type = _check_files(path, config, trust_remote_code)
    mode, include_prompt, normalize = _pooling(path, pooling)
    st_config = _check_transformer_config(path)
    found_query, found_document = _prompts(path)
    hidden = int(config.get("hidden_size") or config.get("dim") or 0)
    dense = _dense_layers(path, mode, hidden)
    dimension = dense[-1].out_features if dense else hidden
    return SourceModel(
        path=path,
        model_id=recorded_id(model),
        revision=resolved_revision,
        model_type=model_type,
        pooling=mode,
        normalize=normalize,
        max_seq_length=_max_seq_length(path, config, st_config, max_seq_length),
        query_prompt=found_query if query_prompt is None else query_prompt,
        document_prompt=found_document if document_prompt is None else document_prompt,
        dimension=dimension,
        include_prompt=include_prompt,
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        trust_remote_code=trust_remote_code,
        dense=dense,
        truncate_dim=_truncate_dim(path, dimension),
    )


def source_tokenizer(source: SourceModel) -> Any:
    """The `tokenizers.Tokenizer` sentence-transformers runs for the source: transformers'
    `AutoTokenizer` backend (transformers 5 may rebuild the pipeline tokenizer.json describes),
    lowercasing first when do_lower_case says so, padding with the tokenizer's own pad id."""
    from tokenizers.normalizers import Lowercase
    from tokenizers.normalizers import Sequence as NormalizerSequence
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(source.path, trust_remote_code=source.trust_remote_code)
    tokenizer = hf.backend_tokenizer
    normalizer = tokenizer.normalizer
    lowercases = "Lowercase()" in repr(normalizer) or "lowercase=True" in repr(normalizer)
    if source.do_lower_case and not lowercases:
        tokenizer.normalizer = NormalizerSequence(
            [Lowercase(), *([normalizer] if normalizer is not None else [])]
        )
    tokenizer.no_truncation()
    tokenizer.no_padding()
    _check_fidelity(source, hf, tokenizer)
    tokenizer.no_truncation()  # transformers' call sets its own on the shared backend
    if hf.pad_token_id is not None:
        tokenizer.enable_padding(pad_id=hf.pad_token_id, pad_token=hf.pad_token)
    else:
        tokenizer.no_padding()
    return tokenizer


FIDELITY_TEXTS = ["", " ", " a ", "  leading", "trailing  ", "\ttab\n", "Héllo wörld", "日本語",
                  "emoji 🙂", "UPPER lower", "a-b_c.d", "don't"]
"""Texts where tokenizer pipelines tend to differ (whitespace, the empty text, unicode)."""


def _check_fidelity(source: SourceModel, hf: Any, tokenizer: Any) -> None:
    """The saved tokenizer must give transformers' ids, prompts included, or the build stops."""
    prompts = {"", source.query_prompt, source.document_prompt}
    texts = [p + t for p in sorted(prompts) for t in FIDELITY_TEXTS]
    expected = hf(texts, add_special_tokens=True)["input_ids"]
    found = [e.ids for e in tokenizer.encode_batch(texts)]
    for text, want, got in zip(texts, expected, found):
        if list(want) != got:
            raise SourceModelError(
                f"The tokenizer of {source.path} gives {got} for {text!r} where transformers "
                f"gives {list(want)}; the model would see other tokens than in "
                "sentence-transformers. Re-save the tokenizer with transformers' "
                "AutoTokenizer.from_pretrained(path).save_pretrained(path), then retry."
            )
