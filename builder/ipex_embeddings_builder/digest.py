"""The builder's digests: of text, of files, of JSON-able values, all sha256 in hex.

Their bytes are what caches and `build_state.json` are keyed on: changing how one is computed
invalidates every existing cache entry and folder state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["file_digest", "sha256", "value_digest"]

_BLOCK = 1 << 20


def _update_with_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)


def sha256(data: str | bytes = b"", files: Iterable[Path] = ()) -> str:
    """sha256 of `data` (text as UTF-8) followed by the contents of `files` in the order given;
    files that do not exist are skipped."""
    digest = hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data)
    for path in files:
        if path.is_file():
            _update_with_file(digest, path)
    return digest.hexdigest()


def file_digest(paths: Iterable[Path], root: Path) -> str:
    """sha256 over the relative names and contents of `paths` (missing files count as absent)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        if path.is_file():
            _update_with_file(digest, path)
        digest.update(b"\0")
    return digest.hexdigest()


def value_digest(value: Any) -> str:
    """sha256 of a JSON-able value, keys sorted."""
    return sha256(json.dumps(value, sort_keys=True, default=str))
