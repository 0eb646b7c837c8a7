"""Cold start and memory of the runtime: fresh processes that load a model folder and embed once.

    python benchmarks/cold_start.py MODEL_DIR [--runs 5] [--fresh-cache]

Each run is a new Python process that imports ipex_embeddings, loads the folder, embeds one text
and reports (with --fresh-cache, each process starts with an empty compiled-model cache, as
the very first load on a machine does): import time, load time, first-embedding time,
peak RSS, and whether torch, transformers or optimum were imported. Prints the medians
as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from ipex_embeddings import Encoder
t1 = time.perf_counter()
encoder = Encoder.load(sys.argv[1])
t2 = time.perf_counter()
encoder.encode(["How does aspirin affect colorectal cancer risk?"], kind="query")
t3 = time.perf_counter()
heavy = [m for m in ("torch", "transformers", "optimum", "nncf") if m in sys.modules]
sys.path.insert(0, sys.argv[2])  # the benchmarks folder, after the checks above
from peak_rss import peak_rss_mb  # VmHWM: ru_maxrss would start from the parent's peak
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_encode_s": t3 - t2,
                  "cold_start_s": t3 - t0,
                  "peak_rss_mb": peak_rss_mb(),
                  "heavy_modules": heavy}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fresh-cache", action="store_true", help="empty compile cache per run")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "IPEX_EMBEDDINGS_CACHE": cache} if args.fresh_cache else None
            out = subprocess.run(
                [sys.executable, "-c", PROBE, args.model_dir, BENCHMARKS],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    keys = ["import_s", "load_s", "first_encode_s", "cold_start_s", "peak_rss_mb"]
    medians = {k: statistics.median(r[k] for r in runs) for k in keys}
    heavy = sorted({m for r in runs for m in r["heavy_modules"]})
    cache = "empty compile cache" if args.fresh_cache else "warm compile cache"
    print(f"| metric (median of {args.runs} fresh processes, {cache}) | value |\n| --- | --- |")
    for key in keys:
        print(f"| {key} | {medians[key]:.3f} |")
    print(f"| heavy modules imported | {', '.join(heavy) or 'none'} |")
    print(json.dumps({"medians": medians, "heavy_modules": heavy, "runs": runs}))


if __name__ == "__main__":
    main()
