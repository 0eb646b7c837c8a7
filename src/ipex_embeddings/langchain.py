"""LangChain adapters: `IPEXEmbeddings` and the reranker `IPEXRerankCompressor` (bi- or
cross-encoder).

Both are thin: every text goes through one `Encoder` call; this module only maps options and
turns arrays into lists. Needs `pip install "ipex-embeddings[langchain]"`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.embeddings import Embeddings
    from pydantic import ConfigDict, Field, PrivateAttr
except ImportError as err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "ipex_embeddings.langchain needs langchain-core, which is not installed. "
        'Install it with: pip install "ipex-embeddings[langchain]"'
    ) from err

from .adapter_fields import (
    check_candidates,
    load_encoder,
    load_options_model,
    load_reranker,
)
from .batching import check_text, check_texts
from .cross_encoder import CrossEncoder
from .encoder import Encoder
from .load_options import LOAD_OPTIONS
from .ranking import RELEVANCE_KEY, Fusion, rerank

__all__ = ["IPEXEmbeddings", "IPEXRerankCompressor"]

LoadOptions = load_options_model("LoadOptions")


class IPEXEmbeddings(LoadOptions, Embeddings):  # type: ignore[misc, valid-type]
    """Int8 OpenVINO text embeddings for LangChain.

    Takes every option of `Encoder.load` as a field (threads, streams, compile_cache,
    query_prompt, document_prompt, and for a Hub repo revision, cache_dir, token), besides the
    encoding options below. The names of `HuggingFaceEmbeddings` that map cleanly are accepted
    (`model=`, `model_kwargs={"device": "cpu"}`, `encode_kwargs={"batch_size": 64,
    "normalize_embeddings": True}`, `show_progress_bar=`); the others are refused naming the
    field to use (docs/troubleshooting.md lists them).

    Example:
        ```python
        from ipex_embeddings.langchain import IPEXEmbeddings

        embeddings = IPEXEmbeddings(model_name="./all-MiniLM-L6-v2-int8")
        vectors = embeddings.embed_documents(["first text", "second text"])
        ```
    """

    model_name: str
    """Model folder made by `ipex-embed quantize`, or a Hub repo id made by `ipex-embed build`."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per inference call (texts are length-sorted and padded per batch)."""
    normalize: bool | None = None
    """L2-normalise the vectors; None keeps the model's own setting."""
    show_progress: bool = False
    """Show a progress bar over batches."""
    truncation: Literal["warn", "error"] = "warn"
    """Texts longer than the model's limit: "warn" embeds their first tokens, "error" refuses."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    _encoder: Encoder = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        """Load the model now, so a bad path or an incomplete folder fails here, not on use."""
        super().__init__(**kwargs)
        self._encoder = load_encoder(self.model_name, self)

    @property
    def encoder(self) -> Encoder:
        """The core encoder this adapter calls."""
        return self._encoder

    def _encode(self, texts: list[str], kind: Literal["query", "document"]) -> np.ndarray:
        return self._encoder.encode(
            texts,
            kind,
            batch_size=self.batch_size,
            show_progress=self.show_progress,
            truncation=self.truncation,
            normalize=self.normalize,
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (with the model's document prompt), in batches of `batch_size`.

        Raises:
            TypeError: `texts` is one string (wrap it: `embed_documents([text])`), or `texts[i]`
                is not a str.
        """
        return self._encode(check_texts(texts, call="embed_documents"), "document").tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (with the model's query prompt)."""
        check_text(text, "embed_query", " (use embed_documents for a list of texts)")
        return self._encode([text], "query")[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """`embed_documents` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """`embed_query` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.embed_query, text)


class IPEXRerankCompressor(LoadOptions, BaseDocumentCompressor):  # type: ignore[misc, valid-type]
    """Reorder retrieved Documents by their relevance to the query; keep `top_n`.

    For `ContextualCompressionRetriever`. Give either `embeddings` (an `IPEXEmbeddings`
    bi-encoder) or `model_name` (a model folder or Hub repo of either kind, chosen by the
    folder's kind, loaded with the load options below). A bi-encoder embeds the query (with the
    query prompt) and the documents (with the document prompt) and scores by cosine similarity;
    a cross-encoder (`ipex_embeddings.CrossEncoder`) reads the query with each document and
    scores the pair with its activation (e.g. a sigmoid). With `fusion="none"` the documents are
    sorted by the model's score; with `fusion="rrf"` by the reciprocal rank fusion (k=60) of the
    model's ranking and the first stage's ranking (the order the documents arrive in, or the
    metadata score named by `first_stage_score_key`). The ranking is
    `ipex_embeddings.ranking.rerank`, the same as LlamaIndex's `IPEXRerank`.

    Returns new Documents (the inputs are never changed) whose metadata adds, for a bi-encoder,
    the sorting score in `metadata["relevance_score"]` and the cosine in
    `metadata["cosine_score"]`; for a cross-encoder, its score in `metadata["relevance_score"]`
    (the order is the fused one with `fusion="rrf"`); and with `keep_retrieval_score=True` the
    first-stage score in `metadata["retrieval_score"]`.

    Example:
        ```python
        reranker = IPEXRerankCompressor(embeddings=embeddings, top_n=5, fusion="rrf")
        reranker = IPEXRerankCompressor(model_name="./ms-marco-MiniLM-L-6-v2-int8", top_n=5)
        retriever = ContextualCompressionRetriever(
            base_compressor=reranker, base_retriever=bm25_retriever
        )
        ```
    """

    embeddings: IPEXEmbeddings | None = None
    """The bi-encoder that embeds the query and the documents (or give `model_name`)."""
    model_name: str | None = None
    """A model folder or Hub repo id, bi-encoder or cross-encoder (or give `embeddings`)."""
    batch_size: int | None = Field(default=None, gt=0)
    """Texts per inference call; None: the embeddings' batch_size, or 32."""
    truncation: Literal["warn", "error"] | None = None
    """Texts over the model's limit: "warn" scores their first tokens, "error" refuses them;
    None: the embeddings' setting, or "warn"."""
    top_n: int = Field(default=3, gt=0)
    """Documents to keep."""
    fusion: Fusion = "none"
    """Ranking: "none" by cosine only; "rrf" fuses it with the first stage's (use after BM25)."""
    first_stage_score_key: str | None = None
    """Metadata key of the first-stage score (higher is better); None: the input order."""
    keep_retrieval_score: bool = False
    """Keep the first-stage score (None without `first_stage_score_key`) in metadata."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    _model: Encoder | CrossEncoder = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        """Load `model_name` now (a bad path fails here), or take the embeddings' encoder.

        Raises:
            ValueError: neither or both of `embeddings` and `model_name`, or load options set
                beside `embeddings` (set them on the IPEXEmbeddings).
        """
        super().__init__(**kwargs)
        if (self.embeddings is None) == (self.model_name is None):
            raise ValueError(
                "IPEXRerankCompressor takes either embeddings=IPEXEmbeddings(...) (a "
                "bi-encoder) or model_name=<folder or repo id> (a bi- or cross-encoder), not "
                f"{'both' if self.embeddings is not None else 'neither'}."
            )
        if self.embeddings is not None:
            stray = sorted(self.model_fields_set & {o.name for o in LOAD_OPTIONS})
            if stray:
                raise ValueError(
                    f"{stray} only apply with model_name; set them on the IPEXEmbeddings."
                )
            self._model = self.embeddings.encoder
        else:
            self._model = load_reranker(self.model_name, self)

    @property
    def model(self) -> Encoder | CrossEncoder:
        """The core model this reranker calls: an `Encoder` or a `CrossEncoder`."""
        return self._model

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The `top_n` best documents for `query`, best first, as new Documents.

        Raises:
            TypeError: `query` is not a str, `documents[i]` is not a Document, or a first-stage
                score is not a number.
            InvalidTextError: the query or `documents[i].page_content` holds a lone surrogate.
        """
        check_text(query, "compress_documents(query=...)")
        _check_documents(documents)
        if not documents:
            return []
        embeddings = self.embeddings
        ranked = rerank(
            self._model,
            query,
            [doc.page_content for doc in documents],
            self._first_stage_scores(documents),
            top_n=self.top_n,
            fusion=self.fusion,
            keep_retrieval_score=self.keep_retrieval_score,
            batch_size=self.batch_size or (embeddings.batch_size if embeddings else 32),
            truncation=self.truncation or (embeddings.truncation if embeddings else "warn"),
            where="documents[{i}].page_content",
        )
        kept = []
        for item in ranked:
            doc = documents[item.index]
            metadata = {**doc.metadata, RELEVANCE_KEY: item.score, **item.metadata}
            kept.append(Document(page_content=doc.page_content, metadata=metadata, id=doc.id))
        return kept

    def _first_stage_scores(self, documents: Sequence[Document]) -> list[float | None]:
        """Each document's first-stage score, None where it has none (ranked last, in order)."""
        key = self.first_stage_score_key
        if key is None:
            return [None] * len(documents)
        scores: list[float | None] = []
        for i, doc in enumerate(documents):
            value = doc.metadata.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float, np.number))
            ):
                raise TypeError(
                    f"documents[{i}].metadata[{key!r}] is {type(value).__name__}, not a number; "
                    "set first_stage_score_key to the metadata key holding the first stage's "
                    "score (higher is better), or to None to rank by the documents' order."
                )
            scores.append(None if value is None else float(value))
        return scores

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """`compress_documents` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)


def _check_documents(documents: object) -> None:
    """Refuse texts given where Documents are expected, naming the adapter's own fix."""
    check_candidates(
        documents, Document, call="compress_documents", plural="Documents",
        one_fix="compress_documents([Document(page_content=text)], query)",
        where="documents", item_fix="wrap a text: Document(page_content=text)",
    )
