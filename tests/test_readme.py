"""Every Python snippet in the README runs as printed, on the demo int8 folder (and a tiny
random cross-encoder for the reranker snippet): a README a newcomer copies from cannot rot."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
DEMO = "models/all-MiniLM-L6-v2-int8"
RERANKER = "./reranker-int8"


def test_the_readme_has_python_snippets() -> None:
    assert len(BLOCKS) >= 4


@pytest.fixture(scope="module")
def reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_cross_encoder import make_cross_encoder

    from ipex_embeddings_builder.cross_encoder import quantize_cross_encoder

    base = tmp_path_factory.mktemp("readme")
    source = make_cross_encoder(base / "source", "bert")
    quantize_cross_encoder(source, base / "reranker", "fp32")
    return base / "reranker"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_readme_snippet_runs(index: int, demo_int8_dir: Path, reranker_dir: Path) -> None:
    code = BLOCKS[index].replace(DEMO, str(demo_int8_dir)).replace(RERANKER, str(reranker_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, f"README.md python block {index + 1}", "exec"), {})  # noqa: S102
