"""The FastAPI app: routes, API key, metrics, health, and one JSON shape for every error.

`create_app(settings)` returns an ASGI app that loads its models in a worker thread once it
starts (GET /health: 503 until they are loaded and warmed, then 200). Run it with uvicorn, as
`ipex-embed serve` does; uvicorn's graceful shutdown (SIGTERM) lets requests in flight finish
before the batchers stop. This module needs only the runtime and the `serve` extra (FastAPI,
uvicorn, prometheus-client): no torch, no builder.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ..core import TruncationWarning
from . import openai_routes, tei_routes
from .errors import ApiError
from .settings import ServeSettings
from .state import ServerState

__all__ = ["SETTINGS_ENV", "create_app", "create_app_from_env", "quiet_truncation_warnings"]

logger = logging.getLogger(__name__)

SETTINGS_ENV = "IPEX_EMBED_SERVE_SETTINGS"
"""Environment variable holding `ServeSettings.to_json()`, for `create_app_from_env` (the
factory each uvicorn worker process calls)."""
OPEN_PATHS = frozenset({"/health", "/metrics"})
"""Routes that need no API key (probes and scrapers)."""


def create_app(settings: ServeSettings,
               on_load_error: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The server for `settings` (checked here).

    Args:
        settings: the models and limits.
        on_load_error: called (from the event loop) when the models fail to load; /health then
            answers 503 with the error. The CLI passes one that stops the server with exit 1.

    Raises:
        ValueError: a bad setting.
    """
    state = ServerState(settings.check(), on_load_error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.get_running_loop().create_task(state.load())
        try:
            yield
        finally:
            await asyncio.gather(loading, return_exceptions=True)
            await state.stop()

    app = FastAPI(title="ipex-embeddings", version=__version__, lifespan=lifespan)
    app.state.serve = state
    app.include_router(openai_routes.router)
    app.include_router(tei_routes.router)
    _add_handlers(app)
    _add_middleware(app, state)
    _add_probes(app, state)
    return app


def create_app_from_env() -> FastAPI:
    """`create_app` with the settings in `$IPEX_EMBED_SERVE_SETTINGS` (for uvicorn workers);
    a failed load ends the worker process with exit status 1."""
    settings = ServeSettings.from_json(os.environ[SETTINGS_ENV])
    quiet_truncation_warnings()
    return create_app(settings, on_load_error=lambda err: os._exit(1))


def quiet_truncation_warnings() -> None:
    """Keep the runtime's `TruncationWarning` out of a server process's log: each coalesced
    call would warn with indices into the call, not the request, and advice (`truncation=
    "error"`) an HTTP client cannot take; clients choose with the request's `truncate` field."""
    warnings.filterwarnings("ignore", category=TruncationWarning)


def _error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def validation_error(exc: RequestValidationError) -> ApiError:
    """The 422 for pydantic's first complaint about a body: the field, the index, the fix."""
    first: dict[str, Any] = exc.errors()[0]
    loc = [part for part in first.get("loc", ()) if part != "body"]
    field = str(loc[0]) if loc else "body"
    index = next((part for part in loc[1:] if isinstance(part, int)), None)
    kind = first.get("type", "")
    if kind == "json_invalid":
        return ApiError(422, "The body is not valid JSON.", field="body", code="invalid_json",
                        fix="Send a JSON object with Content-Type: application/json.")
    if kind == "extra_forbidden":
        return ApiError(422, f"{field} is not a field of this request.", field=field,
                        code="unknown_field",
                        fix="Remove it, or check its spelling (docs/serving.md lists the fields).")
    if kind == "missing":
        return ApiError(422, f"{field} is missing.", field=field, code="missing_field",
                        fix=f"Send {field}.")
    return ApiError(422, f"{field}: {first.get('msg', 'invalid')}.", field=field, index=index,
                    code="invalid_value", fix="Send a value of the documented type.")


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error_response(err)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(validation_error(exc))


def _authorized(request: Request, key: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode("utf-8"), key.encode("utf-8"))


def _add_middleware(app: FastAPI, state: ServerState) -> None:
    key = state.settings.api_key
    metrics = state.metrics
    unauthorized = ApiError(401, "Missing or wrong API key.", field="Authorization",
                            code="invalid_api_key", kind="authentication_error",
                            fix="Send the header Authorization: Bearer <key>.")

    @app.middleware("http")
    async def count_and_guard(request: Request,
                              call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            if key is not None and request.url.path not in OPEN_PATHS and not _authorized(
                    request, key):
                response: Response = _error_response(unauthorized)
            else:
                response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            label = getattr(route, "path", "unmatched")
            metrics.requests.labels(label, str(status)).inc()
            metrics.latency.labels(label).observe(time.perf_counter() - started)
            if status >= 500 and status != 503:
                logger.warning("%s %s answered %d.", request.method, request.url.path, status)


def _add_probes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health")
    async def health() -> JSONResponse:
        """200 `{"status": "ok"}` once the models are loaded and warmed; 503 before (or after
        a failed load, with the error)."""
        if state.models is not None:
            return JSONResponse({"status": "ok"})
        status = "failed" if state.error else "loading"
        return JSONResponse({"status": status, "error": state.error}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.get("/metrics")
    async def metrics() -> Response:
        """The Prometheus text exposition (see `Metrics`)."""
        return Response(state.metrics.render(), media_type=state.metrics.content_type)
