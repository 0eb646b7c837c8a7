"""Cross-encoder sources through `ipex-embed quantize` and `ipex-embed build`.

`cross_encoder_source` tells a cross-encoder (a `*ForSequenceClassification` transformers
folder, or a sentence-transformers `CrossEncoder` save, which is one) from a bi-encoder, so the
commands can send each to its own path. `quantize_cross_encoder_source` is `quantize`'s, and
`CrossEncoderBuild` is `build`'s: quantize (int8, calibrated on SciFact train pairs with BM25
hard negatives) -> validate (SciFact test claims' BM25 candidates reranked, int8 next to fp32,
gated) -> card -> publish, resumable like the bi-encoder build: both run on `staged_build`'s
stage runner and publishing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipex_embeddings import ModelConfig

from .digest import file_digest, value_digest
from .errors import OptionError, SourceModelError
from .log import report_logger
from .publish import BUILD_STATE_NAME
from .staged_build import IR_FILES, BuildOptions, Stage, StagedBuild

__all__ = [
    "CrossEncoderBuild", "cross_encoder_source", "is_cross_encoder_folder",
    "quantize_cross_encoder_source", "refuse_bi_encoder_options",
]

logger = logging.getLogger(__name__)
progress = report_logger(__name__)

CALIBRATION_VERSION = "scifact-train-bm25-hard-negatives-1"
"""Names `cross_encoder.default_calibration_pairs`' recipe in the quantize stage's inputs."""
SOURCE_FILES = ("config.json", "tokenizer.json", "config_sentence_transformers.json",
                "sentence_bert_config.json", "tokenizer_config.json")


def is_cross_encoder_folder(path: Path) -> bool:
    """Whether a local model folder holds a cross-encoder: a `*ForSequenceClassification`
    architecture (as transformers and sentence-transformers' `CrossEncoder.save` write it).
    Anything else that claims to be one is refused by `source.inspect_source`, by name."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    architectures = (config.get("architectures") if isinstance(config, dict) else None) or []
    return any(str(a).endswith("ForSequenceClassification") for a in architectures)


@dataclass(frozen=True)
class CrossSource:
    """A cross-encoder source found locally: its folder, the name the model JSON records, and
    the Hub commit it came from ("" for a local folder), as the bi-encoder's `SourceModel`."""

    path: Path
    model_id: str
    revision: str


def cross_encoder_source(model: str, revision: str | None = None) -> CrossSource | None:
    """The `CrossSource` when `model` (a folder or Hub id) is a cross-encoder, else None (a
    bi-encoder, or something `source.inspect_source` will refuse by name)."""
    from .source import local_copy, recorded_id

    try:
        path, commit = local_copy(model, revision)
    except SourceModelError:
        return None  # inspect_source raises the same error, in the bi-encoder's words
    if not is_cross_encoder_folder(path):
        return None
    return CrossSource(path, recorded_id(model), commit or "")


def refuse_bi_encoder_options(options: dict[str, Any]) -> None:
    """Raise `OptionError` naming the given options (not None or False), which only bi-encoders
    use."""
    given = [name for name, value in options.items() if value not in (None, False)]
    if given:
        raise OptionError(
            f"{', '.join(given)} do(es) not apply to a cross-encoder (it has no pooling, prompts "
            "or text calibration file: it is calibrated on SciFact (query, passage) pairs); "
            "leave them out."
        )


def _as_error(err: Exception) -> SourceModelError:
    return SourceModelError(f"Cannot build this cross-encoder: {err}")


def quantize_cross_encoder_source(
    path: Path, name: str, output: Path, *, precision: str = "int8", samples: int = 300,
    max_seq_length: int | None = None, overwrite: bool = False, revision: str = "",
) -> ModelConfig:
    """`cross_encoder.quantize_cross_encoder` with the default calibration pairs (`samples`
    of them), its plain exceptions turned into `BuilderError`s for the command line."""
    from .cross_encoder import (
        DEFAULT_PAIRS_NAME,
        default_calibration_pairs,
        quantize_cross_encoder,
    )

    if precision not in ("int8", "fp32"):
        raise OptionError(f"--precision {precision} is not built for cross-encoders; use int8 "
                          "or fp32.")
    pairs = default_calibration_pairs(samples) if precision == "int8" else None
    try:
        return quantize_cross_encoder(path, output, precision, pairs,
                                      max_seq_length=max_seq_length, source_model=name,
                                      source_revision=revision, overwrite=overwrite,
                                      calibration_name=DEFAULT_PAIRS_NAME)
    except (ValueError, FileNotFoundError) as err:
        raise _as_error(err) from err


class CrossEncoderBuild(StagedBuild):
    """`ipex-embed build` for a cross-encoder source: quantize, validate, card, publish."""

    def __init__(self, options: BuildOptions, source: CrossSource) -> None:
        refuse_bi_encoder_options({
            "--calibration": options.calibration, "--pooling": options.pooling,
            "--query-prompt": options.query_prompt, "--document-prompt": options.document_prompt,
            "--trust-remote-code": options.trust_remote_code, "--min-cosine": options.min_cosine,
            "--scheme": None if options.scheme == "auto" else options.scheme,
        })
        super().__init__(options)
        self.source = source
        if options.tune:
            progress.info("Cross-encoder: plain int8 (accuracy-aware tuning is for bi-encoders); "
                          "the validation gate still applies.")
        if options.bench != "skip":
            progress.info("Cross-encoder: no benchmark stage in build (measure the folder with "
                          "`ipex-embed bench OUTPUT --source SOURCE`); --bench is ignored.")

    def stages(self) -> list[Stage]:
        """quantize -> validate -> card (publishing follows in `StagedBuild.run`)."""
        opts = self.options
        return [
            Stage("quantize", lambda: {
                "version": self.version, "kind": "cross-encoder", "source": self.source.model_id,
                "source_files": file_digest(
                    [self.source.path / n for n in SOURCE_FILES if (self.source.path / n).is_file()]
                    + sorted(self.source.path.glob("*.safetensors")), self.source.path),
                "max_seq_length": opts.max_seq_length, "samples": opts.samples,
                "calibration": CALIBRATION_VERSION,
            }, lambda: [self.output / name for name in IR_FILES], self._quantize),
            Stage("validate", lambda: {
                "version": self.version, "model": self._model_digest(), "max_loss": opts.gate,
                "subset": opts.validation_subset, "kind": "cross-encoder",
            }, self._validation_files, self._validate),
            Stage("card", lambda: {
                "card_code": value_digest(Path(__file__).with_name("cross_card.py").read_text()),
                "inputs": file_digest([self.output / "ipex_embeddings.json",
                                       *self._validation_files()], self.output),
                "command": opts.command(self.output.name), "repo_id": opts.push_to,
            }, lambda: [self.output / "README.md"], self._card),
        ]

    def _quantize(self) -> None:
        overwrite = self.options.overwrite or (self.output / BUILD_STATE_NAME).is_file()
        quantize_cross_encoder_source(
            self.source.path, self.source.model_id, self.output, samples=self.options.samples,
            max_seq_length=self.options.max_seq_length, overwrite=overwrite,
            revision=self.source.revision,
        )

    def _validate(self) -> None:
        from .rerank_validation import validate_cross_encoder

        validate_cross_encoder(self.output, max_loss=self.options.gate,
                               subset=self.options.validation_subset, reference=self.source.path)

    def _card(self) -> None:
        from .card import CardInputs, read_source_metadata
        from .cross_card import write_cross_encoder_card

        metadata = read_source_metadata(self.source.path, self.source.model_id,
                                        self.options.revision)
        write_cross_encoder_card(CardInputs(
            folder=self.output, command=self.options.command(self.output.name),
            repo_id=self.options.push_to, source_metadata=metadata,
        ))
