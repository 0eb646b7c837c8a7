"""`ipex-embed build`: quantize -> validate (gate) -> bench -> model card -> publish, resumably.

Each stage records the digest of its inputs and of its outputs in `build_state.json` inside the
output folder. A stage whose outputs are still there, unchanged, and whose inputs' digest matches
is skipped, so a build that was interrupted (or re-run with --push-to after a --dry-run) resumes
where it stopped. The state file is never published.
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
from .fidelity import FIDELITY_VERSION
from .log import report_logger
from .publish import BUILD_STATE_NAME

progress = report_logger(__name__)

__all__ = [
    "Build",
    "BuildError",
    "BuildOptions",
    "BuildState",
    "run_build",
    "sentence_transformers_problem",
    "tuning_matches",
]

STATE_FORMAT = 1
BENCH_MODES = ("full", "quick", "skip")
IR_FILES = ("ipex_embeddings.json", "openvino/openvino_model.xml", "openvino/openvino_model.bin",
            "tokenizer.json")


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
    """The int8 scheme (`schemes`); auto: resolved as `ipex-embed quantize` does (`_scheme`)."""
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
        from .validate import DEFAULT_MAX_LOSS

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


def _run_stage(
    stage: Stage, number: int, total: int, folder: Path, state: BuildState, force: bool
) -> None:
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


def _check_output(output: Path, overwrite: bool) -> None:
    if output.is_file():
        raise BuildError(f"--output {output} is a file; give a folder path.")
    if (
        output.is_dir()
        and any(output.iterdir())
        and not (output / BUILD_STATE_NAME).is_file()
        and not overwrite
    ):
        raise BuildError(
            f"{output} exists, is not empty and was not made by `ipex-embed build` (it has no "
            f"{BUILD_STATE_NAME}). Choose another --output, or pass --overwrite to replace it."
        )


def _source_files(path: Path) -> list[Path]:
    names = ["config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json",
             "config_sentence_transformers.json", "1_Pooling/config.json"]
    return [path / n for n in names if (path / n).is_file()] + sorted(path.glob("*.safetensors"))


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ipex-embeddings")
    except PackageNotFoundError:
        return "unknown"


def tuning_matches(
    quantization: dict[str, Any], tune: bool, max_loss: float, subset: int | None = None,
    scheme: str = "static",
) -> bool:
    """Whether a folder's recorded quantization is what these options would produce again.

    Tuning tries candidates in a fixed order and keeps the first whose losses on the tuning split
    are within the limit; the losses of every candidate it tried are in the model JSON. So the
    folder is still right for a new limit exactly when that rule, replayed on the recorded
    losses, picks the candidate that was written. Without tuning, the model is plain int8 of
    `scheme`; with it, `scheme` (a scheme or auto) is what the search was asked for. Folders
    from before schemes existed were static.
    """
    kept = quantization.get("keep_higher_precision") or []
    if not tune:
        return not kept and quantization.get("scheme", "static") == scheme
    tuning = quantization.get("tuning") or {}
    if tuning.get("subset") != subset or tuning.get("scheme", "static") != scheme:
        return False  # losses measured on other queries say nothing about these
    steps = tuning.get("steps") or []
    within = [all(loss <= max_loss for loss in step["losses"].values()) for step in steps]
    return True in within and within.index(True) == len(steps) - 1


def _has_optimum_intel() -> bool:
    import importlib.util

    return importlib.util.find_spec("optimum") is not None and (
        importlib.util.find_spec("optimum.intel") is not None
    )


def sentence_transformers_problem(folder: Path) -> str | None:
    """Why the folder cannot be used with sentence-transformers' OpenVINO backend, or None.

    None only after loading it with `backend="openvino"` and finding the same vectors as ours.
    """
    if not _has_optimum_intel():
        return "not checked: optimum-intel, which that backend needs, is not installed"
    import numpy as np

    from ipex_embeddings import Encoder

    texts = ["int8 embeddings on a CPU", "Cyclin D1 controls the cell cycle."]
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), backend="openvino", device="cpu",
                                    local_files_only=True)
        theirs = np.asarray(model.encode(texts, normalize_embeddings=True))
    except Exception as err:  # any failure means the card must not promise it
        return f"loading failed: {type(err).__name__}: {err}"
    ours = Encoder.load(folder).encode(texts, normalize=True)
    cosine = float(np.min(np.sum(theirs * ours, axis=1)))
    return None if cosine > 0.999 else f"its vectors differ from ours (cosine {cosine:.4f})"


class Build:
    """One run of `ipex-embed build`: the stages, wired to the folder and the options."""

    def __init__(self, options: BuildOptions) -> None:
        from .calibration import load_calibration
        from .source import inspect_source

        self.options = options
        self.output = options.output.expanduser().resolve()
        self.source = inspect_source(
            options.model, revision=options.revision, pooling=options.pooling,
            max_seq_length=options.max_seq_length, query_prompt=options.query_prompt,
            document_prompt=options.document_prompt,
            trust_remote_code=options.trust_remote_code,
        )
        self.calibration = load_calibration(options.calibration, options.samples)
        self.state = BuildState(self.output)
        self.version = _package_version()

    # --- digests of what each stage reads ------------------------------------------------------

    def _model_digest(self) -> str:
        return file_digest([self.output / name for name in IR_FILES], self.output)

    def _bench_dir(self) -> Path:
        return self.output / "bench"

    def _validation_files(self) -> list[Path]:
        return [self.output / "validation.json", self.output / "validation.md"]

    def _bench_files(self) -> list[Path]:
        bench_dir = self._bench_dir()
        found = [bench_dir / "bench.json", bench_dir / "bench.md"]
        return found + sorted(bench_dir.glob("*.png")) if bench_dir.is_dir() else found

    # --- the stages ----------------------------------------------------------------------------

    def stages(self) -> list[Stage]:
        opts = self.options
        stages = [
            Stage(
                "quantize",
                lambda: {
                    "version": self.version, "source": self.source.model_id,
                    "revision": self.source.revision,
                    "source_files": file_digest(_source_files(self.source.path), self.source.path),
                    "pooling": self.source.pooling, "max_seq_length": self.source.max_seq_length,
                    "prompts": [self.source.query_prompt, self.source.document_prompt],
                    "calibration": self.calibration.digest,
                    **({"scheme": opts.scheme} if opts.scheme != "auto" else {}),
                },
                lambda: [self.output / name for name in IR_FILES],
                self._quantize,
                # Whether to tune, to which limit, on which queries: see `tuning_matches`.
                lambda: tuning_matches(
                    json.loads((self.output / "ipex_embeddings.json").read_text())["quantization"],
                    opts.tune, opts.gate, opts.validation_subset, self._scheme(),
                ),
            ),
            Stage(
                "validate",
                lambda: {"version": self.version, "model": self._model_digest(),
                         "max_loss": opts.gate, "subset": opts.validation_subset,
                         "min_cosine": opts.fidelity_gate, "fidelity": FIDELITY_VERSION},
                self._validation_files,
                self._validate,
            ),
        ]
        if opts.bench != "skip":
            stages.append(Stage(
                "bench",
                lambda: {"version": self.version, "model": self._model_digest(),
                         "mode": opts.bench},
                self._bench_files,
                self._bench,
            ))
        stages.append(Stage(
            "card",
            lambda: {
                "card_code": value_digest(Path(__file__).with_name("card.py").read_text()),
                "inputs": file_digest(
                    [self.output / "ipex_embeddings.json", *self._validation_files(),
                     *(self._bench_files() if opts.bench != "skip" else [])], self.output),
                "command": opts.command(self.output.name), "repo_id": opts.push_to,
                "optimum_intel": _has_optimum_intel(),
            },
            lambda: [self.output / "README.md"],
            self._card,
        ))
        return stages

    def _scheme(self) -> str:
        """The scheme to build, or auto for the search: as `quantize` resolves --scheme; with
        --no-tune (no search), auto is static."""
        from .schemes import AUTO, STATIC, plan_scheme

        scheme, _ = plan_scheme(self.options.scheme, self.source.model_type,
                                self.options.max_loss, self.options.gate)
        return STATIC if scheme == AUTO and not self.options.tune else scheme

    def _quantize(self) -> None:
        from .quantize import QuantizeOptions, quantize_to_folder
        from .tuning import tune_to_folder

        # Replacing the folder is safe: it is ours (it has a build state) or --overwrite was given.
        overwrite = self.options.overwrite or (self.output / BUILD_STATE_NAME).is_file()
        options = QuantizeOptions(precision="int8", scheme=self._scheme())
        if not self.options.tune:
            quantize_to_folder(self.source, self.calibration, self.output, options, overwrite)
            return
        tune_to_folder(
            self.source, self.calibration, self.output, options, self.options.gate,
            subset=self.options.validation_subset, overwrite=overwrite, report=False,
        )

    def _reference(self) -> Path | None:
        """The source folder when the model JSON's name for it will not find it again (a local
        folder is recorded by name only); None when it will (the demo, a Hub id)."""
        return None if self.source.revision else self.source.path

    def _validate(self) -> None:
        from .validate import run_validation

        run_validation(
            self.output, max_loss=self.options.gate, subset=self.options.validation_subset,
            reference=self._reference(), min_cosine=self.options.fidelity_gate,
        )

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

    def _bench(self) -> None:
        from .bench import run_bench

        quick = self.options.bench == "quick"
        name = self.output.name
        command = command_line("bench", name, options=[("--output", f"{name}/bench")],
                               flags=["--quick"] if quick else [])
        run_bench(self.output, self._bench_dir(), quick=quick, command=command)

    def _card(self) -> None:
        from .card import CardInputs, read_source_metadata, write_card

        metadata = read_source_metadata(
            self.source.path, self.source.model_id, self.options.revision
        )
        problem = sentence_transformers_problem(self.output)
        progress.info(
            "  sentence-transformers backend=\"openvino\": "
            + ("loads and matches; described in the card" if problem is None
               else f"not described in the card ({problem})")
        )
        write_card(CardInputs(
            folder=self.output, command=self.options.command(self.output.name),
            repo_id=self.options.push_to, source_metadata=metadata,
            sentence_transformers=problem is None,
        ))

    # --- the whole run -------------------------------------------------------------------------

    def run(self) -> str | None:
        """Run every stage, then publish (or print the plan); return the published URL if any."""
        from .publish import plan_commit, publish

        started = time.perf_counter()
        stages = self.stages()
        total = len(stages) + 1
        for number, stage in enumerate(stages, 1):
            _run_stage(stage, number, total, self.output, self.state, self.options.force)
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


def run_build(options: BuildOptions) -> str | None:
    """Check the output folder and the token, then run the build; return the published URL.

    Raises:
        BuildError: `output` is a file or a folder not made by build, or the model failed its
            accuracy gate (nothing is published).
        PublishError: no usable Hub token for `push_to`, or the upload failed.
        BuilderError: any other stage's error (`SourceModelError`, `CalibrationError`, ...).
    """
    from .publish import check_token

    _check_output(options.output.expanduser().resolve(), options.overwrite)
    if options.push_to and not options.dry_run:
        check_token(options.push_to)  # fail in seconds, not after a long build
    from .cross_build import CrossEncoderBuild, cross_encoder_source

    cross_encoder = cross_encoder_source(options.model, options.revision)
    if cross_encoder is not None:
        return CrossEncoderBuild(options, *cross_encoder).run()
    return Build(options).run()
