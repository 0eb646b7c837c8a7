"""Calibration texts for static int8 quantization: read, sample reproducibly, digest."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import click

from .data import SCIFACT_DIR

__all__ = ["DEFAULT_CALIBRATION", "MIN_SAMPLES", "CalibrationSet", "load_calibration"]

DEFAULT_CALIBRATION = SCIFACT_DIR / "corpus.jsonl"
MIN_SAMPLES = 32  # below this, activation ranges are estimated from too few tokens to trust


@dataclass
class CalibrationSet:
    """The texts used to calibrate, in order, and their sha256 digest."""

    texts: list[str]
    source: str
    digest: str


def _read_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise click.ClickException(f"Calibration file {path} does not exist.")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise click.ClickException(f"{path}:{number} is not JSON ({err}).") from err
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise click.ClickException(
                f'{path}:{number} has no string "text" field; each JSONL line must look like '
                '{"text": "..."} (a "title" field is joined in front when present).'
            )
        texts.append(f"{row.get('title', '')} {row['text']}".strip())
    return texts


def load_calibration(
    path: str | Path | None = None, samples: int = 300, seed: int = 0
) -> CalibrationSet:
    """Read JSONL ("text" per line) or plain text (a text per line) and sample `samples` texts."""
    if samples < MIN_SAMPLES:
        raise click.ClickException(
            f"--samples {samples} is below the minimum of {MIN_SAMPLES} calibration texts; "
            "static int8 needs enough text to estimate activation ranges. Use 300 (the default)."
        )
    source = Path(path) if path else DEFAULT_CALIBRATION
    texts = _read_texts(source)
    if len(texts) < MIN_SAMPLES:
        raise click.ClickException(
            f"{source} has {len(texts)} non-empty texts, fewer than the minimum of {MIN_SAMPLES}. "
            "Add representative texts (ideally several hundred documents like the ones you will "
            "embed)."
        )
    if len(texts) > samples:
        texts = random.Random(seed).sample(texts, samples)
    digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
    return CalibrationSet(texts=texts, source=str(source), digest=digest)
