"""End to end on real text: the SciFact corpus through each system's public API, and queries.

Documents are "title text" as BEIR and MTEB embed them (5,183 of varied length, many longer than
MiniLM's 256 tokens). Every system embeds the same documents with batch size 32; the first
round's vectors are kept to check that all systems compute the same embeddings (cosine against
the baseline's), so a fast but wrong system shows up in the table. Query latency: the SciFact
test queries one at a time, as a RAG pipeline embeds each question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..fidelity import FIDELITY_TEXTS
from .measure import Fleet, median_of_rounds, percentile, ratio_of_rounds, spread
from .systems import END_TO_END, SystemSpec

__all__ = ["EndToEndRow", "end_to_end_specs", "measure_end_to_end", "write_texts"]

QUERY_WARMUP = 5


@dataclass
class EndToEndRow:
    """One system's corpus throughput, query latency and agreement with the baseline."""

    system: str
    documents: int
    docs_per_s: float
    round_docs_per_s: list[float]
    speedup: float | None
    """Documents/s over the baseline's (sentence-transformers torch fp32), median over rounds."""
    queries: int
    query_p50_ms: float
    query_p90_ms: float
    cosine_to_baseline_mean: float | None
    cosine_to_baseline_min: float | None
    round_query_p50_ms: list[float] | None = None
    load_s: float | None = None
    """Seconds from the worker's start to its first vector (see SystemStatus.load_s)."""
    docs_per_s_spread: dict[str, float] | None = None
    """min, max and relative spread ((max - min) / median) of docs/s over the rounds."""
    query_p50_spread: dict[str, float] | None = None
    fidelity_cosine_mean: float | None = None
    """Cosine to the baseline on the fixed fidelity texts (`fidelity.FIDELITY_TEXTS`)."""
    fidelity_cosine_min: float | None = None


def end_to_end_specs(
    model_dir: Path, source: Path, batch_size: int = 32, precision: str = "int8"
) -> list[SystemSpec]:
    """sentence-transformers (torch, onnx, openvino, openvino on our folder) and our two APIs."""
    st = "sentence_transformers"
    return [
        SystemSpec("st-torch", "sentence-transformers torch fp32", END_TO_END, st, str(source),
                   {"backend": "torch", "batch_size": batch_size}, peer=True, role="baseline"),
        SystemSpec("st-onnx", "sentence-transformers onnx", END_TO_END, st, str(source),
                   {"backend": "onnx", "batch_size": batch_size}, peer=True),
        SystemSpec("st-openvino", "sentence-transformers openvino", END_TO_END, st, str(source),
                   {"backend": "openvino", "batch_size": batch_size}, peer=True),
        SystemSpec("st-openvino-ours", f"sentence-transformers openvino, our {precision} folder",
                   END_TO_END, st, str(model_dir),
                   {"backend": "openvino", "batch_size": batch_size}, peer=True, role="hybrid"),
        SystemSpec("ours", f"ipex-embeddings Encoder {precision}", END_TO_END, "core",
                   str(model_dir), {"batch_size": batch_size}, role="ours"),
        SystemSpec("langchain", "ipex-embeddings LangChain embed_documents", END_TO_END,
                   "langchain", str(model_dir), {"batch_size": batch_size}, role="ours"),
        *_other_engines(model_dir, batch_size, precision),
    ]


def _other_engines(model_dir: Path, batch_size: int, precision: str) -> list[SystemSpec]:
    """Our Encoder on each engine the folder has besides the one "auto" picks on this CPU, so
    the engines are compared side by side in one run."""
    from ipex_embeddings import ModelConfig
    from ipex_embeddings.engines import ENGINES, pick_engine

    config = ModelConfig.load(model_dir)
    picked = pick_engine("auto", config)
    others = [n for n in ENGINES if n != picked and (n != "onnxruntime" or config.onnx_file)]
    return [SystemSpec(f"ours-{name}", f"ipex-embeddings Encoder {precision}, {name} engine",
                       END_TO_END, "core", str(model_dir),
                       {"batch_size": batch_size, "engine": name}, role="ours")
            for name in others]


def write_texts(path: Path, documents: int | None, queries: int | None) -> dict[str, Any]:
    """Write the SciFact texts to embed (evenly spread subsets when limited) as JSON at `path`."""
    from ..data import SCIFACT_DIR, document_text, load_beir

    data = load_beir(SCIFACT_DIR, "test")
    corpus = [document_text(doc) for doc in data.corpus.values()]
    if documents and documents < len(corpus):
        keep = np.unique(np.linspace(0, len(corpus) - 1, documents).round().astype(int))
        corpus = [corpus[i] for i in keep]
    questions = list(data.queries.values())[: queries or None]
    fidelity = [text for group in FIDELITY_TEXTS.values() for text in group]
    path.write_text(json.dumps({"documents": corpus, "queries": questions,
                                "fidelity": fidelity}), encoding="utf-8")
    return {"dataset": "SciFact (BEIR, vendored)", "documents": len(corpus),
            "corpus_size": len(data.corpus), "queries": len(questions), "split": "test"}


def _cosines(reference: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    b = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


def _agreement(vectors_dir: Path, base: str, key: str, part: str) -> tuple[float | None, ...]:
    """(mean, min) cosine of `key`'s saved vectors of `part` to the baseline's, or Nones."""
    reference, vectors = (vectors_dir / f"{name}{part}.npy" for name in (base, key))
    if not (reference.is_file() and vectors.is_file()):
        return None, None
    cosines = _cosines(np.load(reference), np.load(vectors))
    return float(cosines.mean()), float(cosines.min())


def measure_end_to_end(fleet: Fleet, rounds: int, vectors_dir: Path) -> list[EndToEndRow]:
    """Corpus docs/s, query p50/p90 and agreement, round-robin over the fleet."""
    vectors_dir.mkdir(parents=True, exist_ok=True)

    def task(point: str, round_index: int, system: str) -> dict[str, Any]:
        if point == "corpus":
            save = str(vectors_dir / f"{system}.npy") if round_index == 0 else None
            return {"task": "corpus", "save": save}
        return {"task": "queries", "warmup": QUERY_WARMUP}

    results = fleet.run_rounds(["corpus", "queries"], task, rounds)
    base = next((s.key for s in fleet.statuses.values()
                 if s.role == "baseline" and s.key in results), None)
    rows = []
    for key, (corpus, queries) in results.items():
        seconds = [reply["seconds"] for reply in corpus]
        documents = corpus[0]["documents"]
        speedup = None
        if base is not None:
            speedup = ratio_of_rounds([r["seconds"] for r in results[base][0]], seconds)
        cos_mean = cos_min = None
        if base is not None:
            cos_mean, cos_min = _agreement(vectors_dir, base, key, "")
        p50s = [1e3 * percentile(r["times"], 50) for r in queries]
        rates = [documents / s for s in seconds]
        rows.append(EndToEndRow(
            key, documents, documents / median_of_rounds(seconds), rates, speedup,
            len(queries[0]["times"]), median_of_rounds(p50s),
            1e3 * median_of_rounds([percentile(r["times"], 90) for r in queries]),
            cos_mean, cos_min, p50s, fleet.statuses[key].load_s, spread(rates), spread(p50s),
            *(_agreement(vectors_dir, base, key, ".fidelity") if base else (None, None)),
        ))
    return rows
