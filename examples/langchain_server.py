"""LangChain retrieval through `ipex-embed serve`: the stock `OpenAIEmbeddings`, no plugin.

Any OpenAI-compatible client can use the server. Here LangChain's `OpenAIEmbeddings` embeds the
SciFact abstracts judged for a test query into an `InMemoryVectorStore`, and the first test
queries are searched: how often a judged abstract is in the top 3.

Queries and documents may need different prompts (e5, bge, nomic...). The server picks the
prompt from the extra request field `input_type`, which `OpenAIEmbeddings` can send through
`model_kwargs={"extra_body": {...}}`; `ServerEmbeddings` below keeps one client per prompt.

Run against a server:
    ipex-embed serve models/all-MiniLM-L6-v2-int8 &          # http://127.0.0.1:8080
    python examples/langchain_server.py --url http://127.0.0.1:8080 [--api-key KEY]

or let the example start one (and stop it with SIGTERM at the end):
    python examples/langchain_server.py --model models/all-MiniLM-L6-v2-int8
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import OpenAIEmbeddings

from ipex_embeddings_builder.data import document_text, load_beir


class ServerEmbeddings(Embeddings):
    """`OpenAIEmbeddings` against an ipex-embed server, documents and queries each with their
    own prompt (the server's `input_type`)."""

    def __init__(self, url: str, api_key: str, model: str, chunk_size: int = 64) -> None:
        common = {"base_url": f"{url}/v1", "api_key": api_key, "model": model,
                  "chunk_size": chunk_size,  # texts per request (the server's --max-inputs)
                  "check_embedding_ctx_length": False}  # send text, not tiktoken ids
        self.documents = OpenAIEmbeddings(
            **common, model_kwargs={"extra_body": {"input_type": "document"}})
        self.queries = OpenAIEmbeddings(
            **common, model_kwargs={"extra_body": {"input_type": "query"}})

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.documents.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.queries.embed_query(text)


def start_server(model: str) -> tuple[subprocess.Popen, str]:
    """`ipex-embed serve MODEL` on a free port of 127.0.0.1, once it is healthy."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = shutil.which("ipex-embed") or "ipex-embed"
    process = subprocess.Popen([command, "serve", model, "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    sys.exit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="A running server (default: start one with --model).")
    parser.add_argument("--model", help="A model folder to serve when --url is not given.")
    parser.add_argument("--api-key", default=os.environ.get("IPEX_EMBED_API_KEY", "none"))
    parser.add_argument("--queries", type=int, default=30, help="Test queries to search.")
    parser.add_argument("--chunk-size", type=int, default=64, help="Texts per request.")
    args = parser.parse_args()
    if not args.url and not args.model:
        parser.error("give --url of a running server, or --model to start one")
    process, url = start_server(args.model) if not args.url else (None, args.url)
    try:
        listed = httpx.get(f"{url}/v1/models",
                           headers={"Authorization": f"Bearer {args.api_key}"}).json()
        model = listed["data"][0]["id"]
        data = load_beir()
        judged = sorted({doc for docs in data.qrels.values() for doc in docs})
        store = InMemoryVectorStore(ServerEmbeddings(url, args.api_key, model, args.chunk_size))
        started = time.perf_counter()
        store.add_documents([Document(document_text(data.corpus[d]), id=d) for d in judged])
        print(f"Embedded {len(judged)} abstracts through {url} ({model}) in "
              f"{time.perf_counter() - started:.1f} s")
        queries = list(data.queries.items())[: args.queries]
        found = sum(
            any(hit.id in data.qrels[qid] for hit in store.similarity_search(text, k=3))
            for qid, text in queries
        )
        print(f"A judged abstract is in the top 3 for {found} of {len(queries)} test queries")
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
