"""An HTTP server for the runtime's models: OpenAI-, TEI- and Cohere-compatible routes.

`create_app(ServeSettings(model=...))` is a FastAPI app (run it with uvicorn, or with
`ipex-embed serve`); concurrent requests are coalesced into one model call (`batcher`). Needs the
`serve` extra: `pip install "ipex-embeddings[serve]"`. See docs/serving.md.
"""

from __future__ import annotations

from .app import create_app, create_app_from_env
from .runner import run_server
from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "create_app_from_env", "run_server"]
