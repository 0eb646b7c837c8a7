"""One server's state: its settings, metrics, and the models once loaded; the calls routes make.

The models load in a worker thread after the server starts listening, so `GET /health` can
answer 503 until they are loaded and warmed, then 200.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from ..batching import first_invalid_text
from .errors import NoModelError, NotReadyError, from_runtime_error, invalid_text
from .metrics import Metrics
from .models import ServedModels, load_models, serve_models
from .settings import ServeSettings

__all__ = ["ServerState"]

logger = logging.getLogger(__name__)


class ServerState:
    """The settings, the metrics and (once `load` has finished) the served models."""

    def __init__(self, settings: ServeSettings,
                 on_load_error: Callable[[BaseException], None] | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.models: ServedModels | None = None
        self.error: str | None = None
        self._on_load_error = on_load_error

    async def load(self) -> None:
        """Load and warm the models in a worker thread, then start their batchers. A failure is
        logged, kept for /health, and passed to `on_load_error` (the CLI stops the server)."""
        try:
            loaded = await asyncio.to_thread(load_models, self.settings)
            self.models = serve_models(self.settings, loaded, self.metrics)
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"
            logger.exception("Loading the models failed.")
            if self._on_load_error is not None:
                self._on_load_error(err)
            return
        logger.info("Ready: embedding %s, rerank %s.", list(self.models.embedding_names) or None,
                    list(self.models.rerank_names) or None)

    async def stop(self) -> None:
        """Stop the batchers (after uvicorn has drained the requests in flight)."""
        if self.models is not None:
            await asyncio.gather(*(b.stop() for b in self.models.batchers))

    def served(self) -> ServedModels:
        """The models, or NotReadyError (503) while loading or after a failed load."""
        if self.models is None:
            raise NotReadyError(f"The models failed to load ({self.error})." if self.error
                                else "The models are still loading.")
        return self.models

    def embedding_names(self) -> tuple[str, ...]:
        """The ids an embedding request may name, or NoModelError (404)."""
        names = self.served().embedding_names
        if not names:
            raise NoModelError("embedding model (its MODEL is a cross-encoder)",
                               "a bi-encoder MODEL")
        return names

    def rerank_names(self) -> tuple[str, ...]:
        """The ids a rerank request may name, or NoModelError (404)."""
        names = self.served().rerank_names
        if not names:
            raise NoModelError("reranker", "--reranker FOLDER (a cross-encoder or a bi-encoder)")
        return names

    async def embed(self, texts: list[str], field: str, *, kind: str, truncate_dim: int | None,
                    normalize: bool | None, truncation: str) -> tuple[np.ndarray, np.ndarray]:
        """float32 (n, d) vectors and int64 (n,) token counts of one request's texts.

        Raises:
            ApiError: 400 for a text the model refuses (named as `field[i]`), 429 queue full.
        """
        self.embedding_names()
        batcher = self.served().embed_batcher
        assert batcher is not None
        try:
            vectors, tokens = await batcher.submit(
                (kind, truncate_dim, normalize, truncation), texts)
        except Exception as err:
            _raise_as_api_error(err, field)
            raise
        return vectors, tokens

    async def rerank(self, query: str, texts: list[str], field: str, *, truncation: str,
                     raw: bool) -> np.ndarray:
        """float32 (n,) relevance scores of `texts` for `query`, in input order.

        Raises:
            ApiError: 400 for a text the model refuses, 429 queue full, 404 no reranker.
        """
        self.rerank_names()
        reranker = self.served().reranker
        assert reranker is not None
        if first_invalid_text([query]) is not None:  # else a bi-encoder names it texts[0]
            raise invalid_text("query", None)
        try:
            return await reranker.scores(query, texts, truncation=truncation, raw=raw)
        except Exception as err:
            _raise_as_api_error(err, field)
            raise


def _raise_as_api_error(err: Exception, field: str) -> None:
    """Raise the 400 for a runtime error about one request's texts; return for any other."""
    api_error = from_runtime_error(err, field)
    if api_error is not None:
        raise api_error from err
