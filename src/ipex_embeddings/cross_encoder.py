"""The reranking core: (query, text) pairs in, one float32 relevance score per pair out.

A cross-encoder reads the query and a text together (`[CLS] query [SEP] text [SEP]`) and its
classification head gives one or two logits; the folder says which activation the source model
applies to them. Pairs are tokenized by the model's own pair template with only the text side
truncated (tokenizers' "only_second"), sorted by length and padded per batch to the same fixed
width buckets as `Encoder` (`batching.bucket_widths`), so a pair's score never depends on the
other pairs of the call.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import openvino as ov
from tokenizers import Encoding

from .activation import SCORE_COLUMNS, add_scores, scores_array, scores_of
from .batching import check_text, check_texts, first_invalid_text
from .config import ACTIVATIONS, ModelConfig
from .core import InferenceModel, Truncation, check_options
from .errors import InvalidTextError
from .folder import check_model_folder, resolve_model_folder

__all__ = ["CrossEncoder", "RankResult", "folder_config"]

Activation = Literal["sigmoid", "softmax", "none"]


@dataclass(frozen=True)
class RankResult:
    """One text ranked by `CrossEncoder.rank` (sentence-transformers' `corpus_id` is `index`)."""

    index: int
    """Its position in the texts passed in."""
    score: float
    """Its relevance to the query, after the activation."""
    text: str
    """The text itself."""


def folder_config(
    path_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
) -> ModelConfig:
    """The `ModelConfig` of a model folder or Hub repo, of either kind (see `ModelConfig.kind`).

    For callers that pick `Encoder` or `CrossEncoder` by the folder's kind, as the adapters do.

    Raises:
        ModelFolderError: not a folder or repo id, or not a complete ipex-embeddings folder.
    """
    folder = resolve_model_folder(
        path_or_repo_id, revision=revision, cache_dir=cache_dir, token=token
    )
    return check_model_folder(folder)


def _check_activation(activation: str, num_labels: int) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} is not supported; use one of {ACTIVATIONS}.")
    if activation == "softmax" and num_labels != 2:
        raise ValueError(
            'activation="softmax" needs a model with two logits (negative, positive); this one '
            'has one: use "sigmoid" or "none".'
        )


class CrossEncoder(InferenceModel):
    """An int8 (or fp32) cross-encoder: scores how well each text answers a query.

    Build one with `CrossEncoder.load(path_or_repo_id)` on a folder whose `kind` is
    "cross-encoder". It is safe to share between threads: every call uses its own inference
    requests. Nothing is unpickled and no torch is needed; pickling or copying it loads the
    folder again.
    """

    kind = "cross-encoder"
    truncation_strategy = "only_second"  # a pair keeps its query whole; its text is cut
    inputs_name = "(query, text) pairs"
    truncated_what = "their texts were cut to fit and scored so"

    def _check_config(self) -> None:
        _check_activation(self.config.activation, self.config.dimension)

    def graph_head(self, model: ov.Model) -> ov.Model:
        """The activation inside the graph: the engine returns [rows, 2] (sigmoid, margin)."""
        return add_scores(model)

    def array_head(self, output: np.ndarray, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The same scores in numpy: [1, labels] logits to [1, 2] (sigmoid, margin)."""
        return scores_array(output)

    @classmethod
    def load(
        cls,
        path_or_repo_id: str | os.PathLike[str],
        *,
        threads: int | None = None,
        streams: int | None = None,
        compile_cache: str | os.PathLike[str] | bool = True,
        activation: Activation | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        token: str | bool | None = None,
        engine: str = "auto",
    ) -> CrossEncoder:
        """Load a cross-encoder model folder, or a Hub repo holding one.

        Args:
            path_or_repo_id: a local folder, or a Hugging Face repo id ("user/name").
            threads: CPU threads for inference (default: every core this process may use).
            streams: parallel inference streams for multi-batch calls (default: one per core).
            compile_cache: folder for OpenVINO's compiled-model cache (True: the default folder,
                see `default_compile_cache`; False: no cache).
            activation: replace the folder's activation: "sigmoid", "softmax" (two-logit
                models) or "none" (raw logits; the margin for two). None keeps the folder's.
            revision, cache_dir, token: passed to huggingface_hub for a repo id.
            engine: what runs the model (see `ipex_embeddings.engines.ENGINES`); "auto" picks
                the fastest measured for this CPU. `info()` says which ran.

        Raises:
            ModelFolderError: not a complete folder, or a bi-encoder folder (use `Encoder`).
            ValueError: an unknown activation, "softmax" for a one-logit model, an unknown
                `engine`, or `threads`/`streams` below 1.
        """
        folder, config = cls.open_folder(
            path_or_repo_id, revision=revision, cache_dir=cache_dir, token=token
        )
        if activation is not None:
            _check_activation(activation, config.dimension)
            config = dataclasses.replace(config, activation=activation)
        return cls(folder, config, threads=threads, streams=streams, compile_cache=compile_cache,
                   engine=engine)

    @property
    def activation(self) -> str:
        """What turns the logits into scores: "sigmoid", "softmax" or "none"."""
        return self.config.activation

    @property
    def num_labels(self) -> int:
        """Logits per pair: 1, or 2 (negative, positive)."""
        return self.config.dimension

    def predict(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        batch_size: int = 32,
        truncation: Truncation = "warn",
        activation: Activation | None = None,
    ) -> np.ndarray:
        """Score each (query, text) pair; a float32 array of shape (len(pairs),).

        Args:
            pairs: (query, text) tuples or 2-item lists of str; "" is valid.
            batch_size: pairs per inference call; pairs are sorted by length, padded per batch.
            truncation: a pair over max_seq_length keeps its query whole and loses the end of
                its text: "warn" scores it so and warns once with the count; "error" raises.
            activation: this call's activation; None: the model's (see `activation`).

        Raises:
            TypeError: `pairs[i]` is not a pair of str (the message names it).
            InvalidTextError: `pairs[i][j]` holds a lone surrogate.
            TruncationError: with truncation="error", listing the over-long pairs' indices.
            ValueError: a bad option, or `pairs[i]`'s query alone fills max_seq_length.
        """
        items = _check_pairs(pairs)
        return self._scores(items, batch_size, truncation, activation, "pairs[{i}][{j}]")

    def score(
        self,
        query: str,
        texts: Iterable[str],
        *,
        batch_size: int = 32,
        truncation: Truncation = "warn",
        activation: Activation | None = None,
    ) -> np.ndarray:
        """Score each text against `query`; a float32 array of shape (len(texts),).

        Args, Raises: as for `predict`; errors name a text as `texts[i]`, and `query` when the
            query is not a valid str or is too long to leave room for any text.
        """
        check_text(query, "score(query=...)")
        items = check_texts(texts, call="score")
        return self._scores(
            [(query, text) for text in items], batch_size, truncation, activation, "texts[{i}]"
        )

    def rank(
        self,
        query: str,
        texts: Iterable[str],
        *,
        top_n: int | None = None,
        batch_size: int = 32,
        truncation: Truncation = "warn",
        activation: Activation | None = None,
    ) -> list[RankResult]:
        """The texts best first (ties keep input order), at most `top_n` (None: all).

        Args, Raises: as for `score`; also ValueError for `top_n` < 1.
        """
        if top_n is not None and top_n < 1:
            raise ValueError(f"top_n must be at least 1 (or None for all), got {top_n}.")
        items = check_texts(texts, call="rank")
        scores = self.score(
            query, items, batch_size=batch_size, truncation=truncation, activation=activation
        )
        order = np.argsort(-scores, kind="stable")[:top_n]
        return [RankResult(int(i), float(scores[i]), items[i]) for i in order]

    def _scores(
        self,
        pairs: list[tuple[str, str]],
        batch_size: int,
        truncation: Truncation,
        activation: Activation | None,
        where: str,
    ) -> np.ndarray:
        check_options(batch_size, truncation)
        activation = activation or self.activation
        _check_activation(activation, self.num_labels)
        if not pairs:
            return np.empty(0, dtype=np.float32)
        encodings = self._tokenize(pairs, where, truncation)
        return scores_of(self.infer(encodings, batch_size, SCORE_COLUMNS), activation)

    def _tokenize(
        self, pairs: list[tuple[str, str]], where: str, truncation: Truncation
    ) -> list[Encoding]:
        try:
            return self.tokenize(pairs, truncation)
        except InvalidTextError:
            bad = first_invalid_text(pairs)
            assert bad is not None  # the tokenizer found one
            part = 0 if first_invalid_text([pairs[bad][0]]) is not None else 1
            if part == 0 and "{j}" not in where:
                raise InvalidTextError("the query", pairs[bad][0]) from None
            raise InvalidTextError(where.format(i=bad, j=part), pairs[bad][part]) from None
        except Exception as err:  # tokenizers: "Sequence to truncate too short ..."
            if "truncat" not in str(err).lower():
                raise
            self._raise_for_long_query(pairs, where, err)
            raise

    def _raise_for_long_query(
        self, pairs: list[tuple[str, str]], where: str, cause: Exception
    ) -> None:
        for i, pair in enumerate(pairs):
            try:
                self.tokenizer.tokenize([pair])
            except Exception:
                name = "the query" if "{j}" not in where else where.format(i=i, j=0)
                raise ValueError(
                    f"{name} alone fills max_seq_length={self.max_seq_length} tokens, leaving "
                    "no room for the text (only the text side of a pair is truncated). "
                    "Shorten the query."
                ) from cause


def _check_pairs(pairs: object) -> list[tuple[str, str]]:
    """`pairs` as a list of (str, str), or a TypeError naming the first bad item."""
    if isinstance(pairs, str):
        raise TypeError("pairs must be a list of (query, text) pairs, not a string.")
    if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
        raise TypeError(
            "pairs must be a list of (query, text) pairs, not a single pair; wrap it: "
            "predict([(query, text)])."
        )
    try:
        items = list(pairs)  # type: ignore[call-overload]
    except TypeError:
        kind = type(pairs).__name__
        raise TypeError(f"pairs must be a list of (query, text), got {kind}.") from None
    checked = []
    for i, pair in enumerate(items):
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(
                f"pairs[{i}] is {type(pair).__name__}, not a (query, text) pair; give each "
                "pair as a 2-tuple of strings."
            )
        for j, part in enumerate(pair):
            if not isinstance(part, str):
                raise TypeError(
                    f"pairs[{i}][{j}] is {type(part).__name__}, not str; every query and text "
                    'must be a string (use "" for an empty one).'
                )
        checked.append((pair[0], pair[1]))
    return checked
