"""`ipex-embed`: turn a Hugging Face embedding model into a validated int8 OpenVINO model.

The command line only: each command parses its options (shared ones in `options`), calls one
library function and turns a `BuilderError` into a click error (`options.library_errors`).
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from ..log import REPORT_LOGGER

__all__ = ["configure_logging", "main"]


# One module per command, imported only when run (mteb, torch are slow to import).
LAZY_COMMANDS = {
    "quantize": "ipex_embeddings_builder.cli.quantize:quantize_command",
    "validate": "ipex_embeddings_builder.cli.validate:validate_command",
    "bench": "ipex_embeddings_builder.cli.bench:bench_command",
    "build": "ipex_embeddings_builder.cli.build:build_command",
    "publish": "ipex_embeddings_builder.cli.publish:publish_command",
    "embed": "ipex_embeddings_builder.cli.embed:embed_command",
    "serve": "ipex_embeddings_builder.cli.serve:serve_command",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a library error it did not translate still leaves as one line and
        exit 1, never a traceback (`options.library_errors`)."""
        from .options import library_errors

        with library_errors():
            return super().invoke(ctx)


class _NotReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(REPORT_LOGGER)


def _replace_handler(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in [h for h in logger.handlers if getattr(h, "_ipex_embed_cli", False)]:
        logger.removeHandler(old)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._ipex_embed_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def configure_logging() -> None:
    """INFO and above from the builder's and the runtime's modules, one plain line each: a
    run's report lines (`log.REPORT_LOGGER`) to stdout, everything else to stderr.

    Called per invocation, so the handlers write to the streams of this run (a test's runner
    swaps them); the previous run's handlers are replaced, never stacked.
    """
    diagnostics = logging.StreamHandler(sys.stderr)
    diagnostics.addFilter(_NotReport())
    _replace_handler(logging.getLogger("ipex_embeddings_builder"), diagnostics)
    _replace_handler(logging.getLogger(REPORT_LOGGER), logging.StreamHandler(sys.stdout))
    # the runtime's own lines (e.g. `embed --engine ray`'s actors) the same way; no root
    # handler, so no line is printed twice
    _replace_handler(logging.getLogger("ipex_embeddings"), logging.StreamHandler(sys.stderr))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ipex-embeddings")
def main() -> None:
    """Build, validate, benchmark and publish int8 text-embedding models for Intel Xeon CPUs."""
    configure_logging()


if __name__ == "__main__":
    main()
