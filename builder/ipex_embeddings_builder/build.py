"""`ipex-embed build`: quantize -> validate (gate) -> bench -> model card -> publish, resumably.

`run_build` sends a cross-encoder source to `cross_build.CrossEncoderBuild` and a bi-encoder to
`Build`; both run their stages through `staged_build`, which records each stage's input and
output digests in `build_state.json` and skips the stages that are still current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .commandline import command_line
from .digest import file_digest, value_digest
from .errors import BuildError
from .fidelity import FIDELITY_VERSION
from .log import report_logger
from .publish import BUILD_STATE_NAME
from .staged_build import IR_FILES, BuildOptions, BuildState, Stage, StagedBuild

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

BENCH_MODES = ("full", "quick", "skip")


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


class Build(StagedBuild):
    """One run of `ipex-embed build` for a bi-encoder: the stages, wired to the folder and the
    options."""

    def __init__(self, options: BuildOptions) -> None:
        from .calibration import load_calibration
        from .source import inspect_source

        super().__init__(options)
        self.source = inspect_source(
            options.model, revision=options.revision, pooling=options.pooling,
            max_seq_length=options.max_seq_length, query_prompt=options.query_prompt,
            document_prompt=options.document_prompt,
            trust_remote_code=options.trust_remote_code,
        )
        self.calibration = load_calibration(options.calibration, options.samples)

    # --- digests of what each stage reads ------------------------------------------------------

    def _bench_dir(self) -> Path:
        return self.output / "bench"

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
        return CrossEncoderBuild(options, cross_encoder).run()
    return Build(options).run()
