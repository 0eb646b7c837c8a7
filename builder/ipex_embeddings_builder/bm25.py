"""BM25 first stage over a BEIR corpus: the candidates a cross-encoder reranks.

One setup everywhere (calibration's hard negatives, validation, training and the SciFact rerank
benchmark): bm25s with its defaults (lucene, k1=1.5, b=0.75), English stopwords and NLTK's
Snowball stemmer, over each document's title + " " + text (as BEIR and MTEB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .data import BeirData, document_text

__all__ = ["BM25_SETUP", "Bm25Index", "bm25_candidates"]

BM25_SETUP = "bm25s BM25 (lucene, k1=1.5, b=0.75), English stopwords, Snowball stemmer"


def _tokenize(texts: list[str]) -> Any:
    import bm25s
    from nltk.stem.snowball import SnowballStemmer

    stem = SnowballStemmer("english").stem
    return bm25s.tokenize(
        texts, stopwords="en", stemmer=lambda words: [stem(w) for w in words],
        show_progress=False,
    )


@dataclass
class Bm25Index:
    """A bm25s index over a corpus, with the document ids in index order."""

    doc_ids: list[str]
    texts: dict[str, str]
    """Each document's text as indexed (and as a reranker should see it)."""
    retriever: Any

    @classmethod
    def build(cls, corpus: dict[str, dict[str, str]]) -> Bm25Index:
        """Index every document of a BEIR corpus."""
        import bm25s

        doc_ids = list(corpus)
        texts = {d: document_text(corpus[d]) for d in doc_ids}
        retriever = bm25s.BM25()
        retriever.index(_tokenize([texts[d] for d in doc_ids]), show_progress=False)
        return cls(doc_ids, texts, retriever)

    def search(
        self, queries: dict[str, str], depth: int
    ) -> dict[str, list[tuple[str, float]]]:
        """Each query's top `depth` documents, best first, with their BM25 scores."""
        qids = list(queries)
        if not qids:
            return {}
        depth = min(depth, len(self.doc_ids))
        found, scores = self.retriever.retrieve(
            _tokenize([queries[q] for q in qids]), k=depth, show_progress=False
        )
        return {
            q: [(self.doc_ids[j], float(s)) for j, s in zip(found[row], scores[row])]
            for row, q in enumerate(qids)
        }


def bm25_candidates(data: BeirData, depth: int) -> dict[str, list[tuple[str, float]]]:
    """The BM25 top `depth` (document id, score) of every query of `data`, best first."""
    return Bm25Index.build(data.corpus).search(data.queries, depth)
