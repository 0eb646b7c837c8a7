"""LlamaIndex adapters: `IPEXEmbedding` and the bi-encoder reranker `IPEXRerank`.

Both are thin: every batch of texts goes through one `Encoder` call; this module only maps
options, emits LlamaIndex's events and turns arrays into lists.
Needs `pip install "ipex-embeddings[llama-index]"`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import numpy as np

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
    from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
    from llama_index.core.callbacks import CBEventType, EventPayload
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "ipex_embeddings.llama_index needs llama-index-core, which is not installed. "
        'Install it with: pip install "ipex-embeddings[llama-index]"'
    ) from err

from .batching import check_text
from .encoder import Encoder
from .ranking import Fusion, cosine_scores, reciprocal_rank_fusion

__all__ = ["IPEXEmbedding", "IPEXRerank"]

LIST_HINT = " (get_text_embedding_batch embeds a list)"

dispatcher = get_dispatcher(__name__)


class IPEXEmbedding(BaseEmbedding):
    """Int8 OpenVINO text embeddings for LlamaIndex.

    Example:
        ```python
        from llama_index.core import Settings
        from ipex_embeddings.llama_index import IPEXEmbedding

        Settings.embed_model = IPEXEmbedding(model_name="./all-MiniLM-L6-v2-int8")
        ```
    """

    embed_batch_size: int = Field(
        default=32, gt=0, le=2048, description="Texts per core call (one inference batch)."
    )
    normalize: bool | None = Field(
        default=None, description="L2-normalise the vectors; None keeps the model's setting."
    )
    query_instruction: str | None = Field(
        default=None, description="Text put before queries; None keeps the model's query prompt."
    )
    text_instruction: str | None = Field(
        default=None,
        description="Text put before documents; None keeps the model's document prompt.",
    )
    threads: int | None = Field(
        default=None, gt=0, description="CPU threads for inference; None uses every core."
    )
    streams: int | None = Field(
        default=None, gt=0, description="Parallel inference streams; None means one per core."
    )
    truncation: Literal["warn", "error"] = Field(
        default="warn",
        description='Texts over the model\'s limit: "warn" embeds their first tokens, '
        '"error" refuses them.',
    )

    model_config = ConfigDict(extra="forbid")  # a misspelt option fails loudly

    _encoder: Encoder = PrivateAttr()

    def __init__(self, model_name: str, **kwargs: Any) -> None:
        """Load the model now, so a bad path or an incomplete folder fails here, not on use.

        Args:
            model_name: a model folder made by `ipex-embed quantize`, or a Hub repo id made by
                `ipex-embed build`.
            **kwargs: the fields above and BaseEmbedding's (callback_manager, num_workers, ...).
        """
        super().__init__(model_name=model_name, **kwargs)
        self._encoder = Encoder.load(
            model_name,
            threads=self.threads,
            streams=self.streams,
            query_prompt=self.query_instruction,
            document_prompt=self.text_instruction,
        )

    @classmethod
    def class_name(cls) -> str:
        return "IPEXEmbedding"

    @property
    def encoder(self) -> Encoder:
        """The core encoder this adapter calls."""
        return self._encoder

    def _encode(self, texts: list[str], kind: Literal["query", "document"]) -> list[Embedding]:
        vectors = self._encoder.encode(
            texts,
            kind,
            batch_size=self.embed_batch_size,
            truncation=self.truncation,
            normalize=self.normalize,
        )
        return vectors.tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        check_text(query, "get_query_embedding", LIST_HINT)
        return self._encode([query], "query")[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        check_text(text, "get_text_embedding", LIST_HINT)
        return self._encode([text], "document")[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encode(texts, "document")

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class IPEXRerank(BaseNodePostprocessor):
    """Rerank nodes by bi-encoder cosine similarity to the query and keep the `top_n` best.

    The query (with the model's query prompt) and the nodes' contents (with its document prompt)
    are embedded in batched core calls. With `fusion="none"` each node's score becomes its cosine
    similarity; with `fusion="rrf"` it becomes the reciprocal rank fusion (k=60) of the cosine
    ranking and the first stage's ranking (by `node.score`), and the cosine is kept in
    `node.metadata["cosine_score"]`.

    Example:
        ```python
        rerank = IPEXRerank(model="./all-MiniLM-L6-v2-int8", top_n=5, fusion="rrf")
        nodes = rerank.postprocess_nodes(retriever.retrieve(query), query_str=query)
        ```
    """

    model: str = Field(description="Model folder or Hub repo id of the bi-encoder.")
    top_n: int = Field(default=2, gt=0, description="Nodes to return, best first.")
    fusion: Fusion = Field(
        default="none",
        description='"none": rank by cosine only; "rrf": fuse the cosine and first-stage '
        "rankings (reciprocal rank fusion), best after a strong lexical first stage like BM25.",
    )
    keep_retrieval_score: bool = Field(
        default=False,
        description='Keep the first-stage score in node.metadata["retrieval_score"].',
    )
    batch_size: int = Field(default=32, gt=0, description="Texts per inference call.")
    threads: int | None = Field(
        default=None, gt=0, description="CPU threads for inference; None uses every core."
    )
    truncation: Literal["warn", "error"] = Field(
        default="warn",
        description='Texts over the model\'s limit: "warn" scores their first tokens, '
        '"error" refuses them.',
    )

    model_config = ConfigDict(extra="forbid")

    _encoder: Encoder = PrivateAttr()

    def __init__(self, model: str, **kwargs: Any) -> None:
        """Load the model now, so a bad path or an incomplete folder fails here, not on use."""
        super().__init__(model=model, **kwargs)
        self._encoder = Encoder.load(model, threads=self.threads)

    @classmethod
    def class_name(cls) -> str:
        return "IPEXRerank"

    @property
    def encoder(self) -> Encoder:
        """The core encoder this reranker calls."""
        return self._encoder

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError(
                "IPEXRerank needs the query: call postprocess_nodes(nodes, query_str=...) or "
                "pass query_bundle=QueryBundle(query)."
            )
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model
            )
        )
        if not nodes:
            dispatcher.event(ReRankEndEvent(nodes=[]))
            return []
        texts = [node.node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            cosines = cosine_scores(
                self._encoder,
                query_bundle.query_str,
                texts,
                batch_size=self.batch_size,
                truncation=self.truncation,
            )
            scores = cosines
            if self.fusion == "rrf":
                scores = reciprocal_rank_fusion(cosines, [node.score for node in nodes])
            for node, score, cosine in zip(nodes, scores, cosines):
                if self.keep_retrieval_score:
                    _set_score_metadata(node, "retrieval_score", node.score)
                if self.fusion == "rrf":
                    _set_score_metadata(node, "cosine_score", float(cosine))
                node.score = float(score)
            order = np.argsort(-scores, kind="stable")[: self.top_n]
            reranked = [nodes[i] for i in order]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked


def _set_score_metadata(node: NodeWithScore, key: str, value: float | None) -> None:
    node.node.metadata[key] = value
    # Not part of the embedded text: a later rerank of the same node must score the same.
    if key not in node.node.excluded_embed_metadata_keys:
        node.node.excluded_embed_metadata_keys.append(key)
