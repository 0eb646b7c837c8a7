"""`ipex-embed serve`: the models over HTTP (OpenAI, TEI and Cohere routes), via
`ipex_embeddings.serve.run_server`. Needs only the runtime and the `serve` extra."""

from __future__ import annotations

import click

from .embed import OnceCommand

__all__ = ["serve_command"]


def _check_folder(path: str, option: str) -> str:
    """The folder's kind, or a click error naming the option (before any port is bound)."""
    from ipex_embeddings import ModelFolderError
    from ipex_embeddings.cross_encoder import folder_config

    try:
        return folder_config(path).kind
    except ModelFolderError as err:
        raise click.BadParameter(str(err), param_hint=option) from err


@click.command("serve", cls=OnceCommand)
@click.argument("model")
@click.option("--reranker", help="Rerank model folder: a cross-encoder, or a bi-encoder (cosine "
              "of query and document vectors). Default: MODEL if it is a cross-encoder, else no "
              "rerank routes.")
@click.option("--model-name", help="MODEL's id in /v1/models and the `model` field "
              "(default: its source model, e.g. sentence-transformers/all-MiniLM-L6-v2).")
@click.option("--reranker-name", help="The reranker's id (default: its source model).")
@click.option("--alias", "aliases", multiple=True, help="Another id MODEL answers to; repeat. "
              "E.g. text-embedding-3-small for clients that accept only OpenAI's names.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface, e.g. in a container).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--api-key", envvar="IPEX_EMBED_API_KEY", show_envvar=True,
              help="Require `Authorization: Bearer KEY` on every route but /health and "
              "/metrics. Prefer the environment variable: a command line is visible to others.")
@click.option("--max-batch", default=256, show_default=True, type=click.IntRange(min=1),
              help="Most texts coalesced into one model call.")
@click.option("--max-wait-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Longest a text waits for batch-mates when the model is idle (0: none; "
                   "texts arriving during a call still form the next call).")
@click.option("--max-queue", default=8192, show_default=True, type=click.IntRange(min=1),
              help="Most texts queued or running per model; more get 429 with Retry-After.")
@click.option("--max-inputs", default=2048, show_default=True, type=click.IntRange(min=1),
              help="Most texts per request.")
@click.option("--max-chars", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Most characters per text.")
@click.option("--threads", type=click.IntRange(min=1),
              help="Inference threads per model (default: every core this process may use).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Server processes on one port, each loading the models (see "
              "docs/serving.md for sizing; give --threads = cores / workers).")
@click.option("--graceful-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0),
              help="Seconds SIGTERM waits for requests in flight before closing them.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve_command(model: str, reranker: str | None, aliases: tuple[str, ...], host: str,
                  port: int, workers: int, graceful_timeout: float, log_level: str,
                  **limits: object) -> None:
    """Serve MODEL (and a reranker) over HTTP: OpenAI /v1/embeddings, TEI /embed and /rerank,
    Cohere /v1/rerank, /health and /metrics. SIGTERM drains and exits 0."""
    from ipex_embeddings.serve import ServeSettings, run_server

    try:
        settings = ServeSettings(model=model, reranker=reranker, aliases=aliases,
                                 **limits).check()  # type: ignore[arg-type]
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    _check_folder(model, "MODEL")
    if reranker is not None:
        _check_folder(reranker, "--reranker")
    status = run_server(settings, host=host, port=port, workers=workers,
                        graceful_timeout=graceful_timeout, log_level=log_level)
    if status:
        raise click.ClickException("The models failed to load; see the log above.")
