"""`ipex-embed embed`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click

from .options import library_errors

__all__ = ["OnceCommand", "embed_command"]


class OnceCommand(click.Command):
    """A command whose single-value options refuse a second value (click keeps only the last,
    silently). Options declared `multiple` take every value; a repeated flag is harmless."""

    def make_parser(self, ctx: click.Context) -> Any:
        """click's parser, checking the options it saw for repeats."""
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_once(args: list[str]) -> Any:
            opts, rest, order = parse(args)
            counts = Counter(order)
            for param, count in counts.items():
                single = isinstance(param, click.Option) and not (
                    param.multiple or param.count or param.is_flag)
                if single and count > 1:
                    raise click.UsageError(
                        f"{param.opts[0]} was given {count} times; it takes one value. Give it "
                        "once.", ctx)
            return opts, rest, order

        parser.parse_args = parse_once
        return parser


@click.command("embed", cls=OnceCommand)
@click.argument("model")
@click.option("--input", "-i", "inputs", required=True, multiple=True,
              help="A JSONL, Parquet or CSV file, a folder of them, or a glob (quote it); repeat "
              "to embed several, in the order given.")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Folder for the Parquet shards (re-run the same command to resume).")
@click.option("--overwrite", is_flag=True,
              help="Delete the shards of an earlier run in --output that differs from this one "
              "(other inputs, settings or model) and embed again, instead of refusing.")
@click.option("--text-field", "text_fields", multiple=True, default=("text",), show_default=True,
              help="Field with the text; repeat to join several with a space (title and text).")
@click.option("--id-field", help='Field with the row id (default: "<file name>:<row>").')
@click.option("--kind", type=click.Choice(["document", "query"]), default="document",
              show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--shard-rows", default=10_000, show_default=True, help="Input rows per shard.")
@click.option("--include-text", is_flag=True, help="Also write the text into the shards.")
@click.option("--skip-bad-rows", is_flag=True,
              help="Write bad rows to <output>/_rejects/*.jsonl and embed the rest.")
@click.option("--threads", type=int,
              help="Inference threads (local: default every core; ray: per actor, default 1).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="Ray cluster address, e.g. HOST:6379 or auto (engine ray; "
              "default: $RAY_ADDRESS, else a new local cluster).")
@click.option("--actors", type=int, default=1, show_default=True,
              help="Ray actors, each loading the model once (engine ray).")
def embed_command(
    model: str, inputs: tuple[str, ...], output: Path, overwrite: bool, engine: str,
    address: str | None, actors: int, **kwargs: object,
) -> None:
    """Embed a corpus (JSONL, Parquet or CSV) with MODEL into resumable Parquet shards.

    Exits non-zero when nothing could be embedded (no rows, or every row rejected)."""
    from ..corpus import CorpusError
    from ..embed import EmbedOptions, embed_corpus

    kwargs["text_fields"] = tuple(kwargs["text_fields"])  # type: ignore[arg-type]
    ray_options = {"address": address, "actors": actors}
    with library_errors(CorpusError, ValueError, ImportError):
        result = embed_corpus(  # type: ignore[arg-type]
            model, inputs, output, EmbedOptions(**kwargs), engine=engine,
            ray_options=ray_options, overwrite=overwrite,
        )
    if not result.rows_embedded and not result.shards_skipped:
        raise click.ClickException(f"Nothing was embedded into {output}.")
    duplicates = f", {result.duplicate_ids} with a repeated id" if result.duplicate_ids else ""
    click.echo(
        f"{result.rows_embedded} rows embedded into {len(result.shards_written)} new shard(s) "
        f"in {output} ({result.shards_skipped} already complete, {result.rows_rejected} "
        f"rejected{duplicates})"
    )
