"""Tokenize texts and group them into length-sorted batches padded to fixed width buckets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from .errors import FOLDER_FIX, InvalidTextError, ModelFolderError

__all__ = [
    "Batch", "TextTokenizer", "bucket_widths", "check_text", "check_texts",
    "first_invalid_text",
]


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


def first_invalid_text(texts: Sequence[str | tuple[str, str]]) -> int | None:
    """Index of the first text (or (query, text) pair) that cannot be encoded as UTF-8 (a lone
    surrogate), else None.

    Only called once something failed, or for one text: the batch path pays nothing for it.
    """
    for i, text in enumerate(texts):
        try:
            # A pair's parts never join into a valid surrogate pair: str keeps code points apart.
            (text if isinstance(text, str) else "".join(text)).encode("utf-8")
        except UnicodeEncodeError:
            return i
    return None


def check_texts(texts: object, offset: int = 0, call: str = "encode") -> list[str]:
    """Return `texts` as a list of str, or raise a TypeError naming the first bad item
    (`texts[offset + i]`: `offset` is where this chunk starts in a stream; `call`: the method the
    user called, e.g. an adapter's "embed_documents", for the fix the error gives)."""
    if isinstance(texts, str):
        raise TypeError(
            f"{call} takes a list of strings, not a single string; wrap it: {call}([text])."
        )
    try:
        items = list(texts)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"{call} takes a list of strings, got {type(texts).__name__}; pass a list: "
            f"{call}([text, ...])."
        ) from None
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(
                f"texts[{offset + i}] is {type(text).__name__}, not str; every text must be a "
                'string (use "" for an empty one).'
            )
    return items


MIN_WIDTH = 16
"""The narrowest padded width, in tokens."""
TOKENS_PER_BATCH = 2048
"""The most padded tokens one inference takes: a batch of long texts holds fewer than
`batch_size` rows, so its activations stay in the CPU's caches. all-MiniLM-L6-v2 int8 on 1,000
SciFact documents (AMX Xeon, 2 cores): 144 docs/s at 32 rows of 256 tokens a batch, 154 at 16,
160 at 8 (2,048 tokens), 156 at 4; 1,000 queries (about 32 tokens) ran at 1,553 texts/s at 32
rows, 1,581 at 64 (2,048 tokens), 1,340 at 128."""


def bucket_widths(max_seq_length: int) -> tuple[int, ...]:
    """The fixed padded widths (tokens) every batch of a model is run at, narrowest first.

    Steps of a quarter of the power of two below (at least 16 tokens): 16, 32, 48, ..., 128,
    160, ..., 256, 320, ..., 512, 640, ..., and `max_seq_length` itself as the widest. Padding a
    text to the next width wastes under a quarter of its length; the few fixed widths give the
    CPU plugin few shapes to build kernels for (a new input length cost a kernel build, the
    tail of the query latency), and each text is always computed at the same width whatever its
    batch-mates, so its vector never depends on them (int8 kernels accumulate differently by
    width on some CPUs).
    """
    widths = []
    width = MIN_WIDTH
    while width < max_seq_length:
        widths.append(width)
        width += max(MIN_WIDTH, (1 << (width.bit_length() - 1)) // 4)
    widths.append(max_seq_length)
    return tuple(widths)


@dataclass
class Batch:
    """One padded batch: the model inputs and where its rows go in the output."""

    positions: np.ndarray
    inputs: dict[str, np.ndarray]

    @property
    def width(self) -> int:
        """The padded width of this batch, in tokens."""
        return int(self.inputs["attention_mask"].shape[1])


class TextTokenizer:
    """A `tokenizers` tokenizer set to truncate at the model's limit and to report who was cut.

    It takes texts, or (query, text) pairs for a cross-encoder, which it tokenizes as the model's
    pair template says (e.g. `[CLS] query [SEP] text [SEP]`); `truncation_strategy` is tokenizers'
    ("longest_first"; "only_second" cuts only the text of a pair).
    """

    def __init__(
        self,
        path: Path,
        max_seq_length: int,
        input_names: Sequence[str],
        truncation_strategy: str = "longest_first",
    ) -> None:
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception naming no file
            raise ModelFolderError(
                f"{path} cannot be read by `tokenizers` ({err}): it is damaged or not a "
                f"tokenizer.json; {FOLDER_FIX}."
            ) from err
        padding = self._tokenizer.padding  # read before no_padding() clears it
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_seq_length, strategy=truncation_strategy)
        self.max_seq_length = max_seq_length
        self.input_names = tuple(input_names)
        self.widths = bucket_widths(max_seq_length)
        self.pad_id = padding["pad_id"] if padding else (self._tokenizer.token_to_id("[PAD]") or 0)

    def prompt_length(self, prompt: str) -> int:
        """Tokens of `prompt` alone, less a trailing special token (0 for no prompt)."""
        if not prompt:
            return 0
        encoding = self._tokenizer.encode(prompt)
        return len(encoding.ids) - (1 if encoding.special_tokens_mask[-1:] == [1] else 0)

    def tokenize(
        self, texts: Sequence[str | tuple[str, str]], offset: int = 0
    ) -> tuple[list[Encoding], list[int]]:
        """Encodings of `texts` and the indices of those that had to be truncated.

        `offset` is where `texts` starts in a longer stream, for the index an error names.

        Raises:
            InvalidTextError: naming `texts[i]` (or `texts[i][j]` in a pair), the first text
                holding a lone surrogate, which the tokenizer cannot read (it would raise a
                TypeError naming no text).
        """
        try:
            encodings = self._tokenizer.encode_batch(list(texts)) if texts else []
        except TypeError:
            # Found only after the tokenizer fails, so valid batches pay nothing for the check.
            bad = first_invalid_text(texts)
            if bad is None:
                raise
            item = texts[bad]
            if isinstance(item, str):
                raise InvalidTextError(f"texts[{offset + bad}]", item) from None
            part = 0 if first_invalid_text([item[0]]) is not None else 1
            raise InvalidTextError(f"texts[{offset + bad}][{part}]", item[part]) from None
        truncated = [i for i, e in enumerate(encodings) if e.overflowing]
        return encodings, truncated

    def plan(self, encodings: list[Encoding], batch_size: int) -> list[tuple[np.ndarray, int]]:
        """(positions, width) of each batch: texts of one width bucket each, widest first.

        A text's padded width depends only on its own length (`bucket_widths`), never on the
        other texts of the call, so the same text always gets the same vector. Within a bucket
        texts are sorted by length, longest first; a batch holds at most `batch_size` texts and
        at most `TOKENS_PER_BATCH` padded tokens (at least one text).
        """
        if len(encodings) == 1:  # a query: the same answer, without the sorting
            width = self.widths[int(np.searchsorted(self.widths, len(encodings[0].ids)))]
            return [(np.zeros(1, dtype=np.int64), width)]
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        buckets = np.searchsorted(self.widths, lengths)
        order = np.argsort(-lengths, kind="stable")
        plan = []
        for bucket in np.unique(buckets)[::-1]:
            members = order[buckets[order] == bucket]
            width = self.widths[bucket]
            rows = max(1, min(batch_size, TOKENS_PER_BATCH // width))
            for start in range(0, len(members), rows):
                plan.append((members[start : start + rows], width))
        return plan

    def pad(self, encodings: list[Encoding], positions: np.ndarray, width: int) -> Batch:
        """The batch of `encodings[positions]`, padded to `width` tokens."""
        texts = [encodings[i] for i in positions]
        ids = np.full((len(texts), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        types = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(texts):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
            types[row, :n] = encoding.type_ids
        named = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return Batch(positions, {name: named[name] for name in self.input_names})
