"""SciFact test claims: BM25 alone vs reranked by a bi-encoder and by a cross-encoder (fp32, int8).

First stage: BM25 (`rerank_scifact.bm25_runs`: bm25s defaults, English stopwords, Snowball
stemming) over all 5,183 abstracts, top DEPTH (100) per claim. Rerankers of those candidates:
- bi-encoder: cosine of the claim and each candidate by the int8 all-MiniLM-L6-v2 folder
  (`ipex_embeddings.Encoder`, documents embedded once), alone and fused with the BM25 ranking by
  reciprocal rank fusion (k=60; `rerank_scifact.fused_run(cosines, 0.5)`, which is
  `IPEXRerank(fusion="rrf")`'s order, as rerank_scifact.py checks);
- cross-encoder fp32: sentence-transformers' `CrossEncoder.predict` on (claim, abstract);
- cross-encoder int8: `ipex_embeddings.CrossEncoder.predict` on the folder built from it.
Every run is scored by pytrec_eval (NDCG@10 `ndcg_cut_10`, MAP `map`), averaged over every judged
claim. Nothing is tuned on the test claims.

Run:
    python benchmarks/rerank_scifact_cross.py --cross-encoder SRC --int8 INT8_DIR \
        [--bi-encoder DIR] [--depth 100] [--queries N] [--output FILE]

SRC is the fp32 cross-encoder folder (e.g. made by train_cross_encoder_scifact.py), INT8_DIR the
folder `ipex-embed build SRC -o INT8_DIR` made of it, DIR a bi-encoder folder (omit it to build
the int8 demo model first). Writes JSON and a markdown table next to it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rerank_scifact import _display_path, bm25_runs, build_demo_model, fused_run, ranked, subset

from ipex_embeddings import CrossEncoder, Encoder, ModelConfig, TruncationWarning
from ipex_embeddings.ranking import RRF_K
from ipex_embeddings_builder.bm25 import BM25_SETUP
from ipex_embeddings_builder.data import BeirData, load_beir
from ipex_embeddings_builder.rerank_validation import rerank_metrics

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "rerank_scifact_cross.json"
Run = dict[str, dict[str, float]]


def log(message: str) -> None:
    """Progress on stderr (this is a script; the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def bi_encoder_cosines(model_dir: Path, test: BeirData, first: Run) -> dict:
    """Per claim: its candidates in BM25 order and their cosines to the claim."""
    encoder = Encoder.load(model_dir)
    needed = sorted({d for candidates in first.values() for d in candidates})
    from ipex_embeddings_builder.data import document_text

    docs = encoder.encode_documents([document_text(test.corpus[d]) for d in needed],
                                    normalize=True)
    by_id = dict(zip(needed, docs))
    qids = list(first)
    queries = encoder.encode_queries([test.queries[q] for q in qids], normalize=True)
    return {q: (list(first[q]), np.array([float(by_id[d] @ v) for d in first[q]]))
            for q, v in zip(qids, queries)}


def cross_encoder_run(scores: np.ndarray, first: Run) -> Run:
    """Flat scores (candidates of each claim in BM25 order) back into a run, ranked by score
    (a stable sort, so ties keep the BM25 order)."""
    run, start = {}, 0
    for qid, candidates in first.items():
        doc_ids = list(candidates)
        chunk = scores[start:start + len(doc_ids)]
        run[qid] = ranked([doc_ids[i] for i in np.argsort(-chunk, kind="stable")])
        start += len(doc_ids)
    return run


def cross_scores(source: Path, int8_dir: Path, pairs: list) -> dict[str, tuple[np.ndarray, float]]:
    """(scores, seconds) of the fp32 source in sentence-transformers and of the int8 folder."""
    from sentence_transformers import CrossEncoder as StCrossEncoder

    int8 = CrossEncoder.load(int8_dir)
    found = {}
    started = time.perf_counter()
    found["int8"] = (int8.predict(pairs, batch_size=32), time.perf_counter() - started)
    log(f"  int8 cross-encoder: {found['int8'][1]:.0f} s")
    fp32 = StCrossEncoder(str(source), device="cpu", max_length=int8.max_seq_length)
    started = time.perf_counter()
    scores = np.asarray(fp32.predict(pairs, batch_size=32, show_progress_bar=False))
    found["fp32"] = (scores, time.perf_counter() - started)
    log(f"  fp32 cross-encoder: {found['fp32'][1]:.0f} s")
    return found


def benchmark(source: Path, int8_dir: Path, bi_dir: Path, depth: int, limit: int | None) -> dict:
    """NDCG@10 and MAP of every system on the test claims."""
    test = subset(load_beir(split="test"), limit)
    warnings.simplefilter("ignore", TruncationWarning)  # most abstracts exceed the limits
    first, nodes, _ = bm25_runs(test, depth)
    texts = {n.node_id: n.text for n in nodes}
    log(f"BM25 top {depth} of {len(first)} claims; bi-encoder ...")
    cosines = bi_encoder_cosines(bi_dir, test, first)
    pairs = [(test.queries[q], texts[d]) for q, candidates in first.items() for d in candidates]
    log(f"cross-encoders on {len(pairs)} pairs ...")
    cross = cross_scores(source, int8_dir, pairs)
    runs = {
        "BM25 alone": first,
        "BM25 + bi-encoder rerank (int8 all-MiniLM-L6-v2)": fused_run(cosines, 1.0),
        f"BM25 + bi-encoder, RRF k={RRF_K}": fused_run(cosines, 0.5),
        "BM25 + cross-encoder fp32 (sentence-transformers)": cross_encoder_run(cross["fp32"][0],
                                                                              first),
        "BM25 + cross-encoder int8 (ipex-embeddings)": cross_encoder_run(cross["int8"][0], first),
    }
    int8_config = ModelConfig.load(int8_dir)
    return {
        "task": f"SciFact test (BEIR), {len(test.queries)} claims, {len(test.corpus):,} abstracts",
        "first_stage": f"{BM25_SETUP}, top {depth}",
        "metrics": "pytrec_eval ndcg_cut_10 and map of each ranking, mean over judged claims",
        "rows": [{"system": name, **rerank_metrics(test.qrels, run)} for name, run in runs.items()],
        "cross_encoder": {"source": source.name, "int8": int8_dir.name,
                          "max_seq_length": int8_config.max_seq_length,
                          "quantization": int8_config.quantization,
                          "training": _read(source / "training.json")},
        "bi_encoder": ModelConfig.load(bi_dir).source_model,
        "seconds": {k: round(v[1], 1) for k, v in cross.items()},
        "queries": len(test.queries), "depth": depth,
        "versions": {n: version(n) for n in ("ipex-embeddings", "openvino", "bm25s",
                                              "pytrec_eval-terrier", "sentence-transformers")},
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def markdown(result: dict) -> str:
    """The table, with what was run."""
    lines = [f"{result['task']}; first stage: {result['first_stage']}; {result['metrics']}.",
             "", "| system | NDCG@10 | MAP |", "|---|---:|---:|"]
    lines += [f"| {r['system']} | {r['ndcg_at_10']:.4f} | {r['map']:.4f} |"
              for r in result["rows"]]
    lines += ["", f"Re-run: `{result['command']}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cross-encoder", type=Path, required=True, help="fp32 source folder")
    parser.add_argument("--int8", type=Path, required=True, help="its int8 model folder")
    parser.add_argument("--bi-encoder", type=Path, help="bi-encoder folder (default: the demo)")
    parser.add_argument("--depth", type=int, default=100, help="BM25 candidates per claim")
    parser.add_argument("--queries", type=int, help="first N claims only (a quick check)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    args = parser.parse_args()
    command = ["python", "benchmarks/rerank_scifact_cross.py", "--cross-encoder",
               args.cross_encoder.name, "--int8", args.int8.name, "--depth", str(args.depth)]
    command += [f"--bi-encoder {args.bi_encoder.name}"] * (args.bi_encoder is not None)
    command += [f"--queries {args.queries}"] * (args.queries is not None)
    with tempfile.TemporaryDirectory() as tmp:
        bi_dir = args.bi_encoder or build_demo_model(Path(tmp) / "int8")
        result = benchmark(args.cross_encoder, args.int8, bi_dir, args.depth, args.queries)
    result["command"] = " ".join(command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    log(f"Wrote {_display_path(args.output)} and its .md")


if __name__ == "__main__":
    main()
