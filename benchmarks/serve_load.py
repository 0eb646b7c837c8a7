"""Load-test `ipex-embed serve`: many concurrent clients, next to the bare in-process Encoder.

For each number of concurrent clients (default 1, 8, 32, 128) and each request shape, SciFact
texts are sent by asyncio + httpx clients, each sending its next request as soon as its last
one is answered:

- "query": one SciFact test claim per request (query prompt);
- "documents": eight SciFact documents ("title text") per request (document prompt).

Reported per row: requests/s, texts/s (docs/s), p50 and p99 latency in ms, errors (non-200 or
failed connections). The same requests are also run in-process, with the same number of threads
each calling `Encoder.encode` on its request's texts (what the server adds is the difference),
and as one `encode` call over all texts (the model's upper bound). With `--peer-url` another
server (e.g. infinity-emb, or TEI with `--peer-api tei`) gets the same requests, side by side.

    # start a server itself (on a free port), 300 requests per row
    python benchmarks/serve_load.py --model models/all-MiniLM-L6-v2-int8
    # or point it at running servers
    python benchmarks/serve_load.py --model models/all-MiniLM-L6-v2-int8 \\
        --url http://127.0.0.1:8080 --peer-url http://127.0.0.1:7997 \\
        --peer-model sentence-transformers/all-MiniLM-L6-v2 --output results/serve

Figures mean something only on a quiet machine, with the server and the clients pinned apart
(e.g. `taskset`); the script records the command, the CPU count and the versions next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

log = logging.getLogger("serve_load")

SHAPES = {"query": 1, "documents": 8}
"""Request shape -> texts per request."""


@dataclass
class Row:
    """One measured row of the table."""

    system: str
    shape: str
    clients: int
    requests: int
    seconds: float
    requests_per_s: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def scifact_texts() -> tuple[list[str], list[str]]:
    """SciFact's test claims and its documents ("title text"), in file order."""
    from ipex_embeddings_builder.data import document_text, load_beir

    data = load_beir()
    return list(data.queries.values()), [document_text(d) for d in data.corpus.values()]


def request_texts(shape: str, i: int, queries: list[str], docs: list[str]) -> list[str]:
    """The texts of request `i` of a shape (cycling through the data)."""
    if shape == "query":
        return [queries[i % len(queries)]]
    size = SHAPES[shape]
    start = (i * size) % (len(docs) - size)
    return docs[start:start + size]


def summarize(system: str, shape: str, clients: int, latencies: list[float], errors: int,
              seconds: float) -> Row:
    """A row from per-request latencies (seconds) of the successful requests."""
    ok = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    done = len(latencies)
    return Row(system, shape, clients, done + errors, round(seconds, 3),
               round(done / seconds, 2), round(done * SHAPES[shape] / seconds, 2),
               round(float(np.percentile(ok, 50)), 3), round(float(np.percentile(ok, 99)), 3),
               errors)


# --- HTTP clients ------------------------------------------------------------------------------


def openai_body(model: str | None, kind: str) -> Callable[[list[str]], dict[str, Any]]:
    """The JSON of an OpenAI embeddings request (ours adds `input_type`)."""
    def body(texts: list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {"input": texts, "encoding_format": "float"}
        if model:
            payload["model"] = model
        if kind:
            payload["input_type"] = kind
        return payload
    return body


async def http_row(system: str, url: str, make_body: Callable[[list[str]], dict[str, Any]],
                   shape: str, clients: int, requests: int, data: tuple[list[str], list[str]],
                   headers: dict[str, str]) -> Row:
    """`requests` requests from `clients` concurrent clients to `url`."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as client:

        async def one_client() -> None:
            nonlocal errors
            for i in counter:
                body = make_body(request_texts(shape, i, *data))
                start = time.perf_counter()
                try:
                    reply = await client.post(url, json=body)
                    ok = reply.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        for i in range(min(clients, 4)):  # warm the connections and the server's kernels
            await client.post(url, json=make_body(request_texts(shape, i, *data)))
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        seconds = time.perf_counter() - started
    return summarize(system, shape, clients, latencies, errors, seconds)


# --- in-process --------------------------------------------------------------------------------


def in_process_rows(encoder: Any, shape: str, clients: int, requests: int,
                    data: tuple[list[str], list[str]]) -> list[Row]:
    """The same requests on an in-process Encoder from `clients` threads, and as one call."""
    kind = "query" if shape == "query" else "document"
    batches = [request_texts(shape, i, *data) for i in range(requests)]
    encoder.encode(batches[0], kind)
    latencies: list[float] = []

    def call(texts: list[str]) -> None:
        start = time.perf_counter()
        encoder.encode(texts, kind)
        latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, batches))
    rows = [summarize("in-process Encoder, one call per request", shape, clients, latencies, 0,
                      time.perf_counter() - started)]
    everything = [t for texts in batches for t in texts]
    started = time.perf_counter()
    encoder.encode(everything, kind)
    seconds = time.perf_counter() - started
    rows.append(Row("in-process Encoder, all texts in one call", shape, clients, requests,
                    round(seconds, 3), round(requests / seconds, 2),
                    round(len(everything) / seconds, 2), float("nan"), float("nan"), 0))
    return rows


# --- a server started here ---------------------------------------------------------------------


def start_server(model: str, extra: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """`ipex-embed serve MODEL` on a free 127.0.0.1 port, once /health answers 200."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = shutil.which("ipex-embed")
    base = [command] if command else [sys.executable, "-m", "ipex_embeddings_builder.cli"]
    with log_path.open("wb") as out:
        process = subprocess.Popen([*base, "serve", model, "--port", str(port), *extra],
                                   stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not start; see {log_path}")


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| system | shape | clients | requests | requests/s | docs/s | p50 ms | p99 ms | "
             "errors |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.system} | {r.shape} | {r.clients} | {r.requests} | "
                     f"{r.requests_per_s} | {r.texts_per_s} | {r.p50_ms} | {r.p99_ms} | "
                     f"{r.errors} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="The model folder (in-process baseline, "
                        "and the server's when --url is not given).")
    parser.add_argument("--url", help="A running ipex-embed server (default: start one).")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="Extra argument for the server started here (repeat), e.g. "
                        "--serve-arg=--max-batch=64.")
    parser.add_argument("--api-key", default=os.environ.get("IPEX_EMBED_API_KEY"))
    parser.add_argument("--peer-url", help="Another server for a side-by-side (infinity-emb).")
    parser.add_argument("--peer-api", choices=["openai", "tei"], default="openai")
    parser.add_argument("--peer-route", default="/embeddings",
                        help="The peer's OpenAI route (infinity: /embeddings).")
    parser.add_argument("--peer-model", help="The model id the peer expects.")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--requests", type=int, default=300, help="Requests per row.")
    parser.add_argument("--threads", type=int, help="In-process Encoder threads.")
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument("--output", type=Path, help="Folder for serve_load.md and .json.")
    return parser.parse_args(argv)


def targets(args: argparse.Namespace, url: str) -> list[tuple[str, str, Callable]]:
    """(system, route URL, body maker per kind) of each server to load."""
    found: list[tuple[str, str, Callable]] = [
        ("ipex-embed serve", f"{url}/v1/embeddings", lambda kind: openai_body(None, kind))]
    if args.peer_url and args.peer_api == "tei":
        found.append(("peer (TEI /embed)", f"{args.peer_url}/embed",
                      lambda kind: (lambda texts: {"inputs": texts})))
    elif args.peer_url:
        found.append((f"peer ({args.peer_url})", args.peer_url + args.peer_route,
                      lambda kind: openai_body(args.peer_model, "")))
    return found


def run(args: argparse.Namespace) -> list[Row]:
    """Every row: servers first, then the in-process baseline."""
    data = scifact_texts()
    process = None
    url = args.url
    if url is None:
        log_path = Path(args.output or ".") / "serve_load_server.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        process, url = start_server(args.model, args.serve_arg, log_path)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    rows: list[Row] = []
    try:
        for system, route, body in targets(args, url):
            for shape in args.shapes:
                kind = "query" if shape == "query" else "document"
                for clients in args.clients:
                    row = asyncio.run(http_row(system, route, body(kind), shape, clients,
                                               args.requests, data, headers))
                    log.info("%s", asdict(row))
                    rows.append(row)
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    if not args.no_in_process:
        from ipex_embeddings import Encoder

        encoder = Encoder.load(args.model, threads=args.threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # long documents are truncated, as by the server
            for shape in args.shapes:
                for clients in args.clients:
                    rows += in_process_rows(encoder, shape, clients, args.requests, data)
    return rows


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    args = parse_args(argv)
    rows = run(args)
    report = table(rows)
    sys.stdout.write(report + "\n")
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        meta = {"command": sys.argv, "cpus": os.cpu_count(), "python": platform.python_version(),
                "platform": platform.platform()}
        (args.output / "serve_load.json").write_text(
            json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
        (args.output / "serve_load.md").write_text(
            f"Command: `{' '.join(sys.argv)}`, {os.cpu_count()} CPUs.\n\n{report}\n")


if __name__ == "__main__":
    main()
