"""Errors the server answers with: one JSON shape for every route, naming the field and the fix.

Body: `{"error": {"message", "type", "code", "param", "field", "index", "fix"}}`; `message`,
`type`, `code` and `param` are OpenAI's (its clients show `message`), `field` is the request field
at fault, `index` the position of the bad item in it (or null) and `fix` what to send instead.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidTextError, TruncationError

__all__ = [
    "ApiError", "NoModelError", "NotReadyError", "QueueFullError", "from_runtime_error",
    "invalid_text", "json_type",
]

INVALID_REQUEST = "invalid_request_error"


class ApiError(Exception):
    """A request the server refuses; `status` is the HTTP status (a 4xx for bad input)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        fix: str | None = None,
        code: str = "invalid_request",
        kind: str = INVALID_REQUEST,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.index = index
        self.fix = fix
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body: `{"error": {...}}`."""
        param = self.field if self.index is None else f"{self.field}[{self.index}]"
        message = self.message if not self.fix else f"{self.message} {self.fix}"
        return {"error": {
            "message": message, "type": self.kind, "code": self.code, "param": param,
            "field": self.field, "index": self.index, "fix": self.fix,
        }}


class QueueFullError(ApiError):
    """429: the model's queue holds `max_queue` texts; retry after `Retry-After` seconds."""

    def __init__(self, model: str, pending: int, limit: int) -> None:
        super().__init__(
            429,
            f"The queue of {model} is full ({pending} of {limit} texts waiting or running).",
            fix="Retry after the Retry-After header's seconds, or send fewer texts at once.",
            code="queue_full", kind="rate_limit_error", headers={"Retry-After": "1"},
        )


class NotReadyError(ApiError):
    """503: the models are still loading (or failed to)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            503, detail, fix="Wait until GET /health answers 200.", code="not_ready",
            kind="server_error", headers={"Retry-After": "1"},
        )


class NoModelError(ApiError):
    """404: this server was started without a model for the route."""

    def __init__(self, what: str, option: str) -> None:
        super().__init__(
            404, f"This server has no {what}.", fix=f"Start it with {option}.",
            code="model_not_loaded",
        )


_INDEX = re.compile(r"\[(\d+)\](?:\[(\d+)\])?")


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type ("number", "array", ...), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def invalid_text(field: str, index: int | None) -> ApiError:
    """The 400 for a text holding a lone surrogate (`field[index]`, or `field` for one text)."""
    where = field if index is None else f"{field}[{index}]"
    return ApiError(
        400, f"{where} is not valid text: it holds a lone surrogate, which is not UTF-8.",
        field=field, index=index, code="invalid_text",
        fix='Clean it first, e.g. text.encode("utf-16", "surrogatepass").decode("utf-16", '
        '"replace"), or drop the text.',
    )


def from_runtime_error(err: Exception, field: str, query_field: str = "query") -> ApiError | None:
    """The 400 for an error the runtime raised on one request's texts, else None.

    `field` names the request's list of texts; a runtime index `texts[i]` or `pairs[i][1]` becomes
    `field[i]`, and `pairs[i][0]` becomes `query_field` (a rerank request's one query).
    """
    if isinstance(err, InvalidTextError):
        found = _INDEX.search(err.where)
        index = int(found.group(1)) if found else None
        part = found.group(2) if found else None
        return invalid_text(query_field, None) if part == "0" else invalid_text(field, index)
    if isinstance(err, TruncationError):
        shown = err.indices[:20]
        return ApiError(
            400, f"{len(err.indices)} text(s) of {field} exceed the model's "
            f"max_seq_length={err.max_seq_length} tokens (indices: {shown}).",
            field=field, index=err.indices[0], code="text_too_long",
            fix='Split them into shorter chunks, or send "truncate": true to embed only their '
            "first tokens.",
        )
    if isinstance(err, ValueError) and "alone fills max_seq_length" in str(err):
        return ApiError(400, f"The {query_field} is too long: {err}", field=query_field,
                        code="text_too_long", fix="Shorten the query.")
    return None
