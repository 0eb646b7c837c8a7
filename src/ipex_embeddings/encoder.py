"""The bi-encoder: texts in, pooled and normalised float32 vectors out; smaller vectors on
request (`truncate_dim`, `precision`: see `ipex_embeddings.output`).

The folder, the engine, the tokenizer, truncation and the batch plan are the shared core's
(`ipex_embeddings.core.InferenceModel`); this module adds the prompts, the pooling head and the
output size.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Literal

import numpy as np
import openvino as ov

from .batching import check_text, check_texts
from .core import InferenceModel, Truncation, TruncationWarning, check_options
from .engine import available_cores, compile_settings, default_compile_cache, openvino_core
from .output import (
    SCALAR_PRECISIONS,
    check_output_precision,
    check_truncate_dim,
    quantize,
    truncate,
)
from .pooling import PROMPT_LENGTH_INPUT, add_pooling, pool

__all__ = [
    "Encoder", "Truncation", "TruncationWarning", "available_cores", "compile_settings",
    "default_compile_cache", "openvino_core",
]

Kind = Literal["query", "document"]


def _check_load_output(dimension: int, truncate_dim: int | None, precision: str | None) -> None:
    check_truncate_dim(truncate_dim, dimension)
    if precision in SCALAR_PRECISIONS:
        raise ValueError(
            f"output_precision={precision!r} needs calibration ranges, so it is given per call: "
            f'encoder.encode(texts, precision="{precision}", ranges=...). Load with '
            'output_precision="float32", "binary" or "ubinary".'
        )
    if precision is not None:
        check_output_precision(precision, None, truncate_dim or dimension, "output_precision")


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Encoder(InferenceModel):
    """An int8 (or bf16/fp32) text-embedding model, ready to encode.

    Build one with `Encoder.load(path_or_repo_id)`. It is safe to share between threads: every
    call uses its own inference requests. Pickling or copying it loads the folder again.
    """

    kind = "bi-encoder"

    def _check_config(self) -> None:
        for kind in ("query", "document"):  # a bad prompt is named here, not blamed on a text
            check_text(self.config.prompt(kind), f"the {kind} prompt ({kind}_prompt)")

    def graph_head(self, model: ov.Model) -> ov.Model:
        """Pooling inside the graph: the engine returns [rows, dimension] vectors."""
        exclude_prompt = not self.config.include_prompt
        return add_pooling(model, self.config.pooling, exclude_prompt=exclude_prompt)

    def array_head(self, output: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The same pooling in numpy: [1, tokens, hidden] token states to [1, hidden]."""
        prompt_length = int(inputs.get(PROMPT_LENGTH_INPUT, 0))
        return pool(output, inputs["attention_mask"], self.config.pooling, prompt_length)

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
        engine: str = "auto",
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
            engine: what runs the model (see `ipex_embeddings.engines.ENGINES`); "auto" picks
                the fastest measured for this CPU. `info()` says which ran.

        Raises:
            ModelFolderError: not a complete model folder, or a cross-encoder's (load that with
                `CrossEncoder.load`).
            ValueError: a `truncate_dim` outside [1, dimension], an unsupported
                `output_precision`, an unknown `engine`, or `threads`/`streams` below 1.
        """
        folder, config = cls.open_folder(
            path_or_repo_id, revision=revision, cache_dir=cache_dir, token=token
        )
        _check_load_output(config.dimension, truncate_dim, output_precision)
        given = {"query_prompt": query_prompt, "document_prompt": document_prompt,
                 "truncate_dim": truncate_dim, "output_precision": output_precision}
        overrides = {key: value for key, value in given.items() if value is not None}
        if overrides:
            config = dataclasses.replace(config, **overrides)
        return cls(folder, config, threads=threads, streams=streams, compile_cache=compile_cache,
                   engine=engine)

    @property
    def dimension(self) -> int:
        """Length of the float vectors `encode` returns by default: `config.truncate_dim` when
        set, else the model's full `config.dimension` (bits, before packing, for (u)binary)."""
        return self.config.truncate_dim or self.config.dimension

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
            batch_size: the most texts per inference call; texts are sorted by length and padded
                per batch, and long texts go fewer at a time (`batching.TOKENS_PER_BATCH`).
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
        check_options(batch_size, truncation)
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
        check_options(batch_size, truncation)
        size = self._output_size(truncate_dim, precision, ranges)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}.")
        if isinstance(texts, str):
            check_texts(texts, call="encode_stream")  # raises the "wrap it" TypeError
        iterator = iter(texts)
        offset = 0
        while chunk := list(itertools.islice(iterator, chunk_size)):
            items = check_texts(chunk, offset=offset, call="encode_stream")
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
        encodings = self.tokenize(
            [prompt + t for t in items] if prompt else items, truncation, offset=offset
        )
        out = self.infer(encodings, batch_size, self.config.dimension,
                         self._pooling_inputs(prompt), show_progress)
        if self.config.normalize if normalize is None else normalize:
            out = _normalize(out)
        return out

    def _pooling_inputs(self, prompt: str) -> dict[str, np.ndarray]:
        """The `prompt_length` input of a model that pools without its prompt: the prompt's
        tokens less a trailing special one, as sentence-transformers counts them."""
        if self.config.include_prompt:
            return {}
        return {PROMPT_LENGTH_INPUT: np.array(self.tokenizer.prompt_length(prompt), np.int64)}

    def encode_queries(self, texts: Iterable[str], **kwargs: object) -> np.ndarray:
        """`encode(texts, kind="query", ...)`."""
        return self.encode(texts, "query", **kwargs)  # type: ignore[arg-type]

    def encode_documents(self, texts: Iterable[str], **kwargs: object) -> np.ndarray:
        """`encode(texts, kind="document", ...)`."""
        return self.encode(texts, "document", **kwargs)  # type: ignore[arg-type]
