"""The validation report: per-task rows of fp32 and model scores, the gate, and its files.

Shared by the bi-encoder's mteb validation (`validate`) and the cross-encoder's rerank validation
(`rerank_validation`), so that build's gate, the card and publish read both alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .fidelity import FidelityResult

__all__ = [
    "DEFAULT_MAX_LOSS",
    "ENGINE_LABELS",
    "JSON_KEYS",
    "REPORT_JSON",
    "REPORT_MD",
    "ValidationReport",
    "ValidationRow",
    "change_text",
    "relative_loss",
]

DEFAULT_MAX_LOSS = 1.0
"""Largest relative loss per task, in percent of the fp32 score, that passes the gate."""
REPORT_JSON = "validation.json"
REPORT_MD = "validation.md"
JSON_KEYS = {"quantized": "int8"}
"""`ValidationRow` fields written under another name in validation.json (kept for readers)."""


def change_text(loss: float) -> str:
    """A relative loss (percent, positive when the score fell) as a reader reads a change:
    "-0.43 % (loss)", "+2.97 % (gain)", "0.00 %"."""
    if round(loss, 2) == 0:
        return "0.00 %"
    return f"{-loss:+.2f} % ({'loss' if loss > 0 else 'gain'})"


def relative_loss(fp32: float, score: float) -> float:
    """Percent of the fp32 score lost (negative when the model scores higher)."""
    if fp32 == 0:
        return 0.0 if score >= 0 else math.inf
    return 100.0 * (fp32 - score) / abs(fp32)


ENGINE_LABELS = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}
"""How a validation report names the engine that ran the model (`ipex_embeddings.engines`)."""


@dataclass
class ValidationRow:
    """One task: its main metric, the fp32 and model scores, and the relative loss in percent."""

    task: str
    metric: str
    fp32: float
    quantized: float
    """The score of the built model, whatever its precision (`ValidationReport.precision`);
    written as "int8" in validation.json, the key that file has always had."""
    relative_loss: float
    task_type: str = "Retrieval"
    split: str = "test"
    seconds: dict[str, float] = field(default_factory=dict)
    """Evaluation time per model; no fp32 entry when its score came from the cache."""
    fp32_cached: bool = False
    smaller: float | None = None
    """The model's score at `ValidationReport.output_size`, when one was asked for."""
    smaller_loss: float | None = None
    """Percent of the model's full-size score lost at that output size: its retrieval cost."""


@dataclass
class ValidationReport:
    """The table for one model folder, the gate it was held to, and how to re-run it."""

    rows: list[ValidationRow]
    max_loss: float
    model: str
    precision: str
    reference: str
    split: str = "test"
    subset: int | None = None
    command: str = ""
    mteb_version: str = ""
    fidelity: dict[str, Any] | None = None
    """`FidelityResult.to_dict()`: cosine to fp32 on the fixed texts, and its gate."""
    output_size: str | None = None
    """The smaller output size also scored ("128-d binary"; see `mteb_model.OutputSizeModel`)."""
    engine: str = "OpenVINO"
    """What ran the model ("OpenVINO", "ONNX Runtime": the engine this CPU picks)."""

    @property
    def passed(self) -> bool:
        """True when every task lost at most `max_loss` percent and fidelity (when measured)
        met its minimum cosine."""
        fidelity_ok = self.fidelity is None or bool(self.fidelity.get("passed"))
        return fidelity_ok and all(row.relative_loss <= self.max_loss for row in self.rows)

    @property
    def failures(self) -> list[ValidationRow]:
        """The tasks over the gate."""
        return [row for row in self.rows if row.relative_loss > self.max_loss]

    def to_markdown(self) -> str:
        """A markdown table with the gate, the data and the command that made it."""
        scope = f"a subset of {self.subset} queries" if self.subset else "all queries"
        smaller = (f" {self.precision}, {self.output_size} | Change vs full size |"
                   if self.output_size else "")
        lines = [
            f"| Task | Metric | fp32 (PyTorch) | {self.precision} ({self.engine}) | "
            "Change vs fp32 |" + smaller,
            "|---|---|---:|---:|---:|" + "---:|---:|" * bool(smaller),
        ]
        for row in self.rows:
            extra = (f" {row.smaller:.4f} | {change_text(row.smaller_loss)} |"
                     if smaller and row.smaller is not None else "")
            lines.append(
                f"| {row.task} | {row.metric} | {row.fp32:.4f} | {row.quantized:.4f} | "
                f"{change_text(row.relative_loss)} |{extra}"
            )
        verdict = "PASSED" if not self.failures else f"FAILED ({len(self.failures)} task(s) over)"
        lines += [
            "",
            f"Model: `{self.model}` ({self.precision}); reference: `{self.reference}` in fp32 "
            f"PyTorch. Split: {self.split}, {scope}. mteb {self.mteb_version}.",
            f"Gate: relative loss at most {self.max_loss:g} % per task: **{verdict}**.",
        ]
        lines += self.gate_notes()
        if self.command:
            lines.append(f"Re-run: `{self.command}`")
        return "\n".join(lines) + "\n"

    def gate_notes(self) -> list[str]:
        """Markdown lines for the gates beside the loss table (the fixed-set fidelity)."""
        if self.fidelity is None:
            return []
        return ["", FidelityResult.from_dict(self.fidelity).describe()]

    def to_json(self) -> str:
        """The report as JSON (rows, gate, verdict)."""
        data = asdict(self)
        data["rows"] = [{JSON_KEYS.get(k, k): v for k, v in row.items()} for row in data["rows"]]
        data["passed"] = self.passed
        return json.dumps(data, indent=2) + "\n"

    def write(self, folder: Path) -> list[Path]:
        """Write validation.json and validation.md into `folder`."""
        paths = [folder / REPORT_JSON, folder / REPORT_MD]
        paths[0].write_text(self.to_json())
        paths[1].write_text(self.to_markdown())
        return paths
