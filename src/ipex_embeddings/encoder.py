"""The encoding core: texts in, pooled and normalised float32 vectors out, on OpenVINO; smaller
vectors on request (`truncate_dim`, `precision`: see `ipex_embeddings.output`)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import queue
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import openvino as ov

from .batching import Batch, TextTokenizer, check_text, check_texts
from .config import ModelConfig
from .cpu import warn_if_int8_is_slow
from .errors import TruncationError
from .folder import check_model_folder, resolve_model_folder
from .output import (
    SCALAR_PRECISIONS,
    check_output_precision,
    check_truncate_dim,
    quantize,
    truncate,
)
from .pooling import PROMPT_LENGTH_INPUT, add_pooling

__all__ = [
    "Encoder", "TruncationWarning", "available_cores", "compile_settings", "default_compile_cache",
    "openvino_core",
]

Kind = Literal["query", "document"]
Truncation = Literal["warn", "error"]


class TruncationWarning(UserWarning):
    """Some texts were longer than max_seq_length and only their first tokens were embedded."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_compile_cache() -> Path:
    """Where compiled models are cached: $IPEX_EMBEDDINGS_CACHE, else ~/.cache/ipex-embeddings."""
    base = os.environ.get("IPEX_EMBEDDINGS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ipex-embeddings"
    )
    return Path(base) / "openvino"


_core: ov.Core | None = None
_core_lock = threading.Lock()


def openvino_core() -> ov.Core:
    """The process's one OpenVINO `Core`, shared by every encoder (and the builder).

    Several `ov.Core()` objects in one process can crash OpenVINO 2026 (openvinotoolkit/openvino
    #35338); a test suite or an app loading many models hit it. Per-model settings, the compile
    cache included, go to `compile_model`, never to the shared core.
    """
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def compile_settings(
    config: ModelConfig,
    threads: int,
    streams: int,
    compile_cache: str | os.PathLike[str] | bool,
) -> dict[str, object]:
    """The OpenVINO CPU properties every model of this package compiles with.

    Args:
        config: the folder's JSON (its `inference_precision` is the hint for non-int8 layers).
        threads: INFERENCE_NUM_THREADS; below `available_cores()`, threads are not pinned to
            cores (ENABLE_CPU_PINNING False), so that processes sharing the machine spread out.
        streams: NUM_STREAMS; 1 asks for the LATENCY hint, more for THROUGHPUT.
        compile_cache: a folder for the compiled-model cache, True for `default_compile_cache()`,
            False for none.
    """
    properties: dict[str, object] = {
        "INFERENCE_PRECISION_HINT": config.inference_precision,
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": streams,
        "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
    }
    if threads < available_cores():
        # Fewer threads than cores means other processes share the machine (Ray actors, Spark
        # workers, web workers). OpenVINO pins each process's threads to the first cores, so
        # they would all run on the same ones: two 1-thread processes on 2 cores ran at half
        # speed each (3.9 docs/s, 7.7 unpinned). Let the OS spread them.
        properties["ENABLE_CPU_PINNING"] = False
    if compile_cache:
        cache = default_compile_cache() if compile_cache is True else Path(compile_cache)
        properties["CACHE_DIR"] = str(cache)
    return properties


def _check_options(batch_size: int, truncation: str) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if truncation not in ("warn", "error"):
        raise ValueError(f'truncation={truncation!r} is not supported; use "warn" or "error".')


def _check_load_output(dimension: int, truncate_dim: int | None, precision: str | None) -> None:
    check_truncate_dim(truncate_dim, dimension)
    if precision in SCALAR_PRECISIONS:
        raise ValueError(
            f"output_precision={precision!r} needs calibration ranges, so it is given per call: "
            f'encoder.encode(texts, precision="{precision}", ranges=...). Load with '
            'output_precision="float32", "binary" or "ubinary".'
        )
    if precision is not None:
        check_output_precision(precision, None, truncate_dim or dimension)


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Encoder:
    """An int8 (or bf16/fp32) OpenVINO text-embedding model, ready to encode.

    Build one with `Encoder.load(path_or_repo_id)`. It is safe to share between threads: every
    call uses its own inference requests.
    """

    def __init__(
        self,
        folder: Path,
        config: ModelConfig,
        *,
        threads: int | None = None,
        streams: int | None = None,
        compile_cache: str | os.PathLike[str] | bool = True,
    ) -> None:
        for kind in ("query", "document"):  # a bad prompt is named here, not blamed on a text
            check_text(config.prompt(kind), f"the {kind} prompt ({kind}_prompt)")
        self.folder = folder
        self.config = config
        warn_if_int8_is_slow(config)
        self.threads = threads or available_cores()
        self.streams = streams
        # OpenVINO keys cached blobs by model content and settings: a second load skips most
        # of the compile (about 1 s -> 0.3 s for MiniLM here).
        self._compile_cache = compile_cache
        # Pooling runs inside the graph: the compiled models return [rows, dimension] vectors.
        self._model = add_pooling(
            openvino_core().read_model(folder / config.model_file), config.pooling,
            exclude_prompt=not config.include_prompt,
        )
        input_names = [
            port.get_any_name() for port in self._model.inputs
            if port.get_any_name() != PROMPT_LENGTH_INPUT  # set per call, see _pooling_inputs
        ]
        self._tokenizer = TextTokenizer(
            folder / "tokenizer.json", config.max_seq_length, input_names
        )
        self._compiled: dict[int, ov.CompiledModel] = {}
        self._compile_lock = threading.Lock()
        # Idle inference requests by (streams, width): a request keeps running one width, so
        # the CPU plugin does not re-plan its memory and kernels for every call.
        self._idle_requests: dict[tuple[int, int], queue.SimpleQueue[ov.InferRequest]] = {}
        self._compile(1)  # the latency model: one stream, every thread; compiled now

    @classmethod
    def load(
        cls,
        path_or_repo_id: str | os.PathLike[str],
        *,
        threads: int | None = None,
        streams: int | None = None,
        compile_cache: str | os.PathLike[str] | bool = True,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        token: str | bool | None = None,
        truncate_dim: int | None = None,
        output_precision: str | None = None,
    ) -> Encoder:
        """Load a model folder, or a Hub repo made by `ipex-embed build`.

        Args:
            path_or_repo_id: a local folder, or a Hugging Face repo id ("user/name").
            threads: CPU threads for inference (default: every core this process may use).
            streams: parallel inference streams for multi-batch calls (default: one per core).
            compile_cache: folder for OpenVINO's compiled-model cache (True: the default folder,
                see `default_compile_cache`; False: no cache).
            query_prompt, document_prompt: replace the folder's prompts (None keeps them).
            revision, cache_dir, token: passed to huggingface_hub for a repo id.
            truncate_dim: the default for `encode`: keep the first `truncate_dim` dimensions
                (Matryoshka), re-normalised when the model normalises; None keeps the folder's
                (full size unless its source set one).
            output_precision: the default for `encode`'s `precision`: "float32", "binary" or
                "ubinary" (int8/uint8 need ranges, so they are given per call); None keeps the
                folder's ("float32" unless it says otherwise). Named `output_precision` because
                `config.precision` is the weights' precision.

        Raises:
            ModelFolderError: not a complete model folder, or a cross-encoder's (load that with
                `CrossEncoder.load`).
            ValueError: a `truncate_dim` outside [1, dimension], or an unsupported
                `output_precision`.
        """
        folder = resolve_model_folder(
            path_or_repo_id, revision=revision, cache_dir=cache_dir, token=token
        )
        config = check_model_folder(folder, "bi-encoder")
        _check_load_output(config.dimension, truncate_dim, output_precision)
        given = {"query_prompt": query_prompt, "document_prompt": document_prompt,
                 "truncate_dim": truncate_dim, "output_precision": output_precision}
        overrides = {key: value for key, value in given.items() if value is not None}
        if overrides:
            config = dataclasses.replace(config, **overrides)
        return cls(folder, config, threads=threads, streams=streams, compile_cache=compile_cache)

    @property
    def dimension(self) -> int:
        """Length of the float vectors `encode` returns by default: `config.truncate_dim` when
        set, else the model's full `config.dimension` (bits, before packing, for (u)binary)."""
        return self.config.truncate_dim or self.config.dimension

    @property
    def max_seq_length(self) -> int:
        """Longest input in tokens, prompt and special tokens included."""
        return self.config.max_seq_length

    @property
    def widths(self) -> tuple[int, ...]:
        """The padded widths (tokens) inputs are run at; see `batching.bucket_widths`."""
        return self._tokenizer.widths

    def compiled_model(self, streams: int = 1) -> ov.CompiledModel:
        """The OpenVINO model `encode` runs: one stream for single-batch calls, more for many.

        For benchmarks and advanced use: token ids in (`input_ids`, `attention_mask`, and
        `token_type_ids` where the model has it; int64 [rows, width], both free), pooled float32
        [rows, dimension] vectors out, not normalised (pooling runs inside the graph). A model
        with `include_prompt=False` also takes `prompt_length` (int64 scalar: leading tokens
        left out of the pooling).
        """
        return self._compile(streams)

    def _compile(self, streams: int) -> ov.CompiledModel:
        with self._compile_lock:
            if streams not in self._compiled:
                properties = compile_settings(
                    self.config, self.threads, streams, self._compile_cache
                )
                self._compiled[streams] = openvino_core().compile_model(
                    self._model, "CPU", properties
                )
            return self._compiled[streams]

    def encode(
        self,
        texts: Iterable[str],
        kind: Kind = "document",
        *,
        batch_size: int = 32,
        show_progress: bool = False,
        truncation: Truncation = "warn",
        normalize: bool | None = None,
        truncate_dim: int | None = None,
        precision: str | None = None,
        ranges: np.ndarray | None = None,
    ) -> np.ndarray:
        """Embed `texts`: by default a float32 array of shape (len(texts), dimension).

        Args:
            texts: the texts; "" is valid, anything not a str raises a TypeError naming its index.
            kind: "query" or "document": which of the model's prompts goes before each text.
            batch_size: texts per inference call; texts are sorted by length and padded per batch.
            show_progress: show a progress bar over batches.
            truncation: "warn" embeds the first max_seq_length tokens of longer texts and warns
                once with their count; "error" raises TruncationError listing their indices.
            normalize: override the model's own setting for L2 normalisation.
            truncate_dim: keep the first `truncate_dim` of the model's dimensions (Matryoshka
                models are trained for it), L2-normalised again when normalising; None: the
                load-time default (`config.truncate_dim`, else full size).
            precision: sentence-transformers' output precisions, exactly as its
                `quantize_embeddings`: "float32"; "int8"/"uint8" (n, d) buckets over `ranges`;
                "binary" (int8) / "ubinary" (uint8) (n, ceil(d / 8)) packed bits of x > 0.
                None: the load-time default (`config.output_precision`, else "float32").
            ranges: int8/uint8 only: float (2, d) per-dimension min and max of representative
                vectors at this `truncate_dim` (see `ipex_embeddings.output.quantization_ranges`).

        Raises:
            TypeError, InvalidTextError: a text that is not a valid str (named by index).
            TruncationError: with truncation="error", the texts that are too long.
            ValueError: a bad option: `batch_size`, `truncation`, `truncate_dim` outside
                [1, config.dimension], an unknown `precision`, int8/uint8 without `ranges` or
                with ranges not of shape (2, d).
        """
        _check_options(batch_size, truncation)
        size = self._output_size(truncate_dim, precision, ranges)
        vectors = self._encode(check_texts(texts), kind, batch_size, truncation, normalize,
                               show_progress=show_progress)
        return self._resize(vectors, size, normalize)

    def _output_size(
        self, truncate_dim: int | None, precision: str | None, ranges: np.ndarray | None
    ) -> tuple[int | None, str, np.ndarray | None]:
        """(truncate_dim, precision, ranges) for one call, defaults filled in and checked."""
        truncate_dim = self.config.truncate_dim if truncate_dim is None else truncate_dim
        precision = self.config.output_precision if precision is None else precision
        check_truncate_dim(truncate_dim, self.config.dimension)
        check_output_precision(precision, ranges, truncate_dim or self.config.dimension)
        return truncate_dim, precision, ranges

    def _resize(
        self,
        vectors: np.ndarray,
        size: tuple[int | None, str, np.ndarray | None],
        normalize: bool | None,
    ) -> np.ndarray:
        truncate_dim, precision, ranges = size
        normalized = self.config.normalize if normalize is None else normalize
        return quantize(truncate(vectors, truncate_dim, normalized), precision, ranges)

    def encode_stream(
        self,
        texts: Iterable[str],
        kind: Kind = "document",
        *,
        batch_size: int = 32,
        chunk_size: int = 4096,
        truncation: Truncation = "warn",
        normalize: bool | None = None,
        truncate_dim: int | None = None,
        precision: str | None = None,
        ranges: np.ndarray | None = None,
    ) -> Iterator[np.ndarray]:
        """Embed an iterable of any length chunk by chunk, in bounded memory.

        Takes `chunk_size` texts at a time from `texts` (a list, a generator, a file's lines),
        and yields each chunk's float32 (n, dimension) array, in input order; concatenated, they
        equal `encode(list(texts))` bit for bit, since a text's vector never depends on the other
        texts (see `batching.bucket_widths`). Memory holds one chunk's tokens and vectors.

        Errors name a text by its position in the whole stream (`texts[i]`), and are raised
        when its chunk is reached: the chunks before it have been yielded.

        Args:
            chunk_size: texts per chunk; larger chunks sort more texts by length (less padding).
            the rest: as for `encode` (each chunk is truncated and quantized alike: int8/uint8
                use the given `ranges`, never the chunk's own).

        Raises:
            ValueError: a bad option (as for `encode`, checked before the first chunk).
        """
        _check_options(batch_size, truncation)
        size = self._output_size(truncate_dim, precision, ranges)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        if isinstance(texts, str):
            check_texts(texts)  # raises the "wrap it" TypeError
        iterator = iter(texts)
        offset = 0
        while chunk := list(itertools.islice(iterator, chunk_size)):
            items = check_texts(chunk, offset=offset)
            vectors = self._encode(items, kind, batch_size, truncation, normalize, offset=offset)
            yield self._resize(vectors, size, normalize)
            offset += len(chunk)

    def _encode(
        self,
        items: list[str],
        kind: Kind,
        batch_size: int,
        truncation: Truncation,
        normalize: bool | None,
        *,
        show_progress: bool = False,
        offset: int = 0,
    ) -> np.ndarray:
        prompt = self.config.prompt(kind)
        encodings, truncated = self._tokenizer.tokenize(
            [prompt + t for t in items] if prompt else items, offset=offset
        )
        if truncated:
            self._truncated([i + offset for i in truncated], len(items), truncation)
        out = np.empty((len(items), self.config.dimension), dtype=np.float32)
        plan = self._tokenizer.plan(encodings, batch_size)
        progress = _progress_bar(len(plan)) if show_progress else None
        extra = self._pooling_inputs(prompt)
        if len(plan) == 1:
            self._run_one(self._pad(encodings, *plan[0], extra), out)
        elif plan:
            batches = (self._pad(encodings, *step, extra) for step in plan)
            self._run_many(batches, out, progress)
        if progress is not None:
            progress.update(len(plan) - progress.n)  # type: ignore[attr-defined]
            progress.close()  # type: ignore[attr-defined]
        if self.config.normalize if normalize is None else normalize:
            out = _normalize(out)
        return out

    def _pooling_inputs(self, prompt: str) -> dict[str, np.ndarray]:
        """The `prompt_length` input of a model that pools without its prompt: the prompt's
        tokens less a trailing special one, as sentence-transformers counts them."""
        if self.config.include_prompt:
            return {}
        return {PROMPT_LENGTH_INPUT: np.array(self._tokenizer.prompt_length(prompt), np.int64)}

    def _pad(
        self, encodings: list, positions: np.ndarray, width: int, extra: dict[str, np.ndarray]
    ) -> Batch:
        batch = self._tokenizer.pad(encodings, positions, width)
        batch.inputs.update(extra)
        return batch

    def _truncated(self, indices: list[int], count: int, truncation: Truncation) -> None:
        if truncation == "error":
            raise TruncationError(indices, self.max_seq_length)
        warnings.warn(
            f"{len(indices)} of {count} texts exceed max_seq_length={self.max_seq_length} "
            f"tokens; only their first tokens were embedded (first indices: {indices[:10]}). "
            'Pass truncation="error" to refuse them.',
            TruncationWarning,
            stacklevel=4,
        )

    def encode_queries(self, texts: Iterable[str], **kwargs: object) -> np.ndarray:
        """`encode(texts, kind="query", ...)`."""
        return self.encode(texts, "query", **kwargs)  # type: ignore[arg-type]

    def encode_documents(self, texts: Iterable[str], **kwargs: object) -> np.ndarray:
        """`encode(texts, kind="document", ...)`."""
        return self.encode(texts, "document", **kwargs)  # type: ignore[arg-type]

    def _take_request(self, key: tuple[int, int]) -> ov.InferRequest:
        pool = self._idle_requests.setdefault(key, queue.SimpleQueue())
        try:
            return pool.get_nowait()
        except queue.Empty:
            return self._compile(key[0]).create_infer_request()

    def _give_back(self, key: tuple[int, int], request: ov.InferRequest) -> None:
        self._idle_requests[key].put(request)

    def _run_one(self, batch: Batch, out: np.ndarray) -> None:
        key = (1, batch.width)
        request = self._take_request(key)
        try:
            request.infer(batch.inputs)
            out[batch.positions] = request.get_output_tensor(0).data
        finally:
            self._give_back(key, request)

    def _run_many(self, batches: Iterable[Batch], out: np.ndarray, progress: object) -> None:
        # Round-robin over a few requests; each batch's vectors are stored here, in the calling
        # thread, while the other requests run, so padding overlaps inference with no callbacks.
        streams = self.streams or self.threads
        jobs = self._compile(streams).get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") + 1
        running: list[tuple[ov.InferRequest, tuple[int, int], Batch] | None] = [None] * jobs
        try:
            for index, batch in enumerate(batches):
                slot = index % jobs
                self._finish(running[slot], out, progress)
                running[slot] = None
                key = (streams, batch.width)
                request = self._take_request(key)
                running[slot] = (request, key, batch)
                request.start_async(batch.inputs)
            for slot in range(jobs):
                self._finish(running[slot], out, progress)
                running[slot] = None
        finally:
            for job in running:
                if job is not None:
                    job[0].wait()
                    self._give_back(job[1], job[0])

    def _finish(
        self,
        job: tuple[ov.InferRequest, tuple[int, int], Batch] | None,
        out: np.ndarray,
        progress: object,
    ) -> None:
        if job is None:
            return
        request, key, batch = job
        request.wait()
        out[batch.positions] = request.get_output_tensor(0).data
        self._give_back(key, request)
        if progress is not None:
            progress.update(1)  # type: ignore[attr-defined]


def _progress_bar(total: int) -> object:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="Encoding", unit="batch")
