"""LangChain RAG retrieval on SciFact with an int8 model, fully offline.

The corpus is every SciFact abstract judged for a test query (283 of them), held in LangChain's
InMemoryVectorStore and embedded by `IPEXEmbeddings`. A retrieval chain fills a RAG prompt for
the first queries (hand it to any chat model), then all 300 test queries are scored: how often a
judged abstract is in the top 3.

Run:
    python examples/langchain_rag.py [MODEL_DIR]

MODEL_DIR is a folder made by `ipex-embed quantize`. Without it the demo model (int8
all-MiniLM-L6-v2) is built first into a temporary folder, which takes about half a minute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from ipex_embeddings.langchain import IPEXEmbeddings
from ipex_embeddings_builder.data import document_text, load_beir

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from the context only; cite the [doc ids] you use.\n\n{context}"),
        ("human", "Is this claim supported? {question}"),
    ]
)


def build_demo_model(folder: Path) -> Path:
    """Build the int8 demo model into `folder`, as `ipex-embed quantize --output FOLDER` does."""
    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.demo import DEMO_MODEL
    from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    quantize_to_folder(inspect_source(DEMO_MODEL), load_calibration(), folder, QuantizeOptions())
    return folder


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(f"[{d.id}] {d.page_content[:300]}" for d in docs)


def main(model_dir: Path) -> None:
    started = time.perf_counter()
    data = load_beir(split="test")
    judged = sorted({doc for docs in data.qrels.values() for doc in docs})
    embeddings = IPEXEmbeddings(model_name=str(model_dir), batch_size=32)
    store = InMemoryVectorStore.from_texts(
        [document_text(data.corpus[d]) for d in judged], embeddings, ids=judged
    )
    print(f"Embedded {len(judged)} SciFact abstracts in {time.perf_counter() - started:.1f} s")

    retriever = store.as_retriever(search_kwargs={"k": 3})
    chain = {
        "context": retriever | RunnableLambda(format_docs),
        "question": RunnablePassthrough(),
    } | PROMPT
    for qid in list(data.queries)[:2]:
        prompt = chain.invoke(data.queries[qid])
        print(f"\n--- RAG prompt for query {qid} (judged: {sorted(data.qrels[qid])}) ---")
        for message in prompt.to_messages():
            print(f"{message.type}: {message.content}")

    found = 0
    for qid, results in zip(data.queries, retriever.batch(list(data.queries.values()))):
        found += any(doc.id in data.qrels[qid] for doc in results)
    print(
        f"\nA judged abstract is in the top 3 for {found} of {len(data.queries)} test queries "
        f"({time.perf_counter() - started:.1f} s in all)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, help="model folder (default: build)")
    args = parser.parse_args()
    if args.model_dir is not None:
        main(args.model_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print("No MODEL_DIR given: building the int8 demo model first ...")
            main(build_demo_model(Path(tmp) / "all-MiniLM-L6-v2-int8"))
