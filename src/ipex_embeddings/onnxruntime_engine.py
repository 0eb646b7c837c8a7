"""ONNX Runtime: the int8 engine for CPUs without int8 dot-product instructions (AVX2 only).

On such CPUs OpenVINO runs int8 matrix products with oneDNN's `jit_gemm_I8` kernels, slower
than its fp32 ones (`ipex_embeddings.cpu`). ONNX Runtime's MLAS has hand-written u8s8 AVX2
kernels (vpmaddubsw + vpmaddwd, weights prepacked at session creation): on all-MiniLM-L6-v2 on a
2-core AVX2 EPYC the folder's ONNX model ran 1.77x the documents/s of its OpenVINO static int8
IR and 1.23x fastembed's ONNX Runtime dynamic int8, with a higher cosine to fp32
(benchmarks/results/peers-minilm-avx2-onnxruntime).

The folder's `onnx_file` (written by `ipex-embed quantize`) is the bare transformer with dynamic
int8 matrix products: activation scales computed per call from the input itself (per token
where a product's input is not a LayerNorm's output, per text elsewhere), weights per channel.
So that a text's vector never depends on the other texts of a call, every text runs alone and
unpadded (batch 1, its own length): the model has no attention-mask input, and the kind's `Head`
pools (or scores) its output in numpy. One text on its own (a query) runs on every thread;
several run `streams` at a time, one thread each, which on 2 cores beat one text on 2 threads.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .batching import Batch
from .config import ModelConfig
from .engine import Head, advance, available_cores, check_parallelism
from .errors import ModelFolderError

__all__ = ["OnnxRuntimeEngine", "onnxruntime_session"]

MASK = "attention_mask"


def onnxruntime_session(path: Path, threads: int) -> ort.InferenceSession:
    """An ONNX Runtime CPU session of `path` on `threads` intra-op threads, all graph
    optimisations on (ONNX Runtime fuses the layer norms, GELU and the dequantisation).

    Raises:
        ModelFolderError: ONNX Runtime cannot read the file (its message, the file, the fix).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # its notices about unused initializers say nothing to users
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeException
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise ModelFolderError(
            f"ONNX Runtime cannot read {path}: {last.rstrip('.')}. The file is damaged: copy "
            "the folder again, rebuild it with `ipex-embed quantize`, or load it with "
            'engine="openvino" meanwhile.'
        ) from err


class OnnxRuntimeEngine:
    """ONNX Runtime's CPU provider over the folder's `onnx_file`, one unpadded text per run.

    Args:
        folder, config: the model folder and its JSON (`config.onnx_file` names the model).
        head: the model kind's `Head`; its `arrays` step turns each run's output into a row.
        threads: intra-op threads of a one-text call (default: every core this process may use).
        streams: texts run at once by a call of several (default: one per thread), each on
            one thread.
        compile_cache: unused (ONNX Runtime optimises the graph at load, in about a second);
            taken so that every engine loads with the same settings.

    Raises:
        ModelFolderError: the folder has no ONNX model, or ONNX Runtime cannot read it.
        ValueError: threads or streams below 1.
    """

    name = "onnxruntime"

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
        if not config.onnx_file:
            raise ModelFolderError(
                f"{folder} has no ONNX Runtime model (its ipex_embeddings.json names no "
                "onnx_file): it was built before ipex-embeddings wrote one, or from a model "
                'whose ONNX export failed. Load it with engine="openvino", or rebuild it '
                "with `ipex-embed quantize`."
            )
        self.path = folder / config.onnx_file
        self.threads = threads or available_cores()
        self.streams = streams
        self._arrays = head.arrays
        self._one = onnxruntime_session(self.path, self.threads)
        self._feeds = tuple(i.name for i in self._one.get_inputs())
        self.input_names = tuple(dict.fromkeys((*self._feeds, MASK)))
        self._many: ort.InferenceSession | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def many_streams(self) -> int:
        """Texts run at once by a call of several."""
        return self.streams or self.threads

    def info(self) -> dict[str, object]:
        return {
            "engine": self.name,
            "onnxruntime": ort.__version__,
            "threads": self.threads,
            "streams_for_many_batches": self.many_streams,
            "inference_precision": "f32",
            "attention_precision": "f32",
        }

    def run(self, batches: Iterable[Batch], count: int, out: np.ndarray,
            progress: object = None) -> None:
        batches = iter(batches)
        if count == 1:
            batch = next(batches)
            if len(batch.positions) == 1:  # one text: every thread on it
                out[batch.positions[0]] = self._row(self._one, batch, 0)
                advance(progress)
                return
            batches = itertools.chain([batch], batches)
        session, pool = self._parallel()
        pending: collections.deque[tuple[list[Future], Batch]] = collections.deque()
        try:
            for batch in batches:
                rows = [pool.submit(self._row, session, batch, row)
                        for row in range(len(batch.positions))]
                pending.append((rows, batch))
                while len(pending) > 2 * self.many_streams:
                    self._collect(pending.popleft(), out, progress)
            while pending:
                self._collect(pending.popleft(), out, progress)
        finally:
            for rows, _ in pending:
                for row in rows:
                    row.cancel()

    def _parallel(self) -> tuple[ort.InferenceSession, ThreadPoolExecutor]:
        """The one-thread session and the pool that runs `many_streams` texts on it at once,
        made on first use in each process (a forked child has none of its parent's threads)."""
        with self._lock:
            if self._many is None or self._pid != os.getpid():
                self._many = onnxruntime_session(self.path, 1)
                self._pool = ThreadPoolExecutor(self.many_streams, "ipex-embeddings-ort")
                self._pid = os.getpid()
            return self._many, self._pool  # type: ignore[return-value]

    def _row(self, session: ort.InferenceSession, batch: Batch, row: int) -> np.ndarray:
        """Row `row` of `batch`, unpadded, through the model and the head: [columns] float32."""
        length = int(batch.inputs[MASK][row].sum())
        arrays = {name: value[row : row + 1, :length] if value.ndim == 2 else value
                  for name, value in batch.inputs.items()}
        output = session.run(None, {name: arrays[name] for name in self._feeds})[0]
        return self._arrays(output, arrays)[0]

    @staticmethod
    def _collect(job: tuple[list[Future], Batch], out: np.ndarray, progress: object) -> None:
        rows, batch = job
        for position, row in zip(batch.positions, rows):
            out[position] = row.result()
        advance(progress)

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

