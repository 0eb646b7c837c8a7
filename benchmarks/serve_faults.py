"""Fault runs for `ipex-embed serve`: clients that disconnect mid-request, and SIGTERM under load.

1. **Disconnects.** `--clients` clients send SciFact document requests (8 texts each); every
   `--abandon-every`-th request is abandoned a few milliseconds after it is sent (the client
   closes its connection before the answer). Afterwards `/health` must answer 200 and every
   completed request's vectors must equal the in-process `Encoder`'s bit for bit.
2. **SIGTERM under load.** The same clients send requests, each on a new connection, and the
   server gets SIGTERM after `--sigterm-after` seconds. Every request ends as one of: answered
   (200, vectors checked bit for bit), refused (the connection was not accepted: the server had
   stopped listening, so the request was never acknowledged and the client may retry it), or
   lost (accepted, then closed without an answer). The run passes with 0 lost, 0 wrong vectors
   and exit status 0.

    python benchmarks/serve_faults.py --model models/all-MiniLM-L6-v2-int8 \\
        --output benchmarks/results/serve-faults

Not a timed benchmark: it counts outcomes. It writes `serve_faults.json` in --output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from serve_load import request_texts, scifact_texts, start_server

log = logging.getLogger("serve_faults")
ROUTE = "/v1/embeddings"


def expected_vectors(model: str, requests: int, data: tuple[list[str], list[str]]) -> list:
    """The in-process vectors of each distinct request, computed before the server starts."""
    from ipex_embeddings import Encoder

    encoder = Encoder.load(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long documents are truncated, as by the server
        return [encoder.encode(request_texts("documents", i, *data), "document")
                for i in range(requests)]


def body(i: int, data: tuple[list[str], list[str]]) -> dict[str, Any]:
    return {"input": request_texts("documents", i, *data), "input_type": "document"}


def matches(reply: httpx.Response, expected: np.ndarray) -> bool:
    vectors = np.asarray([item["embedding"] for item in reply.json()["data"]], np.float32)
    return bool(np.array_equal(vectors, expected))


async def disconnects(url: str, args: argparse.Namespace, data: tuple, expected: list) -> dict:
    """Phase 1: abandon every n-th request mid-flight; the rest must be answered right."""
    outcome: Counter[str] = Counter()
    counter = iter(range(args.requests))
    async with httpx.AsyncClient(timeout=120) as client:

        async def one_client() -> None:
            for i in counter:
                k = i % len(expected)
                if i % args.abandon_every == 0:
                    try:
                        await client.post(url + ROUTE, json=body(k, data), timeout=0.005)
                        outcome["answered before the client gave up"] += 1
                    except httpx.TimeoutException:
                        outcome["abandoned"] += 1
                    continue
                try:
                    reply = await client.post(url + ROUTE, json=body(k, data))
                except httpx.HTTPError as err:
                    outcome[f"error: {type(err).__name__}"] += 1
                    continue
                ok = reply.status_code == 200 and matches(reply, expected[k])
                outcome["answered, equal" if ok else f"wrong: {reply.status_code}"] += 1

        await asyncio.gather(*(one_client() for _ in range(args.clients)))
        health = (await client.get(url + "/health")).status_code
        after = await client.post(url + ROUTE, json=body(1, data))
    return {"outcomes": dict(outcome), "health_after": health,
            "request_after_equal": after.status_code == 200 and matches(after, expected[1])}


async def sigterm_under_load(process: Any, url: str, args: argparse.Namespace, data: tuple,
                             expected: list) -> dict:
    """Phase 2: SIGTERM while clients keep sending, one connection per request."""
    outcome: Counter[str] = Counter()
    stop_at = time.monotonic() + args.sigterm_after + 30
    sent = iter(range(10**9))
    limits = httpx.Limits(max_keepalive_connections=0)  # a refused request is unambiguous
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one_client() -> None:
            for i in sent:
                if time.monotonic() > stop_at or process.poll() is not None:
                    return
                k = i % len(expected)
                try:
                    reply = await client.post(url + ROUTE, json=body(k, data))
                except httpx.ConnectError:
                    outcome["refused (never acknowledged)"] += 1
                    await asyncio.sleep(0.05)
                    continue
                except httpx.HTTPError as err:
                    outcome[f"lost: {type(err).__name__}"] += 1
                    continue
                if reply.status_code == 200:
                    ok = matches(reply, expected[k])
                    outcome["answered, equal" if ok else "answered, wrong vectors"] += 1
                else:
                    outcome[f"answered {reply.status_code}"] += 1

        async def terminate() -> None:
            await asyncio.sleep(args.sigterm_after)
            process.send_signal(signal.SIGTERM)

        await asyncio.gather(terminate(), *(one_client() for _ in range(args.clients)))
    code = await asyncio.to_thread(process.wait, 60)
    return {"outcomes": dict(outcome), "exit_status": code}


def passed(results: dict) -> bool:
    first, second = results["disconnects"], results["sigterm"]
    bad_first = [k for k in first["outcomes"] if k.startswith(("error", "wrong"))]
    bad_second = [k for k in second["outcomes"]
                  if k.startswith(("lost", "answered, wrong")) or k.startswith("answered 5")]
    return (not bad_first and first["health_after"] == 200 and first["request_after_equal"]
            and not bad_second and second["exit_status"] == 0)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=400, help="Phase 1 requests.")
    parser.add_argument("--abandon-every", type=int, default=5)
    parser.add_argument("--sigterm-after", type=float, default=3.0, help="Seconds of load.")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    data = scifact_texts()
    expected = expected_vectors(args.model, 64, data)
    log_dir = args.output or Path(".")
    log_dir.mkdir(parents=True, exist_ok=True)
    process, url = start_server(args.model, [], log_dir / "serve_faults_server.log")
    try:
        results = {"disconnects": asyncio.run(disconnects(url, args, data, expected))}
        results["sigterm"] = asyncio.run(sigterm_under_load(process, url, args, data, expected))
    finally:
        if process.poll() is None:
            process.kill()
    results["passed"] = passed(results)
    results["command"] = sys.argv
    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.output:
        (args.output / "serve_faults.json").write_text(text + "\n")
    sys.exit(0 if results["passed"] else 1)


if __name__ == "__main__":
    main()
