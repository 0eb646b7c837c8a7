"""`ipex-embed`: turn a Hugging Face embedding model into a validated int8 OpenVINO model."""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

import click

from ipex_embeddings.pooling import POOLING_MODES

from .calibration import load_calibration
from .demo import DEMO_MODEL

__all__ = ["main"]


# Stage commands that live in their own modules, imported only when run (mteb, torch are slow).
LAZY_COMMANDS = {
    "validate": "ipex_embeddings_builder.validate:validate_command",
    "bench": "ipex_embeddings_builder.bench:bench_command",
    "build": "ipex_embeddings_builder.build:build_command",
    "publish": "ipex_embeddings_builder.publish:publish_command",
    "embed": "ipex_embeddings_builder.embed:embed_command",
}


class LazyGroup(click.Group):
    """A click group that imports a stage's module only when that stage is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


def configure_logging() -> None:
    """INFO and above from the builder's modules to stderr, one plain line each.

    Called per invocation, so the handler writes to the stderr of this run (a test's runner
    swaps it); the previous run's handler is replaced, never stacked.
    """
    logger = logging.getLogger("ipex_embeddings_builder")
    for handler in [h for h in logger.handlers if getattr(h, "_ipex_embed_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._ipex_embed_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ipex-embeddings")
def main() -> None:
    """Build, validate, benchmark and publish int8 text-embedding models for Intel Xeon CPUs."""
    configure_logging()


@main.command()
@click.argument("model", default=DEMO_MODEL, required=False)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder to write the model into (written whole, or not at all).",
)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path),
    help='JSONL ({"text": ...} per line) or plain text file, calibrated as documents; default: '
    "SciFact documents (document prompt), train queries (query prompt) and short texts.",
)
@click.option("--samples", default=300, show_default=True, help="Calibration texts to use.")
@click.option(
    "--pooling",
    type=click.Choice(POOLING_MODES),
    help="Override (or supply, for models without sentence-transformers files) pooling.",
)
@click.option("--trust-remote-code", is_flag=True,
              help="Run the model's own modelling code (config.json auto_map); read it first.")
@click.option(
    "--precision", type=click.Choice(["int8", "bf16", "fp32"]), default="int8", show_default=True
)
@click.option("--max-seq-length", type=int, help="Override the model's max_seq_length.")
@click.option("--query-prompt", help="Override the text put before queries.")
@click.option("--document-prompt", help="Override the text put before documents.")
@click.option("--revision", help="Hub revision of MODEL.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--max-loss",
    type=float,
    help="Accuracy-aware int8: the largest relative loss (percent of fp32, per mteb task, on "
    "SciFact's train queries) to allow; the most sensitive layers are kept out of int8 until it "
    "is met, and the result is reported on the test queries (validation.json/.md).",
)
def quantize(
    model: str,
    output: Path,
    calibration: Path | None,
    samples: int,
    pooling: str | None,
    precision: str,
    max_seq_length: int | None,
    query_prompt: str | None,
    document_prompt: str | None,
    revision: str | None,
    overwrite: bool,
    max_loss: float | None,
    trust_remote_code: bool,
) -> None:
    """Export MODEL (a local folder or Hub id; default: the shipped all-MiniLM-L6-v2) to OpenVINO
    and quantize it with static int8 calibration into a model folder."""
    from .quantize import QuantizeOptions, quantize_to_folder
    from .source import inspect_source

    started = time.perf_counter()
    source = inspect_source(
        model,
        revision=revision,
        pooling=pooling,
        max_seq_length=max_seq_length,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
        trust_remote_code=trust_remote_code,
    )
    calib = load_calibration(calibration, samples)
    click.echo(
        f"Quantizing {source.model_id} ({source.model_type}, {source.pooling} pooling, "
        f"max_seq_length={source.max_seq_length}, normalize={source.normalize}) to {precision} "
        f"with {len(calib.texts)} calibration texts from {calib.source}"
    )
    if max_loss is not None:
        from .tuning import tune_to_folder

        options = QuantizeOptions(precision=precision)
        result = tune_to_folder(source, calib, output, options, max_loss, overwrite=overwrite)
        config = result.config
        if result.report is not None:
            click.echo("\n" + result.report.to_markdown())
            if not result.report.passed:
                click.echo(
                    f"Warning: the tuning queries met --max-loss {max_loss:g}, but on the test "
                    "queries above it did not; `ipex-embed validate` (and build) will refuse it.",
                    err=True,
                )
    else:
        config = quantize_to_folder(
            source, calib, output, QuantizeOptions(precision=precision), overwrite
        )
    click.echo(
        f"Wrote {output} ({config.precision}, {config.dimension}-d) in "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
