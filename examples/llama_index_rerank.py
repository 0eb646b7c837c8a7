"""LlamaIndex retrieve-then-rerank on SciFact: BM25 top-50, then `IPEXRerank`, fully offline.

BM25 (bm25s) over all 5,183 SciFact abstracts is the first stage, as a LlamaIndex retriever; the
int8 bi-encoder reranks its 50 candidates and keeps 5, fusing its cosine ranking with BM25's
(`fusion="rrf"`: after a strong lexical first stage, the fused order beats both). For a few test
queries it prints where the judged abstract ranks before and after.
`benchmarks/rerank_scifact.py` measures this pipeline on all 300 test queries (NDCG@10).

Run:
    python examples/llama_index_rerank.py [MODEL_DIR] [--queries N]

MODEL_DIR is a folder made by `ipex-embed quantize`. Without it the demo model (int8
all-MiniLM-L6-v2) is built first into a temporary folder, which takes about half a minute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import bm25s
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from nltk.stem.snowball import SnowballStemmer

from ipex_embeddings import TruncationWarning
from ipex_embeddings.llama_index import IPEXRerank
from ipex_embeddings_builder.data import document_text, load_beir


class BM25Retriever(BaseRetriever):
    """BM25 over TextNodes with bm25s (English stopwords, Snowball stemming)."""

    def __init__(self, nodes: list[TextNode], top_k: int) -> None:
        super().__init__()
        self._nodes = nodes
        self._top_k = top_k
        self._stem = SnowballStemmer("english").stem
        self._bm25 = bm25s.BM25()
        self._bm25.index(self._tokenize([n.get_content() for n in nodes]), show_progress=False)

    def _tokenize(self, texts: list[str]) -> bm25s.tokenization.Tokenized:
        return bm25s.tokenize(
            texts,
            stopwords="en",
            stemmer=lambda ws: [self._stem(w) for w in ws],
            show_progress=False,
        )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found, scores = self._bm25.retrieve(
            self._tokenize([query_bundle.query_str]), k=self._top_k, show_progress=False
        )
        return [
            NodeWithScore(node=self._nodes[i], score=float(s)) for i, s in zip(found[0], scores[0])
        ]


def build_demo_model(folder: Path) -> Path:
    """Build the int8 demo model into `folder`, as `ipex-embed quantize --output FOLDER` does."""
    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.demo import DEMO_MODEL
    from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    quantize_to_folder(inspect_source(DEMO_MODEL), load_calibration(), folder, QuantizeOptions())
    return folder


def _rank(nodes: list[NodeWithScore], judged: dict[str, int]) -> str:
    ranks = [i + 1 for i, n in enumerate(nodes) if n.node.node_id in judged]
    return str(ranks[0]) if ranks else "-"


def main(model_dir: Path, n_queries: int) -> None:
    started = time.perf_counter()
    data = load_beir(split="test")
    nodes = [TextNode(text=document_text(doc), id_=i) for i, doc in data.corpus.items()]
    retriever = BM25Retriever(nodes, top_k=50)
    rerank = IPEXRerank(model=str(model_dir), top_n=5, fusion="rrf", keep_retrieval_score=True)
    print(f"Indexed {len(nodes)} abstracts with BM25 in {time.perf_counter() - started:.1f} s")
    # Most abstracts are longer than the model's 256 tokens; their start is embedded, as in MTEB.
    warnings.simplefilter("ignore", TruncationWarning)

    print("\nrank of the first judged abstract (- : not in the list)")
    print("| query | BM25 rank (of 50) | reranked rank (of 5) | top abstract after rerank |")
    print("|---|---|---|---|")
    for qid in list(data.queries)[:n_queries]:
        query = data.queries[qid]
        candidates = retriever.retrieve(query)
        bm25_rank = _rank(candidates, data.qrels[qid])
        reranked = rerank.postprocess_nodes(candidates, query_str=query)
        best = reranked[0]
        title = data.corpus[best.node.node_id]["title"][:50]
        scores = (
            f"RRF {best.score:.4f}, cos {best.node.metadata['cosine_score']:.3f}, "
            f"BM25 {best.node.metadata['retrieval_score']:.1f}"
        )
        print(
            f"| {query[:50]} | {bm25_rank} | {_rank(reranked, data.qrels[qid])} | "
            f"{title} ({scores}) |"
        )
    print(f"\nDone in {time.perf_counter() - started:.1f} s.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, help="model folder (default: build)")
    parser.add_argument("--queries", type=int, default=8, help="test queries to show")
    args = parser.parse_args()
    if args.model_dir is not None:
        main(args.model_dir, args.queries)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print("No MODEL_DIR given: building the int8 demo model first ...")
            main(build_demo_model(Path(tmp) / "all-MiniLM-L6-v2-int8"), args.queries)
