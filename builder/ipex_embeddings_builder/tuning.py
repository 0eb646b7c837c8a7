"""Accuracy-aware quantization (`quantize --max-loss X`): the fastest int8 model within X.

The candidates come fastest first, and the first whose mteb loss on the tuning split is within X
percent on every task is written. With one static scheme (`schemes`), that is the layer search
below. With `--scheme auto` the static schemes of `schemes.AUTO_ORDER` are tried whole first
(`static`, then `static-sq-0.5`), then the layer search on whichever of them lost least, and last
weight-only int8 (float activations: the slowest, and the one that holds where activation
outliers defeat static int8, as in decoder embedders). Every candidate tried, its scheme and its
losses are recorded in the model JSON (`quantization.tuning.steps`), with the reason for the pick.

The layer search: start from full int8. While the mteb loss on the tuning split (SciFact's train
queries) exceeds X percent on a task, keep one more group of layers out of int8. A group is one
role in every layer (e.g. the six FFN down-projections), found from the quantized IR; groups are
ranked once, by how much keeping each alone lifts the mean cosine to fp32 on held-out
calibration texts. Every candidate is quantized afresh with the kept ops as NNCF's ignored scope
and validated with mteb on the tuning split; the first one within X is written, with the kept
ops recorded in its JSON, then reported on the test split.

The tuning split's fp32 reference is the PyTorch source by default, the same model object the
test-split gate (`validate`) then uses, so the SciFact corpus (the bulk of the work) is embedded
in fp32 once per process and shared by both splits. `reference="ir"` scores the tuning split
against our own fp32 IR of the same export (f32 inference precision; cosine 0.9999+ to PyTorch),
which embeds about twice as fast but is an extra corpus pass whenever the PyTorch gate follows
in the same process, as it does in `build` and `quantize --max-loss`. The published gate always
scores against PyTorch.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ipex_embeddings import ModelConfig
from ipex_embeddings.encoder import openvino_core
from ipex_embeddings.pooling import pool

from .calibration import CalibrationSet
from .errors import OptionError, TuningError
from .quantize import (
    MODEL_FILE,
    QuantizeOptions,
    add_onnx_int8,
    calibration_inputs,
    export_model,
    quantize_model,
    save_model_folder,
    write_atomically,
)
from .schemes import Scheme, candidate_schemes
from .source import SourceModel
from .validate import (
    DEFAULT_MAX_LOSS,
    ValidationReport,
    build_tasks,
    compare_with_reference,
    run_validation,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RANKING_SAMPLES",
    "TUNING_REFERENCES",
    "TUNING_SPLIT",
    "LayerGroup",
    "TuningError",
    "TuningResult",
    "TuningStep",
    "layer_groups",
    "rank_layer_groups",
    "tune_to_folder",
]

TUNING_SPLIT = "train"
TUNING_REFERENCES = {
    "ir": "fp32 OpenVINO IR of the same export (f32 inference precision)",
    "torch": "fp32 PyTorch source (sentence-transformers)",
}
"""What the tuning split's losses are measured against."""
RANKING_SAMPLES = 64
"""Calibration texts used to quantize each ranking candidate; as many more measure the cosine."""
# Ops between a quantizer and the op it quantizes for (e.g. the head split before attention).
PASS_THROUGH = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Convert"})
LAYER_INDEX = re.compile(r"\.\d+\.")

@dataclass
class LayerGroup:
    """The quantized ops of one role in every layer, and their sensitivity."""

    name: str
    """The role: an op name with the layer index replaced by N."""
    ops: list[str]
    """OpenVINO op names, as NNCF's IgnoredScope takes them."""
    cosine: float = float("nan")
    """Mean cosine to fp32 on held-out calibration texts with this group kept out of int8."""


@dataclass
class TuningStep:
    """One candidate: its scheme, the groups kept in higher precision and its losses on the
    tuning split."""

    kept_groups: list[str]
    kept: list[str]
    losses: dict[str, float]
    passed: bool
    seconds: float = 0.0
    scheme: str = "static"

    @property
    def worst_loss(self) -> float:
        """The largest loss over the tasks."""
        return max(self.losses.values())

    @property
    def label(self) -> str:
        """The candidate in words: its scheme, and the ops it kept out of int8 if any."""
        return self.scheme + (f" keeping {len(self.kept)} ops out of int8" if self.kept else "")


@dataclass
class TuningResult:
    """What the search tried, what it kept, and the written model's test-split report."""

    config: ModelConfig
    steps: list[TuningStep]
    ranking: list[LayerGroup] = field(default_factory=list)
    int8_cosine: float = float("nan")
    report: ValidationReport | None = None


def _quantized_consumers(quantizer: Any) -> set[str]:
    found, todo = set(), [quantizer]
    while todo:
        node = todo.pop()
        for output in node.outputs():
            for target in output.get_target_inputs():
                consumer = target.get_node()
                if consumer.get_type_name() in PASS_THROUGH:
                    todo.append(consumer)
                else:
                    found.add(consumer.get_friendly_name())
    return found


def layer_groups(int8_model: Any) -> list[LayerGroup]:
    """Group the ops fed by the model's FakeQuantize nodes by role (layer index stripped)."""
    groups: dict[str, set[str]] = {}
    for node in int8_model.get_ordered_ops():
        if node.get_type_name() != "FakeQuantize":
            continue
        ops = _quantized_consumers(node)
        role = " + ".join(sorted({LAYER_INDEX.sub(".N.", op) for op in ops}))
        groups.setdefault(role, set()).update(ops)
    return [LayerGroup(role, sorted(ops)) for role, ops in groups.items()]


def _tuning_reference(
    kind: str, fp32_model: Any, source: SourceModel, calibration: CalibrationSet, scratch: Path
) -> tuple[Any, str]:
    """The tuning split's fp32 mteb model and its cache label; (None, "") means the PyTorch
    source, as `validate` uses."""
    if kind == "torch":
        return None, ""
    from ipex_embeddings import Encoder

    from .mteb_model import EncoderModel, model_digest

    logger.info("Compiling the fp32 IR as the tuning split's reference")
    folder = scratch / "fp32"
    folder.mkdir()
    save_model_folder(fp32_model, folder, source, calibration, QuantizeOptions("fp32"), 0.0)
    encoder = Encoder.load(folder, compile_cache=False)
    model = EncoderModel(encoder, name=f"{source.model_id} (fp32 IR)")
    return model, "openvino-fp32-ir:" + model_digest(folder, encoder.config)[:16]


@contextmanager
def _quiet_nncf() -> Iterator[None]:
    # NNCF logs every ignored node at INFO; a search quantizes many times.
    from nncf.common.logging import nncf_logger

    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        nncf_logger.setLevel(level)


def _sentence_vectors(model: Any, inputs: list[dict[str, np.ndarray]], pooling: str) -> np.ndarray:
    """Unit-length sentence vectors of `inputs` (one text each) by the model's token states."""
    request = openvino_core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    rows = []
    for item in inputs:
        vector = pool(request(item)[0], item["attention_mask"], pooling)[0]  # every mode
        rows.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
    return np.asarray(rows)


def rank_layer_groups(
    fp32_model: Any,
    source: SourceModel,
    calibration: CalibrationSet,
    options: QuantizeOptions,
    *,
    samples: int = RANKING_SAMPLES,
) -> tuple[float, list[LayerGroup]]:
    """Full-int8 cosine to fp32, and the layer groups, most sensitive first.

    Each candidate is quantized on the first `samples` calibration texts and measured on the
    next `samples` (the cheap proxy; the accept/reject decision is always mteb's).
    """
    subset = calibration.part(0, samples)
    held_out = calibration.part(samples, 2 * samples)
    held_out = held_out if held_out.texts else subset
    names = [port.get_any_name() for port in fp32_model.inputs]
    inputs = calibration_inputs(source, held_out.texts, names, held_out.kinds)
    reference = _sentence_vectors(fp32_model, inputs, source.pooling)

    def cosine(keep: Sequence[str]) -> tuple[float, Any]:
        quantized = quantize_model(
            fp32_model.clone(),
            source,
            subset,
            replace(options, keep_higher_precision=[*options.keep_higher_precision, *keep]),
        )
        vectors = _sentence_vectors(quantized, inputs, source.pooling)
        return float(np.mean(np.sum(vectors * reference, axis=1))), quantized

    with _quiet_nncf():
        int8_cosine, int8_model = cosine([])
        groups = layer_groups(int8_model)
        logger.info("Ranking %d layer groups (full int8: mean cosine %.5f)", len(groups),
                    int8_cosine)
        for group in tqdm(groups, desc="ranking layer groups", unit="group"):
            group.cosine, _ = cosine(group.ops)
            logger.info(f"  {group.cosine:.5f} keeping {len(group.ops)} ops: {group.name}")
    groups.sort(key=lambda g: (-g.cosine, g.name))
    return int8_cosine, groups


@dataclass
class _Search:
    """The candidates of one tuning run, each quantized and validated on the tuning split."""

    source: SourceModel
    calibration: CalibrationSet
    options: QuantizeOptions
    fp32_model: Any
    scratch: Path
    tasks: list[Any]
    max_loss: float
    subset: int | None
    cache_dir: Path | None
    local_source: Path | None
    reference: tuple[Any, str]
    """The fp32 mteb model and its cache label (see `_tuning_reference`)."""
    steps: list[TuningStep] = field(default_factory=list)
    ranking: list[LayerGroup] = field(default_factory=list)
    int8_cosine: float = float("nan")

    def attempt(self, scheme: Scheme, groups: list[LayerGroup]) -> tuple[TuningStep, Path]:
        """Quantize by `scheme` keeping `groups` out of int8, validate it; the step and its
        folder."""
        started = time.perf_counter()
        kept = [op for group in groups for op in group.ops]
        folder = self.scratch / f"step{len(self.steps)}"
        folder.mkdir()
        options = replace(_keeping(self.options, kept), scheme=scheme.name)
        with _quiet_nncf():
            quantized = quantize_model(self.fp32_model.clone(), self.source, self.calibration,
                                       options)
        save_model_folder(quantized, folder, self.source, self.calibration, options, 0.0)
        logger.info(f"Tuning step {len(self.steps) + 1}: validating {scheme.name} on "
                    f"{TUNING_SPLIT} with {len(kept)} ops kept out of int8")
        result = compare_with_reference(
            folder, self.tasks, max_loss=self.max_loss, subset=self.subset,
            cache_dir=self.cache_dir, reference=self.local_source,
            reference_model=self.reference[0], reference_runtime=self.reference[1],
        )
        step = TuningStep(
            kept_groups=[g.name for g in groups],
            kept=kept,
            losses={row.task: round(row.relative_loss, 4) for row in result.rows},
            passed=result.passed,
            seconds=round(time.perf_counter() - started, 1),
            scheme=scheme.name,
        )
        self.steps.append(step)
        return step, folder

    def run(
        self, schemes: list[Scheme], max_steps: int | None, ranking_samples: int
    ) -> tuple[TuningStep, Path]:
        """The candidates, fastest first, until one passes: each static scheme whole, the layer
        search on the static scheme that lost least, then each weight-only scheme.

        Raises:
            TuningError: no candidate passed.
        """
        static = [s for s in schemes if s.int8_activations]
        for scheme in static:
            step, folder = self.attempt(scheme, [])
            if step.passed:
                return self._chosen(step, folder)
        if static and max_steps != 0:
            tried = {s.name: s for s in static}
            best = tried[min(self.steps, key=lambda s: s.worst_loss).scheme]
            step, folder = self._layer_search(best, max_steps, ranking_samples)
            if step.passed:
                return self._chosen(step, folder)
        for scheme in (s for s in schemes if not s.int8_activations):
            step, folder = self.attempt(scheme, [])
            if step.passed:
                return self._chosen(step, folder)
        best_step = min(self.steps, key=lambda s: s.worst_loss)
        raise TuningError(
            f"No candidate lost at most {self.max_loss:g} % on the {TUNING_SPLIT} split; "
            f"{self._tried()}. The best ({best_step.label}) lost {best_step.losses}. Use a "
            "larger --max-loss, another --scheme (weights-int8 keeps activations float), or "
            "--precision fp32.",
            steps=self.steps,
        )

    def _layer_search(
        self, scheme: Scheme, max_steps: int | None, ranking_samples: int
    ) -> tuple[TuningStep, Path]:
        """`scheme` with the most sensitive layer groups kept out of int8, one more at a time,
        until a candidate passes; the last step tried."""
        options = replace(self.options, scheme=scheme.name)
        self.int8_cosine, self.ranking = rank_layer_groups(
            self.fp32_model, self.source, self.calibration, options, samples=ranking_samples,
        )
        limit = len(self.ranking) if max_steps is None else min(max_steps, len(self.ranking))
        step, folder = self.steps[-1], self.scratch / f"step{len(self.steps) - 1}"
        for count in tqdm(range(1, limit + 1), desc="tuning steps", unit="step"):
            step, folder = self.attempt(scheme, self.ranking[:count])
            if step.passed:
                break
        return step, folder

    def _tried(self) -> str:
        return "tried " + "; ".join(
            f"{s.label} (worst loss {s.worst_loss:+.2f} %)" for s in self.steps
        )

    def _chosen(self, step: TuningStep, folder: Path) -> tuple[TuningStep, Path]:
        logger.info(
            f"Chose {step.scheme}, {len(step.kept)} ops kept out of int8 "
            f"({', '.join(step.kept_groups) or 'none'}); losses on {TUNING_SPLIT}: {step.losses}"
        )
        return step, folder

    def record(self, reference: str) -> dict[str, Any]:
        """The `tuning` entry of the model JSON's quantization record."""
        cosine = self.int8_cosine
        return {
            "scheme": self.options.scheme,
            "max_loss": self.max_loss,
            "split": TUNING_SPLIT,
            "reference": TUNING_REFERENCES[reference],
            "tasks": [task.metadata.name for task in self.tasks],
            "subset": self.subset,
            "int8_cosine": None if np.isnan(cosine) else round(cosine, 6),
            "ranking": [
                {"group": g.name, "ops": len(g.ops), "cosine": round(g.cosine, 6)}
                for g in self.ranking
            ],
            "steps": [asdict(s) for s in self.steps],
            "choice": self._reason(),
        }

    def _reason(self) -> str:
        """Why the written candidate was picked, with the losses of those tried before it."""
        chosen = self.steps[-1]
        before = [f"{s.label} lost up to {s.worst_loss:.4g} %" for s in self.steps[:-1]]
        return (
            f"{chosen.label}: the first candidate, fastest first, within {self.max_loss:g} % on "
            f"every task on the {TUNING_SPLIT} split (worst loss {chosen.worst_loss:.4g} %)"
            + (f"; before it {', '.join(before)}" if before else "")
        )


def _checked(options: QuantizeOptions, reference: str) -> QuantizeOptions:
    """`options`, once they are ones tuning can use.

    Raises:
        OptionError: a precision other than int8, an unknown scheme.
        ValueError: an unknown `reference`.
    """
    if options.precision != "int8":
        raise OptionError("--max-loss tunes int8 quantization; it needs --precision int8.")
    if reference not in TUNING_REFERENCES:
        raise ValueError(f"reference={reference!r}; use one of {sorted(TUNING_REFERENCES)}.")
    candidate_schemes(options.scheme)  # an unknown name fails before the export
    return options


def _keeping(options: QuantizeOptions, kept: Sequence[str]) -> QuantizeOptions:
    return replace(options, keep_higher_precision=[*options.keep_higher_precision, *kept])


def tune_to_folder(
    source: SourceModel,
    calibration: CalibrationSet,
    output: Path,
    options: QuantizeOptions | None = None,
    max_loss: float = DEFAULT_MAX_LOSS,
    *,
    tasks: list[str] | None = None,
    subset: int | None = None,
    cache_dir: Path | None = None,
    overwrite: bool = False,
    max_steps: int | None = None,
    ranking_samples: int = RANKING_SAMPLES,
    report: bool = True,
    reference: str = "torch",
) -> TuningResult:
    """Write at `output` the fastest int8 candidate (see the module's docstring: the schemes
    `options.scheme` stands for, `auto` for all, then the fewest layer groups kept out of int8)
    whose relative loss on the tuning split is at most `max_loss` percent on every task.

    Args:
        tasks: task names as for `ipex-embed validate` (default: SciFact and SciFactReranking).
        subset: tune (and report) on a subset of queries (tests; see `validate --subset`).
        max_steps: layer-search steps to try at most (default: one per group; 0: none).
        ranking_samples: calibration texts per ranking candidate (see `rank_layer_groups`).
        report: validate the written model on the test split (validation.json/.md).
        reference: the tuning split's fp32 reference, a key of `TUNING_REFERENCES`.

    Raises:
        OptionError, ValueError: a precision other than int8, an unknown scheme or `reference`.
        TuningError: no candidate met `max_loss` (nothing is written).
        OutputExistsError: `output` is not empty and `overwrite` is False.
    """
    options = _checked(options or QuantizeOptions(), reference)
    started = time.perf_counter()
    # A local folder is recorded by name only (the JSON is published): give validation its path.
    local_source = None if source.revision else source.path
    tuning_tasks = build_tasks(tasks, split=TUNING_SPLIT, subset=subset)
    logger.info("Exporting %s to OpenVINO IR", source.model_id)
    fp32_model = export_model(source)
    with (
        write_atomically(output, overwrite) as staging,
        tempfile.TemporaryDirectory(prefix="ipex-embed-tune-") as scratch,
    ):
        fp32 = _tuning_reference(reference, fp32_model, source, calibration, Path(scratch))
        search = _Search(source, calibration, options, fp32_model, Path(scratch), tuning_tasks,
                         max_loss, subset, cache_dir, local_source, fp32)
        step, folder = search.run(candidate_schemes(options.scheme), max_steps, ranking_samples)
        chosen = replace(_keeping(options, step.kept), scheme=step.scheme)
        config = save_model_folder(
            openvino_core().read_model(folder / MODEL_FILE), staging, source, calibration, chosen,
            time.perf_counter() - started, extra={"tuning": search.record(reference)},
        )
        config = add_onnx_int8(staging, config, source, calibration)
    result = TuningResult(config, search.steps, search.ranking, search.int8_cosine)
    if report:
        result.report = run_validation(output, tasks=tasks, max_loss=max_loss, subset=subset,
                                       cache_dir=cache_dir, reference=local_source)
    return result
