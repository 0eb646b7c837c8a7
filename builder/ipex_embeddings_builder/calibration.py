"""Calibration texts for static int8 quantization: read or compose, sample reproducibly, digest.

The default set covers what the runtime accepts, not only long documents: SciFact corpus
documents (embedded with the document prompt), SciFact TRAIN queries (query prompt) and short
texts (the first words or sentence of other documents, and a few edge strings) with either
prompt. Test queries are never used. A user's own file is calibrated as documents.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .data import SCIFACT_DIR, load_beir
from .digest import sha256
from .errors import CalibrationError

__all__ = [
    "CALIBRATION_EDGE_TEXTS",
    "DEFAULT_CALIBRATION",
    "DEFAULT_CALIBRATION_NAME",
    "DEFAULT_MIX",
    "DEFAULT_SAMPLES",
    "MIN_SAMPLES",
    "CalibrationSet",
    "default_calibration",
    "load_calibration",
]

DEFAULT_CALIBRATION = SCIFACT_DIR / "corpus.jsonl"
DEFAULT_CALIBRATION_NAME = "SciFact corpus + train queries + short texts (vendored)"
MIN_SAMPLES = 32  # below this, activation ranges are estimated from too few tokens to trust
DEFAULT_SAMPLES = 360
"""Calibration texts by default (`--samples`)."""
DEFAULT_MIX = {"documents": 5 / 6, "queries": 1 / 12, "short": 1 / 12}
"""Shares of the default set: whole documents, train queries, short texts. Measured on the demo
model (`ipex-embed build --dry-run --bench skip`, full SciFact, an AVX2 machine): this default
gives test NDCG@10 0.6420 (fp32 0.6451) and a fidelity min of 0.938; the same 300 documents
alone gave 0.6442 and a fidelity min of 0.880 (short texts drift); another draw of 30 queries
and 30 short texts with them gave 0.6461 and 0.930, so draws differ by 0.6 % of NDCG@10 while
their train-split scores agree to 0.0004 (0.6624 to 0.6633). Retrieval is unchanged within the
draw-to-draw spread; short texts are not."""
CALIBRATION_EDGE_TEXTS = ("", "-", "yes", "No.", "why")
"""Edge strings in every default set. "" stands for all whitespace-only input (the tokenizer
gives the same [CLS] [SEP] for "", " " and "\\n\\t "); the words differ from the fidelity set's."""
SHORT_WORDS = (1, 2, 3, 5, 8, 13)
"""Word counts of the document fragments in the short share; every sixth one is a sentence."""


@dataclass
class CalibrationSet:
    """The texts used to calibrate, in order, the kind (prompt) of each, and their digest."""

    texts: list[str]
    source: str
    """A name, never a local path: "SciFact ... (vendored)" or the file's name."""
    digest: str
    kinds: list[str] = field(default_factory=list)
    """ "query" or "document" per text; empty means all documents."""
    mix: dict[str, int] = field(default_factory=dict)
    """How many texts of each part: documents, queries, short (or file)."""
    file_sha256: str = ""
    """sha256 of the user's calibration file ("" for the vendored default)."""

    def kind_of(self, index: int) -> str:
        """The prompt kind of text `index`."""
        return self.kinds[index] if self.kinds else "document"

    def part(self, start: int, stop: int) -> CalibrationSet:
        """Texts `start:stop` with their kinds (tuning quantizes on one part, measures on
        another)."""
        kinds = self.kinds[start:stop] if self.kinds else []
        return CalibrationSet(
            self.texts[start:stop], self.source, _digest(self.texts[start:stop], kinds), kinds,
            self.mix, self.file_sha256,
        )

    def record(self) -> dict[str, object]:
        """What the model JSON's quantization record says about the set (names and digests)."""
        return {
            "calibration_source": self.source,
            "calibration_mix": dict(self.mix),
            **({"calibration_file_sha256": self.file_sha256} if self.file_sha256 else {}),
        }


def _digest(texts: list[str], kinds: list[str]) -> str:
    # Plain document sets keep the digest they always had, so existing folders stay current.
    joined = "\0".join(texts) if not kinds else "\0".join(f"{k}:{t}" for k, t in zip(kinds, texts))
    return sha256(joined)


def _read_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise CalibrationError(f"Calibration file {path} does not exist.")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CalibrationError(f"{path}:{number} is not JSON ({err}).") from err
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise CalibrationError(
                f'{path}:{number} has no string "text" field; each JSONL line must look like '
                '{"text": "..."} (a "title" field is joined in front when present).'
            )
        texts.append(f"{row.get('title', '')} {row['text']}".strip())
    return texts


def _fragment(text: str, number: int) -> str:
    """The first sentence of `text` (every sixth number) or its first few words."""
    if number % len(SHORT_WORDS) == len(SHORT_WORDS) - 1:
        return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return " ".join(text.split()[: SHORT_WORDS[number % len(SHORT_WORDS)]])


def default_calibration(samples: int = DEFAULT_SAMPLES, seed: int = 0) -> CalibrationSet:
    """The default mix: documents, train queries and short texts, shuffled with `seed`.

    The documents are the ones a `--calibration` of the vendored corpus.jsonl samples with the
    same seed, so the default set extends the document-only set rather than replacing it.
    """
    n_queries = round(samples * DEFAULT_MIX["queries"])
    n_short = round(samples * DEFAULT_MIX["short"])
    n_docs = samples - n_queries - n_short
    corpus = _read_texts(DEFAULT_CALIBRATION)
    documents = random.Random(seed).sample(corpus, n_docs)
    rng = random.Random(seed + 1)
    queries = rng.sample(sorted(load_beir(SCIFACT_DIR, split="train").queries.values()), n_queries)
    taken = set(documents)
    others = rng.sample([t for t in corpus if t not in taken], n_short)
    edges = list(CALIBRATION_EDGE_TEXTS)[:n_short]
    short = edges + [_fragment(text, i) for i, text in enumerate(others[len(edges):])]
    items = [(t, "document") for t in documents] + [(q, "query") for q in queries]
    # Short texts alternate prompts: both reach the runtime.
    items += [(t, "query" if i % 2 else "document") for i, t in enumerate(short)]
    rng.shuffle(items)
    texts, kinds = [t for t, _ in items], [k for _, k in items]
    return CalibrationSet(
        texts=texts,
        source=DEFAULT_CALIBRATION_NAME,
        digest=_digest(texts, kinds),
        kinds=kinds,
        mix={"documents": n_docs, "queries": n_queries, "short": n_short},
    )


def load_calibration(
    path: str | Path | None = None, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> CalibrationSet:
    """The default mix (`path=None`), or `samples` texts of JSONL ("text" per line) or plain text
    (a text per line), all calibrated as documents.

    Raises:
        CalibrationError: too few samples or texts, a missing file, or a line that is not a
            JSON object with a string "text".
    """
    if samples < MIN_SAMPLES:
        raise CalibrationError(
            f"--samples {samples} is below the minimum of {MIN_SAMPLES} calibration texts; "
            "static int8 needs enough text to estimate activation ranges. "
            f"Use {DEFAULT_SAMPLES} (the default)."
        )
    if path is None:
        return default_calibration(samples, seed)
    source = Path(path)
    texts = _read_texts(source)
    if len(texts) < MIN_SAMPLES:
        raise CalibrationError(
            f"{source} has {len(texts)} non-empty texts, fewer than the minimum of {MIN_SAMPLES}. "
            "Add representative texts (ideally several hundred documents like the ones you will "
            "embed)."
        )
    if len(texts) > samples:
        texts = random.Random(seed).sample(texts, samples)
    return CalibrationSet(
        texts=texts,
        source=source.name,
        digest=_digest(texts, []),
        mix={"file": len(texts)},
        file_sha256=sha256(files=[source]),
    )
