"""Speed levers for an int8 folder, measured side by side: bf16 for the attention alone (what
ships on CPUs with native bf16: `ipex_embeddings.attention`) and for every layer not in int8,
and static-shape models for single queries.

For each lever: documents/s on SciFact abstracts and single-query latency, and what it costs
in fidelity (the builder's fixed fidelity set against sentence-transformers fp32, as the build's
gate measures it) or in batch invariance (a static model's vector against the dynamic one's).

    python benchmarks/levers.py models/all-MiniLM-L6-v2-int8 --out benchmarks/results/levers-amx

Run it on a quiet machine; it prints a Markdown table and writes `levers.json` in --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np

from ipex_embeddings import Encoder
from ipex_embeddings.cpu import cpu_flags
from ipex_embeddings.engine import compile_settings, openvino_core


def _texts(docs: int, queries: int) -> tuple[list[str], list[str]]:
    from ipex_embeddings_builder.data import document_text, load_beir

    data = load_beir()
    corpus = list(data.corpus.values())
    step = max(1, len(corpus) // docs)
    return [document_text(d) for d in corpus[::step][:docs]], list(data.queries.values())[:queries]


def _percentiles(calls: list[float]) -> tuple[float, float]:
    return float(np.percentile(calls, 50) * 1e3), float(np.percentile(calls, 90) * 1e3)


def _latency(run, items: list) -> tuple[float, float]:
    for item in items[:30]:
        run(item)
    calls = []
    for item in items:
        start = time.perf_counter()
        run(item)
        calls.append(time.perf_counter() - start)
    return _percentiles(calls)


def _docs_per_second(encoder: Encoder, docs: list[str], rounds: int) -> float:
    encoder.encode(docs[:64])
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        encoder.encode(docs)
        best = max(best, len(docs) / (time.perf_counter() - start))
    return best


def _fidelity(encoder: Encoder, reference: dict[str, np.ndarray], texts: list[str]) -> tuple:
    cosines = np.concatenate(
        [(encoder.encode(texts, kind=kind) * reference[kind]).sum(1) for kind in reference]
    )
    return float(cosines.mean()), float(cosines.min())


def _source(model_id: str) -> str:
    """The source model to load offline: the shipped demo for its Hub id."""
    from ipex_embeddings_builder.demo import DEMO_MODEL_ID, demo_model_path

    return str(demo_model_path()) if model_id == DEMO_MODEL_ID else model_id


def precision_lever(folder: Path, docs: list[str], queries: list[str], rounds: int) -> list[dict]:
    """The folder with its non-int8 layers at f32 and at bf16."""
    from sentence_transformers import SentenceTransformer

    from ipex_embeddings_builder.fidelity import FIDELITY_TEXTS

    base = Encoder.load(folder, compile_cache=False)
    texts = [t for group in FIDELITY_TEXTS.values() for t in group]
    source = SentenceTransformer(_source(base.config.source_model), device="cpu")
    reference = {kind: source.encode([base.config.prompt(kind) + t for t in texts],
                                     normalize_embeddings=True) for kind in ("query", "document")}
    rows = []
    variants = (("f32", "f32", "non-int8 layers in f32"),
                ("f32", "bf16", "non-int8 layers in f32, attention in bf16"),
                ("bf16", "bf16", "non-int8 layers in bf16"))
    for hint, attention, name in variants:
        config = dataclasses.replace(base.config, inference_precision=hint,
                                     attention_precision=attention)
        encoder = Encoder(base.folder, config, compile_cache=False)
        mean, low = _fidelity(encoder, reference, texts)
        p50, p90 = _latency(lambda q, e=encoder: e.encode([q], kind="query"), queries)
        rows.append({"variant": name,
                     "docs_per_s": _docs_per_second(encoder, docs, rounds),
                     "query_p50_ms": p50, "query_p90_ms": p90,
                     "fidelity_mean": mean, "fidelity_min": low})
    return rows


def shape_lever(folder: Path, queries: list[str]) -> list[dict]:
    """The compiled model alone on padded single queries: dynamic, and static [1, width]."""
    encoder = Encoder.load(folder, compile_cache=False)
    batches = []
    for query in queries:
        encodings = encoder.tokenize([query], "warn")
        width = encoder.widths[int(np.searchsorted(encoder.widths, len(encodings[0].ids)))]
        batches.append(encoder.tokenizer.pad(encodings, np.zeros(1, dtype=np.int64), width))
    dynamic = encoder.compiled_model(1).create_infer_request()
    model = openvino_core().read_model(folder / encoder.config.model_file)
    model = encoder.graph_head(model)
    static = {}
    for width in sorted({b.width for b in batches}):
        shaped = model.clone()
        shaped.reshape({port.get_any_name(): [1, width] for port in shaped.inputs})
        settings = compile_settings(encoder.config, encoder.threads, 1, False)
        compiled = openvino_core().compile_model(shaped, "CPU", settings)
        static[width] = compiled.create_infer_request()
    equal = all(
        np.array_equal(static[b.width].infer(b.inputs)[0], dynamic.infer(b.inputs)[0])
        for b in batches
    )
    rows = []
    for name, run in (("dynamic model (shipped)", lambda b: dynamic.infer(b.inputs)),
                      ("static [1, width] per bucket", lambda b: static[b.width].infer(b.inputs))):
        p50, p90 = _latency(run, batches)
        rows.append({"variant": f"model call alone, {name}", "query_p50_ms": p50,
                     "query_p90_ms": p90, "bit_equal_to_dynamic": equal})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    docs, queries = _texts(args.docs, args.queries)
    rows = precision_lever(args.folder, docs, queries, args.rounds) + shape_lever(
        args.folder, queries)
    wanted = ("amx", "avx512_vnni", "avx512_bf16")
    flags = sorted(f for f in cpu_flags() or () if f.startswith(wanted))
    lines = [f"CPU flags: {', '.join(flags) or 'none of AMX, AVX-512 VNNI, BF16'}", "",
             "| variant | docs/s | query p50 / p90 ms | fidelity mean (min) | bit-equal |",
             "|---|---:|---|---|---|"]
    for row in rows:
        docs_s = f"{row['docs_per_s']:.1f}" if "docs_per_s" in row else ""
        fidelity = (f"{row['fidelity_mean']:.4f} ({row['fidelity_min']:.4f})"
                    if "fidelity_mean" in row else "")
        lines.append(f"| {row['variant']} | {docs_s} | {row['query_p50_ms']:.2f} / "
                     f"{row['query_p90_ms']:.2f} | {fidelity} | "
                     f"{row.get('bit_equal_to_dynamic', '')} |")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "levers.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "levers.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
