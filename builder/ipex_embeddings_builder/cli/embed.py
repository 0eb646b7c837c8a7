"""`ipex-embed embed`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .options import library_errors

__all__ = ["embed_command"]


@click.command("embed")
@click.argument("model")
@click.option("--input", "-i", "inputs", required=True,
              help="A JSONL, Parquet or CSV file, a folder of them, or a glob (quote it).")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Folder for the Parquet shards (re-run the same command to resume).")
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
    model: str, inputs: str, output: Path, engine: str, address: str | None, actors: int,
    **kwargs: object,
) -> None:
    """Embed a corpus (JSONL, Parquet or CSV) with MODEL into resumable Parquet shards."""
    from ..corpus import CorpusError
    from ..embed import EmbedOptions, embed_corpus

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kwargs["text_fields"] = tuple(kwargs["text_fields"])  # type: ignore[arg-type]
    ray_options = {"address": address, "actors": actors}
    with library_errors(CorpusError, ValueError, ImportError):
        result = embed_corpus(  # type: ignore[arg-type]
            model, inputs, output, EmbedOptions(**kwargs), engine=engine, ray_options=ray_options
        )
    click.echo(
        f"{result.rows_embedded} rows embedded into {len(result.shards_written)} new shard(s) "
        f"in {output} ({result.shards_skipped} already complete, {result.rows_rejected} rejected)"
    )
