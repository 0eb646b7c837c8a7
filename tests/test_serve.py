"""`ipex-embed serve`: real server processes on 127.0.0.1, real clients, bit-for-bit vectors.

One server (the int8 demo model, a tiny fp32 cross-encoder as reranker) serves most tests; a
second (API key, the demo model as a bi-encoder reranker, a tiny queue) the key, the cosine
reranker and the 429; a third the SIGTERM drain. The clients are the ones users run: the
`openai` client, LangChain's `OpenAIEmbeddings` into an `InMemoryVectorStore`, LlamaIndex's
`OpenAIEmbedding` in a `VectorStoreIndex`, and httpx for the TEI and Cohere routes. The batcher
and the 503-before-ready are also tested in-process, without a model.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")

from ipex_embeddings import CrossEncoder, Encoder  # noqa: E402
from ipex_embeddings.serve.batcher import Batcher  # noqa: E402
from ipex_embeddings.serve.errors import QueueFullError  # noqa: E402
from ipex_embeddings.serve.metrics import Metrics  # noqa: E402

DEMO_ID = "sentence-transformers/all-MiniLM-L6-v2"
KEY = "test-key-123"
QUERY = "cancer risk of the gene"
TEXTS = [
    "Aspirin lowers colorectal cancer risk.",
    "hello world",
    "patients with increased risk of cancer in the study",
    "",
    "protein of the cell",
    "a short text",
    "the model is a test of this vector",
    "Ünïcode text — with dashes, emoji 🧬 and 中文.",
]
LONG_TEXT = "cancer " * 400  # 2,800 characters, over the demo's 256 tokens


@dataclass
class Server:
    """A running `ipex-embed serve` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """Start `ipex-embed serve ARGS` on a free port and wait until /health answers 200."""
    port = _free_port()
    command = shutil.which("ipex-embed")
    base = [command] if command else [sys.executable, "-m", "ipex_embeddings_builder.cli"]
    log = tmp / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*base, "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}:\n{log.read_text()}")
        try:
            status = httpx.get(f"{server.url}/health", timeout=5).status_code
        except httpx.HTTPError:
            status = 0
        if status == 200:
            return server
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"the server did not become healthy:\n{log.read_text()}")


def tiny_cross_encoder(folder: Path) -> Path:
    """A random 2-layer BERT cross-encoder, exported fp32 (scores mean nothing)."""
    from test_cross_encoder import make_cross_encoder

    from ipex_embeddings_builder.cross_encoder import quantize_cross_encoder

    source = make_cross_encoder(folder / "hf", "bert")
    quantize_cross_encoder(source, folder / "fp32", "fp32", source_model="tiny-cross")
    return folder / "fp32"


@pytest.fixture(scope="module")
def cross_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_cross_encoder(tmp_path_factory.mktemp("cross"))


@pytest.fixture(scope="module")
def encoder(demo_int8_dir: Path) -> Encoder:
    """The in-process reference."""
    return Encoder.load(demo_int8_dir)


@pytest.fixture(scope="module")
def server(demo_int8_dir: Path, cross_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("server"), str(demo_int8_dir), "--reranker", str(cross_dir),
        "--alias", "text-embedding-3-small", "--max-inputs", "64", "--max-chars", "20000",
        "--max-batch", "16", "--max-wait-ms", "20")
    yield running
    assert running.stop() == 0


def _array(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


def _equal(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    got, want = np.ascontiguousarray(got), np.ascontiguousarray(want)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit


# --- the OpenAI route, with the clients people use ---------------------------------------------


def test_openai_client_gets_the_in_process_vectors(server: Server, encoder: Encoder) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    # without encoding_format the client asks for base64 and decodes it itself
    for fmt in ({"encoding_format": "float"}, {}):
        reply = client.embeddings.create(input=TEXTS, model=DEMO_ID, **fmt)
        _equal(_array([d.embedding for d in reply.data]), encoder.encode(TEXTS))
        assert [d.index for d in reply.data] == list(range(len(TEXTS)))
    tokens = sum(len(e.ids) for e in encoder.tokenizer.tokenize(TEXTS)[0])
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == tokens
    assert reply.model == DEMO_ID
    small = client.embeddings.create(input="hello world", model="text-embedding-3-small",
                                     dimensions=128, extra_body={"input_type": "query"})
    want = encoder.encode(["hello world"], "query", truncate_dim=128)
    _equal(_array([small.data[0].embedding]), want)
    ids = [m.id for m in client.models.list().data]
    assert ids == [DEMO_ID, "text-embedding-3-small", "tiny-cross"]


def test_base64_is_little_endian_float32(server: Server, encoder: Encoder) -> None:
    body = httpx.post(f"{server.url}/v1/embeddings",
                      json={"input": TEXTS[:2], "encoding_format": "base64"}).json()
    rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]]
    _equal(np.stack(rows).astype(np.float32), encoder.encode(TEXTS[:2]))


def test_concurrent_requests_are_batched_and_bit_identical(
    server: Server, encoder: Encoder
) -> None:
    """40 requests at once, of 1 to 8 texts in both prompts, one of them bad: every good one
    gets exactly the in-process rows, the bad one alone gets its 400, and calls were shared."""
    corpus = [f"{t} {i}" for i in range(5) for t in TEXTS]
    requests = [(corpus[i % 37:i % 37 + 1 + i % 8], "query" if i % 3 == 0 else "document")
                for i in range(40)]
    before = _metric(server, "ipex_embed_batch_texts_count")

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            bad = client.post("/v1/embeddings", content='{"input": ["ok", "bad \\ud800"]}',
                              headers={"content-type": "application/json"})
            good = [client.post("/v1/embeddings", json={"input": texts, "input_type": kind})
                    for texts, kind in requests]
            return await asyncio.gather(bad, *good)

    bad, *replies = asyncio.run(run())
    assert bad.status_code == 400 and bad.json()["error"]["index"] == 1
    for (texts, kind), reply in zip(requests, replies, strict=True):
        assert reply.status_code == 200, reply.text
        _equal(_array([d["embedding"] for d in reply.json()["data"]]), encoder.encode(texts, kind))
    calls = _metric(server, "ipex_embed_batch_texts_count") - before
    assert calls < 0.75 * len(requests)  # requests shared model calls (14 of 41 here)


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{"))


def test_langchain_fills_an_in_memory_vector_store(server: Server, encoder: Encoder) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(base_url=f"{server.url}/v1", api_key="unused", model=DEMO_ID,
                                  check_embedding_ctx_length=False)
    store = InMemoryVectorStore.from_texts(TEXTS, embeddings)
    stored = {doc["text"]: doc["vector"] for doc in store.store.values()}
    _equal(_array([stored[t] for t in TEXTS]), encoder.encode(TEXTS))
    top = store.similarity_search("Does aspirin prevent colorectal cancer?", k=1)[0]
    assert top.page_content == TEXTS[0]


def test_llama_index_builds_a_vector_store_index(server: Server, encoder: Encoder) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.openai import OpenAIEmbedding

    # `model` must be one of OpenAI's names (LlamaIndex checks it); `model_name` is sent as is
    embed_model = OpenAIEmbedding(api_base=f"{server.url}/v1", api_key="unused",
                                  model_name=DEMO_ID, max_retries=0)
    texts = [t for t in TEXTS if t]
    nodes = [TextNode(text=t, id_=str(i)) for i, t in enumerate(texts)]
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    stored = index.vector_store.data.embedding_dict  # type: ignore[attr-defined]
    _equal(_array([stored[str(i)] for i in range(len(texts))]), encoder.encode(texts))
    hits = index.as_retriever(similarity_top_k=1).retrieve("Does aspirin prevent cancer?")
    assert hits[0].node.get_content() == TEXTS[0]
    aliased = OpenAIEmbedding(api_base=f"{server.url}/v1", api_key="unused",
                              model="text-embedding-3-small", max_retries=0)
    _equal(_array([aliased.get_text_embedding("hello world")]), encoder.encode(["hello world"]))


# --- the TEI and Cohere routes -------------------------------------------------------------


def test_tei_embed(server: Server, encoder: Encoder) -> None:
    reply = httpx.post(f"{server.url}/embed", json={"inputs": TEXTS})
    _equal(_array(reply.json()), encoder.encode(TEXTS))
    raw = httpx.post(f"{server.url}/embed", json={"inputs": "hello", "normalize": False,
                                                  "prompt_name": "query"})
    _equal(_array(raw.json()), encoder.encode(["hello"], "query", normalize=False))
    cut = httpx.post(f"{server.url}/embed", json={"inputs": [LONG_TEXT], "truncate": True})
    with pytest.warns(UserWarning):
        _equal(_array(cut.json()), encoder.encode([LONG_TEXT]))
    # the client chose truncate=True: the server's log gets no per-call TruncationWarning
    assert "TruncationWarning" not in server.log.read_text()


def test_tei_and_cohere_rerank_with_a_cross_encoder(server: Server, cross_dir: Path) -> None:
    model = CrossEncoder.load(cross_dir)
    scores = model.score(QUERY, TEXTS)
    order = np.argsort(-scores, kind="stable")
    tei = httpx.post(f"{server.url}/rerank",
                     json={"query": QUERY, "texts": TEXTS, "return_text": True}).json()
    assert [r["index"] for r in tei] == order.tolist()
    _equal(np.float32([r["score"] for r in tei]), scores[order])
    assert [r["text"] for r in tei] == [TEXTS[i] for i in order]
    raw = httpx.post(f"{server.url}/rerank",
                     json={"query": QUERY, "texts": TEXTS, "raw_scores": True}).json()
    _equal(np.float32([r["score"] for r in raw]),
           np.sort(model.score(QUERY, TEXTS, activation="none"))[::-1])
    assert "text" not in raw[0]
    documents = [TEXTS[0], {"text": TEXTS[1]}, *TEXTS[2:]]
    cohere = httpx.post(f"{server.url}/v1/rerank", json={
        "query": QUERY, "documents": documents, "top_n": 3, "return_documents": True}).json()
    assert cohere["model"] == "tiny-cross"
    assert [r["index"] for r in cohere["results"]] == order[:3].tolist()
    _equal(np.float32([r["relevance_score"] for r in cohere["results"]]), scores[order[:3]])
    assert cohere["results"][0]["document"] == {"text": TEXTS[order[0]]}


# --- every bad request is a 4xx naming the field, the index and the fix ------------------------

SURROGATE = '"bad \\ud800 text"'
BAD_REQUESTS = [
    ("/v1/embeddings", {"input": ["ok", 3]}, 422, "input", 1),
    ("/v1/embeddings", {"input": [[1, 2, 3]]}, 422, "input", 0),
    ("/v1/embeddings", {"input": None}, 422, "input", None),
    ("/v1/embeddings", {"input": []}, 422, "input", None),
    ("/v1/embeddings", '{"input": ["ok", "fine", ' + SURROGATE + "]}", 400, "input", 2),
    ("/v1/embeddings", {"input": "x", "model": "gpt-4"}, 400, "model", None),
    ("/v1/embeddings", {"input": ["x"] * 65}, 422, "input", None),
    ("/v1/embeddings", {"input": ["ok", "x" * 20001]}, 422, "input", 1),
    ("/v1/embeddings", {"input": ["ok", LONG_TEXT], "truncate": False}, 400, "input", 1),
    ("/v1/embeddings", {"input": "x", "dimensions": 0}, 422, "dimensions", None),
    ("/v1/embeddings", {"input": "x", "dimensions": 385}, 422, "dimensions", None),
    ("/v1/embeddings", {"input": "x", "dimensions": "128"}, 422, "dimensions", None),
    ("/v1/embeddings", {"input": "x", "input_type": "passage"}, 422, "input_type", None),
    ("/v1/embeddings", {"input": "x", "encoding_format": "int8"}, 422, "encoding_format", None),
    ("/v1/embeddings", {"input": "x", "inputtype": "query"}, 422, "inputtype", None),
    ("/v1/embeddings", '{"input": ', 422, "body", None),
    ("/v1/embeddings", {"model": DEMO_ID}, 422, "input", None),
    ("/embed", {"inputs": {"text": "x"}}, 422, "inputs", None),
    ("/embed", {"inputs": ["ok", LONG_TEXT]}, 400, "inputs", 1),
    ("/rerank", {"query": QUERY, "texts": ["ok", None]}, 422, "texts", 1),
    ("/rerank", {"query": QUERY, "texts": "one"}, 422, "texts", None),
    ("/rerank", '{"query": ' + SURROGATE + ', "texts": ["ok"]}', 400, "query", None),
    ("/rerank", '{"query": "q", "texts": ["ok", ' + SURROGATE + "]}", 400, "texts", 1),
    ("/v1/rerank", {"query": QUERY, "documents": []}, 422, "documents", None),
    ("/v1/rerank", {"query": QUERY, "documents": ["a"], "top_n": 0}, 422, "top_n", None),
    ("/v1/rerank", {"query": 5, "documents": ["a"]}, 422, "query", None),
    ("/v1/rerank", {"query": QUERY, "documents": ["a"], "model": "x"}, 400, "model", None),
]


@pytest.mark.parametrize(("route", "body", "status", "field", "index"), BAD_REQUESTS)
def test_bad_requests_name_the_field_index_and_fix(
    server: Server, route: str, body: Any, status: int, field: str, index: int | None
) -> None:
    if isinstance(body, str):
        reply = httpx.post(server.url + route, content=body,
                           headers={"content-type": "application/json"})
    else:
        reply = httpx.post(server.url + route, json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert (error["field"], error["index"]) == (field, index), error
    assert error["fix"] and error["message"]


def test_no_bad_request_was_a_500_and_metrics_count_routes(server: Server) -> None:
    assert httpx.post(f"{server.url}/v1/embeddings", json={"input": "ok"}).status_code == 200
    assert httpx.post(f"{server.url}/v1/embeddings", json={"input": 1}).status_code == 422
    text = httpx.get(f"{server.url}/metrics").text
    assert 'status="500"' not in text
    assert 'ipex_embed_requests_total{route="/v1/embeddings",status="200"}' in text
    assert 'ipex_embed_requests_total{route="/v1/embeddings",status="422"}' in text
    for name in ("ipex_embed_batch_texts_bucket", "ipex_embed_queue_depth",
                 "ipex_embed_request_seconds_bucket", "ipex_embed_queue_wait_seconds_bucket"):
        assert name in text


# --- API key, a bi-encoder reranker, the queue limit -------------------------------------------


@pytest.fixture(scope="module")
def keyed(demo_int8_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("keyed"), str(demo_int8_dir), "--reranker", str(demo_int8_dir),
        "--max-queue", "4", "--max-inputs", "4", "--max-batch", "8", "--max-wait-ms", "400",
        env={"IPEX_EMBED_API_KEY": KEY})
    yield running
    assert running.stop() == 0


def test_api_key_is_required_except_for_probes(keyed: Server) -> None:
    good = {"Authorization": f"Bearer {KEY}"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        reply = httpx.post(f"{keyed.url}/embed", json={"inputs": "x"}, headers=headers)
        assert reply.status_code == 401 and reply.json()["error"]["field"] == "Authorization"
    assert httpx.post(f"{keyed.url}/embed", json={"inputs": "x"}, headers=good).status_code == 200
    assert httpx.get(f"{keyed.url}/health").status_code == 200
    assert httpx.get(f"{keyed.url}/metrics").status_code == 200


def test_a_bi_encoder_reranks_by_cosine(keyed: Server, encoder: Encoder) -> None:
    texts = TEXTS[:3]  # with the query, 4 texts: the most this server queues
    reply = httpx.post(f"{keyed.url}/rerank", json={"query": QUERY, "texts": texts},
                       headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    want = encoder.encode(texts) @ encoder.encode([QUERY], "query")[0]
    order = np.argsort(-want, kind="stable")
    assert [r["index"] for r in reply.json()] == order.tolist()
    _equal(np.float32([r["score"] for r in reply.json()]), want[order])


def test_a_full_queue_answers_429_with_retry_after(keyed: Server) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}

    async def run() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=keyed.url, headers=headers, timeout=30) as client:
            first = asyncio.ensure_future(client.post("/embed", json={"inputs": ["a"] * 4}))
            await asyncio.sleep(0.15)  # the first waits 400 ms for batch-mates: the queue is full
            second = await client.post("/embed", json={"inputs": ["b"]})
            return await first, second

    first, second = asyncio.run(run())
    assert first.status_code == 200
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert second.json()["error"]["code"] == "queue_full"


# --- SIGTERM drains ------------------------------------------------------------------------


def test_sigterm_drains_requests_in_flight_and_exits_0(
    demo_int8_dir: Path, tmp_path: Path, encoder: Encoder
) -> None:
    running = start_server(tmp_path, str(demo_int8_dir), "--max-wait-ms", "500")
    assert httpx.post(f"{running.url}/rerank", json={"query": "q", "texts": ["a"]}
                      ).status_code == 404  # no reranker: the error says how to add one
    replies: list[httpx.Response] = []

    def send() -> None:
        replies.append(httpx.post(f"{running.url}/embed", json={"inputs": TEXTS}, timeout=30))

    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(0.2)  # queued, waiting 500 ms for batch-mates
    running.process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert running.process.wait(timeout=60) == 0
    assert replies and replies[0].status_code == 200
    _equal(_array(replies[0].json()), encoder.encode(TEXTS))


# --- in-process: the batcher and readiness, no model --------------------------------------------


def _echo(key: Any, items: list[int]) -> tuple[np.ndarray, ...]:
    if -1 in items:
        raise ValueError("bad item")
    return (np.asarray(items) * (10 if key == "ten" else 1),)


def test_batcher_coalesces_by_key_and_isolates_errors() -> None:
    calls: list[tuple[Any, list[int]]] = []

    def run(key: Any, items: list[int]) -> tuple[np.ndarray, ...]:
        calls.append((key, list(items)))
        return _echo(key, items)

    async def main() -> list[Any]:
        batcher = Batcher("t", run, max_batch=8, max_wait_s=0.05, max_queue=100,
                          metrics=Metrics())
        batcher.start()
        jobs = [batcher.submit("one", [1, 2]), batcher.submit("ten", [3]),
                batcher.submit("one", [4, -1]), batcher.submit("one", [5])]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        await batcher.stop()
        return results

    one, ten, bad, five = asyncio.run(main())
    assert one[0].tolist() == [1, 2] and ten[0].tolist() == [30] and five[0].tolist() == [5]
    assert isinstance(bad, ValueError)
    assert calls[0] == ("one", [1, 2, 4, -1, 5])  # one call for the key; "ten" kept apart
    assert ("ten", [3]) in calls and ("one", [1, 2]) in calls[1:]  # then each job alone


def test_batcher_refuses_beyond_max_queue() -> None:
    async def main() -> None:
        batcher = Batcher("t", _echo, max_batch=8, max_wait_s=0.2, max_queue=3,
                          metrics=Metrics())
        batcher.start()
        first = asyncio.ensure_future(batcher.submit("k", [1, 2]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            await batcher.submit("k", [3, 4])
        assert (await first)[0].tolist() == [1, 2]
        await batcher.stop()

    asyncio.run(main())


def test_health_is_503_until_the_models_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from ipex_embeddings.serve import ServeSettings, create_app, state

    release = threading.Event()
    monkeypatch.setattr(state, "load_models", lambda settings: release.wait(30) and {})
    app = create_app(ServeSettings(model="unused"))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 503
        reply = client.post("/embed", json={"inputs": "x"})
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
        release.set()
        for _ in range(100):
            if client.get("/health").status_code == 200:
                break
            time.sleep(0.02)
        assert client.get("/health").status_code == 200
        assert client.post("/embed", json={"inputs": "x"}).status_code == 404  # no model


def test_the_langchain_server_example_retrieves(server: Server) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    result = subprocess.run(
        [sys.executable, str(examples / "langchain_server.py"), "--url", server.url,
         "--queries", "20"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Embedded 283 abstracts" in result.stdout
    found = int(result.stdout.split("top 3 for ")[1].split(" of ")[0])
    assert found >= 12  # MiniLM finds a judged abstract for most claims; a broken server few


def test_the_server_needs_no_torch_and_no_builder() -> None:
    heavy = ("torch", "transformers", "nncf", "optimum", "sentence_transformers")
    for imports, banned in (("import ipex_embeddings.serve", (*heavy, "ipex_embeddings_builder")),
                            ("from ipex_embeddings_builder.cli.serve import serve_command", heavy)):
        code = (f"import sys; {imports}; "
                f"bad = [m for m in sys.modules if m.split('.')[0] in {banned!r}]; "
                "assert not bad, bad")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_serve_command_refuses_bad_settings_and_folders_before_listening(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ipex_embeddings_builder.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["serve", str(tmp_path), "--max-queue", "10",
                                  "--max-inputs", "20"])
    assert result.exit_code == 2 and "max_queue=10 is below max_inputs=20" in result.output
    result = runner.invoke(main, ["serve", str(tmp_path)])
    assert result.exit_code == 2 and "MODEL" in result.output
