"""Measure versions of the core side by side: docs/s, query latency, load time, fidelity.

Each optimisation step of the `Encoder` is kept only if it helps, so every step is measured
against the one before, in one run, on the same machine: each variant is a checkout's `src/`
folder (the runtime at some commit) and a model folder. Every measurement is a fresh process
(load, SciFact documents at batch 32, then test claims one at a time), variants take turns
round-robin, and figures are medians over rounds. The first round warms each variant's
compiled-model cache and is not counted, as in a deployed service whose cache is warm.

    python benchmarks/core_steps.py --reference /tmp/m/fp32 \\
        --variant before=/work/base/src:/tmp/m/int8 --variant buckets=src:/tmp/m/int8

Cosine is taken against the `--reference` folder's vectors (our fp32 IR, which matches
PyTorch fp32 at >= 0.9999), embedded by the first variant's runtime.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCIFACT = Path(__file__).resolve().parents[1] / "builder/ipex_embeddings_builder/data/scifact"
log = logging.getLogger("core_steps")


def scifact_texts(documents: int, queries: int) -> tuple[list[str], list[str]]:
    """`documents` corpus texts evenly spread ("title text"), and the first test claims."""
    rows = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    step = max(1, len(rows) // documents)
    docs = [f"{r['title']} {r['text']}".strip() for r in rows[::step][:documents]]
    test_ids = {line.split("\t")[0] for line in (SCIFACT / "qrels/test.tsv").open()}
    claims = [json.loads(line) for line in (SCIFACT / "queries.jsonl").open()]
    return docs, [q["text"] for q in claims if q["_id"] in test_ids][:queries]


def worker(args: argparse.Namespace) -> None:
    """One measurement in this process; prints a JSON line, saves vectors to --out."""
    import warnings

    started = time.perf_counter()
    from ipex_embeddings import Encoder

    encoder = Encoder.load(args.model, threads=args.threads, compile_cache=args.cache)
    encoder.encode(["warm up"], "query")
    load_s = time.perf_counter() - started
    docs, queries = scifact_texts(args.docs, args.queries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        doc_vectors = encoder.encode(docs, "document", batch_size=32)
        docs_s = len(docs) / (time.perf_counter() - start)
        passes = []
        for _ in range(2):
            times, query_vectors = [], []
            for query in queries:
                start = time.perf_counter()
                query_vectors.append(encoder.encode([query], "query")[0])
                times.append((time.perf_counter() - start) * 1e3)
            passes.append(times)
    np.save(args.out, np.concatenate([doc_vectors, np.stack(query_vectors)]))
    print(json.dumps({
        "load_s": load_s, "docs_per_s": docs_s,
        "p50_first": float(np.percentile(passes[0], 50)),
        "p90_first": float(np.percentile(passes[0], 90)),
        "p50": float(np.percentile(passes[1], 50)), "p90": float(np.percentile(passes[1], 90)),
        "loadavg": os.getloadavg()[0],
    }))


def measure(src: str, model: str, cache: str, out: str, args: argparse.Namespace) -> dict:
    """Run one worker process on the runtime in `src` and return its figures."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src), "TOKENIZERS_PARALLELISM": "true"}
    command = [
        sys.executable, __file__, "--worker", "--model", model, "--cache", cache, "--out", out,
        "--docs", str(args.docs), "--queries", str(args.queries), "--threads", str(args.threads),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"worker for {src} {model} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    """All variants, round-robin, plus the fp32 reference; returns medians and cosines."""
    variants = dict(spec.split("=", 1) for spec in args.variant)
    work = Path(tempfile.mkdtemp(prefix="core-steps-"))
    first_src = next(iter(variants.values())).split(":")[0]
    ref_path = str(work / "reference.npy")
    measure(first_src, args.reference, str(work / "cache-ref"), ref_path, args)
    reference = np.load(ref_path)
    rounds: dict[str, list[dict]] = {name: [] for name in variants}
    for round_index in range(args.rounds + 1):
        for name, spec in variants.items():
            src, model = spec.split(":", 1)
            out = str(work / f"{name}.npy")
            figures = measure(src, model, str(work / f"cache-{name}"), out, args)
            log.info("round %d %s: %s", round_index, name, figures)
            if round_index:
                rounds[name].append(figures)
    results = {}
    for name, measured in rounds.items():
        cosines = (np.load(work / f"{name}.npy") * reference).sum(axis=1)
        medians = {k: float(np.median([m[k] for m in measured])) for k in measured[0]}
        results[name] = {**medians, "cos_mean": float(cosines.mean()),
                         "cos_min": float(cosines.min()), "rounds": measured}
    return results


def table(results: dict) -> str:
    """The results as a markdown table."""
    lines = ["| variant | docs/s | query p50 / p90 ms (first pass) | query p50 / p90 ms | "
             "load s | cosine to fp32 mean (min) |", "|---|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['docs_per_s']:.1f} | {r['p50_first']:.2f} / {r['p90_first']:.2f} | "
            f"{r['p50']:.2f} / {r['p90']:.2f} | {r['load_s']:.2f} | "
            f"{r['cos_mean']:.4f} ({r['cos_min']:.4f}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=SRC_DIR:MODEL_DIR (repeatable; the first is the baseline)")
    parser.add_argument("--reference", help="fp32 model folder for the cosine")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = run(args)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
