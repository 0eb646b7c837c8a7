"""`Encoder.load`'s options as pydantic fields, for the LangChain and LlamaIndex adapters.

Adapter-only: it needs pydantic, which both frameworks bring and the core runtime does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, create_model

from .batching import first_invalid_text
from .cross_encoder import CrossEncoder
from .encoder import Encoder
from .errors import InvalidTextError
from .folder import check_model_folder, resolve_model_folder
from .load_options import LOAD_OPTIONS, load_kwargs

__all__ = ["load_encoder", "load_options_model", "load_reranker"]

HUB_OPTIONS = ("revision", "cache_dir", "token")
PROMPT_OPTIONS = ("query_prompt", "document_prompt")
OUTPUT_OPTIONS = ("truncate_dim", "output_precision")


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
        name = rename.get(option.name, option.name)
        annotation = option.annotation
        if option.text:  # else a bad prompt would be blamed on the first text it is put before
            annotation = Annotated[annotation, AfterValidator(_valid_text(name))]
        fields[name] = (annotation, field)
    model = create_model(name, __base__=BaseModel, **fields)
    model.__doc__ = "The options of `Encoder.load`, as fields (see ipex_embeddings.load_options)."
    return model


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
    encoder = Encoder.load(model_name, **load_kwargs(lambda name: getattr(adapter, name), rename))
    return float_output(encoder, model_name)


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
    options = load_kwargs(lambda name: getattr(adapter, name), rename)
    hub = {name: options.pop(name) for name in HUB_OPTIONS}
    folder = resolve_model_folder(model_name, **hub)
    if check_model_folder(folder).kind == "bi-encoder":
        return float_output(Encoder.load(folder, **options), model_name)
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
    return CrossEncoder.load(folder, **options)
