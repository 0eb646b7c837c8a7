"""The served models: loading them, the calls the batchers run, and the two kinds of reranker.

- Embeddings run on an `Encoder`; a call is keyed by (kind, truncate_dim, normalize,
  truncation) and returns the float32 vectors and each text's token count.
- Reranking runs on a `CrossEncoder` (pairs from many requests in one `predict` call, keyed by
  (truncation, activation)), or on an `Encoder` (the query's and the documents' vectors through
  that encoder's embedding batcher; the score is their cosine).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..cross_encoder import CrossEncoder, folder_config
from ..encoder import Encoder
from .batcher import Batcher
from .metrics import Metrics
from .settings import ServeSettings

__all__ = [
    "BiEncoderReranker", "CrossEncoderReranker", "EmbedKey", "ServedModels", "embed_rows",
    "load_models", "model_id",
]

logger = logging.getLogger(__name__)

EmbedKey = tuple[str, "int | None", "bool | None", str]
"""(kind, truncate_dim, normalize, truncation) of an embedding call."""


def embed_rows(encoder: Encoder, key: Hashable, texts: list[str]) -> tuple[np.ndarray, ...]:
    """One coalesced embedding call: float32 (n, d) vectors and int64 (n,) token counts (the
    tokens the model read: prompt and special tokens included, after truncation)."""
    kind, truncate_dim, normalize, truncation = key  # type: ignore[misc]
    prompt = encoder.config.prompt(kind)
    encodings, _ = encoder.tokenizer.tokenize([prompt + t for t in texts] if prompt else texts)
    tokens = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    vectors = encoder.encode(texts, kind, truncation=truncation, normalize=normalize,
                             truncate_dim=truncate_dim)
    return vectors, tokens


def score_rows(model: CrossEncoder, key: Hashable, pairs: list[tuple[str, str]]
               ) -> tuple[np.ndarray, ...]:
    """One coalesced rerank call: float32 (n,) scores of (query, text) pairs."""
    truncation, activation = key  # type: ignore[misc]
    return (model.predict(pairs, truncation=truncation, activation=activation),)


class CrossEncoderReranker:
    """Scores with a cross-encoder; pairs of concurrent requests share `predict` calls."""

    kind = "cross-encoder"

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    async def scores(self, query: str, texts: list[str], *, truncation: str, raw: bool
                     ) -> np.ndarray:
        """float32 (len(texts),) scores; `raw`: the logits, without the activation."""
        key = (truncation, "none" if raw else None)
        (scores,) = await self.batcher.submit(key, [(query, text) for text in texts])
        return scores


class BiEncoderReranker:
    """Scores by the cosine of the query's vector (query prompt) and each document's vector
    (document prompt), through the encoder's embedding batcher."""

    kind = "bi-encoder"

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    async def scores(self, query: str, texts: list[str], *, truncation: str, raw: bool
                     ) -> np.ndarray:
        """float32 (len(texts),) cosines in [-1, 1]; `raw` changes nothing (no activation)."""
        (query_vector, _), (vectors, _) = await asyncio.gather(
            self.batcher.submit(("query", None, True, truncation), [query]),
            self.batcher.submit(("document", None, True, truncation), texts),
        )
        return (vectors @ query_vector[0]).astype(np.float32)


@dataclass
class ServedModels:
    """What one server runs: the embedding encoder and its batcher, and the reranker."""

    encoder: Encoder | None
    embed_batcher: Batcher | None
    reranker: CrossEncoderReranker | BiEncoderReranker | None
    batchers: list[Batcher]
    embedding_names: tuple[str, ...]
    """Ids accepted in an embedding request's `model` (the first is the model's own)."""
    rerank_names: tuple[str, ...]
    """Ids accepted in a rerank request's `model`."""
    dimension: int | None
    """The embedding model's full dimension."""


def model_id(path: str, given: str | None, model: Encoder | CrossEncoder) -> str:
    """The id a model is served as: `given`, else its folder's `source_model`, else the name."""
    return given or model.config.source_model or Path(path).name


def _load(path: str, threads: int | None) -> Encoder | CrossEncoder:
    kind = folder_config(path).kind
    cls: Any = CrossEncoder if kind == "cross-encoder" else Encoder
    model = cls.load(path, threads=threads)
    if kind == "cross-encoder":  # compile and run once, so /health means ready
        model.score("warm up", ["warm up"])
    else:
        model.encode(["warm up"])
    logger.info("Loaded %s (%s) on %s.", path, kind, model.info().get("engine", "?"))
    return model


def load_models(settings: ServeSettings) -> dict[str, Encoder | CrossEncoder]:
    """Load and warm the settings' models, each folder once, in a worker thread: path -> model.

    Raises:
        ModelFolderError, ValueError: a folder that cannot be loaded.
    """
    loaded: dict[str, Encoder | CrossEncoder] = {}
    for path in (settings.model, settings.reranker):
        if path is not None and path not in loaded:
            loaded[path] = _load(path, settings.threads)
    return loaded


def serve_models(settings: ServeSettings, loaded: dict[str, Encoder | CrossEncoder],
                 metrics: Metrics) -> ServedModels:
    """The batchers and reranker over loaded models (call on the event loop; starts them)."""
    batchers: dict[str, Batcher] = {}

    def batcher(path: str, model: Encoder | CrossEncoder) -> Batcher:
        if path not in batchers:
            run = score_rows if isinstance(model, CrossEncoder) else embed_rows
            given = settings.model_name if path == settings.model else settings.reranker_name
            batchers[path] = Batcher(
                model_id(path, given, model),  # its metrics' `model` label
                lambda key, items: run(model, key, items),  # type: ignore[arg-type]
                max_batch=settings.max_batch, max_wait_s=settings.max_wait_ms / 1000,
                max_queue=settings.max_queue, metrics=metrics)
        return batchers[path]

    main = loaded.get(settings.model) if settings.model else None
    encoder = main if isinstance(main, Encoder) else None
    embedding_names: tuple[str, ...] = ()
    if encoder is not None:
        own = model_id(settings.model, settings.model_name, encoder)
        embedding_names = (own, *settings.aliases)
    rerank_path = settings.reranker or (settings.model if isinstance(main, CrossEncoder) else None)
    reranker = None
    rerank_names: tuple[str, ...] = ()
    if rerank_path is not None:
        model = loaded[rerank_path]
        kind = CrossEncoderReranker if isinstance(model, CrossEncoder) else BiEncoderReranker
        reranker = kind(batcher(rerank_path, model))
        rerank_names = (model_id(rerank_path, settings.reranker_name, model),)
    embed_batcher = batcher(settings.model, encoder) if encoder is not None else None
    for each in batchers.values():
        each.start()
    dimension = encoder.config.dimension if encoder is not None else None
    return ServedModels(encoder, embed_batcher, reranker, list(batchers.values()),
                        embedding_names, rerank_names, dimension)
