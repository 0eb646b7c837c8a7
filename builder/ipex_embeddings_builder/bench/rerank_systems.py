"""The rerank part's systems: (query, candidates) in, one relevance score per candidate out.

Each runs a cross-encoder through its library's public API inside a worker process: ours
(`ipex_embeddings.CrossEncoder.score`) and sentence-transformers' `CrossEncoder.predict` with
backend torch, onnx or openvino. Both give the score after the source's activation (sigmoid
for one logit, the positive class's softmax for two), so their scores compare one to one.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .ov_properties import property_text, runtime_info

__all__ = ["CoreReranker", "SentenceTransformerReranker", "load_reranker"]


class CoreReranker:
    """Our `CrossEncoder.score(query, texts)`."""

    def __init__(self, path: str, threads: int, batch_size: int = 32) -> None:
        from ipex_embeddings import CrossEncoder

        self._model = CrossEncoder.load(path, threads=threads)
        self.batch_size = batch_size

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        from ipex_embeddings import TruncationWarning

        with warnings.catch_warnings():
            # Most abstracts are longer than max_seq_length: every system scores their start.
            warnings.simplefilter("ignore", TruncationWarning)
            return self._model.score(query, texts, batch_size=self.batch_size)

    def info(self) -> dict[str, Any]:
        model = self._model
        return {**runtime_info(model), "batch_size": self.batch_size,
                "max_seq_length": model.max_seq_length, "activation": model.activation}


def _backend_kwargs(backend: str, threads: int) -> dict[str, Any] | None:
    """The model_kwargs that pin the onnx and openvino backends to `threads` on the CPU."""
    if backend == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        # ONNX Runtime's first provider can be AzureExecutionProvider; ask for the CPU one.
        return {"provider": "CPUExecutionProvider", "session_options": options}
    if backend == "openvino":
        return {"ov_config": {"INFERENCE_NUM_THREADS": threads}}
    return None


class SentenceTransformerReranker:
    """sentence-transformers `CrossEncoder.predict` on (query, text) pairs, any backend."""

    def __init__(self, path: str, threads: int, backend: str, max_length: int,
                 batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import CrossEncoder

        torch.set_num_threads(threads)
        self._torch = torch
        self.backend, self.batch_size = backend, batch_size
        self._model = CrossEncoder(
            path, device="cpu", backend=backend, max_length=max_length, local_files_only=True,
            model_kwargs=_backend_kwargs(backend, threads),
        )

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        # A two-logit model's scores become the classes' probabilities, of which the positive
        # class's is ours; a one-logit model keeps its sigmoid (and must not be asked for a
        # softmax: releases that apply it before squeezing the one column give 1.0 everywhere).
        scores = np.asarray(self._model.predict(
            [(query, text) for text in texts], batch_size=self.batch_size,
            show_progress_bar=False, apply_softmax=self._model.num_labels > 1,
            convert_to_numpy=True,
        ), dtype=np.float32)
        return scores[:, 1] if scores.ndim == 2 else scores

    def info(self) -> dict[str, Any]:
        found: dict[str, Any] = {"backend": self.backend, "batch_size": self.batch_size,
                                 "max_length": self._model.max_length,
                                 "num_labels": self._model.num_labels}
        if self.backend == "torch":
            found["threads"] = self._torch.get_num_threads()
        inner = getattr(self._model[0], "auto_model", None) or getattr(self._model, "model", None)
        request = getattr(inner, "request", None)
        if self.backend == "openvino" and request is not None:
            found["inference_precision"] = property_text(request, "INFERENCE_PRECISION_HINT")
            found["threads"] = int(request.get_property("INFERENCE_NUM_THREADS"))
        session = getattr(inner, "model", None)
        if self.backend == "onnx" and hasattr(session, "get_providers"):
            found["providers"] = session.get_providers()
            found["threads"] = session.get_session_options().intra_op_num_threads
        return found


def load_reranker(factory: str, path: str, threads: int,
                  options: dict[str, Any]) -> CoreReranker | SentenceTransformerReranker:
    """Build the rerank system of a spec's factory ("core" or "sentence_transformers")."""
    if factory == "core":
        return CoreReranker(path, threads, **options)
    if factory == "sentence_transformers":
        return SentenceTransformerReranker(path, threads, **options)
    raise ValueError(f"No rerank system for factory {factory!r}.")
