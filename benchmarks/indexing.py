"""Indexing throughput and memory: the bare Encoder vs `ipex-embed embed` local, Ray and Spark.

    python benchmarks/indexing.py MODEL_DIR --docs 20000 --rss-docs 1000000 --out results/indexing

The corpus is SciFact's 5,183 documents ("title text") **repeated** until `--docs` rows (ids made
unique with a repeat suffix; repeats give the same vectors, so this measures speed only), as one
Parquet file. Every engine embeds the same rows with `cores` threads in total (Ray: actors x
threads-per-actor = cores; Spark: local[cores], one thread per task). Figures are docs/s over the
whole run (model loads, reading and writing included) and the ratio to the bare Encoder (goal:
>= 0.9), timed on the corpus' first `--reference-docs` rows just before and just after each
engine, so that a machine whose speed drifts over the run (a shared VM's did, by 30 % in an
hour) does not pass for one engine beating another; that ratio over the bare Encoder's own is
the drift-corrected one (`drift_corrected`). Peak RSS: `ipex-embed embed` in a child
process on `--rss-docs` short synthetic documents (goal: flat, under 1 GB), against what
`Encoder.encode` on one list must hold at least (the list, and the float32 output alone,
n x dim x 4 bytes). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_rss import CHILD_EPILOGUE, child_peak_mb

from ipex_embeddings.encoder import available_cores

BARE = "Encoder.encode_stream"  # the engine every other one is compared with
SCIFACT = Path(__file__).parents[1] / "builder/ipex_embeddings_builder/data/scifact/corpus.jsonl"
# `ipex-embed` in a child that reports its own peak RSS: VmHWM, not ru_maxrss (which, in a child,
# starts from this large parent's peak; see peak_rss.py), nor RUSAGE_CHILDREN (which would also
# count the Spark JVM and Ray's processes, reaped earlier in this run).
CLI_RSS = ("import sys; from ipex_embeddings_builder.cli import main; "
           "main(sys.argv[1:], standalone_mode=False); "
           + CHILD_EPILOGUE.format(bench_dir=str(Path(__file__).parent)))


def write_corpus(path: Path, docs: int) -> None:
    """SciFact repeated to `docs` rows, as Parquet with columns id, text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in SCIFACT.open()]
    texts = [f"{r['title']} {r['text']}" for r in records]
    ids = [f"{records[i % len(records)]['_id']}-{i // len(records)}" for i in range(docs)]
    pq.write_table(pa.table({"id": ids, "text": [texts[i % len(texts)] for i in range(docs)]}),
                   path, row_group_size=10_000)


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def bare_encoder(model: str, corpus: Path, cores: int) -> float:
    import pyarrow.parquet as pq

    from ipex_embeddings import Encoder

    texts = pq.read_table(corpus, columns=["text"]).column("text").to_pylist()
    encoder = Encoder.load(model, threads=cores)
    return len(texts) / timed(lambda: sum(len(c) for c in encoder.encode_stream(texts)))


def shard_rows(docs: int, cores: int) -> int:
    """Rows per shard: the CLI's 10,000, or less so that there are 4 shards a core (a shard is
    one Ray actor's unit of work; fewer shards than actors leaves actors idle)."""
    return min(10_000, max(1, -(-docs // (4 * cores))))


def embed_local(model: str, corpus: Path, work: Path, cores: int, docs: int) -> float:
    from ipex_embeddings_builder.embed import EmbedOptions, embed_corpus

    options = EmbedOptions(id_field="id", threads=cores, shard_rows=shard_rows(docs, cores))
    return docs / timed(lambda: embed_corpus(model, corpus, work / "local", options))


def embed_ray(model: str, corpus: Path, work: Path, cores: int, docs: int, actors: int) -> float:
    import ray

    from ipex_embeddings_builder.embed import EmbedOptions, embed_corpus

    # a throwaway local cluster: no auth token written to ~/.ray for later clusters to trip on
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    try:
        options = EmbedOptions(id_field="id", threads=cores // actors,
                               shard_rows=shard_rows(docs, cores))
        return docs / timed(lambda: embed_corpus(
            model, corpus, work / f"ray{actors}", options, engine="ray",
            ray_options={"actors": actors}))
    finally:
        ray.shutdown()


def embed_spark(model: str, corpus: Path, work: Path, cores: int, docs: int) -> float:
    from pyspark.sql import SparkSession

    from ipex_embeddings.spark import embed_column

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "2g").getOrCreate())
    try:
        df = spark.read.parquet(str(corpus)).repartition(cores * 4)
        out = embed_column(df, model, threads=1)
        return docs / timed(lambda: out.write.parquet(str(work / "spark")))
    finally:
        spark.stop()


def peak_rss_embed(model: str, work: Path, docs: int, dimension: int) -> dict[str, float]:
    """Peak RSS (MB) of `ipex-embed embed` on `docs` short synthetic documents, in a child."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = work / "synthetic.parquet"
    words = ["cell", "protein", "gene", "cancer", "risk", "patients", "study", "results"]
    texts = [" ".join(words[(i + k) % len(words)] for k in range(8)) + f" {i}" for i in range(docs)]
    pq.write_table(pa.table({"text": texts}), corpus, row_group_size=50_000)
    command = [sys.executable, "-c", CLI_RSS, "embed", model, "-i", str(corpus), "-o",
               str(work / "rss")]
    runs: list[subprocess.CompletedProcess] = []
    seconds = timed(lambda: runs.append(
        subprocess.run(command, check=True, capture_output=True, text=True)))
    peak = child_peak_mb(runs[0].stdout)
    at_least = sum(49 + len(t) for t in texts) + docs * dimension * 4  # str objects + output
    return {"docs": docs, "embed_peak_rss_mb": peak,
            "embed_docs_per_s": docs / seconds, "encode_one_list_at_least_mb": at_least / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--reference-docs", type=int, default=2_000,
                        help="rows the bare Encoder embeds before and after each engine")
    parser.add_argument("--rss-docs", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=384, help="the model's vector size")
    parser.add_argument("--cores", type=int, default=available_cores(),
                        help="cores to use in all (default: those this process may run on)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/indexing"))
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["ray", "spark", "rss", "throughput"],
                        help="parts not to run (throughput: every docs/s figure)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = work / "corpus.parquet"
        rates = {} if "throughput" in args.skip else throughput(args, corpus, work)
        rss = None if "rss" in args.skip else peak_rss_embed(
            args.model, work, args.rss_docs, args.dimension)
    report(args, rates, rss)


def throughput(args: argparse.Namespace, corpus: Path, work: Path) -> dict[str, dict[str, float]]:
    """docs/s of each engine on SciFact repeated to `args.docs` documents, each beside the bare
    Encoder's docs/s on the corpus' first `args.reference_docs` rows, timed just before and just
    after that engine (their mean is the engine's reference): a machine whose speed drifts during
    a long run (a shared VM does) then shifts an engine and its reference alike."""
    write_corpus(corpus, args.docs)
    reference = work / "reference.parquet"
    write_corpus(reference, min(args.docs, args.reference_docs))
    engines = {BARE: lambda: bare_encoder(args.model, corpus, args.cores),
               "embed local": lambda: embed_local(args.model, corpus, work, args.cores, args.docs)}
    if "ray" not in args.skip:
        for actors in (1, 2):
            engines[f"embed --engine ray, {actors} actor(s) x {args.cores // actors} threads"] = (
                lambda actors=actors: embed_ray(
                    args.model, corpus, work, args.cores, args.docs, actors))
    if "spark" not in args.skip:
        engines[f"Spark local[{args.cores}]"] = lambda: embed_spark(
            args.model, corpus, work, args.cores, args.docs)
    rows, before = {}, bare_encoder(args.model, reference, args.cores)
    for name, run in engines.items():
        rate = run()
        after = bare_encoder(args.model, reference, args.cores)
        rows[name] = {"docs_per_s": rate, "reference_docs_per_s": (before + after) / 2,
                      "reference_before": before, "reference_after": after}
        before = after
    return rows


def vs_reference(row: dict[str, float]) -> float:
    """An engine's docs/s over the mean of the bare-Encoder references timed around it."""
    return row["docs_per_s"] / row["reference_docs_per_s"]


def drift_corrected(rates: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each engine's docs/s over its reference, divided by the same ratio for the bare Encoder on
    the full corpus: the engine against the bare Encoder with the machine's drift taken out, and
    also what the short reference run alone gets wrong (its warm-up, new shapes' first calls,
    weighs more in 1,000 rows than in 20,000: at 20,000 documents the bare Encoder ran at 1.05x
    its own reference)."""
    bare = vs_reference(rates[BARE])
    return {name: vs_reference(row) / bare for name, row in rates.items()}


def report(args: argparse.Namespace, rates: dict[str, dict[str, float]], rss: dict | None) -> None:
    lines = [f"`python benchmarks/indexing.py {args.model} --docs {args.docs} "
             f"--reference-docs {args.reference_docs} --rss-docs {args.rss_docs} "
             f"--skip {' '.join(args.skip)}`", ""]
    if rates:
        lines += [f"SciFact repeated to {args.docs} documents, {args.cores} cores, "
                  f"{shard_rows(args.docs, args.cores)} rows a shard. Reference: the bare Encoder "
                  f"on the first {min(args.docs, args.reference_docs)} rows, timed before and "
                  "after each engine (mean)", "",
                  "| engine | docs/s | reference docs/s (before, after) | vs reference "
                  "| vs bare Encoder, drift-corrected | docs/s per core |",
                  "|---|---:|---:|---:|---:|---:|"]
        corrected = drift_corrected(rates)
        lines += [f"| {name} | {r['docs_per_s']:.1f} | {r['reference_docs_per_s']:.1f} "
                  f"({r['reference_before']:.1f}, {r['reference_after']:.1f}) | "
                  f"{vs_reference(r):.2f}x | "
                  f"{corrected[name]:.2f}x | {r['docs_per_s'] / args.cores:.1f} |"
                  for name, r in rates.items()] + [""]
    if rss:
        lines += [f"Peak RSS of `ipex-embed embed` on {rss['docs']} short synthetic documents: "
                  f"{rss['embed_peak_rss_mb']:.0f} MB ({rss['embed_docs_per_s']:.0f} docs/s); "
                  f"`encode` on one list holds at least {rss['encode_one_list_at_least_mb']:.0f} "
                  "MB (the texts and the float32 output alone)."]
    (args.out / "indexing.json").write_text(json.dumps(
        {"docs": args.docs, "cores": args.cores, "reference_docs": args.reference_docs,
         "engines": rates, "rss": rss}, indent=2))
    (args.out / "indexing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
