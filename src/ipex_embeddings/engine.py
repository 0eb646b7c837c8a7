"""The engine seam: what runs a model folder's graph on this CPU, for every model kind.

`Encoder` and `CrossEncoder` never touch an inference library. They hand an engine padded
`Batch`es, the `Head` that turns the transformer's output into theirs, and an output array; the
engine owns compilation, threads, streams, caches and its pool of inference requests. Engines are
picked by name in `ipex_embeddings.engines` ("auto": the fastest measured for this CPU):
`OpenVINOEngine` here, and `ipex_embeddings.onnxruntime_engine.OnnxRuntimeEngine` for CPUs
without int8 dot-product instructions, where OpenVINO has no fast int8 kernels
(`ipex_embeddings.cpu`).
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import openvino as ov

from .attention import convert_attention_to_bf16, run_precisions
from .batching import Batch
from .config import ModelConfig
from .errors import ModelFolderError
from .pooling import PROMPT_LENGTH_INPUT

__all__ = [
    "Engine", "GraphHead", "Head", "OpenVINOEngine", "advance", "available_cores",
    "check_parallelism", "compile_settings", "default_compile_cache", "native_bf16",
    "openvino_core",
]

GraphHead = Callable[[ov.Model], ov.Model]
"""What a model kind appends to the folder's IR (pooling, an activation): IR in, new model out."""
ArrayHead = Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]
"""The same step in numpy: one unpadded input's raw output and its inputs in, [1, columns] out."""


@dataclass(frozen=True)
class Head:
    """What a model kind appends to the transformer's output, once per kind of graph.

    `graph` is appended to the OpenVINO IR (pooling, the cross-encoder's scores), so the compiled
    model returns [rows, columns]. `arrays` computes the same in numpy for engines that run the
    bare transformer: it takes one unpadded input's output (float32 [1, tokens, hidden] token
    states, or [1, labels] logits) and that input's arrays (`attention_mask` [1, tokens], and
    `prompt_length` where the kind passes it), and returns float32 [1, columns].
    """

    graph: GraphHead
    arrays: ArrayHead


class Engine(Protocol):
    """The seam between a model kind and an inference library.

    `run` fills `out[batch.positions]` with each batch's one output ([rows, columns] float32),
    whatever order the batches finish in; it is thread-safe.
    """

    name: str
    """The engine's name, as `engine=` takes it and reports show it."""
    input_names: tuple[str, ...]
    """The token inputs the graph takes, of "input_ids", "attention_mask", "token_type_ids"."""
    threads: int
    """CPU threads for inference."""

    def run(self, batches: Iterable[Batch], count: int, out: np.ndarray,
            progress: object = None) -> None:
        """Run `count` batches (an iterable, so padding can overlap inference) into `out`;
        `progress` (a tqdm bar, or None) advances by one per batch."""

    def info(self) -> dict[str, object]:
        """The engine's name and settings, for reports and `Encoder.info`."""


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
    """The process's one OpenVINO `Core`, shared by every model (and the builder).

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
        config: the folder's JSON (its `inference_precision` is the hint for non-int8 layers;
            "auto" is bf16 where the CPU computes bf16 natively: `attention.run_precisions`).
        threads: INFERENCE_NUM_THREADS; below `available_cores()`, threads are not pinned to
            cores (ENABLE_CPU_PINNING False), so that processes sharing the machine spread out.
        streams: NUM_STREAMS; 1 asks for the LATENCY hint, more for THROUGHPUT.
        compile_cache: a folder for the compiled-model cache, True for `default_compile_cache()`,
            False for none.
    """
    properties: dict[str, object] = {
        "INFERENCE_PRECISION_HINT": run_precisions(config, native_bf16())[0],
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


@functools.cache
def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 natively here (AMX or AVX512_BF16)."""
    return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def check_parallelism(threads: int | None, streams: int | None) -> None:
    """Raise a ValueError naming the option when `threads` or `streams` is not None or >= 1."""
    for name, value in (("threads", threads), ("streams", streams)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name}={value!r} is not supported; give a whole number of at least 1, or "
                f"None for the default ({available_cores()} cores here)."
            )


Job = tuple[ov.InferRequest, tuple[int, int], Batch]


class OpenVINOEngine:
    """OpenVINO's CPU plugin: the folder's IR plus the kind's graph head, compiled per stream count.

    A call of one batch runs on the latency model (one stream, every thread); a call of several
    runs round-robin over the throughput model's requests (`streams`, default one per thread), so
    the next batch is padded while the others run. Idle inference requests are kept per
    (streams, width): a request keeps running one width, so the CPU plugin does not re-plan its
    memory and kernels for every call.
    """

    name = "openvino"

    def __init__(
        self,
        folder: Path,
        config: ModelConfig,
        head: Head,
        *,
        threads: int | None = None,
        streams: int | None = None,
        compile_cache: str | os.PathLike[str] | bool = True,
    ) -> None:
        check_parallelism(threads, streams)
        self.config = config
        self.threads = threads or available_cores()
        self.streams = streams
        # OpenVINO keys cached blobs by model content and settings: a second load skips most
        # of the compile (about 1 s -> 0.3 s for MiniLM here).
        self._compile_cache = compile_cache
        self._model = head.graph(_read_model(folder / config.model_file))
        self.inference_precision, self.attention_precision = run_precisions(
            config, native_bf16())
        if self.attention_precision == "bf16" and not convert_attention_to_bf16(self._model):
            self.attention_precision = self.inference_precision  # no attention op to convert
        self.input_names = tuple(  # prompt_length is a pooling input, set per call
            port.get_any_name() for port in self._model.inputs
            if port.get_any_name() != PROMPT_LENGTH_INPUT
        )
        self._compiled: dict[int, ov.CompiledModel] = {}
        self._compile_lock = threading.Lock()
        self._idle: dict[tuple[int, int], queue.SimpleQueue[ov.InferRequest]] = {}
        self.compiled_model(1)  # the latency model, compiled at load: the first call is fast

    @property
    def many_streams(self) -> int:
        """The streams of the throughput model that multi-batch calls run on."""
        return self.streams or self.threads

    def compiled_model(self, streams: int = 1) -> ov.CompiledModel:
        """The compiled model at `streams` streams (compiled on first use, then kept)."""
        with self._compile_lock:
            if streams not in self._compiled:
                properties = compile_settings(
                    self.config, self.threads, streams, self._compile_cache
                )
                self._compiled[streams] = openvino_core().compile_model(
                    self._model, "CPU", properties
                )
            return self._compiled[streams]

    def info(self) -> dict[str, object]:
        return {
            "engine": self.name,
            "openvino": ov.get_version().split("-")[0],
            "threads": self.threads,
            "streams_for_many_batches": self.many_streams,
            # an ov.Type: its name ("f32", "bf16"), not its repr
            "inference_precision": self.compiled_model(1).get_property(
                "INFERENCE_PRECISION_HINT"
            ).get_type_name(),
            "attention_precision": self.attention_precision,
        }

    def run(self, batches: Iterable[Batch], count: int, out: np.ndarray,
            progress: object = None) -> None:
        if count == 1:
            batch = next(iter(batches))
            key = (1, batch.width)
            request = self._take(key)
            try:
                # share_inputs: the padded arrays are read in place, not copied into new tensors
                request.infer(batch.inputs, share_inputs=True)
                out[batch.positions] = request.get_output_tensor(0).data
            finally:
                self._idle[key].put(request)
            advance(progress)
        elif count > 1:
            self._run_many(batches, out, progress)

    def _take(self, key: tuple[int, int]) -> ov.InferRequest:
        pool = self._idle.setdefault(key, queue.SimpleQueue())
        try:
            return pool.get_nowait()
        except queue.Empty:
            return self.compiled_model(key[0]).create_infer_request()

    def _run_many(self, batches: Iterable[Batch], out: np.ndarray, progress: object) -> None:
        # Round-robin over a few requests; each batch's output is stored here, in the calling
        # thread, while the other requests run, so padding overlaps inference with no callbacks.
        streams = self.many_streams
        jobs = self.compiled_model(streams).get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") + 1
        running: list[Job | None] = [None] * jobs
        try:
            for index, batch in enumerate(batches):
                slot = index % jobs
                self._finish(running[slot], out, progress)
                running[slot] = None
                key = (streams, batch.width)
                request = self._take(key)
                running[slot] = (request, key, batch)
                request.start_async(batch.inputs, share_inputs=True)  # `running` keeps them
            for slot in range(jobs):
                self._finish(running[slot], out, progress)
                running[slot] = None
        finally:
            for job in running:
                if job is not None:
                    job[0].wait()
                    self._idle[job[1]].put(job[0])

    def _finish(self, job: Job | None, out: np.ndarray, progress: object) -> None:
        if job is None:
            return
        request, key, batch = job
        request.wait()
        out[batch.positions] = request.get_output_tensor(0).data
        self._idle[key].put(request)
        advance(progress)


def _read_model(xml: Path) -> ov.Model:
    """The IR at `xml`; OpenVINO's own error (damage that the folder check cannot see, such as
    bytes changed inside a `.bin` of the right size) as a `ModelFolderError` naming the file."""
    try:
        return openvino_core().read_model(xml)
    except RuntimeError as err:
        raise ModelFolderError(
            f"OpenVINO cannot read {xml} (with {xml.with_suffix('.bin').name}): "
            f"{str(err).strip().splitlines()[-1] if str(err).strip() else err}. The files are "
            "damaged: copy the folder again, or rebuild it with `ipex-embed quantize`."
        ) from err


def advance(progress: object) -> None:
    """One more batch done, on `progress` (a tqdm bar) when there is one."""
    if progress is not None:
        progress.update(1)  # type: ignore[attr-defined]
