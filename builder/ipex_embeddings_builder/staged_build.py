"""The resumable, staged build that `build` (bi-encoders) and `cross_build` (cross-encoders) share.

Each stage records the digest of its inputs and of its outputs in `build_state.json` inside the
output folder. A stage whose outputs are still there, unchanged, and whose inputs' digest matches
is skipped, so a build that was interrupted (or re-run with --push-to after a --dry-run) resumes
where it stopped. The state file is never published. `StagedBuild.run` runs the stages, stops at
a failed validation gate, then publishes (or prints the plan).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .calibration import DEFAULT_SAMPLES
from .commandline import command_line
from .demo import DEMO_MODEL
from .digest import file_digest, value_digest
from .errors import BuildError
from .log import report_logger
from .publish import BUILD_STATE_NAME

progress = report_logger(__name__)

__all__ = [
    "IR_FILES",
    "BuildOptions",
    "BuildState",
    "Stage",
    "StagedBuild",
    "package_version",
    "run_stage",
]

STATE_FORMAT = 1
IR_FILES = ("ipex_embeddings.json", "openvino/openvino_model.xml", "openvino/openvino_model.bin",
            "tokenizer.json")
"""The files of a built folder that hold the model (the quantize stage's outputs)."""


class BuildState:
    """`build_state.json`: per stage, the digests of its inputs and outputs and how long it took."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / BUILD_STATE_NAME
        self.stages: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                raw = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                raw = {}
            if raw.get("format") == STATE_FORMAT:
                self.stages = raw.get("stages", {})

    def is_current(self, stage: str, inputs: str, outputs: str) -> bool:
        record = self.stages.get(stage)
        return bool(record) and record["inputs"] == inputs and record["outputs"] == outputs

    def record(self, stage: str, inputs: str, outputs: str, seconds: float) -> None:
        self.stages[stage] = {"inputs": inputs, "outputs": outputs, "seconds": round(seconds, 1)}
        self.save()

    def save(self) -> None:
        if self.path.parent.is_dir():
            state = {"format": STATE_FORMAT, "stages": self.stages}
            self.path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


@dataclass
class BuildOptions:
    """Everything `ipex-embed build` was asked to do; it also rebuilds the exact command line."""

    model: str = DEMO_MODEL
    output: Path = Path("model")
    max_loss: float | None = None
    min_cosine: float | None = None
    calibration: Path | None = None
    samples: int = DEFAULT_SAMPLES
    pooling: str | None = None
    trust_remote_code: bool = False
    max_seq_length: int | None = None
    query_prompt: str | None = None
    document_prompt: str | None = None
    revision: str | None = None
    validation_subset: int | None = None
    tune: bool = True
    scheme: str = "auto"
    """The int8 scheme (`schemes`); auto: resolved as `ipex-embed quantize` does
    (`build.Build._scheme`)."""
    bench: str = "quick"
    push_to: str | None = None
    private: bool = False
    create_pr: bool = False
    dry_run: bool = False
    overwrite: bool = False
    force: bool = False

    def command(self, output_name: str | None = None) -> str:
        """The `ipex-embed build` line that makes this model again (without publishing flags)."""
        options: list[tuple[str, Any]] = [
            ("--output", output_name or self.output.name),
            ("--max-loss", self.max_loss), ("--min-cosine", self.min_cosine),
            # The file by name: the command is published, the builder's folders are not.
            ("--calibration", self.calibration and Path(self.calibration).name),
            ("--samples", None if self.samples == DEFAULT_SAMPLES else self.samples),
            ("--pooling", self.pooling), ("--max-seq-length", self.max_seq_length),
            ("--query-prompt", self.query_prompt), ("--document-prompt", self.document_prompt),
            ("--revision", self.revision), ("--validation-subset", self.validation_subset),
            ("--bench", None if self.bench == "quick" else self.bench),
            ("--scheme", None if self.scheme == "auto" else self.scheme),
        ]
        flags = ["--trust-remote-code"] if self.trust_remote_code else []
        flags += [] if self.tune else ["--no-tune"]
        return command_line("build", self.model, options=options, flags=flags)

    @property
    def gate(self) -> float:
        """The loss limit in percent: --max-loss, or validate's default."""
        from .validation_report import DEFAULT_MAX_LOSS

        return DEFAULT_MAX_LOSS if self.max_loss is None else self.max_loss

    @property
    def fidelity_gate(self) -> float:
        """The smallest cosine to fp32 on the fixed texts: --min-cosine, or validate's default."""
        from .fidelity import DEFAULT_MIN_COSINE

        return DEFAULT_MIN_COSINE if self.min_cosine is None else self.min_cosine


@dataclass
class Stage:
    """One step: what it depends on, what it writes, and how to run it."""

    name: str
    inputs: Callable[[], dict[str, Any]]
    """Called just before the stage, once the previous stages' outputs exist."""
    outputs: Callable[[], list[Path]]
    run: Callable[[], None]
    still_valid: Callable[[], bool] = lambda: True
    """A check beyond the digests, on what the existing outputs record (see `tuning_matches`)."""


def run_stage(
    stage: Stage, number: int, total: int, folder: Path, state: BuildState, force: bool
) -> None:
    """Run `stage` (stage `number` of `total`) unless its recorded outputs are current."""
    inputs = value_digest(stage.inputs())
    label = f"[{number}/{total}] {stage.name}"
    outputs = stage.outputs()
    if (
        not force
        and all(p.is_file() for p in outputs)
        and state.is_current(stage.name, inputs, file_digest(outputs, folder))
        and stage.still_valid()
    ):
        took = state.stages[stage.name]["seconds"]
        progress.info(f"{label}: up to date (inputs {inputs[:12]}, took {took} s), skipped")
        return
    progress.info(f"{label} ...")
    started = time.perf_counter()
    stage.run()
    seconds = time.perf_counter() - started
    state.record(stage.name, inputs, file_digest(stage.outputs(), folder), seconds)
    progress.info(f"{label}: done in {seconds:.1f} s")


def package_version() -> str:
    """The installed ipex-embeddings version ("unknown" when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ipex-embeddings")
    except PackageNotFoundError:
        return "unknown"


class StagedBuild:
    """One run of `ipex-embed build`: the stages (`stages`, per model kind), wired to the folder
    and the options; `run` runs them, gates on validation, then publishes."""

    def __init__(self, options: BuildOptions) -> None:
        self.options = options
        self.output = options.output.expanduser().resolve()
        self.state = BuildState(self.output)
        self.version = package_version()

    def stages(self) -> list[Stage]:
        """The stages, in order (publishing follows in `run`)."""
        raise NotImplementedError

    def _model_digest(self) -> str:
        return file_digest([self.output / name for name in IR_FILES], self.output)

    def _validation_files(self) -> list[Path]:
        return [self.output / "validation.json", self.output / "validation.md"]

    def _gate(self) -> None:
        """Stop the build, before the card and any upload, if the model failed validation."""
        from .validate import gate_failure

        report = json.loads((self.output / "validation.json").read_text())
        if report.get("passed"):
            return
        table = (self.output / "validation.md").read_text().strip()
        raise BuildError(
            f"The model failed its accuracy gate: {gate_failure(report)} Nothing was "
            f"published.\n\n{table}\n\nRe-run with a larger --max-loss (or a smaller "
            "--min-cosine) if that loss is acceptable, or validate on more queries (a small "
            "--validation-subset makes the loss noisy)."
        )

    # --- the whole run -------------------------------------------------------------------------

    def run(self) -> str | None:
        """Run every stage, then publish (or print the plan); return the published URL if any."""
        from .publish import plan_commit, publish

        started = time.perf_counter()
        stages = self.stages()
        total = len(stages) + 1
        for number, stage in enumerate(stages, 1):
            run_stage(stage, number, total, self.output, self.state, self.options.force)
            if stage.name == "validate":
                self._gate()
        opts = self.options
        plan = plan_commit(
            self.output, opts.push_to or f"YOUR-NAME/{self.output.name}", private=opts.private,
            create_pr=opts.create_pr, description=f"Rebuild with:\n\n    {opts.command()}\n",
        )
        label = f"[{total}/{total}] publish"
        if opts.dry_run or not opts.push_to:
            progress.info(plan.describe())
            reason = "dry run" if opts.dry_run else "no --push-to given"
            progress.info(f"{label}: {reason}, nothing was uploaded.")
            progress.info(f"Built {self.output} in {time.perf_counter() - started:.1f} s")
            return None
        progress.info(f"{label} ...")
        publish_started = time.perf_counter()
        url = publish(plan)
        progress.info(f"{label}: done in {time.perf_counter() - publish_started:.1f} s: {url}")
        progress.info(f"Built and published {self.output} in {time.perf_counter() - started:.1f} s")
        return url
