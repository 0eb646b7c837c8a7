"""text-embeddings-inference's `POST /embed` and `POST /rerank`."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from .responses import json_response
from .schemas import TeiEmbedRequest, TeiRerankRequest, check_query, check_texts
from .state import ServerState

__all__ = ["router"]

router = APIRouter()


def _state(request: Request) -> ServerState:
    return request.app.state.serve


@router.post("/embed")
async def embed(body: TeiEmbedRequest, request: Request) -> Response:
    """Embed `inputs`: a list of float vectors, one per input, in order."""
    state = _state(request)
    settings = state.settings
    texts = check_texts(body.inputs, "inputs", settings.max_inputs, settings.max_chars)
    vectors, _ = await state.embed(
        texts, "inputs", kind=body.prompt_name or "document", truncate_dim=None,
        normalize=body.normalize, truncation="warn" if body.truncate else "error")
    return json_response(vectors.tolist())


@router.post("/rerank")
async def rerank(body: TeiRerankRequest, request: Request) -> Response:
    """Rerank `texts` for `query`: `[{"index", "score", "text"?}]`, best first (ties keep input
    order)."""
    state = _state(request)
    settings = state.settings
    query = check_query(body.query, settings.max_chars)
    texts = check_texts(body.texts, "texts", settings.max_inputs, settings.max_chars,
                        single=False)
    scores = await state.rerank(query, texts, "texts", raw=body.raw_scores,
                                truncation="warn" if body.truncate else "error")
    results = []
    for i in np.argsort(-scores, kind="stable"):
        result: dict[str, Any] = {"index": int(i), "score": float(scores[i])}
        if body.return_text:
            result["text"] = texts[i]
        results.append(result)
    return json_response(results)
