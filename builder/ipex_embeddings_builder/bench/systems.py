"""The systems under test: what each one is, and how it runs token ids or texts.

A `SystemSpec` names a system and says how to build it; `load_system` builds it inside a worker
process (see worker.py). Model-level systems implement `TokenModel.infer` (token ids in, the
transformer's last hidden state out); end-to-end systems implement `TextEmbedder` (texts in,
vectors out, through each library's public API). Heavy libraries are imported only in the
worker that needs them.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .ov_properties import property_text, runtime_info

__all__ = [
    "MODEL_LEVEL",
    "END_TO_END",
    "RERANK",
    "SystemSpec",
    "Reranker",
    "TextEmbedder",
    "TokenModel",
    "PACKAGES_OF",
    "library_versions",
    "load_system",
    "token_inputs",
]

MODEL_LEVEL = "model"
END_TO_END = "e2e"
RERANK = "rerank"
# Packages whose versions are recorded (those installed where the bench or a system runs).
VERSIONED_PACKAGES = (
    "ipex-embeddings", "openvino", "tokenizers", "numpy", "torch", "transformers",
    "sentence-transformers", "optimum", "optimum-intel", "optimum-onnx", "onnxruntime",
    "langchain-core", "huggingface-hub", "openvino-genai", "openvino-tokenizers", "fastembed",
    "llama-index-embeddings-openvino", "nncf", "intel-extension-for-pytorch",
)
# The packages that decide each kind of system's speed, recorded with its figures.
PACKAGES_OF = {
    "torch": ("torch", "transformers"),
    "core": ("ipex-embeddings", "openvino", "onnxruntime", "tokenizers", "numpy"),
    "sentence_transformers": (
        "sentence-transformers", "transformers", "torch", "optimum", "optimum-intel",
        "optimum-onnx", "onnxruntime", "openvino", "tokenizers",
    ),
    "langchain": ("ipex-embeddings", "langchain-core", "openvino", "onnxruntime", "tokenizers"),
    "genai": ("openvino-genai", "openvino", "openvino-tokenizers"),
    "fastembed": ("fastembed", "onnxruntime", "tokenizers", "torch", "transformers"),
    "llamaindex": ("llama-index-embeddings-openvino", "optimum-intel", "optimum", "openvino",
                   "nncf", "transformers", "torch"),
    "ipex": ("intel-extension-for-pytorch", "torch", "transformers"),
}


@dataclass
class SystemSpec:
    """One system under test: a key, a label for tables, and how a worker builds it."""

    key: str
    label: str
    kind: str
    """MODEL_LEVEL (token ids through the transformer), END_TO_END (texts through an API) or
    RERANK ((query, candidates) through a cross-encoder's API, see rerank_systems.py)."""
    factory: str
    """Name of the loader: torch, core, sentence_transformers or langchain (this module), or a
    peer's (peer_systems.FACTORIES: genai, fastembed, llamaindex, ipex)."""
    path: str
    """The model folder (ours) or the source model folder (PyTorch, sentence-transformers)."""
    options: dict[str, Any] = field(default_factory=dict)
    peer: bool = False
    """Run in the peers interpreter (sentence-transformers with optimum), not this one."""
    env: str = ""
    """The peer environment it runs in (peers.PEER_ENVS: ovgenai, fastembed, optimum, ipex), or
    "" for this interpreter (or the peers interpreter when `peer`)."""
    role: str = "peer"
    """"baseline" (ratios are taken against it), "peer" (what users would pick instead), "ours",
    or "hybrid" (a peer's API running our model folder)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenModel(Protocol):
    """A transformer that takes padded token ids (model level)."""

    def infer(self, inputs: dict[str, np.ndarray]) -> None: ...

    def info(self) -> dict[str, Any]: ...


class TextEmbedder(Protocol):
    """A text-embedding API (end to end)."""

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...


class Reranker(Protocol):
    """A cross-encoder's API (the rerank part): a query and its candidates in, their scores out."""

    def score(self, query: str, texts: list[str]) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...


def library_versions(packages: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Versions of `packages`, for those installed in this interpreter."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def token_inputs(batch: int, seq_len: int, vocab_size: int, cls_id: int, sep_id: int) -> dict:
    """Deterministic random token ids of exactly `seq_len` tokens: [CLS] ... [SEP], no padding."""
    rng = np.random.default_rng(1_000 * seq_len + batch)
    low = min(1_000, vocab_size // 2)  # skip BERT's [unused] and special tokens
    ids = rng.integers(low, vocab_size, size=(batch, seq_len), dtype=np.int64)
    ids[:, 0] = cls_id
    ids[:, -1] = sep_id
    return {
        "input_ids": ids,
        "attention_mask": np.ones((batch, seq_len), dtype=np.int64),
        "token_type_ids": np.zeros((batch, seq_len), dtype=np.int64),
    }


class TorchModel:
    """transformers `AutoModel` in eager mode, fp32 or under bf16 autocast."""

    def __init__(self, path: str, threads: int, bf16_autocast: bool = False) -> None:
        import torch
        from transformers import AutoModel

        torch.set_num_threads(threads)
        self._torch = torch
        self._model = AutoModel.from_pretrained(path, use_safetensors=True).eval()
        accepted = inspect.signature(self._model.forward).parameters
        self._names = [
            n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted
        ]
        self._bf16 = bf16_autocast

    def infer(self, inputs: dict[str, np.ndarray]) -> None:
        torch = self._torch
        tensors = {n: torch.from_numpy(inputs[n]) for n in self._names}
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self._bf16):
            self._model(**tensors)

    def info(self) -> dict[str, Any]:
        return {
            "threads": self._torch.get_num_threads(),
            "precision": "bf16 autocast" if self._bf16 else "fp32",
            "attention": getattr(self._model.config, "_attn_implementation", "unknown"),
        }


class CoreModel:
    """Our core's own compiled model, run on token ids (no tokenizer; pooling is in its graph).

    It uses the Encoder's latency-compiled model (`Encoder.compiled_model(1)`: one stream, every
    thread, the folder's inference precision, the pooling appended to the graph), which is
    exactly what `Encoder.encode` runs for a single batch.
    """

    def __init__(self, path: str, threads: int) -> None:
        from ipex_embeddings import Encoder

        # the model level times OpenVINO compiled models, whatever engine "auto" picks here
        self._encoder = Encoder.load(path, threads=threads, engine="openvino")
        self._compiled = self._encoder.compiled_model(1)
        self._request = self._compiled.create_infer_request()
        self._names = [port.get_any_name() for port in self._compiled.inputs]

    def infer(self, inputs: dict[str, np.ndarray]) -> None:
        self._request.infer({n: inputs[n] for n in self._names})

    def info(self) -> dict[str, Any]:
        compiled = self._compiled
        return {
            "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "precision": self._encoder.config.precision,
            "inference_precision": property_text(compiled, "INFERENCE_PRECISION_HINT"),
            "attention_precision": self._encoder.info()["attention_precision"],
            "streams": int(compiled.get_property("NUM_STREAMS")),
        }


class SentenceTransformerEmbedder:
    """sentence-transformers `encode_document` / `encode_query`, backend torch, onnx or openvino."""

    def __init__(self, path: str, threads: int, backend: str, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._torch = torch
        self.backend = backend
        self.batch_size = batch_size
        kwargs: dict[str, Any] | None = None
        if backend == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            # ONNX Runtime's first provider can be AzureExecutionProvider; ask for the CPU one.
            kwargs = {"provider": "CPUExecutionProvider", "session_options": options}
        elif backend == "openvino":
            kwargs = {"ov_config": {"INFERENCE_NUM_THREADS": threads}}
        self._model = SentenceTransformer(
            path, device="cpu", backend=backend, local_files_only=True, model_kwargs=kwargs
        )

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._model.encode_document(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )

    def embed_query(self, text: str) -> np.ndarray:
        return self._model.encode_query(text, convert_to_numpy=True, show_progress_bar=False)

    def info(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "backend": self.backend,
            "batch_size": self.batch_size,
            "max_seq_length": self._model.max_seq_length,
        }
        if self.backend == "torch":
            found["threads"] = self._torch.get_num_threads()
        inner = getattr(self._model[0], "auto_model", None)
        compiled = getattr(inner, "request", None)
        if self.backend == "openvino" and compiled is not None:
            found["inference_precision"] = property_text(compiled, "INFERENCE_PRECISION_HINT")
            found["threads"] = int(compiled.get_property("INFERENCE_NUM_THREADS"))
            found["performance_hint"] = property_text(compiled, "PERFORMANCE_HINT")
        session = getattr(inner, "model", None)
        if self.backend == "onnx" and hasattr(session, "get_providers"):
            found["providers"] = session.get_providers()
            found["threads"] = session.get_session_options().intra_op_num_threads
        return found


class CoreEmbedder:
    """Our `Encoder.encode_documents` / `encode_queries`."""

    def __init__(self, path: str, threads: int, batch_size: int = 32,
                 engine: str = "auto") -> None:
        from ipex_embeddings import Encoder

        self._encoder = Encoder.load(path, threads=threads, engine=engine)
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encoder.encode_documents(texts, batch_size=self.batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encoder.encode_queries([text])[0]

    def info(self) -> dict[str, Any]:
        return {**runtime_info(self._encoder), "batch_size": self.batch_size}


class LangChainEmbedder:
    """Our LangChain adapter: `IPEXEmbeddings.embed_documents` / `embed_query` (lists of floats)."""

    def __init__(self, path: str, threads: int, batch_size: int = 32) -> None:
        from ipex_embeddings.langchain import IPEXEmbeddings

        self._embeddings = IPEXEmbeddings(model_name=path, threads=threads, batch_size=batch_size)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._embeddings.embed_documents(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._embeddings.embed_query(text), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        return {**runtime_info(self._embeddings.encoder),
                "batch_size": self._embeddings.batch_size}


def load_system(spec: SystemSpec, threads: int) -> TokenModel | TextEmbedder | Reranker:
    """Build the system a spec describes (inside its worker process)."""
    path, options = str(Path(spec.path)), dict(spec.options)
    if spec.kind == RERANK:
        from .rerank_systems import load_reranker

        return load_reranker(spec.factory, path, threads, options)
    if spec.factory == "torch":
        return TorchModel(path, threads, **options)
    if spec.factory == "core":
        return CoreModel(path, threads) if spec.kind == MODEL_LEVEL else CoreEmbedder(
            path, threads, **options
        )
    if spec.factory == "sentence_transformers":
        return SentenceTransformerEmbedder(path, threads, **options)
    if spec.factory == "langchain":
        return LangChainEmbedder(path, threads, **options)
    from .peer_systems import FACTORIES

    if spec.factory in FACTORIES:
        return FACTORIES[spec.factory](path, threads, **options)
    raise ValueError(f"Unknown system factory {spec.factory!r}.")
