"""The options of `Encoder.load`, defined once for every adapter.

Each adapter (LangChain `IPEXEmbeddings`, LlamaIndex `IPEXEmbedding` and `IPEXRerank`) takes
every option here as a field and passes it on with `load_kwargs`, so none drifts behind the
core; a test compares `LOAD_OPTIONS` with `Encoder.load`'s signature and with each adapter.
This module is plain Python: the pydantic fields are made from it in `adapter_fields`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LOAD_OPTIONS", "LoadOption", "load_kwargs"]


@dataclass(frozen=True)
class LoadOption:
    """One keyword argument of `Encoder.load`."""

    name: str
    """Its name in `Encoder.load`."""
    annotation: Any
    """The type an adapter field validates against."""
    default: Any
    """Its default in `Encoder.load`."""
    doc: str
    """One line for the adapter field's description."""
    positive: bool = False
    """When given, it must be greater than 0."""
    secret: bool = False
    """Kept out of the adapter's repr and serialisation (a token)."""
    text: bool = False
    """Text put before inputs (a prompt): must be valid UTF-8, like every text."""


LOAD_OPTIONS: tuple[LoadOption, ...] = (
    LoadOption(
        "threads", int | None, None,
        "CPU threads for inference; None uses every core this process may use.", positive=True,
    ),
    LoadOption(
        "streams", int | None, None,
        "Parallel inference streams for multi-batch calls; None means one per core.",
        positive=True,
    ),
    LoadOption(
        "compile_cache", bool | str | Path, True,
        "Folder for OpenVINO's compiled-model cache; True: the default folder, False: no cache.",
    ),
    LoadOption(
        "query_prompt", str | None, None,
        "Text put before every query; None keeps the model's own query prompt.", text=True,
    ),
    LoadOption(
        "document_prompt", str | None, None,
        "Text put before every document; None keeps the model's own document prompt.",
        text=True,
    ),
    LoadOption(
        "revision", str | None, None,
        "Hub repo only: the branch, tag or commit to load (pin a commit for reproducible "
        "results); None: the default branch.",
    ),
    LoadOption(
        "cache_dir", str | Path | None, None,
        "Hub repo only: the Hugging Face cache folder to download into; None: the HF default.",
    ),
    LoadOption(
        "token", str | bool | None, None,
        "Hub repo only: the Hugging Face token for a private or gated repo; None: HF_TOKEN or "
        "the stored login. Never shown in repr or serialised.",
        secret=True,
    ),
    LoadOption(
        "truncate_dim", int | None, None,
        "Keep the first truncate_dim dimensions (Matryoshka), re-normalised when the model "
        "normalises; None: the folder's (full size unless its source set one).",
        positive=True,
    ),
    LoadOption(
        "output_precision", str | None, None,
        'Output precision: "float32", "binary" or "ubinary" (packed bits; the LangChain and '
        'LlamaIndex adapters take "float32" only); None: the folder\'s. Not the weights\'.',
    ),
    LoadOption(
        "engine", str, "auto",
        'What runs the model (ipex_embeddings.engines.ENGINES); "auto": the fastest measured '
        "for this CPU.",
    ),
)


def load_kwargs(
    value_of: Callable[[str], Any], rename: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The keyword arguments for `Encoder.load`, one per option in `LOAD_OPTIONS`.

    Args:
        value_of: gives a field's value by name, e.g. `lambda name: getattr(adapter, name)`.
        rename: option name -> the adapter's field name, where they differ (LlamaIndex calls
            the prompts `query_instruction` and `text_instruction`).
    """
    rename = rename or {}
    return {option.name: value_of(rename.get(option.name, option.name)) for option in LOAD_OPTIONS}
