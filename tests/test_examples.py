"""The examples run, offline, and show what they claim (so they cannot rot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_langchain_rag(demo_int8_dir: Path) -> None:
    out = run_example("langchain_rag.py", str(demo_int8_dir))
    assert out.count("--- RAG prompt for query") == 2
    assert "human: Is this claim supported?" in out
    found, total = map(int, re.search(r"top 3 for (\d+) of (\d+) test queries", out).groups())
    assert total == 300
    # Dense retrieval among the 283 judged abstracts: a broken model or store finds few.
    assert found >= 0.8 * total


def test_llama_index_rerank(demo_int8_dir: Path) -> None:
    out = run_example("llama_index_rerank.py", str(demo_int8_dir), "--queries", "4")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "BM25 rank" not in line]
    assert len(rows) == 4
    assert "(RRF " in rows[0] and ", cos " in rows[0] and ", BM25 " in rows[0]
    assert "Indexed 5183 abstracts" in out
