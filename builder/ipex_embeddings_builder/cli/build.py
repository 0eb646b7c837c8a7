"""`ipex-embed build`."""

from __future__ import annotations

from typing import Any

import click

from ..build import BENCH_MODES
from .options import (
    calibration_options,
    library_errors,
    model_argument,
    output_option,
    scheme_option,
    source_options,
)

__all__ = ["build_command"]


@click.command("build")
@model_argument
@output_option("Model folder to write (resumes a build that was interrupted).")
@click.option("--max-loss", type=click.FloatRange(min=0),
              help="Largest relative loss per task, in percent of the fp32 score: the target of "
                   "the tuning and the gate before publishing [default: 1.0].")
@click.option("--min-cosine", type=click.FloatRange(-1, 1),
              help="Smallest cosine to fp32 allowed on validate's fixed short-to-long texts: "
                   "part of the gate before publishing [default: 0.9].")
@click.option("--tune/--no-tune", default=True, show_default=True,
              help="Accuracy-aware quantization: keep the most sensitive layers out of int8 until "
                   "--max-loss is met on SciFact's train queries. --no-tune: all layers in int8.")
@scheme_option(" With --no-tune, auto is static.")
@calibration_options
@source_options
@click.option("--validation-subset", type=click.IntRange(min=1),
              help="Tune and validate on this many queries only (quick checks; default: all).")
@click.option("--bench", "bench", type=click.Choice(BENCH_MODES), default="quick",
              show_default=True,
              help="Benchmark run to include in the card: quick (about a minute), full (the "
                   "whole `ipex-embed bench`, most of an hour on 2 cores) or skip.")
@click.option("--push-to", metavar="REPO_ID", help="Publish to this Hub repo (user/name).")
@click.option("--private", is_flag=True, help="Create the Hub repo as private.")
@click.option("--create-pr", is_flag=True, help="Publish as a pull request, not to main.")
@click.option("--dry-run", is_flag=True, help="Build the folder and print the commit plan only.")
@click.option("--overwrite", is_flag=True, help="Replace an --output not made by build.")
@click.option("--force", is_flag=True, help="Re-run every stage, even those up to date.")
def build_command(**kwargs: Any) -> None:
    """Build MODEL (a folder or Hub id; default: the shipped all-MiniLM-L6-v2) into a validated,
    benchmarked int8 model folder with a model card, and publish it with --push-to."""
    from ..build import BuildOptions, run_build

    with library_errors():
        run_build(BuildOptions(**kwargs))

