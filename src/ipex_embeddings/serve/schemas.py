"""Request bodies and their checks: every bad field is a 4xx naming the field, index and fix.

Text fields are typed `Any` in the pydantic models and checked here, so a wrong item is named by
its index with a message a person can act on (pydantic's union errors name neither). A field not
listed is refused (422), so a misspelt option fails loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .errors import ApiError, json_type

__all__ = [
    "CohereRerankRequest", "EmbeddingRequest", "TeiEmbedRequest", "TeiRerankRequest",
    "check_dimensions", "check_input_type", "check_model", "check_texts", "check_top_n",
]

INPUT_TYPES = ("query", "document")


class Strict(BaseModel):
    """Refuse unknown fields."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class EmbeddingRequest(Strict):
    """OpenAI's `POST /v1/embeddings`, plus `input_type` and `truncate`."""

    input: Any
    """A string or a list of strings (token arrays are refused: send text)."""
    model: str | None = None
    """One of GET /v1/models' ids; None: the embedding model."""
    dimensions: Any = None
    """Keep the first `dimensions` dimensions (Matryoshka), re-normalised; None: full size."""
    encoding_format: Literal["float", "base64"] = "float"
    """"base64": each vector as little-endian float32 bytes, base64-encoded (as OpenAI)."""
    input_type: Any = "document"
    """Extra: "query" or "document", which of the model's prompts goes before each text."""
    truncate: bool = True
    """Extra: embed the first max_seq_length tokens of longer texts (True), or refuse them."""
    user: str | None = None
    """OpenAI's end-user id; accepted and ignored."""


class TeiEmbedRequest(Strict):
    """text-embeddings-inference's `POST /embed`."""

    inputs: Any
    normalize: bool = True
    truncate: bool = False
    """TEI's default: a text over the model's limit is refused (True: embed its first tokens)."""
    truncation_direction: Literal["right", "Right"] = "right"
    prompt_name: Literal["query", "document"] | None = None
    """The prompt to put before each text; None: the document prompt."""


class TeiRerankRequest(Strict):
    """text-embeddings-inference's `POST /rerank`."""

    query: Any
    texts: Any
    return_text: bool = False
    raw_scores: bool = False
    """Cross-encoder: the logits, without the activation (a bi-encoder's cosine is raw)."""
    truncate: bool = False
    truncation_direction: Literal["right", "Right"] = "right"


class CohereRerankRequest(Strict):
    """Cohere's and Jina's `POST /v1/rerank`."""

    query: Any
    documents: Any
    """Strings, or objects {"text": str}."""
    model: str | None = None
    top_n: Any = None
    return_documents: bool = False
    truncate: bool = True
    """Extra: cut over-long documents (True, as Cohere does), or refuse them."""


def check_texts(value: Any, field: str, max_inputs: int, max_chars: int,
                *, single: bool = True, objects: bool = False) -> list[str]:
    """`value` as a non-empty list of at most `max_inputs` strings of at most `max_chars`
    characters; `single`: a lone string is one text; `objects`: {"text": str} items too.

    Raises:
        ApiError: 422 naming `field` (and the index of a bad item) and the fix.
    """
    if single and isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ApiError(422, f"{field} is {json_type(value)}.", field=field, code="invalid_type",
                       fix=f"Send {field} as {'a string or ' if single else ''}a list of strings.")
    if not value:
        raise ApiError(422, f"{field} is empty.", field=field, code="empty",
                       fix="Send at least one text.")
    if len(value) > max_inputs:
        raise ApiError(422, f"{field} holds {len(value)} texts; this server takes at most "
                       f"{max_inputs} per request.", field=field, code="too_many_inputs",
                       fix="Split them over several requests (or start the server with a "
                       "larger --max-inputs).")
    texts = []
    for i, item in enumerate(value):
        if objects and isinstance(item, dict) and set(item) == {"text"}:
            item = item["text"]
        texts.append(_check_text(item, field, i, max_chars))
    return texts


def _check_text(item: Any, field: str, index: int | None, max_chars: int) -> str:
    where = field if index is None else f"{field}[{index}]"
    if not isinstance(item, str):
        tokens = isinstance(item, int | list) and not isinstance(item, bool)
        fix = ("Send text: token arrays are not supported (LangChain: "
               "check_embedding_ctx_length=False)." if tokens else
               'Send every text as a string ("" for an empty one).')
        raise ApiError(422, f"{where} is {json_type(item)}, not a string.", field=field,
                       index=index, code="invalid_type", fix=fix)
    if len(item) > max_chars:
        raise ApiError(422, f"{where} has {len(item)} characters; this server takes at most "
                       f"{max_chars}.", field=field, index=index, code="text_too_long",
                       fix="Split it into shorter chunks (or start the server with a larger "
                       "--max-chars).")
    return item


def check_query(value: Any, max_chars: int) -> str:
    """A rerank request's query: one string of at most `max_chars` characters (else 422)."""
    return _check_text(value, "query", None, max_chars)


def check_dimensions(value: Any, dimension: int) -> int | None:
    """`dimensions` as an int in [1, dimension], or None (else 422 naming the range)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= dimension:
        raise ApiError(422, f"dimensions={value!r} is not valid for this model of dimension "
                       f"{dimension}.", field="dimensions", code="invalid_dimensions",
                       fix=f"Give a whole number from 1 to {dimension}, or leave it out.")
    return value


def check_input_type(value: Any) -> str:
    """`input_type` as "query" or "document" (else 422)."""
    if value not in INPUT_TYPES:
        raise ApiError(422, f"input_type={value!r} is not supported.", field="input_type",
                       code="invalid_input_type",
                       fix='Use "query" for search queries or "document" (the default) for '
                       "texts to be searched.")
    return value


def check_top_n(value: Any) -> int | None:
    """`top_n` as an int of at least 1, or None for all (else 422)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApiError(422, f"top_n={value!r} is not valid.", field="top_n",
                       code="invalid_top_n", fix="Give a whole number of at least 1, or leave "
                       "it out for every document.")
    return value


def check_model(value: str | None, names: tuple[str, ...]) -> str:
    """The requested model id (None: the first of `names`), or 400 listing the ids served."""
    if value is None:
        return names[0]
    if value not in names:
        raise ApiError(400, f"model={value!r} is not served here.", field="model",
                       code="model_not_found",
                       fix=f"Use one of {list(names)} (GET /v1/models), or leave it out.")
    return value
