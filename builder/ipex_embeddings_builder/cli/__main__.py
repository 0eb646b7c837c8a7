"""`python -m ipex_embeddings_builder.cli`: the same as `ipex-embed`."""

from __future__ import annotations

from . import main

main()
