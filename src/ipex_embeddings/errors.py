"""Errors raised by the runtime; each message names the problem and the fix."""

from __future__ import annotations

__all__ = [
    "FOLDER_FIX", "InvalidTextError", "ModelFolderError", "TruncationError", "UnsafeModelError",
]

FOLDER_FIX = "copy the folder again, or rebuild it with `ipex-embed quantize`"
"""The fix for a damaged model folder, in every error that finds one (see
docs/troubleshooting.md)."""


class ModelFolderError(ValueError):
    """A model folder (or Hub repo) is missing, incomplete or not one of ours."""


class UnsafeModelError(ModelFolderError):
    """A model only offers weights that would have to be unpickled to load."""


class TruncationError(ValueError):
    """Texts are longer than the model's max_seq_length and truncation="error" was asked."""

    def __init__(self, indices: list[int], max_seq_length: int) -> None:
        self.indices = indices
        self.max_seq_length = max_seq_length
        shown = ", ".join(str(i) for i in indices[:20]) + (" ..." if len(indices) > 20 else "")
        super().__init__(
            f"{len(indices)} text(s) exceed max_seq_length={max_seq_length} tokens "
            f"(indices: {shown}). Split them into shorter chunks, or pass "
            'truncation="warn" to embed only their first tokens.'
        )


class InvalidTextError(ValueError):
    """A text is a str but not valid Unicode: it holds a lone surrogate (as PDF extraction leaves).

    Such a string cannot be encoded as UTF-8, so no tokenizer can read it. `where` names the text
    (e.g. "texts[3]"); the message quotes the surrogate with the characters around it.
    """

    def __init__(self, where: str, text: str) -> None:
        self.where = where
        try:
            text.encode("utf-8")
            position = 0
        except UnicodeEncodeError as err:
            position = err.start
        context = text[max(0, position - 20) : position + 20]
        super().__init__(
            f"{where} is not valid text: it holds a lone surrogate {text[position:position + 1]!r} "
            f"(in {context!r}), which cannot be encoded as UTF-8; nothing was embedded. Clean "
            'the text first, e.g. text.encode("utf-16", "surrogatepass").decode("utf-16", '
            '"replace"), which rejoins split surrogate pairs and replaces lone ones with "\\ufffd".'
        )
