"""LlamaIndex adapters: `IPEXEmbedding` and the reranker `IPEXRerank` (bi- or cross-encoder).

Both are thin: every batch of texts goes through one `Encoder` call; this module only maps
options, emits LlamaIndex's events and turns arrays into lists.
Needs `pip install "ipex-embeddings[llama-index]"`.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

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

from .adapter_fields import (
    check_candidates,
    load_encoder,
    load_options_model,
    load_reranker,
)
from .batching import check_text, check_texts, first_invalid_text
from .cross_encoder import CrossEncoder
from .encoder import Encoder
from .errors import InvalidTextError
from .ranking import Fusion, rerank

__all__ = ["IPEXEmbedding", "IPEXRerank"]

LIST_HINT = " (get_text_embedding_batch embeds a list)"
BATCH_CALL = "get_text_embedding_batch"
# LlamaIndex's own names for the prompts (as in its HuggingFaceEmbedding).
RENAME = {"query_prompt": "query_instruction", "document_prompt": "text_instruction"}

dispatcher = get_dispatcher(__name__)

LoadOptions = load_options_model("LoadOptions", RENAME)


class IPEXEmbedding(BaseEmbedding, LoadOptions):  # type: ignore[misc, valid-type]
    """Int8 OpenVINO text embeddings for LlamaIndex.

    Takes every option of `Encoder.load` as a field (threads, streams, compile_cache,
    query_instruction and text_instruction for the prompts, and for a Hub repo revision,
    cache_dir, token), besides the encoding options below. The names of LlamaIndex's
    `HuggingFaceEmbedding` that map cleanly are accepted (`model=`, `device="cpu"`,
    `cache_folder=`, `normalize_embeddings=`); the others are refused naming the field to use
    (docs/troubleshooting.md lists them).

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
    truncation: Literal["warn", "error"] = Field(
        default="warn",
        description='Texts over the model\'s limit: "warn" embeds their first tokens, '
        '"error" refuses them.',
    )

    model_config = ConfigDict(extra="forbid")  # a misspelt option fails loudly

    no_progress_hint: ClassVar[str] = (
        f"LlamaIndex takes it per call: {BATCH_CALL}(texts, show_progress=True)"
    )

    _encoder: Encoder = PrivateAttr()

    def __init__(self, model_name: str | None = None, **kwargs: Any) -> None:
        """Load the model now, so a bad path or an incomplete folder fails here, not on use.

        Args:
            model_name: a model folder made by `ipex-embed quantize`, or a Hub repo id made by
                `ipex-embed build` (`model=` is taken too, as HuggingFaceEmbedding's users
                write it).
            **kwargs: the fields above and BaseEmbedding's (callback_manager, num_workers, ...).
        """
        if model_name is not None:
            kwargs["model_name"] = model_name
        elif "model" not in kwargs:  # else BaseEmbedding's default name would be loaded
            raise ValueError(
                'IPEXEmbedding needs the model: IPEXEmbedding(model_name="path/or/user-name").'
            )
        super().__init__(**kwargs)
        self._encoder = load_encoder(self.model_name, self, RENAME)

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

    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed `texts` in core calls of `embed_batch_size`, as BaseEmbedding does.

        Raises:
            TypeError: `texts` is one string (wrap it in a list), or `texts[i]` is not a str
                (i counts from the start of `texts`).
            InvalidTextError: `texts[i]` holds a lone surrogate; nothing is returned.
        """
        if isinstance(texts, str):  # else each character would be embedded as a text
            check_texts(texts, call=BATCH_CALL)
        try:
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)
        except (TypeError, InvalidTextError):
            _name_the_bad_text(texts)
            raise

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """`get_text_embedding_batch` off the event loop (worker threads), same errors."""
        if isinstance(texts, str):
            check_texts(texts, call=f"a{BATCH_CALL}")
        try:
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
        except (TypeError, InvalidTextError):
            _name_the_bad_text(texts)
            raise

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


def _name_the_bad_text(texts: list[str]) -> None:
    """Re-raise a batch's error with the index in the whole list (batches count from 0)."""
    check_texts(texts, call=BATCH_CALL)
    bad = first_invalid_text(texts)
    if bad is not None:
        raise InvalidTextError(f"texts[{bad}]", texts[bad]) from None


class IPEXRerank(BaseNodePostprocessor, LoadOptions):  # type: ignore[misc, valid-type]
    """Rerank nodes by their relevance to the query and keep the `top_n` best.

    The model folder's kind chooses how nodes are scored. A bi-encoder embeds the query (with
    the model's query prompt) and the nodes' contents (with its document prompt) and scores by
    cosine similarity; a cross-encoder (`ipex_embeddings.CrossEncoder`) reads the query with
    each node's content and scores the pair with its activation (e.g. a sigmoid). With
    `fusion="none"` each node's score becomes the model's score; with `fusion="rrf"` it becomes
    the reciprocal rank fusion (k=60) of the model's ranking and the first stage's ranking (by
    `node.score`). The ranking is `ipex_embeddings.ranking.rerank`, the same as LangChain's
    `IPEXRerankCompressor`.

    Returns new NodeWithScore objects around copies of the nodes: the input nodes and the stored
    nodes are never changed. Each copy's metadata holds the model's score, in
    `metadata["cosine_score"]` (bi-encoder) or `metadata["relevance_score"]` (cross-encoder),
    and with `keep_retrieval_score=True` the first-stage score in `metadata["retrieval_score"]`;
    they are kept out of the embedded and the LLM's text. Takes every option of `Encoder.load`
    as a field, as `IPEXEmbedding` does (the prompts apply to bi-encoders only).

    The model is `model_name=` as in every adapter (`model=`, this class's field, is taken too).

    Example:
        ```python
        rerank = IPEXRerank(model_name="./all-MiniLM-L6-v2-int8", top_n=5, fusion="rrf")
        rerank = IPEXRerank(model_name="./ms-marco-MiniLM-L-6-v2-int8", top_n=5)  # cross-encoder
        nodes = rerank.postprocess_nodes(retriever.retrieve(query), query_str=query)
        ```
    """

    model: str = Field(
        description="Model folder or Hub repo id of the bi-encoder or cross-encoder."
    )
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
    truncation: Literal["warn", "error"] = Field(
        default="warn",
        description='Texts over the model\'s limit: "warn" scores their first tokens, '
        '"error" refuses them.',
    )

    model_config = ConfigDict(extra="forbid")

    _encoder: Encoder | CrossEncoder = PrivateAttr()

    def __init__(self, model: str | None = None, **kwargs: Any) -> None:
        """Load the model now, so a bad path or an incomplete folder fails here, not on use.

        Args:
            model: the model folder or Hub repo id; `model_name=` is the same, as in the other
                adapters (give one of them).
        """
        if model is not None:
            kwargs["model"] = model
        elif "model_name" not in kwargs:
            raise ValueError(
                'IPEXRerank needs the model: IPEXRerank(model_name="path/or/user-name").'
            )
        super().__init__(**kwargs)
        self._encoder = load_reranker(self.model, self, RENAME)

    @property
    def model_name(self) -> str:
        """The model folder or Hub repo id (the `model` field, by the other adapters' name)."""
        return self.model

    @classmethod
    def class_name(cls) -> str:
        return "IPEXRerank"

    @property
    def encoder(self) -> Encoder | CrossEncoder:
        """The core model this reranker calls: an `Encoder` or a `CrossEncoder`."""
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
        _check_nodes(nodes)  # before the start event, which would refuse them by type alone
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model
            )
        )
        if not nodes:
            dispatcher.event(ReRankEndEvent(nodes=[]))
            return []
        check_text(query_bundle.query_str, "IPEXRerank (the query)")
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
            ranked = rerank(
                self._encoder,
                query_bundle.query_str,
                texts,
                [node.score for node in nodes],
                top_n=self.top_n,
                fusion=self.fusion,
                keep_retrieval_score=self.keep_retrieval_score,
                batch_size=self.batch_size,
                truncation=self.truncation,
                where="nodes[{i}]",
            )
            reranked = [_scored_copy(nodes[r.index], r.score, r.metadata) for r in ranked]
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked


def _check_nodes(nodes: object) -> None:
    """Refuse texts or bare nodes given where NodeWithScore objects are expected."""
    check_candidates(
        nodes, NodeWithScore, call="postprocess_nodes", plural="NodeWithScore",
        one_fix="postprocess_nodes([NodeWithScore(node=TextNode(text=text))], query_str=query)",
        where="nodes",
        item_fix="wrap it: NodeWithScore(node=TextNode(text=text)) (or node=... for a node)",
    )


def _scored_copy(
    node: NodeWithScore, score: float, scores: dict[str, float | None]
) -> NodeWithScore:
    """A new NodeWithScore around a copy of `node.node` with `scores` added to its metadata.

    The copy gets its own metadata and exclusion lists, so the input node (and the stored node
    it may be) keeps its own; the scores stay out of the embedded text (a second rerank of the
    copy scores the same) and out of the LLM's context.
    """
    inner = node.node
    update = {
        "metadata": {**inner.metadata, **scores},
        "excluded_embed_metadata_keys": _with(inner.excluded_embed_metadata_keys, scores),
        "excluded_llm_metadata_keys": _with(inner.excluded_llm_metadata_keys, scores),
    }
    return NodeWithScore(node=inner.model_copy(update=update), score=score)


def _with(keys: list[str], added: dict[str, object]) -> list[str]:
    return [*keys, *(key for key in added if key not in keys)]
