"""Options shared by several commands, declared once, and the one error translation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from ipex_embeddings.errors import InvalidTextError, ModelFolderError, TruncationError
from ipex_embeddings.pooling import POOLING_MODES

from ..calibration import DEFAULT_SAMPLES
from ..demo import DEMO_MODEL
from ..errors import BuilderError, OptionError

__all__ = [
    "RUNTIME_ERRORS",
    "calibration_options",
    "library_errors",
    "model_argument",
    "model_dir_argument",
    "output_option",
    "scheme_option",
    "source_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def _apply(decorators: list[Callable[[F], F]]) -> Callable[[F], F]:
    def wrap(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return wrap


RUNTIME_ERRORS: tuple[type[ValueError], ...] = (
    ModelFolderError, TruncationError, InvalidTextError,
)
"""The runtime's documented errors (`ipex_embeddings.errors`, all ValueErrors; UnsafeModelError
is a ModelFolderError): a damaged or foreign model folder, over-long or invalid texts."""


@contextmanager
def library_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn the library's errors into click's: an `OptionError` exits 2 with the usage, as a
    click usage error; any other `BuilderError`, the runtime's `RUNTIME_ERRORS` (and the types
    in `also`) exit 1 with their message on one line, never a traceback."""
    try:
        yield
    except OptionError as err:
        raise click.UsageError(str(err)) from err
    except RUNTIME_ERRORS as err:
        raise click.ClickException(" ".join(str(err).split())) from err
    except (BuilderError, *also) as err:
        raise click.ClickException(str(err)) from err


def model_argument(function: F) -> F:
    """MODEL: a local folder or Hub id; default: the shipped all-MiniLM-L6-v2."""
    return click.argument("model", default=DEMO_MODEL, required=False)(function)


def model_dir_argument(function: F) -> F:
    """MODEL_DIR: an existing ipex-embeddings model folder."""
    argument = click.argument(
        "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
    )
    return argument(function)


def output_option(help: str) -> Callable[[F], F]:  # noqa: A002 (click's name)
    """--output/-o, a folder to write, required."""
    return click.option(
        "--output", "-o", type=click.Path(path_type=Path), required=True, help=help
    )


calibration_options = _apply([
    click.option(
        "--calibration",
        type=click.Path(path_type=Path),
        help='JSONL ({"text": ...} per line) or plain text file, calibrated as documents; '
        "default: SciFact documents (document prompt), train queries (query prompt) and short "
        "texts.",
    ),
    click.option(
        "--samples", default=DEFAULT_SAMPLES, show_default=True, help="Calibration texts to use."
    ),
])
"""--calibration and --samples (see `calibration.load_calibration`)."""

source_options = _apply([
    click.option(
        "--pooling",
        type=click.Choice(POOLING_MODES),
        help="Override (or supply, for models without sentence-transformers files) pooling.",
    ),
    click.option(
        "--trust-remote-code",
        is_flag=True,
        help="Run the model's own modelling code (config.json auto_map); read it first.",
    ),
    click.option("--max-seq-length", type=int, help="Override the model's max_seq_length."),
    click.option("--query-prompt", help="Override the text put before queries."),
    click.option("--document-prompt", help="Override the text put before documents."),
    click.option("--revision", help="Hub revision of MODEL."),
])
"""The overrides of what the source model declares (see `source.inspect_source`)."""


def _scheme(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from ..schemes import candidate_schemes

    with library_errors():
        candidate_schemes(value)  # an unknown name exits 2, with the choices
    return value


def scheme_option(extra_help: str = "") -> Callable[[F], F]:
    """--scheme: an int8 scheme or auto (see `schemes`), checked when parsed."""
    from ..schemes import AUTO, SCHEME_HELP

    return click.option("--scheme", default=AUTO, show_default=True, metavar="SCHEME",
                        callback=_scheme, help="int8 scheme: " + SCHEME_HELP + extra_help)
