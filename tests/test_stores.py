"""Real vector stores over SciFact: known test queries must retrieve their judged documents.

The corpus is a hard subset: the judged documents of the first 20 test queries plus each query's
BM25 top-8 (so most documents are on the query's topic and only some are the judged answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np
import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.schema import TextNode
from llama_index.vector_stores.faiss import FaissVectorStore
from nltk.stem.snowball import SnowballStemmer

from ipex_embeddings.langchain import IPEXEmbeddings, IPEXRerankCompressor
from ipex_embeddings.llama_index import IPEXEmbedding
from ipex_embeddings_builder.data import document_text, load_beir

QUERIES = 20
TOP_K = 5
# Dense MiniLM finds a judged document in the top 5 for 19 of these 20 queries; allow some
# drift (int8, store arithmetic) but fail if retrieval is broken.
MIN_HITS = 16


@dataclass
class Subset:
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    doc_ids: list[str]
    texts: list[str]


@pytest.fixture(scope="module")
def scifact() -> Subset:
    data = load_beir(split="test")
    ids = list(data.corpus)
    stemmer = SnowballStemmer("english").stem

    def tokenize(texts: list[str]) -> bm25s.tokenization.Tokenized:
        return bm25s.tokenize(
            texts, stopwords="en", stemmer=lambda w: [stemmer(x) for x in w], show_progress=False
        )

    bm25 = bm25s.BM25()
    bm25.index(tokenize([document_text(data.corpus[i]) for i in ids]), show_progress=False)
    qids = list(data.queries)[:QUERIES]
    neighbours, _ = bm25.retrieve(
        tokenize([data.queries[q] for q in qids]), k=8, show_progress=False
    )
    chosen = {d for q in qids for d in data.qrels[q]} | {ids[j] for row in neighbours for j in row}
    doc_ids = sorted(chosen)
    return Subset(
        queries={q: data.queries[q] for q in qids},
        qrels={q: data.qrels[q] for q in qids},
        doc_ids=doc_ids,
        texts=[document_text(data.corpus[d]) for d in doc_ids],
    )


def _hits(results: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> int:
    """Queries with at least one judged document among their results."""
    return sum(any(d in qrels[q] for d in found) for q, found in results.items())


@pytest.fixture(scope="module")
def langchain_results(scifact: Subset, demo_int8_dir: Path) -> dict[str, list[str]]:
    embeddings = IPEXEmbeddings(model_name=str(demo_int8_dir))
    store = InMemoryVectorStore.from_texts(
        scifact.texts,
        embeddings,
        metadatas=[{"doc_id": d} for d in scifact.doc_ids],
        ids=scifact.doc_ids,
    )
    return {
        q: [doc.id for doc in store.similarity_search(text, k=TOP_K)]
        for q, text in scifact.queries.items()
    }


def test_langchain_in_memory_store_finds_judged_documents(
    scifact: Subset, langchain_results: dict[str, list[str]]
) -> None:
    assert len(scifact.doc_ids) > 100
    assert _hits(langchain_results, scifact.qrels) >= MIN_HITS


def test_contextual_compression_with_the_reranker(scifact: Subset, demo_int8_dir: Path) -> None:
    embeddings = IPEXEmbeddings(model_name=str(demo_int8_dir))
    store = InMemoryVectorStore.from_texts(scifact.texts[:60], embeddings, ids=scifact.doc_ids[:60])
    retriever = ContextualCompressionRetriever(
        base_compressor=IPEXRerankCompressor(embeddings=embeddings, top_n=3),
        base_retriever=store.as_retriever(search_kwargs={"k": 15}),
    )
    for query in list(scifact.queries.values())[:4]:
        reranked = retriever.invoke(query)
        # Same bi-encoder in both stages: the rerank scores are the store's own cosines.
        expected = store.similarity_search_with_score(query, k=3)
        assert [d.id for d in reranked] == [d.id for d, _ in expected]
        np.testing.assert_allclose(
            [d.metadata["relevance_score"] for d in reranked], [s for _, s in expected], atol=1e-5
        )

    # fusion="rrf" takes the retriever's order as the first stage's ranking. Here both rankings
    # are the same, so the fused scores are 2 / (60 + rank) if the order arrives intact.
    fused = ContextualCompressionRetriever(
        base_compressor=IPEXRerankCompressor(embeddings=embeddings, top_n=3, fusion="rrf"),
        base_retriever=store.as_retriever(search_kwargs={"k": 15}),
    )
    query = next(iter(scifact.queries.values()))
    kept = fused.invoke(query)
    expected = store.similarity_search_with_score(query, k=3)
    assert [d.id for d in kept] == [d.id for d, _ in expected]
    np.testing.assert_allclose(
        [d.metadata["relevance_score"] for d in kept], [2 / 61, 2 / 62, 2 / 63], rtol=1e-12
    )
    np.testing.assert_allclose(
        [d.metadata["cosine_score"] for d in kept], [s for _, s in expected], atol=1e-5
    )


def test_llama_index_faiss_index_on_disk(
    scifact: Subset,
    langchain_results: dict[str, list[str]],
    demo_int8_dir: Path,
    tmp_path: Path,
) -> None:
    embed_model = IPEXEmbedding(model_name=str(demo_int8_dir))
    nodes = [TextNode(text=t, id_=d) for d, t in zip(scifact.doc_ids, scifact.texts)]
    storage = StorageContext.from_defaults(
        vector_store=FaissVectorStore(faiss_index=faiss.IndexFlatIP(embed_model.encoder.dimension))
    )
    VectorStoreIndex(nodes, storage_context=storage, embed_model=embed_model)
    storage.persist(persist_dir=str(tmp_path))

    reloaded = StorageContext.from_defaults(
        vector_store=FaissVectorStore.from_persist_dir(str(tmp_path)), persist_dir=str(tmp_path)
    )
    index = load_index_from_storage(reloaded, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    results = {
        q: [n.node.node_id for n in retriever.retrieve(text)]
        for q, text in scifact.queries.items()
    }

    assert _hits(results, scifact.qrels) >= MIN_HITS
    # FAISS inner product on unit vectors and LangChain's cosine rank alike.
    same_top = sum(results[q][0] == langchain_results[q][0] for q in results)
    assert same_top == len(results)
    assert faiss.read_index(str(tmp_path / "default__vector_store.json")).ntotal == len(nodes)
