"""`Encoder.load`'s options as pydantic fields, for the LangChain and LlamaIndex adapters, and
the names users bring from sentence-transformers, langchain-huggingface and LlamaIndex's
`HuggingFaceEmbedding` (`accept_foreign_names`: mapped to ours, or refused naming ours).

Adapter-only: it needs pydantic, which both frameworks bring and the core runtime does not.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, Field, create_model, model_validator

from .batching import first_invalid_text
from .config import closest
from .cross_encoder import CrossEncoder
from .encoder import Encoder
from .errors import InvalidTextError
from .folder import check_model_folder, resolve_model_folder
from .load_options import LOAD_OPTIONS, load_kwargs
from .output import OUTPUT_PRECISIONS

__all__ = [
    "FOREIGN_RENAMES", "ForeignNames", "accept_foreign_names", "load_encoder",
    "check_candidates", "load_options_model", "load_reranker", "shared_model",
]

HUB_OPTIONS = ("revision", "cache_dir", "token")
PROMPT_OPTIONS = ("query_prompt", "document_prompt")
OUTPUT_OPTIONS = ("truncate_dim", "output_precision")
logger = logging.getLogger(__name__)


FOREIGN_RENAMES: dict[str, tuple[str, ...]] = {
    "model": ("model_name", "model"),
    "model_name": ("model",),
    "normalize_embeddings": ("normalize",),
    "show_progress_bar": ("show_progress",),
    "batch_size": ("embed_batch_size", "batch_size"),
    "embed_batch_size": ("batch_size",),
    "cache_folder": ("cache_dir",),
    "query_instruction": ("query_prompt",),
    "text_instruction": ("document_prompt",),
    "query_prompt": ("query_instruction",),
    "document_prompt": ("text_instruction",),
}
"""A name from sentence-transformers, langchain-huggingface or LlamaIndex (or the other adapter)
-> the adapter fields it means, the first one the adapter has taking it."""
NESTED = {
    "model_kwargs": {"device", "revision", "token", "cache_folder", "truncate_dim"},
    "encode_kwargs": {"batch_size", "normalize_embeddings", "show_progress_bar", "precision",
                      "truncate_dim"},
}
"""The keys of langchain-huggingface's dict options that map to a field (the rest are refused)."""
_PROMPTS = "pass {query}= or {document}= (the text put before every query or document)"
_CORES = "one model already runs on every core; set threads= and streams= instead"
_ARRAYS = "{cls} returns lists of floats, as its framework expects; for numpy arrays use " \
    "ipex_embeddings.Encoder.encode"
REFUSED = {
    "prompt_name": "the prompts come from the model folder, and each call uses its own (the "
    "query prompt for a query, the document prompt for documents); to change them " + _PROMPTS,
    "prompt": _PROMPTS,
    "trust_remote_code": "no model code runs here (the folder is an OpenVINO IR); give "
    "--trust-remote-code to `ipex-embed quantize` when you build the folder",
    "max_length": "the longest input is fixed when the folder is built (max_seq_length); rebuild "
    'with `ipex-embed quantize MODEL --max-seq-length N`; truncation="error" refuses longer texts',
    "backend": 'the runtime is OpenVINO; engine= chooses what runs the model ("auto": the fastest '
    "measured for this CPU)",
    "multi_process": _CORES, "parallel_process": _CORES, "target_devices": _CORES,
    "convert_to_numpy": _ARRAYS, "convert_to_tensor": _ARRAYS,
    "query_encode_kwargs": "one set of encoding options serves queries and documents (put them "
    "in encode_kwargs or the fields), and the query prompt is added by the query call itself",
    "normalize_embeddings": "{cls} has no normalisation option (a bi-encoder's cosine uses "
    "normalised vectors, a cross-encoder gives scores)",
}
"""Names with no counterpart: why, and what to use instead."""
REFUSED["max_seq_length"] = REFUSED["max_length"]


class ForeignNames(BaseModel):
    """The base of every adapter's options: `accept_foreign_names` maps the names users bring
    from other libraries to the adapter's fields, or refuses them naming the field to use."""

    no_progress_hint: ClassVar[str] = "it draws no progress bar"
    """Why `show_progress_bar` is refused by an adapter without a `show_progress` field."""

    @model_validator(mode="before")
    @classmethod
    def map_foreign_names(cls, data: Any) -> Any:
        """`data` with foreign names mapped (see `accept_foreign_names`)."""
        if not isinstance(data, dict):
            return data
        return accept_foreign_names(cls, data)


def accept_foreign_names(cls: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """`data` (an adapter's keyword arguments) with the names of other libraries mapped to
    `cls`'s fields: `model`/`model_name`, `device="cpu"` (dropped), `normalize_embeddings`,
    `show_progress_bar`, `batch_size`/`embed_batch_size`, `cache_folder`, the prompt names of
    either framework, and the supported keys of `model_kwargs` and `encode_kwargs`.

    Raises:
        ValueError: a name with no counterpart, a device other than the CPU, or a name given
            twice with two values; each message names the field to use.
    """
    fields = _field_names(cls)
    data = dict(data)
    for nest, supported in NESTED.items():
        if nest not in data or nest in fields:
            continue
        inner = data.pop(nest)
        if not isinstance(inner, Mapping):
            raise ValueError(f"{nest} must be a dict, got {type(inner).__name__}.")
        for key, value in inner.items():
            where = f"{nest}[{key!r}]"
            if key not in supported and key not in REFUSED:
                raise ValueError(
                    f"{where} is not supported by {cls.__name__}: its {nest} takes "
                    f"{sorted(supported)}; set its options as fields instead."
                )
            _translate(cls, fields, data, key, value, where)
    for key in [k for k in data if k not in fields]:
        if key in FOREIGN_RENAMES or key in REFUSED or key == "device":
            _translate(cls, fields, data, key, data.pop(key), f"{key}=")
    _suggest_for_typos(cls, fields, data)
    return data


def _field_names(cls: type[BaseModel]) -> set[str]:
    names = set(cls.model_fields)
    return names | {f.alias for f in cls.model_fields.values() if f.alias}


def _translate(cls: type[BaseModel], fields: Collection[str], data: dict[str, Any], key: str,
               value: Any, where: str) -> None:
    """Put `key`'s value into `data` under the field it maps to, or raise why it cannot."""
    if key == "device":
        _check_device(cls, value, where)
        return
    target = next((f for f in FOREIGN_RENAMES.get(key, ()) if f in fields), None)
    if key == "precision" or (target is None and key in fields):
        target = "output_precision" if key == "precision" else key
    if target is None:
        raise ValueError(f"{where} is not supported by {cls.__name__}: {_why(cls, fields, key)}.")
    if target in ("model_name", "model") and not isinstance(value, str | os.PathLike):
        raise ValueError(
            f"{where} takes a model folder or Hub repo id here ({cls.__name__} loads it), got "
            f"{type(value).__name__}; pass {target}=\"path/or/user-name\"."
        )
    if target in ("model_name", "model"):
        value = os.fspath(value)
    if target in data and data[target] != value:
        raise ValueError(
            f"{where} and {target}= are both set, to {value!r} and {data[target]!r}; give "
            f"{target}= only."
        )
    data[target] = value


def _why(cls: type[BaseModel], fields: Collection[str], key: str) -> str:
    if key == "show_progress_bar":
        return getattr(cls, "no_progress_hint", ForeignNames.no_progress_hint)
    query, document = (("query_instruction", "text_instruction") if "query_instruction" in fields
                       else ("query_prompt", "document_prompt"))
    batch = "embed_batch_size" if "embed_batch_size" in fields else "batch_size"
    why = REFUSED.get(key, "it has no such option")
    return why.format(cls=cls.__name__, query=query, document=document, batch=batch)


def _check_device(cls: type[BaseModel], value: Any, where: str) -> None:
    if str(value).strip().lower() != "cpu":  # str(): a torch.device too
        raise ValueError(
            f"{where} is {str(value)!r}, but {cls.__name__} runs on the CPU (OpenVINO int8, on "
            'the cores this process may use): remove device=, or pass device="cpu"; threads= '
            "limits the cores."
        )


def _suggest_for_typos(cls: type[BaseModel], fields: set[str], data: dict[str, Any]) -> None:
    """A misspelt option fails naming the closest field, where pydantic would only say that
    extra inputs are not permitted."""
    if cls.model_config.get("extra") != "forbid":
        return
    for key in data:
        match = None if key in fields else closest(key, sorted(fields))
        if match is not None:
            raise ValueError(
                f"{cls.__name__} has no option {key!r} (did you mean {match!r}?); its options "
                "are its fields (see the class's docstring)."
            )


def load_options_model(name: str, rename: Mapping[str, str] | None = None) -> type[BaseModel]:
    """A pydantic base class with one field per option of `LOAD_OPTIONS`.

    An adapter class inherits it, so it takes every option of `Encoder.load`, typed and
    documented, with the core's defaults. `rename` maps an option to the adapter's field name.
    """
    rename = rename or {}
    fields: dict[str, Any] = {}
    for option in LOAD_OPTIONS:
        field = Field(
            default=option.default,
            description=option.doc,
            gt=0 if option.positive else None,
            repr=not option.secret,
            exclude=option.secret,
        )
        field_name = rename.get(option.name, option.name)
        annotation = option.annotation
        if option.text:  # else a bad prompt would be blamed on the first text it is put before
            annotation = Annotated[annotation, AfterValidator(_valid_text(field_name))]
        if option.name == "output_precision":
            annotation = Annotated[annotation, AfterValidator(_valid_output_precision)]
        fields[field_name] = (annotation, field)
    model = create_model(name, __base__=ForeignNames, **fields)
    model.__doc__ = "The options of `Encoder.load`, as fields (see ipex_embeddings.load_options)."
    return model


def _valid_output_precision(value: str | None) -> str | None:
    if value is not None and value not in OUTPUT_PRECISIONS:  # named as the user named it
        raise ValueError(
            f"output_precision={value!r} is not supported; use one of {OUTPUT_PRECISIONS} "
            '(these adapters take "float32" only: they return lists of floats).'
        )
    return value


def _valid_text(name: str) -> Any:
    def check(value: str | None) -> str | None:
        if value is not None and first_invalid_text([value]) is not None:
            raise InvalidTextError(name, value)
        return value

    return check


def load_encoder(
    model_name: str, adapter: BaseModel, rename: Mapping[str, str] | None = None
) -> Encoder:
    """`Encoder.load(model_name, ...)` with every load option taken from `adapter`'s fields.

    Raises:
        ModelFolderError: not a complete bi-encoder folder or Hub repo.
        ValueError: a bad load option, or an output precision other than float32 (see
            `float_output`).
    """
    folder, options = _folder_and_options(model_name, adapter, rename)
    check_model_folder(folder, Encoder.kind)
    return float_output(shared_model(Encoder, folder, options), model_name)


def _folder_and_options(model_name: str, adapter: BaseModel, rename: Mapping[str, str] | None
                        ) -> tuple[Path, dict[str, Any]]:
    """The local folder of `model_name` (a Hub repo is fetched with the adapter's revision,
    cache_dir and token) and the adapter's other load options."""
    options = load_kwargs(lambda name: getattr(adapter, name), rename)
    hub = {name: options.pop(name) for name in HUB_OPTIONS}
    return resolve_model_folder(model_name, **hub), options


_loaded: weakref.WeakValueDictionary[tuple, Encoder | CrossEncoder] = (
    weakref.WeakValueDictionary()
)
_loaded_lock = threading.Lock()


def shared_model(cls: type[Encoder] | type[CrossEncoder], folder: Path,
                 options: dict[str, Any]) -> Encoder | CrossEncoder:
    """`cls.load(folder, **options)`, or the model an adapter of this process already loaded
    with the same folder and options: an embedder and a reranker (or a LangChain and a
    LlamaIndex adapter) on one model share its memory and compiled kernels. Models are
    thread-safe; one is freed when no adapter holds it any more.
    """
    key = (cls.__name__, str(folder.resolve()), tuple(sorted(
        (name, str(value) if isinstance(value, Path) else value)
        for name, value in options.items())))
    with _loaded_lock:
        model = _loaded.get(key)
        if model is None:
            model = cls.load(folder, **options)
            _loaded[key] = model
        else:
            logger.info("%s: sharing the model another adapter loaded", folder)
        return model


def float_output(encoder: Encoder, model_name: str) -> Encoder:
    """`encoder`, once it is known to give float32 vectors: LangChain and LlamaIndex take lists
    of floats, and packed bits written as floats would be compared as numbers, wrongly.

    Raises:
        ValueError: its output precision (the load option or the folder's) is not "float32".
    """
    precision = encoder.config.output_precision
    if precision != "float32":
        raise ValueError(
            f"{model_name} would give {precision} vectors (output_precision), but LangChain and "
            "LlamaIndex take float lists, and packed bits read as floats would rank wrongly. "
            'Pass output_precision="float32" (truncate_dim still shortens the vectors), or use '
            f'Encoder.encode(texts, precision="{precision}") with a store for binary vectors.'
        )
    return encoder


def load_reranker(
    model_name: str, adapter: BaseModel, rename: Mapping[str, str] | None = None
) -> Encoder | CrossEncoder:
    """The model a reranker adapter scores with, chosen by the folder's kind: `Encoder.load`
    for a bi-encoder, `CrossEncoder.load` for a cross-encoder, with `adapter`'s load options.

    Raises:
        ModelFolderError: not a complete model folder or Hub repo.
        ValueError: a prompt, truncate_dim or output_precision is set for a cross-encoder (which
            reads the query and the text together, and gives scores), or a bi-encoder would not
            give float32 vectors (see `float_output`).
    """
    folder, options = _folder_and_options(model_name, adapter, rename)
    if check_model_folder(folder).kind == "bi-encoder":
        return float_output(shared_model(Encoder, folder, options), model_name)
    rename = rename or {}
    given = [rename.get(n, n) for n in PROMPT_OPTIONS if options.pop(n) is not None]
    if given:
        raise ValueError(
            f"{model_name} is a cross-encoder, which reads the query and each text together and "
            f"has no prompts; leave {given} unset."
        )
    sized = [n for n in OUTPUT_OPTIONS if options.pop(n) is not None]
    if sized:
        raise ValueError(
            f"{model_name} is a cross-encoder, which gives scores, not vectors; leave {sized} "
            "unset."
        )
    return shared_model(CrossEncoder, folder, options)


def check_candidates(items: object, item_type: type, *, call: str, plural: str, one_fix: str,
                     where: str, item_fix: str) -> None:
    """Refuse a text or a single `item_type` given where a reranker expects a list of them, and
    any entry of another type, naming the adapter's own fix.

    Args:
        call, plural, one_fix: "{call} takes a list of {plural}, got one X; wrap it: {one_fix}."
        where, item_fix: "{where}[i] is X, not a {item_type.__name__}; {item_fix}."

    Raises:
        TypeError: with that message.
    """
    if isinstance(items, (str, item_type)):
        raise TypeError(
            f"{call} takes a list of {plural}, got one {type(items).__name__}; wrap it: "
            f"{one_fix}."
        )
    for i, item in enumerate(items):  # type: ignore[attr-defined]
        if not isinstance(item, item_type):
            raise TypeError(
                f"{where}[{i}] is {type(item).__name__}, not a {item_type.__name__}; "
                f"{item_fix}."
            )
