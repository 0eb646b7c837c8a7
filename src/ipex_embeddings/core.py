"""The one core under every model kind: folder, tokenizer, engine, truncation and batch plan.

`Encoder` (texts to vectors) and `CrossEncoder` (pairs to scores) are small subclasses of
`InferenceModel`: each names its folder kind, the graph head it appends to the IR (pooling, or
the activation), how it tokenizes, and its public calls. Loading, the safety checks, the engine
(see `ipex_embeddings.engine`), the truncation policy, the bucketed batch plan and pickling are
here, once.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import openvino as ov
from tokenizers import Encoding

from .batching import Batch, TextTokenizer
from .config import ModelConfig
from .cpu import warn_if_int8_is_slow
from .engine import Engine, Head
from .engines import open_engine
from .errors import TruncationError
from .folder import check_model_folder, resolve_model_folder

__all__ = ["InferenceModel", "Truncation", "TruncationWarning", "check_options"]

Truncation = Literal["warn", "error"]


class TruncationWarning(UserWarning):
    """Some inputs were longer than max_seq_length and only their first tokens were used."""


def check_options(batch_size: int, truncation: str) -> None:
    """Raise a ValueError naming a `batch_size` below 1 or an unknown `truncation`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}.")
    if truncation not in ("warn", "error"):
        raise ValueError(f'truncation={truncation!r} is not supported; use "warn" or "error".')


class InferenceModel:
    """A loaded model folder of one kind, with its engine and tokenizer. Thread-safe.

    Subclasses set `kind` (the folder's `kind`), `truncation_strategy` (tokenizers': how a
    pair is cut), `inputs_name` (what errors and warnings call the inputs) and implement
    `graph_head` (what is appended to the IR, giving the engine's [rows, columns] output) and
    `array_head` (the same in numpy, for engines that run the bare transformer).
    """

    kind: ClassVar[str]
    truncation_strategy: ClassVar[str] = "longest_first"
    inputs_name: ClassVar[str] = "texts"

    def __init__(
        self,
        folder: Path,
        config: ModelConfig,
        *,
        threads: int | None = None,
        streams: int | None = None,
        compile_cache: str | os.PathLike[str] | bool = True,
        engine: str = "auto",
    ) -> None:
        self.folder = folder
        self.config = config
        self._check_config()
        self._settings = {"threads": threads, "streams": streams,
                          "compile_cache": compile_cache, "engine": engine}
        self.engine: Engine = open_engine(
            engine, folder, config, Head(self.graph_head, self.array_head),
            threads=threads, streams=streams, compile_cache=compile_cache,
        )
        if self.engine.name == "openvino":  # the one engine whose int8 is slow on AVX2
            warn_if_int8_is_slow(config)
        self.tokenizer = TextTokenizer(  # the model's tokenizer, truncating at its limit
            folder / "tokenizer.json", config.max_seq_length, self.engine.input_names,
            self.truncation_strategy,
        )

    @classmethod
    def open_folder(
        cls,
        path_or_repo_id: str | os.PathLike[str],
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        token: str | bool | None = None,
    ) -> tuple[Path, ModelConfig]:
        """The local folder and checked config of a folder or Hub repo of this class's kind.

        Raises:
            ModelFolderError: not a complete model folder, or one of another kind (the message
                names the class that loads it).
        """
        folder = resolve_model_folder(
            path_or_repo_id, revision=revision, cache_dir=cache_dir, token=token
        )
        return folder, check_model_folder(folder, cls.kind)

    def _check_config(self) -> None:
        """Kind-specific checks of the config, before the engine loads anything."""

    def graph_head(self, model: ov.Model) -> ov.Model:
        """The folder's IR with this kind's output step appended."""
        raise NotImplementedError

    def array_head(self, output: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The same step in numpy, for one unpadded input's raw output (see `engine.Head`)."""
        raise NotImplementedError

    @property
    def threads(self) -> int:
        """CPU threads for inference."""
        return self.engine.threads

    @property
    def streams(self) -> int | None:
        """Inference streams for multi-batch calls as given at load (None: one per thread)."""
        return self._settings["streams"]  # type: ignore[return-value]

    @property
    def max_seq_length(self) -> int:
        """Longest input in tokens, prompts and special tokens included."""
        return self.config.max_seq_length

    @property
    def widths(self) -> tuple[int, ...]:
        """The padded widths (tokens) inputs are run at; see `batching.bucket_widths`."""
        return self.tokenizer.widths

    def info(self) -> dict[str, object]:
        """What runs this model: the folder, its kind and precision, the engine and its settings
        (engine name, threads, streams, inference precision), for logs and reports."""
        return {
            "folder": str(self.folder),
            "kind": self.config.kind,
            "source_model": self.config.source_model,
            "precision": self.config.precision,
            **self.engine.info(),
        }

    def compiled_model(self, streams: int = 1) -> ov.CompiledModel:
        """The compiled OpenVINO model the calls run (one stream for single-batch calls), for
        benchmarks and advanced use: int64 [rows, width] token inputs, this kind's output.

        Raises:
            TypeError: the model runs on an engine other than OpenVINO.
        """
        compiled = getattr(self.engine, "compiled_model", None)
        if compiled is None:
            raise TypeError(f"{self.engine.name} runs this model; it has no OpenVINO model.")
        return compiled(streams)

    def infer(
        self,
        encodings: list[Encoding],
        batch_size: int,
        columns: int,
        extra: dict[str, np.ndarray] | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """The engine's float32 [len(encodings), columns] output for tokenized inputs, run in
        length-sorted batches of one width bucket each (so a row never depends on the others);
        `extra`: inputs every batch takes as they are; `show_progress`: a bar over batches."""
        out = np.empty((len(encodings), columns), dtype=np.float32)
        plan = self.tokenizer.plan(encodings, batch_size)
        batches = (self._pad(encodings, positions, width, extra) for positions, width in plan)
        if not show_progress:
            self.engine.run(batches, len(plan), out)
            return out
        from tqdm.auto import tqdm

        with tqdm(total=len(plan), desc="Encoding", unit="batch") as bar:
            self.engine.run(batches, len(plan), out, bar)
        return out

    def _pad(self, encodings: list[Encoding], positions: np.ndarray, width: int,
             extra: dict[str, np.ndarray] | None) -> Batch:
        batch = self.tokenizer.pad(encodings, positions, width)
        if extra:
            batch.inputs.update(extra)
        return batch

    def tokenize(
        self,
        items: Sequence[str | tuple[str, str]],
        truncation: Truncation,
        offset: int = 0,
    ) -> list[Encoding]:
        """Encodings of `items`, applying the truncation policy to those over max_seq_length:
        "warn" warns once with their count and first indices (`offset`: where `items` starts in
        a stream), "error" raises `TruncationError` listing them."""
        encodings, truncated = self.tokenizer.tokenize(items, offset=offset)
        if truncated:
            self._truncated([i + offset for i in truncated], len(items), truncation)
        return encodings

    def _truncated(self, indices: list[int], count: int, truncation: Truncation) -> None:
        if truncation == "error":
            raise TruncationError(indices, self.max_seq_length)
        warnings.warn(
            f"{len(indices)} of {count} {self.inputs_name} exceed max_seq_length="
            f"{self.max_seq_length} tokens; {self.truncated_what} (first indices: "
            f'{indices[:10]}). Pass truncation="error" to refuse them.',
            TruncationWarning,
            stacklevel=5,
        )

    truncated_what: ClassVar[str] = "only their first tokens were embedded"

    def __reduce__(self) -> tuple[Any, ...]:
        # A compiled model cannot be pickled: a copy (pickle, deepcopy, a Ray or Spark worker)
        # loads the same folder with the same config and settings again.
        return (_reload, (type(self), self.folder, self.config, self._settings))


def _reload(cls: type[InferenceModel], folder: Path, config: ModelConfig,
            settings: dict[str, object]) -> InferenceModel:
    return cls(folder, config, **settings)  # type: ignore[arg-type]
