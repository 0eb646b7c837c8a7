"""`ipex-embed validate`: mteb scores of a model folder next to its fp32 PyTorch source, gated.

Each task is run with mteb (`mteb.evaluate`) twice: on the folder's int8 model (on the engine
this CPU picks: `ipex_embeddings.engines`) and on the
source model in fp32 PyTorch, as its authors ship it (`SentenceTransformer(source)`, see
`mteb_model.SourceReferenceModel`). With `truncate_dim`/`output_precision`, the model is also
scored at that smaller output size, next to its full size (informational: not gated).
The relative loss per task is 100 * (fp32 - model) / fp32 percent;
a task over `max_loss` fails the model. The fp32 scores are kept in mteb's `ResultCache`, keyed
by source model, revision, task, data, split, subset and settings (`ReferenceCache`), so
rebuilding a model does not recompute them.
The gate also holds the model to `min_cosine` on a fixed set of short to over-long texts
(`fidelity`), which SciFact does not cover.

The report names the model and its source, never a local path: it is published with the model.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .commandline import command_line
from .digest import sha256, value_digest
from .errors import GateFailed, OptionError, TaskError, ValidationError
from .fidelity import DEFAULT_MIN_COSINE, FidelityResult
from .validation_report import (
    DEFAULT_MAX_LOSS,
    ENGINE_LABELS,
    REPORT_JSON,
    REPORT_MD,
    ValidationReport,
    ValidationRow,
    change_text,
    relative_loss,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_MAX_LOSS",
    "REPORT_JSON",
    "REPORT_MD",
    "ValidationReport",
    "ValidationRow",
    "build_tasks",
    "check_fidelity",
    "compare_with_reference",
    "gate_failure",
    "relative_loss",
    "run_validation",
    "gate_error",
]

DEFAULT_CACHE_DIR = (
    Path(os.environ.get("IPEX_EMBEDDINGS_CACHE", Path.home() / ".cache" / "ipex-embeddings"))
    / "validate"
)
# The names of mteb_tasks.LOCAL_TASKS, here so that the CLI can turn the Hub off before mteb
# (and with it huggingface_hub, which reads HF_HUB_OFFLINE once) is imported.
LOCAL_TASK_NAMES = ("SciFact", "SciFactReranking")
BATCH_SIZE = 32
ENCODE_KWARGS = {"batch_size": BATCH_SIZE, "show_progress_bar": False}
REFERENCE = "SentenceTransformer(source)"
"""The fp32 reference, in the cache key: scores of another reference are never reused."""


def build_tasks(
    tasks: Sequence[str] | None = None,
    beir_dirs: Sequence[Path] = (),
    *,
    split: str = "test",
    subset: int | None = None,
) -> list[Any]:
    """The mteb tasks to run, their data loaded (and checked) before any model runs.

    `tasks=None` means SciFact and SciFactReranking, unless only `beir_dirs` are given.
    """
    logger.info("Loading the tasks' data (split %s; importing mteb)", split)
    from .mteb_tasks import DEFAULT_TASKS, beir_folder_task, make_task

    names = list(tasks) if tasks is not None else ([] if beir_dirs else list(DEFAULT_TASKS))
    built = [make_task(name, split, subset) for name in dict.fromkeys(names)]
    built += [beir_folder_task(Path(folder), split, subset) for folder in beir_dirs]
    if not built:
        raise OptionError("No tasks to run: give --task NAME or --beir-dir FOLDER.")
    for task in built:
        logger.info("  %s (%s): loading data", task.metadata.name, split)
        try:
            task.load_data()
        except ValidationError:
            raise
        except Exception as err:  # the Hub (unreachable here) or a dataset mteb cannot read
            raise TaskError(
                f"Could not load the data of task {task.metadata.name!r}: {err}. mteb tasks other "
                "than ours download their data from the Hugging Face Hub; check the network (and "
                "HF_HUB_OFFLINE), or give a local copy in BEIR format with --beir-dir."
            ) from err
    return built


def _evaluate(model: Any, task: Any) -> tuple[float, dict[str, Any], float]:
    score, details, seconds, _ = _evaluate_result(model, task)
    return score, details, seconds


def _evaluate_result(model: Any, task: Any) -> tuple[float, dict[str, Any], float, Any]:
    """(main score, the split's scores, seconds, mteb's TaskResult) of `model` on `task`."""
    import datasets
    import mteb

    datasets.disable_progress_bars()
    started = time.perf_counter()
    result = mteb.evaluate(
        model,
        task,
        cache=None,
        co2_tracker=False,
        show_progress_bar=False,
        overwrite_strategy="always",
        encode_kwargs=dict(ENCODE_KWARGS),
    )
    task_result = result.task_results[0]
    score, details = _split_scores(task_result, task)
    return score, details, time.perf_counter() - started, task_result


def _split_scores(task_result: Any, task: Any) -> tuple[float, dict[str, Any]]:
    split = task.eval_splits[0]
    return float(task_result.get_score(splits=[split])), task_result.scores[split][0]


def _data_digest(task: Any) -> str:
    folder = getattr(task, "folder", None)
    if folder is None:
        return str(task.metadata.dataset.get("revision", ""))
    names = ("corpus.jsonl", "queries.jsonl", f"qrels/{task.eval_splits[0]}.tsv")
    return sha256(files=[folder / name for name in names])[:16]


def _cache_key(
    task: Any, config: Any, fingerprint: str, subset: int | None, runtime: str = ""
) -> dict[str, Any]:
    import mteb

    # The PyTorch reference is the source as shipped: our folder's settings do not change it.
    described = {"settings": _settings(config)} if runtime else {"reference": REFERENCE}
    return {
        **({"reference_runtime": runtime} if runtime else {}),
        **described,
        "source_model": config.source_model,
        "source_revision": fingerprint,
        "task": task.metadata.name,
        "task_revision": task.metadata.dataset.get("revision", ""),
        "data": _data_digest(task),
        "split": task.eval_splits[0],
        "subset": subset,
        "mteb_version": mteb.__version__,
    }


_REFERENCE_MODEL: dict[tuple[Any, ...], Any] = {}


def _reference_model(source: Path, fingerprint: str) -> Any:
    # One at a time, kept for the process: tuning and its report score the same documents.
    from .mteb_model import SourceReferenceModel

    key = (str(source), fingerprint)
    if key not in _REFERENCE_MODEL:
        _REFERENCE_MODEL.clear()
        _REFERENCE_MODEL[key] = SourceReferenceModel(source, fingerprint)
    return _REFERENCE_MODEL[key]


def _settings(config: Any) -> dict[str, Any]:
    names = ("pooling", "normalize", "max_seq_length", "query_prompt", "document_prompt")
    return {name: getattr(config, name) for name in names}


def reference_scores(
    config: Any,
    tasks: Sequence[Any],
    *,
    subset: int | None = None,
    cache_dir: Path | None = None,
    reference: str | Path | None = None,
    reference_model: Any = None,
    reference_runtime: str = "",
) -> dict[str, tuple[str, float, float | None]]:
    """(metric, fp32 score, seconds or None when cached) per task, from the cache or by running
    the source model in PyTorch, or `reference_model` (an mteb model, e.g. the fp32 IR, named by
    `reference_runtime` in the cache key).

    Scores live in mteb's own `ResultCache` under `cache_dir/mteb` (see `_cached_result`)."""
    from .mteb_model import reference_source, source_fingerprint

    cache = ReferenceCache(cache_dir)
    # A known revision names the weights: the source is only fetched when a score is missing.
    revision = "" if reference else config.source_revision
    source = None if revision else reference_source(config, reference)
    fingerprint = revision or source_fingerprint(source, "")
    scores = {}
    for task in tasks:
        key = _cache_key(task, config, fingerprint, subset, reference_runtime)
        cached = cache.load(task, key)
        if cached is not None:
            scores[task.metadata.name] = (task.metadata.main_score, cached, None)
            continue
        if reference_model is None:
            source = source or reference_source(config, reference)
        model = reference_model or _reference_model(source, fingerprint)
        logger.info(f"  fp32 {task.metadata.name}: scoring with {model.mteb_model_meta.name} "
                    f"({reference_runtime or 'PyTorch'})")
        score, _, seconds, task_result = _evaluate_result(model, task)
        cache.save(task_result, key)
        scores[task.metadata.name] = (task.metadata.main_score, score, seconds)
        logger.info(f"  fp32 {task.metadata.name}: {score:.4f} in {seconds:.0f} s")
    return scores


class ReferenceCache:
    """fp32 reference scores in mteb's `ResultCache` (`cache_dir/mteb/results/...`).

    mteb files a result under a model name and revision. The name here is
    `ipex-embeddings-reference/<source>`; the revision is the sha256 of everything the score
    depends on (`_cache_key`: reference, source weights, settings, task, data, split, subset,
    mteb version), which is also written beside the result as `ipex_embeddings_key.json`, so a
    score is only ever reused for the same question. mteb's own tools read these results.
    """

    KEY_FILE = "ipex_embeddings_key.json"

    def __init__(self, cache_dir: Path | None) -> None:
        import mteb

        self.root = (cache_dir or DEFAULT_CACHE_DIR).expanduser()
        self.cache = mteb.ResultCache(cache_path=self.root / "mteb")

    @staticmethod
    def meta(key: dict[str, Any]) -> Any:
        from mteb.models import ModelMeta

        source = str(key["source_model"]).replace("/", "__") or "unknown"
        return ModelMeta.create_empty(overwrites={
            "name": f"ipex-embeddings-reference/{source}", "revision": value_digest(key),
        })

    def load(self, task: Any, key: dict[str, Any]) -> float | None:
        """The cached main score of `task` under `key`, or None."""
        meta = self.meta(key)
        path = self.cache.get_task_result_path(task.metadata.name, meta)
        key_file = path.parent / self.KEY_FILE
        if not path.is_file() or not key_file.is_file():
            return None
        if json.loads(key_file.read_text()) != json.loads(json.dumps(key, default=str)):
            return None
        result = self.cache.load_task_result(task.metadata.name, meta)
        if result is None or task.eval_splits[0] not in result.scores:
            return None
        score, _ = _split_scores(result, task)
        logger.info("  fp32 %s: %.4f (cached in %s)", task.metadata.name, score, path)
        return score

    def save(self, task_result: Any, key: dict[str, Any]) -> None:
        meta = self.meta(key)
        self.cache.save_to_cache(task_result, meta, encode_kwargs=dict(ENCODE_KWARGS))
        path = self.cache.get_task_result_path(task_result.task_name, meta)
        (path.parent / self.KEY_FILE).write_text(json.dumps(key, indent=2, default=str))


def compare_with_reference(
    model_dir: Path,
    tasks: Sequence[Any],
    *,
    max_loss: float = DEFAULT_MAX_LOSS,
    subset: int | None = None,
    cache_dir: Path | None = None,
    reference: str | Path | None = None,
    reference_model: Any = None,
    reference_runtime: str = "",
    output_size: tuple[int | None, str] | None = None,
) -> ValidationReport:
    """Score the folder's model and its fp32 reference on `tasks` (already built); the reference
    is the PyTorch source unless `reference_model` is given (see `reference_scores`).
    `output_size` (truncate_dim, output precision) also scores the model at that size."""
    import mteb

    from .mteb_model import encoder_model

    model = encoder_model(model_dir)
    smaller = _output_size_model(model, output_size)
    config = model.config
    fp32 = reference_scores(
        config, tasks, subset=subset, cache_dir=cache_dir, reference=reference,
        reference_model=reference_model, reference_runtime=reference_runtime,
    )
    rows = []
    for task in tasks:
        name = task.metadata.name
        score, _, seconds = _evaluate(model, task)
        metric, reference_score, reference_seconds = fp32[name]
        loss = relative_loss(reference_score, score)
        logger.info(f"  {config.precision} {name}: {score:.4f} in {seconds:.0f} s "
                    f"({change_text(loss)})")
        timings = {} if reference_seconds is None else {"fp32": round(reference_seconds, 1)}
        rows.append(ValidationRow(
            task=name, metric=metric, fp32=reference_score, quantized=score, relative_loss=loss,
            task_type=task.metadata.type, split=task.eval_splits[0],
            seconds={**timings, config.precision: round(seconds, 1)},
            fp32_cached=reference_seconds is None,
        ))
        if smaller is not None:
            _score_smaller(smaller, task, rows[-1])
    return ValidationReport(
        rows=rows,
        max_loss=max_loss,
        model=Path(model_dir).resolve().name,
        precision=config.precision,
        reference=_name(reference) if reference else config.source_model,
        split=tasks[0].eval_splits[0],
        subset=subset,
        mteb_version=mteb.__version__,
        output_size=None if smaller is None else smaller.label,
        engine=ENGINE_LABELS.get(model.model.engine.name, model.model.engine.name),
    )


def _output_size_model(model: Any, output_size: tuple[int | None, str] | None) -> Any:
    """The folder's model at `output_size`, or None when none is asked for.

    Raises:
        OptionError: a truncate_dim or precision the model cannot give.
    """
    if output_size is None:
        return None
    from .mteb_model import OutputSizeModel

    try:
        smaller = OutputSizeModel(model, *output_size)
    except ValueError as err:
        raise OptionError(f"--truncate-dim/--output-precision: {err}") from err
    return smaller


def _score_smaller(smaller: Any, task: Any, row: ValidationRow) -> None:
    score, _, seconds = _evaluate(smaller, task)
    row.smaller = score
    row.smaller_loss = relative_loss(row.quantized, score)
    row.seconds[smaller.label] = round(seconds, 1)
    logger.info(f"  {smaller.label} {task.metadata.name}: {score:.4f} "
                f"({change_text(row.smaller_loss)} vs full size)")


def check_fidelity(
    model_dir: Path, min_cosine: float = DEFAULT_MIN_COSINE, reference: str | Path | None = None
) -> FidelityResult:
    """The folder's model against its fp32 PyTorch source on the fixed fidelity texts."""
    from .fidelity import measure_fidelity
    from .mteb_model import encoder_model, reference_source, source_fingerprint

    model = encoder_model(model_dir)
    config = model.config
    source = reference_source(config, reference)
    revision = "" if reference else config.source_revision
    fingerprint = source_fingerprint(source, revision)
    return measure_fidelity(model, _reference_model(source, fingerprint), min_cosine)


def _name(path: str | Path) -> str:
    """A Hub id as it is; a local folder by its name only (the report is published)."""
    text = str(path)
    return Path(text).name if Path(text).expanduser().exists() or os.sep in text[:1] else text


def _command(
    model_dir: Path,
    tasks: Sequence[str] | None,
    beir_dirs: Sequence[Path],
    max_loss: float,
    subset: int | None,
    split: str,
    min_cosine: float | None = DEFAULT_MIN_COSINE,
    output_size: tuple[int | None, str] | None = None,
) -> str:
    options = [("--task", name) for name in tasks or []]
    options += [("--beir-dir", Path(folder).name) for folder in beir_dirs]
    options += [
        ("--max-loss", None if max_loss == DEFAULT_MAX_LOSS else float(max_loss)),
        ("--min-cosine", None if min_cosine == DEFAULT_MIN_COSINE else min_cosine),
        ("--subset", subset or None),
        ("--split", None if split == "test" else split),
        ("--truncate-dim", output_size[0] if output_size else None),
        ("--output-precision", output_size[1] if output_size else None),
    ]
    return command_line("validate", Path(model_dir).resolve().name, options=options)


def run_validation(
    model_dir: Path,
    *,
    tasks: list[str] | None = None,
    beir_dirs: Sequence[Path] = (),
    max_loss: float = DEFAULT_MAX_LOSS,
    subset: int | None = None,
    cache_dir: Path | None = None,
    split: str = "test",
    reference: str | Path | None = None,
    write: bool = True,
    min_cosine: float | None = DEFAULT_MIN_COSINE,
    truncate_dim: int | None = None,
    output_precision: str | None = None,
) -> ValidationReport:
    """Validate a model folder against its fp32 source and write validation.json/.md into it.

    Args:
        model_dir: the ipex-embeddings model folder.
        tasks: task names (ours: SciFact, SciFactReranking; or any mteb task); None: both ours,
            unless only `beir_dirs` are given.
        beir_dirs: BEIR-format folders, each evaluated as a retrieval task (NDCG@10).
        max_loss: the gate, in percent of the fp32 score, per task.
        subset: evaluate only the first `subset` queries and a slice of the corpus (tests).
        cache_dir, split: the fp32 score cache (~/.cache/ipex-embeddings/validate), the split.
        reference: the fp32 source model, when the folder's `source_model` cannot be found.
        write: write the report files into `model_dir`.
        min_cosine: the fidelity gate (see `fidelity`): the smallest cosine to the fp32 PyTorch
            source allowed on the fixed texts; None skips the check.
        truncate_dim, output_precision: also score the model at this output size (unset: full
            size, "float32"): the report's `output_size`, rows' `smaller`(`_loss`). Not gated.

    Returns the report (a model over the gate is a report that did not pass, see `gate_error`).

    Raises:
        OptionError: no tasks, --subset with a task that is not local, or a truncate_dim or
            output_precision the model cannot give.
        ValidationError: an unknown task (`UnknownTaskError`), a BEIR folder that cannot be read
            (`BeirDataError`), or task data that could not be loaded (`TaskError`).
        SourceModelError: the fp32 source model cannot be found.
    """
    model_dir = Path(model_dir)
    if _is_cross_encoder(model_dir):  # reranked SciFact candidates, not mteb tasks
        other = bool(tasks or beir_dirs or split != "test" or truncate_dim or output_precision)
        return _validate_cross_encoder(model_dir, other, max_loss, subset, reference, write)
    asked = truncate_dim is not None or output_precision is not None
    output_size = (truncate_dim, output_precision or "float32") if asked else None
    built = build_tasks(tasks, beir_dirs, split=split, subset=subset)
    report = compare_with_reference(
        model_dir, built, max_loss=max_loss, subset=subset, cache_dir=cache_dir,
        reference=reference, output_size=output_size,
    )
    if min_cosine is not None:  # the full-size model's, whatever output_size says
        report.fidelity = check_fidelity(model_dir, min_cosine, reference).to_dict()
        logger.info(FidelityResult.from_dict(report.fidelity).describe().replace("**", ""))
    report.command = _command(model_dir, tasks, beir_dirs, max_loss, subset, split, min_cosine,
                              output_size)
    if write:
        report.write(model_dir)
    return report


def _validate_cross_encoder(
    model_dir: Path, not_for_cross: bool, max_loss: float, subset: int | None,
    reference: str | Path | None, write: bool,
) -> ValidationReport:
    from .rerank_validation import validate_cross_encoder

    if not_for_cross:
        raise OptionError("A cross-encoder is validated by reranking SciFact's test claims; "
                          "--task, --beir-dir, --split, --truncate-dim and --output-precision "
                          "do not apply.")
    return validate_cross_encoder(model_dir, max_loss=max_loss, subset=subset,
                                  reference=reference, write=write)


def _is_cross_encoder(model_dir: Path) -> bool:
    from ipex_embeddings import ModelConfig

    try:
        return ModelConfig.load(model_dir).kind == "cross-encoder"
    except Exception:  # not a model folder: the bi-encoder path says what is wrong, as before
        return False


def gate_failure(report: dict[str, Any]) -> str:
    """What failed the gate, from a validation.json: the tasks over the loss limit, and the
    fidelity minimum."""
    limit = float(report["max_loss"])
    over = [f"{row['task']} ({row['relative_loss']:.2f} %)" for row in report["rows"]
            if row["relative_loss"] > limit]
    parts = [f"{', '.join(over)} lost more than --max-loss {limit:g} % of the fp32 score"] * bool(
        over)
    fidelity = report.get("fidelity") or {}
    if fidelity and not fidelity.get("passed"):
        worst = fidelity.get("worst", {})
        parts.append(
            f"the cosine to fp32 of {worst.get('kind')} {worst.get('text')!r} is "
            f"{fidelity['min']:.4f}, under --min-cosine {fidelity['min_cosine']:g}"
        )
    scores = report.get("scores") or {}
    if scores and not scores.get("passed"):
        parts.append(
            f"the scores differ from fp32's by a median {scores['median_abs_diff']:.4f}, over "
            f"{scores['max_shift']:g} of their standard deviation {scores['fp32_std']:.4f} (a "
            "different activation or scale than the source's?)"
        )
    return "; ".join(parts) + "."


def gate_error(report: ValidationReport) -> GateFailed:
    """The error that a failed `report` raises on the command line: what failed, and the fix."""
    rebuild = command_line("quantize", options=[("--max-loss", float(report.max_loss))])
    fix = (f" Rebuild with `{rebuild}` to keep the most sensitive layers in higher precision."
           if not hasattr(report, "first_stage")  # a cross-encoder's `RerankReport`: no tuning
           else " Use the fp32 folder (`ipex-embed quantize --precision fp32`) if it matters.")
    return GateFailed(gate_failure(json.loads(report.to_json())) + fix)
