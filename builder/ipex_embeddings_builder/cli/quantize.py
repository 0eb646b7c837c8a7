"""`ipex-embed quantize`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..schemes import AUTO, plan_scheme
from .options import (
    calibration_options,
    library_errors,
    model_argument,
    scheme_option,
    source_options,
)

if TYPE_CHECKING:
    from ipex_embeddings import ModelConfig

    from ..calibration import CalibrationSet
    from ..quantize import QuantizeOptions
    from ..source import SourceModel

__all__ = ["quantize_command"]


@click.command("quantize")
@model_argument
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to write the model into (written whole, or not at all).",
)
@calibration_options
@click.option(
    "--precision", type=click.Choice(["int8", "bf16", "fp32"]), default="int8", show_default=True
)
@source_options
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--max-loss",
    type=float,
    help="Accuracy-aware int8: the largest relative loss (percent of fp32, per mteb task, on "
    "SciFact's train queries) to allow; the most sensitive layers are kept out of int8 until it "
    "is met, and the result is reported on the test queries (validation.json/.md).",
)
@scheme_option()
@click.option("--validation-subset", type=click.IntRange(min=1),
              help="Tune and report on this many SciFact queries only (quick checks; default: "
                   "all).")
def quantize_command(
    model: str,
    output: Path,
    calibration: Path | None,
    samples: int,
    precision: str,
    overwrite: bool,
    max_loss: float | None,
    scheme: str,
    validation_subset: int | None,
    **overrides: str | int | None,
) -> None:
    """Export MODEL (a local folder or Hub id; default: the shipped all-MiniLM-L6-v2) to OpenVINO
    and quantize it to int8 (static, or weights only: --scheme) into a model folder; an int8
    folder also gets an ONNX Runtime int8 model, which runs on AVX2-only CPUs."""
    from ..calibration import load_calibration
    from ..quantize import QuantizeOptions, quantize_to_folder
    from ..source import inspect_source
    from ..validate import DEFAULT_MAX_LOSS

    started = time.perf_counter()
    with library_errors():
        if _quantize_cross_encoder(model, output, calibration, samples, precision, overwrite,
                                   max_loss, {"scheme": scheme if scheme != AUTO else None,
                                              "validation_subset": validation_subset,
                                              **overrides}):
            return
        _check_scheme_options(scheme, precision)
        source = inspect_source(model, **overrides)  # type: ignore[arg-type]
        if precision == "int8":
            scheme, max_loss = plan_scheme(scheme, source.model_type, max_loss, DEFAULT_MAX_LOSS)
        calib = load_calibration(calibration, samples)
        click.echo(
            f"Quantizing {source.model_id} ({source.model_type}, {source.pooling} pooling, "
            f"max_seq_length={source.max_seq_length}, normalize={source.normalize}) to "
            f"{precision}{f' ({scheme})' * (precision == 'int8')} with {len(calib.texts)} "
            f"calibration texts from {calib.source}"
        )
        options = QuantizeOptions(precision=precision, scheme=scheme)
        if max_loss is None:
            config = quantize_to_folder(source, calib, output, options, overwrite)
        else:
            config = _tune(source, calib, output, options, max_loss, overwrite, validation_subset)
    click.echo(
        f"Wrote {output} ({config.precision}"
        f"{', ' + str(config.quantization.get('scheme')) if config.precision == 'int8' else ''}"
        f", {config.dimension}-d) in {time.perf_counter() - started:.1f} s"
    )


def _check_scheme_options(scheme: str, precision: str) -> None:
    """Refuse a scheme for a precision that is not int8.

    Raises:
        OptionError: a scheme other than auto with --precision fp32 or bf16.
    """
    from ..errors import OptionError

    if precision != "int8" and scheme != AUTO:
        raise OptionError(f"--scheme {scheme} is an int8 scheme; leave it out with --precision "
                          f"{precision}, or use --precision int8.")


def _tune(
    source: SourceModel,
    calib: CalibrationSet,
    output: Path,
    options: QuantizeOptions,
    max_loss: float,
    overwrite: bool,
    subset: int | None = None,
) -> ModelConfig:
    """`tune_to_folder`, then its report on the test queries; returns the model's config."""
    from ..tuning import tune_to_folder

    result = tune_to_folder(source, calib, output, options, max_loss, overwrite=overwrite,
                            subset=subset)
    if result.report is not None:
        click.echo("\n" + result.report.to_markdown())
        if not result.report.passed:
            click.echo(
                f"Warning: the tuning queries met --max-loss {max_loss:g}, but on the test "
                "queries above it did not; `ipex-embed validate` (and build) will refuse it.",
                err=True,
            )
    return result.config


def _quantize_cross_encoder(
    model: str, output: Path, calibration: Path | None, samples: int, precision: str,
    overwrite: bool, max_loss: float | None, overrides: dict[str, str | int | None],
) -> bool:
    """Build MODEL as a cross-encoder folder if it is one; False when it is not."""
    from ..cross_build import (
        cross_encoder_source,
        quantize_cross_encoder_source,
        refuse_bi_encoder_options,
    )

    found = cross_encoder_source(model, overrides.get("revision"))  # type: ignore[arg-type]
    if found is None:
        return False
    refuse_bi_encoder_options({"--calibration": calibration, "--max-loss": max_loss, **{
        f"--{k.replace('_', '-')}": v for k, v in overrides.items()
        if k not in ("revision", "max_seq_length")}})
    started = time.perf_counter()
    click.echo(f"Quantizing cross-encoder {found.model_id} to {precision}"
               + (f" with {samples} SciFact train (query, passage) pairs" * (precision == "int8")))
    config = quantize_cross_encoder_source(
        found.path, found.model_id, output, precision=precision, samples=samples,
        max_seq_length=overrides.get("max_seq_length"), overwrite=overwrite,  # type: ignore
        revision=found.revision,
    )
    click.echo(f"Wrote {output} (cross-encoder, {config.precision}, {config.dimension} logit(s), "
               f"{config.activation}) in {time.perf_counter() - started:.1f} s")
    return True
