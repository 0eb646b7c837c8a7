"""What one server runs and its limits: `ServeSettings`, checked once, passed to `create_app`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

__all__ = ["ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """The models one server process loads and the limits it enforces.

    Every limit counts texts (a rerank request counts its documents); see docs/serving.md.
    """

    model: str | None
    """The embedding model folder or Hub id; a cross-encoder folder here serves reranking only.
    None: rerank only, with `reranker`."""
    reranker: str | None = None
    """The rerank model: a cross-encoder folder, or a bi-encoder folder (cosine of the query and
    document vectors). None: rerank on `model` if it is a cross-encoder, else no rerank routes."""
    model_name: str | None = None
    """The embedding model's id in `/v1/models` and the `model` field; None: the folder's
    `source_model`, else its folder name."""
    reranker_name: str | None = None
    """The rerank model's id, as `model_name`."""
    aliases: tuple[str, ...] = ()
    """More ids accepted for the embedding model (e.g. "text-embedding-3-small" for clients
    that only accept OpenAI's names, as LlamaIndex's `OpenAIEmbedding`)."""
    api_key: str | None = None
    """When set, every route but /health and /metrics needs `Authorization: Bearer <key>`."""
    max_batch: int = 256
    """Most texts coalesced into one model call (a larger request runs alone). Large, since the
    encoder sorts a call's texts into width buckets: 32 clients sending 8 documents each got
    107 docs/s at 256 and 71 at 32 (benchmarks/results/serve-load-amx)."""
    max_wait_ms: float = 0.0
    """Longest a text waits for batch-mates when the model is idle; 0: it runs at once (texts
    arriving while a call runs still form the next call together)."""
    max_queue: int = 8192
    """Most texts queued or running per model; beyond it requests get 429 with Retry-After."""
    max_inputs: int = 2048
    """Most texts in one request (OpenAI's own limit is 2048)."""
    max_chars: int = 100_000
    """Most characters in one text."""
    threads: int | None = None
    """Inference threads per model; None: every core this process may use."""

    def check(self) -> ServeSettings:
        """Return self, or raise a ValueError naming the bad setting and the fix."""
        if self.model is None and self.reranker is None:
            raise ValueError("Give a model to serve, a reranker, or both.")
        for name in ("max_batch", "max_queue", "max_inputs", "max_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
        if not self.max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {self.max_wait_ms!r}.")
        if self.max_queue < self.max_inputs:
            raise ValueError(
                f"max_queue={self.max_queue} is below max_inputs={self.max_inputs}, so a full "
                "request could never be queued; raise max_queue or lower max_inputs."
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads!r}.")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key is empty; give a key, or none to serve without one.")
        return self

    def to_json(self) -> str:
        """These settings as JSON (for worker processes, which read them from the environment)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        """Settings written by `to_json`, checked."""
        values = json.loads(text)
        values["aliases"] = tuple(values.get("aliases", ()))
        return cls(**values).check()
