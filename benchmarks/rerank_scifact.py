"""Is reranking worth it? BM25 alone vs BM25 + `IPEXRerank`, NDCG@10 on the SciFact test queries.

First stage: BM25 (bm25s; English stopwords, Snowball stemming; k1=1.5, b=0.75) over all 5,183
SciFact abstracts (title + " " + text, as BEIR), top DEPTH per query. Second stage: `IPEXRerank`
reorders those DEPTH candidates, in both fusion modes: "none" (cosine similarity only) and "rrf"
(reciprocal rank fusion, k=60, of the cosine ranking and the BM25 ranking). One reranker call per
query gives both: with fusion="rrf" the node scores are the fused ones and the cosine of each
node is in its metadata, and the "none" ranking is the cosine order, which is what fusion="none"
returns (tests/test_llama_index.py checks that). Every run is scored, in the order the system
returned it, by pytrec_eval (`ndcg_cut_10`, the evaluator BEIR and MTEB use) and averaged over
all 300 test queries. Nothing is tuned on them: the BM25 settings are bm25s' defaults, RRF's k
is the published 60, and the depths are chosen before looking. With --tune-on-train, a weighted
RRF's dense weight is also picked on the 809 train queries and scored once on test, reported
apart (it is not an adapter option).

Run:
    python benchmarks/rerank_scifact.py [--model-dir DIR] [--depth 50 --depth 100]
        [--tune-on-train] [--output FILE]

DIR is a folder made by `ipex-embed quantize` (omit it to build the int8 demo model first, as the
published figures do). Prints a markdown table and writes the figures, with what produced them,
to a JSON file.
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
from typing import Any

import bm25s
import numpy as np
import pytrec_eval
from llama_index.core.schema import NodeWithScore, TextNode
from nltk.stem.snowball import SnowballStemmer

from ipex_embeddings import TruncationWarning
from ipex_embeddings.llama_index import IPEXRerank
from ipex_embeddings.ranking import RRF_K
from ipex_embeddings_builder.data import BeirData, document_text, load_beir

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "rerank_scifact.json"
DEMO_BUILD = "the int8 demo model, built by this script as `ipex-embed quantize` does"
WEIGHTS = [i / 10 for i in range(11)]  # dense weights tried on the train queries
Run = dict[str, dict[str, float]]
Cosines = dict[str, tuple[list[str], np.ndarray]]  # per query: candidates in BM25 order, cosines


def ranked(doc_ids: list[str]) -> dict[str, float]:
    """A run entry scoring documents by their position, so ties cannot reorder them."""
    return {doc: float(len(doc_ids) - i) for i, doc in enumerate(doc_ids)}


def bm25_runs(data: BeirData, depth: int) -> tuple[Run, list[TextNode], dict[str, list[float]]]:
    """The BM25 top-`depth` of every query (ranked), the corpus as nodes, and the BM25 scores."""
    ids = list(data.corpus)
    stem = SnowballStemmer("english").stem

    def tokenize(texts: list[str]) -> bm25s.tokenization.Tokenized:
        return bm25s.tokenize(
            texts, stopwords="en", stemmer=lambda ws: [stem(w) for w in ws], show_progress=False
        )

    nodes = [TextNode(text=document_text(data.corpus[i]), id_=i) for i in ids]
    bm25 = bm25s.BM25()
    bm25.index(tokenize([n.text for n in nodes]), show_progress=False)
    qids = list(data.queries)
    found, scores = bm25.retrieve(
        tokenize([data.queries[q] for q in qids]), k=depth, show_progress=False
    )
    run = {q: ranked([ids[j] for j in found[row]]) for row, q in enumerate(qids)}
    bm25_scores = {q: [float(s) for s in scores[row]] for row, q in enumerate(qids)}
    return run, nodes, bm25_scores


def rerank(
    data: BeirData,
    first_stage: Run,
    bm25_scores: dict[str, list[float]],
    nodes: list[TextNode],
    reranker: IPEXRerank,
) -> tuple[Run, Cosines]:
    """Each query's candidates through `IPEXRerank(fusion="rrf")`: its order, and the cosines."""
    assert reranker.fusion == "rrf"
    by_id = {n.node_id: n for n in nodes}
    rrf_run: Run = {}
    cosines: Cosines = {}
    for done, (qid, candidates) in enumerate(first_stage.items(), 1):
        doc_ids = list(candidates)  # in BM25 order
        scored = [NodeWithScore(node=by_id[d], score=s) for d, s in zip(doc_ids, bm25_scores[qid])]
        reranked = reranker.postprocess_nodes(scored, query_str=data.queries[qid])
        rrf_run[qid] = ranked([n.node.node_id for n in reranked])
        cosines[qid] = (doc_ids, np.array([by_id[d].metadata["cosine_score"] for d in doc_ids]))
        if done % 100 == 0:
            print(f"  reranked {done}/{len(first_stage)} queries", file=sys.stderr)
    return rrf_run, cosines


def fused_run(cosines: Cosines, dense_weight: float) -> Run:
    """Weighted RRF: dense_weight / (k + cosine rank) + (1 - dense_weight) / (k + BM25 rank).

    A weight of 1 gives the cosine order (what fusion="none" returns: a stable sort, so equal
    cosines keep the BM25 order); 0.5 gives fusion="rrf"'s order (its scores halved).
    """
    run: Run = {}
    for qid, (doc_ids, cos) in cosines.items():
        first_rank = np.arange(1, len(doc_ids) + 1)
        dense_rank = np.empty(len(doc_ids))
        dense_rank[np.argsort(-cos, kind="stable")] = first_rank
        fused = dense_weight / (RRF_K + dense_rank) + (1 - dense_weight) / (RRF_K + first_rank)
        run[qid] = ranked([doc_ids[i] for i in np.argsort(-fused, kind="stable")])
    return run


def mean_metric(qrels: dict[str, dict[str, int]], run: Run, measure: str, key: str) -> float:
    """pytrec_eval's `measure`, averaged over every judged query (0 for one with no results)."""
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {measure}).evaluate(run)
    return float(np.mean([per_query.get(q, {}).get(key, 0.0) for q in qrels]))


def build_demo_model(folder: Path) -> Path:
    """Build the int8 demo model into `folder`, as `ipex-embed quantize --output FOLDER` does."""
    from ipex_embeddings_builder.calibration import load_calibration
    from ipex_embeddings_builder.demo import DEMO_MODEL
    from ipex_embeddings_builder.quantize import QuantizeOptions, quantize_to_folder
    from ipex_embeddings_builder.source import inspect_source

    quantize_to_folder(inspect_source(DEMO_MODEL), load_calibration(), folder, QuantizeOptions())
    return folder


def subset(data: BeirData, limit: int | None) -> BeirData:
    """The first `limit` queries only (a quick check: the reported figures use every query)."""
    if limit is None:
        return data
    kept = list(data.queries)[:limit]
    queries, qrels = {q: data.queries[q] for q in kept}, {q: data.qrels[q] for q in kept}
    return BeirData(data.corpus, queries, qrels)


def _ndcg(data: BeirData, run: Run) -> float:
    return mean_metric(data.qrels, run, "ndcg_cut.10", "ndcg_cut_10")


def _tuned_on_train(train: BeirData, test: BeirData, depth: int, reranker: IPEXRerank,
                    cosines: dict) -> dict:
    """The dense weight of weighted RRF picked on the train queries, scored on the test ones."""
    print(f"  tuning on {len(train.queries)} train queries", file=sys.stderr)
    train_first, train_nodes, train_scores = bm25_runs(train, depth)
    _, train_cosines = rerank(train, train_first, train_scores, train_nodes, reranker)
    curve = {w: _ndcg(train, fused_run(train_cosines, w)) for w in WEIGHTS}
    weight = max(WEIGHTS, key=lambda w: curve[w])
    return {
        "dense_weight": weight,
        "train_ndcg@10_by_weight": {str(w): round(v, 4) for w, v in curve.items()},
        "test_ndcg@10": _ndcg(test, fused_run(cosines, weight)),
    }


def _depth_row(test: BeirData, train: BeirData | None, depth: int, reranker: IPEXRerank) -> dict:
    """NDCG@10 of BM25's top `depth` alone and reranked, and the rerank time."""
    first_stage, nodes, bm25_scores = bm25_runs(test, depth)
    started = time.perf_counter()
    rrf_run, cosines = rerank(test, first_stage, bm25_scores, nodes, reranker)
    seconds = time.perf_counter() - started
    # The adapter's fused order is the formula's: a check of IPEXRerank on real data.
    assert fused_run(cosines, 0.5) == rrf_run, "IPEXRerank's RRF order is not the formula's"
    row = {
        "depth": depth,
        "bm25_ndcg@10": _ndcg(test, first_stage),
        "rerank_none_ndcg@10": _ndcg(test, fused_run(cosines, 1.0)),
        "rerank_rrf_ndcg@10": _ndcg(test, rrf_run),
        f"bm25_recall@{depth}": mean_metric(
            test.qrels, first_stage, f"recall.{depth}", f"recall_{depth}"
        ),
        "rerank_seconds": round(seconds, 1),
    }
    if train is not None:
        row["tuned_on_train"] = _tuned_on_train(train, test, depth, reranker, cosines)
    return row


def _setup(test: BeirData, model_label: str, config: Any) -> dict:
    """What was run on what, with which versions."""
    return {
        "task": f"SciFact test (BEIR), {len(test.queries)} queries, {len(test.corpus):,} documents",
        "first_stage": "bm25s BM25 (lucene, k1=1.5, b=0.75), English stopwords, Snowball stemmer",
        "second_stage": (
            'ipex_embeddings.llama_index.IPEXRerank(fusion="rrf"), one call per query: "rrf" is '
            f"its order (reciprocal rank fusion, k={RRF_K}, of the cosine and BM25 rankings); "
            '"none" is the cosine order of the same call, as fusion="none" returns it'
        ),
        "metric": "pytrec_eval ndcg_cut_10 of each returned order, mean over all judged queries",
        "model_dir": model_label,
        "model": {
            "source_model": config.source_model,
            "source_revision": config.source_revision,
            "precision": config.precision,
            "inference_precision": config.inference_precision,
            "max_seq_length": config.max_seq_length,
            "calibration_digest": config.calibration_digest,
        },
        "queries": len(test.queries),
    }


def benchmark(
    model_dir: Path,
    model_label: str,
    depths: list[int],
    limit: int | None = None,
    tune_on_train: bool = False,
) -> dict:
    """NDCG@10 of BM25 alone and reranked in both fusion modes, at each depth."""
    test = subset(load_beir(split="test"), limit)
    train = subset(load_beir(split="train"), limit) if tune_on_train else None
    reranker = IPEXRerank(model=str(model_dir), top_n=max(depths), fusion="rrf")
    # Most abstracts are longer than the model's limit; their start is embedded, as in MTEB.
    warnings.simplefilter("ignore", TruncationWarning)
    result = _setup(test, model_label, reranker.encoder.config)
    result["results"] = [_depth_row(test, train, depth, reranker) for depth in depths]
    result["versions"] = {
        name: version(name)
        for name in ("ipex-embeddings", "openvino", "bm25s", "pytrec_eval-terrier")
    }
    result["python"] = platform.python_version()
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if train is not None:
        result["tuned_on_train"] = (
            f"weighted RRF, w / (k + cosine rank) + (1 - w) / (k + BM25 rank), k={RRF_K}: w "
            f"picked from {WEIGHTS} by NDCG@10 on the {len(train.queries)} SciFact train "
            "queries (qrels/train.tsv), then scored once on the test queries. Not an adapter "
            'option; w=0.5 is fusion="rrf" and w=1 is fusion="none".'
        )
    return result


def markdown(result: dict) -> str:
    lines = [
        f"SciFact test, {result['queries']} queries, NDCG@10 (pytrec_eval); model: "
        f"{result['model']['source_model']} {result['model']['precision']}",
        "",
        "| first stage | candidates | BM25 recall@candidates | BM25 alone "
        '| + IPEXRerank fusion="none" | + IPEXRerank fusion="rrf" |',
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["results"]:
        depth = row["depth"]
        lines.append(
            f"| BM25 (bm25s) | {depth} | {row[f'bm25_recall@{depth}']:.4f} | "
            f"{row['bm25_ndcg@10']:.4f} | {row['rerank_none_ndcg@10']:.4f} | "
            f"{row['rerank_rrf_ndcg@10']:.4f} |"
        )
    tuned = [row for row in result["results"] if "tuned_on_train" in row]
    if tuned:
        lines += [
            "",
            "Weighted RRF, dense weight tuned on the train queries (not an adapter option):",
            "",
            "| candidates | dense weight (train) | train NDCG@10 | test NDCG@10 |",
            "|---:|---:|---:|---:|",
        ]
        for row in tuned:
            t = row["tuned_on_train"]
            train_ndcg = t["train_ndcg@10_by_weight"][str(t["dense_weight"])]
            lines.append(
                f"| {row['depth']} | {t['dense_weight']} | {train_ndcg:.4f} | "
                f"{t['test_ndcg@10']:.4f} |"
            )
    return "\n".join(lines)


def _display_path(path: Path) -> str:
    """`path` relative to the working directory when it is under it, so commands re-run."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="model folder (default: build the demo)")
    parser.add_argument(
        "--depth", type=int, action="append", help="BM25 candidates to rerank (repeatable; 50)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file to write")
    parser.add_argument("--queries", type=int, help="first N queries only (a quick check)")
    parser.add_argument(
        "--tune-on-train",
        action="store_true",
        help="also tune a weighted RRF on the train queries and score it once on test",
    )
    args = parser.parse_args()
    depths = args.depth or [50]
    command = ["python", _display_path(Path(sys.argv[0]))]
    command += [f"--depth {d}" for d in depths]
    options = {"depths": depths, "limit": args.queries, "tune_on_train": args.tune_on_train}
    if args.model_dir is not None:
        command.append(f"--model-dir {_display_path(args.model_dir)}")
        result = benchmark(args.model_dir, _display_path(args.model_dir), **options)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print("No --model-dir given: building the int8 demo model first ...", file=sys.stderr)
            model_dir = build_demo_model(Path(tmp) / "int8")
            result = benchmark(model_dir, DEMO_BUILD, **options)
    if args.tune_on_train:
        command.append("--tune-on-train")
    if args.queries is not None:
        command.append(f"--queries {args.queries}")
    if args.output.resolve() != DEFAULT_OUTPUT.resolve():
        command.append(f"--output {_display_path(args.output)}")
    result["command"] = " ".join(command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
