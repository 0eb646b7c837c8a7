"""`ipex-embed validate`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..fidelity import DEFAULT_MIN_COSINE
from ..validate import DEFAULT_CACHE_DIR, DEFAULT_MAX_LOSS, LOCAL_TASK_NAMES
from .options import library_errors, model_dir_argument

__all__ = ["validate_command"]


@click.command("validate")
@model_dir_argument
@click.option(
    "--task",
    "tasks",
    multiple=True,
    help="Task to run (repeatable): SciFact, SciFactReranking, or any mteb task name "
    "(those need the Hub). Default: SciFact and SciFactReranking, unless --beir-dir is given.",
)
@click.option(
    "--beir-dir",
    "beir_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) to run as "
    "a retrieval task (repeatable).",
)
@click.option(
    "--max-loss",
    default=DEFAULT_MAX_LOSS,
    show_default=True,
    type=float,
    help="Largest relative loss per task, in percent of the fp32 score.",
)
@click.option("--split", default="test", show_default=True, help="Split of the local tasks.")
@click.option(
    "--subset",
    type=click.IntRange(min=1),
    help="Only the first N queries and a slice of the corpus (quick checks).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where fp32 reference scores are cached, as mteb's ResultCache under mteb/ "
    f"[default: {DEFAULT_CACHE_DIR}].",
)
@click.option(
    "--reference",
    help="The fp32 source model (folder or Hub id), when the folder's "
    "source_model cannot be found.",
)
@click.option(
    "--min-cosine",
    default=DEFAULT_MIN_COSINE,
    show_default=True,
    type=click.FloatRange(-1, 1),
    help="Smallest cosine to the fp32 source allowed on the fixed fidelity texts (short, "
    "medium, long, over-long; each as query and as document).",
)
@click.option(
    "--truncate-dim",
    type=click.IntRange(min=1),
    help="Also score the model at this many dimensions (Matryoshka: the first N, "
    "re-normalised), next to its full size.",
)
@click.option(
    "--output-precision",
    type=click.Choice(["float32", "int8", "uint8", "binary", "ubinary"]),
    help="Also score the model's vectors at this precision (as sentence-transformers' "
    "quantize_embeddings; int8/uint8 ranges from the calibration texts), next to full size.",
)
def validate_command(
    model_dir: Path, tasks: tuple[str, ...], beir_dirs: tuple[Path, ...], split: str,
    **options: float | int | Path | str | None,
) -> None:
    """Score MODEL_DIR and its fp32 PyTorch source with mteb, side by side; exit 1 when a task
    loses more than --max-loss percent, or a fixed text's cosine to fp32 is under --min-cosine.
    Writes validation.json and validation.md into MODEL_DIR."""
    from ipex_embeddings.folder import check_model_folder

    with library_errors():  # a damaged or foreign folder fails now, before any task data loads
        check_model_folder(model_dir)
    if all(name in LOCAL_TASK_NAMES for name in tasks):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to fetch: fail fast if asked
    from ..validate import REPORT_JSON, REPORT_MD, gate_error, run_validation

    click.echo(f"Validating {model_dir} (mteb, split {split})")
    with library_errors():
        report = run_validation(
            model_dir, tasks=list(tasks) or None, beir_dirs=beir_dirs, split=split,
            **options,  # type: ignore[arg-type]
        )
        click.echo("\n" + report.to_markdown())
        click.echo(f"Wrote {model_dir / REPORT_JSON} and {model_dir / REPORT_MD}")
        if not report.passed:
            raise gate_error(report)
