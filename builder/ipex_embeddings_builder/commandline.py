"""The one place that writes an `ipex-embed` command line (to rebuild or re-run something)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

__all__ = ["command_line"]


def command_line(
    command: str,
    *arguments: Any,
    options: Iterable[tuple[str, Any]] = (),
    flags: Iterable[str] = (),
) -> str:
    """`ipex-embed COMMAND ARGUMENTS... --option VALUE... --flag...`, quoted for a shell.

    Options whose value is None are left out (repeat a name to repeat an option); floats are
    written with `:g`, so 1.0 reads `1`. Arguments and values are written as given: callers pass
    folder names, not local paths, when the line is published.
    """
    parts = ["ipex-embed", command, *(str(argument) for argument in arguments)]
    for name, value in options:
        if value is not None:
            parts += [name, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join([*parts, *flags])
