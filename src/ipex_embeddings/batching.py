"""Tokenize texts and group them into length-sorted, tightly padded batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from .errors import InvalidTextError

__all__ = ["Batch", "TextTokenizer", "check_text", "check_texts", "first_invalid_text"]


def check_text(text: object, where: str, hint: str = "") -> None:
    """Check one text given to `where` (`hint`: how to embed many instead).

    Raises:
        TypeError: `text` is not a str.
        InvalidTextError: `text` holds a lone surrogate, so it is not valid UTF-8.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"{where} takes one string, got {type(text).__name__}; pass the text as a str{hint}."
        )
    if first_invalid_text([text]) is not None:
        raise InvalidTextError(f"the text given to {where}", text)


def first_invalid_text(texts: Sequence[str]) -> int | None:
    """Index of the first text that cannot be encoded as UTF-8 (a lone surrogate), else None.

    Only called once something failed, or for one text: the batch path pays nothing for it.
    """
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return i
    return None


def check_texts(texts: object) -> list[str]:
    """Return `texts` as a list of str, or raise a TypeError naming the first bad item."""
    if isinstance(texts, str):
        raise TypeError(
            "texts must be a list of strings, not a single string; wrap it: encode([text])."
        )
    try:
        items = list(texts)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}.") from None
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(
                f"texts[{i}] is {type(text).__name__}, not str; every text must be a string "
                '(use "" for an empty one).'
            )
    return items


@dataclass
class Batch:
    """One padded batch: the model inputs and where its rows go in the output."""

    positions: np.ndarray
    inputs: dict[str, np.ndarray]


class TextTokenizer:
    """A `tokenizers` tokenizer set to truncate at the model's limit and to report who was cut."""

    def __init__(self, path: Path, max_seq_length: int, input_names: Sequence[str]) -> None:
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_seq_length)
        self.max_seq_length = max_seq_length
        self.input_names = tuple(input_names)
        padding = self._tokenizer.padding
        self.pad_id = padding["pad_id"] if padding else (self._tokenizer.token_to_id("[PAD]") or 0)

    def tokenize(self, texts: list[str]) -> tuple[list[Encoding], list[int]]:
        """Encodings of `texts` and the indices of those that had to be truncated.

        Raises:
            InvalidTextError: naming `texts[i]`, the first text holding a lone surrogate, which
                the tokenizer cannot read (it would raise a TypeError naming no text).
        """
        try:
            encodings = self._tokenizer.encode_batch(texts) if texts else []
        except TypeError:
            # Found only after the tokenizer fails, so valid batches pay nothing for the check.
            bad = first_invalid_text(texts)
            if bad is None:
                raise
            raise InvalidTextError(f"texts[{bad}]", texts[bad]) from None
        truncated = [i for i, e in enumerate(encodings) if e.overflowing]
        return encodings, truncated

    def batches(self, encodings: list[Encoding], batch_size: int) -> Iterator[Batch]:
        """Yield batches of similar length (longest first), each padded to its own longest text."""
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            positions = order[start : start + batch_size]
            width = int(lengths[positions[0]])
            ids = np.full((len(positions), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(positions), width), dtype=np.int64)
            types = np.zeros((len(positions), width), dtype=np.int64)
            for row, index in enumerate(positions):
                encoding = encodings[index]
                n = len(encoding.ids)
                ids[row, :n] = encoding.ids
                mask[row, :n] = 1
                types[row, :n] = encoding.type_ids
            named = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            yield Batch(positions, {name: named[name] for name in self.input_names})
