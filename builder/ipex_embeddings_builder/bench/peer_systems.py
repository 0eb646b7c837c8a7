"""The int8 peers' end-to-end systems, each through its library's public API.

Each class runs in the worker process of its peer's own environment and loads only the folder
that peer_builds.py made. `info()` records the settings each ran with, and `corrections` the
defaults that were changed because they are wrong for a mean-pooled, 256-token model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .peer_builds import saved_torchscript

__all__ = ["FastEmbedEmbedder", "GenaiEmbedder", "IpexEmbedder", "LlamaIndexEmbedder"]


def _normalized(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)


class GenaiEmbedder:
    """openvino-genai `TextEmbeddingPipeline` with MEAN pooling and 256 tokens."""

    def __init__(self, path: str, threads: int, batch_size: int, max_length: int,
                 corrections: str) -> None:
        import openvino_genai as genai

        config = genai.TextEmbeddingPipeline.Config()
        config.pooling_type = genai.TextEmbeddingPipeline.PoolingType.MEAN
        config.normalize = True
        config.max_length = max_length
        # Config.batch_size stays unset: it would fix the batch dimension (a tail or a query fails).
        self._pipeline = genai.TextEmbeddingPipeline(
            path, "CPU", config, INFERENCE_NUM_THREADS=threads
        )
        self._settings = {"threads": threads, "batch_size": batch_size, "pooling": "mean",
                          "max_length": max_length, "normalize": True,
                          "precision": "the IR's; non-int8 layers at the CPU default",
                          "corrections": corrections, "version": genai.__version__}
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        chunks = [self._pipeline.embed_documents(texts[i:i + self.batch_size])
                  for i in range(0, len(texts), self.batch_size)]
        return np.concatenate([np.asarray(c, dtype=np.float32) for c in chunks])

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._pipeline.embed_query(text), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        return dict(self._settings)


class FastEmbedEmbedder:
    """fastembed `TextEmbedding` on a local ONNX folder, registered as a mean-pooled model."""

    def __init__(self, path: str, threads: int, batch_size: int, max_length: int,
                 model_file: str, corrections: str) -> None:
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        name = f"local/ipex-bench-{Path(model_file).stem}"
        config = json.loads((Path(path) / "config.json").read_text())
        if name not in {m["model"] for m in TextEmbedding.list_supported_models()}:
            TextEmbedding.add_custom_model(
                model=name, pooling=PoolingType.MEAN, normalization=True,
                sources=ModelSource(hf="local/none"), dim=int(config["hidden_size"]),
                model_file=model_file,
            )
        self._model = TextEmbedding(name, specific_model_path=path, threads=threads,
                                    local_files_only=True)
        tokenizer_max = json.loads((Path(path) / "tokenizer_config.json").read_text()).get(
            "model_max_length")
        self.batch_size = batch_size
        self._settings = {"threads": threads, "batch_size": batch_size, "pooling": "mean",
                          "normalize": True, "max_length": tokenizer_max, "model_file": model_file,
                          "precision": "int8 (dynamic)" if "int8" in model_file else "fp32",
                          "corrections": corrections}

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack(list(self._model.embed(texts, batch_size=self.batch_size)))

    def embed_query(self, text: str) -> np.ndarray:
        return next(iter(self._model.query_embed(text)))

    def info(self) -> dict[str, Any]:
        return dict(self._settings)


class LlamaIndexEmbedder:
    """LlamaIndex `OpenVINOEmbedding` (optimum-intel underneath) on the static int8 folder."""

    def __init__(self, path: str, threads: int, batch_size: int, max_length: int,
                 corrections: str) -> None:
        from llama_index.embeddings.huggingface_openvino import OpenVINOEmbedding

        self._model = OpenVINOEmbedding(
            model_id_or_path=path, device="cpu", pooling="mean", max_length=max_length,
            normalize=True, embed_batch_size=batch_size,
            model_kwargs={"ov_config": {"INFERENCE_NUM_THREADS": threads}},
        )
        self._settings = {"threads": threads, "batch_size": batch_size, "pooling": "mean",
                          "max_length": max_length, "normalize": True,
                          "precision": "static int8 (OVQuantizer); non-int8 at the CPU default",
                          "corrections": corrections}

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model.get_text_embedding_batch(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.get_query_embedding(text), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        found = dict(self._settings)
        request = getattr(getattr(self._model, "_model", None), "request", None)
        if request is not None and hasattr(request, "get_property"):
            value = request.get_property("INFERENCE_PRECISION_HINT")
            found["inference_precision"] = getattr(value, "get_type_name", lambda: str(value))()
            found["threads"] = int(request.get_property("INFERENCE_NUM_THREADS"))
        return found


class IpexEmbedder:
    """The IPEX static int8 recipe: the frozen TorchScript we saved, mean pooling in torch."""

    def __init__(self, path: str, threads: int, batch_size: int, max_length: int,
                 corrections: str) -> None:
        import intel_extension_for_pytorch  # noqa: F401  (registers the int8 kernels)
        import torch
        from transformers import AutoTokenizer

        torch.set_num_threads(threads)
        torch.jit.set_fusion_strategy([("DYNAMIC", 100)])
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        # torch.jit.load unpickles: only the file peer_builds.build_ipex saved, digest checked
        self._model = torch.jit.load(str(saved_torchscript(path)))
        self.batch_size, self.max_length = batch_size, max_length
        self._settings = {"threads": threads, "batch_size": batch_size, "pooling": "mean",
                          "max_length": max_length, "normalize": True, "pad_to_multiple_of": 16,
                          "precision": "static int8 (IPEX default qconfig), fp32 elsewhere",
                          "corrections": corrections}

    def _embed(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        batch = self._tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                max_length=self.max_length, pad_to_multiple_of=16)
        mask = batch["attention_mask"]
        with torch.no_grad():
            hidden = self._model(batch["input_ids"], mask)[0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return _normalized(pooled.numpy())

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.concatenate([self._embed(texts[i:i + self.batch_size])
                               for i in range(0, len(texts), self.batch_size)])

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text])[0]

    def info(self) -> dict[str, Any]:
        return dict(self._settings)


FACTORIES = {"genai": GenaiEmbedder, "fastembed": FastEmbedEmbedder,
             "llamaindex": LlamaIndexEmbedder, "ipex": IpexEmbedder}
