"""Fidelity to fp32 on a fixed set of texts: part of the `ipex-embed validate` gate.

mteb's SciFact scores say nothing about the texts SciFact does not have: empty and one-word
input, chat-length questions, over-long and non-English text. The model and its fp32 reference
each embed every text of `FIDELITY_TEXTS` as a query and as a document; the gate is the smallest
cosine between the two vectors. The set is versioned: change it only with a new
`FIDELITY_VERSION`, since reports of different versions do not compare.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MIN_COSINE",
    "FIDELITY_TEXTS",
    "FIDELITY_VERSION",
    "FidelityResult",
    "measure_fidelity",
]

FIDELITY_VERSION = 1
DEFAULT_MIN_COSINE = 0.90
"""Smallest cosine to fp32, over every text and kind, that passes. Measured on the demo model
(all-MiniLM-L6-v2, v1 texts, AVX2): min 0.938 ("🙂 thanks!"), mean 0.988 with the default
calibration, which covers short text and queries; min 0.880 ("?"), mean 0.968 with its 300
documents alone. 0.90 passes the first and fails the second."""

_PARAGRAPH = (
    "Cyclin D1 binds CDK4 and CDK6 and drives cells through the G1 phase of the cell cycle. "
    "Its overexpression is common in breast cancer, mantle cell lymphoma and squamous cell "
    "carcinoma, where it correlates with poor prognosis. Inhibitors of CDK4/6 such as "
    "palbociclib arrest tumour cells in G1, and in hormone-receptor-positive breast cancer they "
    "prolong progression-free survival when combined with endocrine therapy. Resistance arises "
    "through loss of RB1, amplification of CDK6 or activation of the PI3K pathway."
)
_PARAGRAPH_2 = (
    "We retrospectively reviewed 1,284 adults admitted with community-acquired pneumonia "
    "between 2015 and 2019. Patients given corticosteroids within 24 hours had a shorter time "
    "to clinical stability (median 3.1 vs 4.0 days, p < 0.01) but no difference in 30-day "
    "mortality. Hyperglycaemia was more frequent in the steroid group. These findings support "
    "short courses in severe disease only, pending randomised evidence."
)

FIDELITY_TEXTS: dict[str, tuple[str, ...]] = {
    "short": (
        "", " ", "\n\t ", "a", "ok?", "Hi", "?", "DNA", "p53 mutation", "COVID-19 vaccine",
        "Does aspirin work?", "naïve café", "東京", "🙂 thanks!",
    ),
    "medium": (
        "Aspirin lowers the risk of colorectal cancer in adults over 50.",
        "Which proteins regulate the G1/S transition of the cell cycle?",
        "How do I reset my password if I no longer have access to my email account?",
        "La vitamine D réduit-elle le risque de fractures chez les personnes âgées ?",
        "Der Patient erhielt 5 mg/kg Körpergewicht über drei Tage.",
        "β-amyloid plaques and τ tangles are hallmarks of Alzheimer’s disease — or are they?",
    ),
    "long": (
        _PARAGRAPH,
        _PARAGRAPH_2,
        # Over-long: far past 512 tokens, so every model embeds its first max_seq_length tokens.
        " ".join([_PARAGRAPH, _PARAGRAPH_2] * 4),
    ),
}
KINDS = ("query", "document")


@dataclass
class FidelityResult:
    """Cosine of the model's vectors to fp32's on the fixed texts, per length group and overall."""

    version: int
    min_cosine: float
    """The gate: the smallest cosine allowed."""
    mean: float
    min: float
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    """{"short"|"medium"|"long": {"mean", "min", "texts"}}."""
    worst: dict[str, Any] = field(default_factory=dict)
    """The text and kind with the smallest cosine."""

    @property
    def passed(self) -> bool:
        """True when every text, as query and as document, is at least `min_cosine` to fp32."""
        return self.min >= self.min_cosine

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with the verdict."""
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FidelityResult:
        """The result `to_dict` gave (its verdict is recomputed, not read)."""
        return cls(**{k: v for k, v in data.items() if k != "passed"})

    def describe(self) -> str:
        """One markdown paragraph: the numbers, the gate and its verdict."""
        groups = ", ".join(
            f"{name} {g['mean']:.4f} (min {g['min']:.4f})" for name, g in self.groups.items()
        )
        verdict = "PASSED" if self.passed else "FAILED"
        count = sum(len(texts) for texts in FIDELITY_TEXTS.values())
        return (
            f"Fidelity to fp32 (fixed set v{self.version}: {count} short, medium, long and "
            f"over-long texts, each as query and as document): mean cosine {self.mean:.4f}, min "
            f"{self.min:.4f} ({self.worst.get('kind')} {self.worst.get('text')!r}); by length: "
            f"{groups}.\nGate: min cosine at least {self.min_cosine:g}: **{verdict}**."
        )


def measure_fidelity(model: Any, reference: Any, min_cosine: float = DEFAULT_MIN_COSINE
                     ) -> FidelityResult:
    """Embed `FIDELITY_TEXTS` with `model` and `reference` (objects with the mteb wrappers'
    `embed(texts, kind, batch_size)`, see `mteb_model`) and compare them by cosine."""
    groups: dict[str, dict[str, float]] = {}
    every: list[float] = []
    worst: dict[str, Any] = {"cosine": 2.0}
    for name, texts in FIDELITY_TEXTS.items():
        values = []
        for kind in KINDS:
            ours = _unit(model.embed(list(texts), kind, 32))
            theirs = _unit(reference.embed(list(texts), kind, 32))
            cosines = np.sum(ours * theirs, axis=1)
            values += cosines.tolist()
            lowest = int(np.argmin(cosines))
            if cosines[lowest] < worst["cosine"]:
                worst = {"cosine": round(float(cosines[lowest]), 6), "kind": kind,
                         "text": texts[lowest][:60]}
        groups[name] = {"mean": round(float(np.mean(values)), 6),
                        "min": round(float(np.min(values)), 6), "texts": len(texts)}
        every += values
    return FidelityResult(
        version=FIDELITY_VERSION,
        min_cosine=min_cosine,
        mean=round(float(np.mean(every)), 6),
        min=round(float(np.min(every)), 6),
        groups=groups,
        worst=worst,
    )


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
