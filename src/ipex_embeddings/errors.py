"""Errors raised by the runtime; each message names the problem and the fix."""

from __future__ import annotations

__all__ = ["ModelFolderError", "TruncationError", "UnsafeModelError"]


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
