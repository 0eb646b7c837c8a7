"""OpenAI's `POST /v1/embeddings` and `GET /v1/models`, and Cohere/Jina's `POST /v1/rerank`."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from .responses import json_response
from .schemas import (
    CohereRerankRequest,
    EmbeddingRequest,
    check_dimensions,
    check_input_type,
    check_model,
    check_query,
    check_texts,
    check_top_n,
)
from .state import ServerState

__all__ = ["encode_base64", "router"]

router = APIRouter()


def encode_base64(vector: np.ndarray) -> str:
    """A vector as OpenAI sends `encoding_format="base64"`: little-endian float32 bytes."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _state(request: Request) -> ServerState:
    return request.app.state.serve


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    """Embed `input`: `{"object": "list", "data": [{"object": "embedding", "index": i,
    "embedding": [float] | base64}], "model", "usage": {"prompt_tokens", "total_tokens"}}`."""
    state = _state(request)
    settings = state.settings
    model = check_model(body.model, state.embedding_names())
    texts = check_texts(body.input, "input", settings.max_inputs, settings.max_chars)
    dimension = state.served().dimension
    assert dimension is not None
    truncate_dim = check_dimensions(body.dimensions, dimension)
    kind = check_input_type(body.input_type)
    vectors, tokens = await state.embed(
        texts, "input", kind=kind, truncate_dim=truncate_dim, normalize=None,
        truncation="warn" if body.truncate else "error")
    if body.encoding_format == "base64":
        rows: list[Any] = [encode_base64(vector) for vector in vectors]
    else:
        rows = vectors.tolist()
    used = int(tokens.sum())
    return json_response({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in
                 enumerate(rows)],
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    })


@router.get("/v1/models")
async def models(request: Request) -> Response:
    """The ids this server answers to: `{"object": "list", "data": [{"id", "object": "model",
    "created", "owned_by"}]}` (embedding ids first, aliases included)."""
    served = _state(request).served()
    ids = dict.fromkeys([*served.embedding_names, *served.rerank_names])
    return json_response({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "ipex-embeddings"}
        for name in ids
    ]})


@router.post("/v1/rerank")
async def cohere_rerank(body: CohereRerankRequest, request: Request) -> Response:
    """Rerank `documents` for `query`: `{"model", "results": [{"index", "relevance_score",
    "document"?: {"text"}}]}`, best first (ties keep input order), at most `top_n`."""
    state = _state(request)
    settings = state.settings
    model = check_model(body.model, state.rerank_names())
    query = check_query(body.query, settings.max_chars)
    texts = check_texts(body.documents, "documents", settings.max_inputs, settings.max_chars,
                        single=False, objects=True)
    top_n = check_top_n(body.top_n)
    scores = await state.rerank(query, texts, "documents", raw=False,
                                truncation="warn" if body.truncate else "error")
    order = np.argsort(-scores, kind="stable")[:top_n]
    results = []
    for i in order:
        result: dict[str, Any] = {"index": int(i), "relevance_score": float(scores[i])}
        if body.return_documents:
            result["document"] = {"text": texts[i]}
        results.append(result)
    return json_response({"model": model, "results": results})
