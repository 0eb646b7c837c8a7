"""The builder's exceptions: plain exceptions that a library caller can catch.

Every stage raises a subclass of `BuilderError` whose message says what went wrong and how to fix
it. Only the command line (`ipex_embeddings_builder.cli`) turns them into exit codes: 2 for an
`OptionError` (options that cannot work together, as click's usage errors), 1 for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BenchError",
    "BeirDataError",
    "BuildError",
    "BuilderError",
    "CalibrationError",
    "GateFailed",
    "OptionError",
    "OutputExistsError",
    "PublishError",
    "SourceModelError",
    "TaskError",
    "TuningError",
    "UnknownTaskError",
    "ValidationError",
]


class BuilderError(Exception):
    """Base of the builder's errors; the message says what to change."""


class OptionError(BuilderError):
    """The options asked for cannot work together (the command line exits 2 and shows usage)."""


class SourceModelError(BuilderError):
    """The source model cannot be turned into an ipex-embeddings model as it stands."""


class CalibrationError(BuilderError):
    """The calibration texts cannot be read, or are too few."""


class OutputExistsError(BuilderError):
    """The output folder exists, is not empty, and replacing it was not asked for."""


class TuningError(BuilderError):
    """Accuracy-aware quantization found no candidate within the loss limit; `steps` are the
    candidates it tried (`tuning.TuningStep`: scheme, ops kept, losses), in order."""

    def __init__(self, message: str, steps: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.steps = list(steps)


class ValidationError(BuilderError):
    """Validation cannot run: its tasks or their data are not usable."""


class TaskError(ValidationError):
    """A task's data could not be loaded."""


class UnknownTaskError(ValidationError):
    """A task name that is neither one of ours nor in mteb's registry."""


class BeirDataError(ValidationError):
    """A BEIR folder is missing files or its qrels do not match its corpus."""


class GateFailed(BuilderError):
    """The model lost more than the loss limit, or is under the fidelity minimum."""


class BuildError(BuilderError):
    """The build stopped; the message says why and what to change."""


class PublishError(BuilderError):
    """Publishing cannot start or did not finish; the message says what to do."""


class BenchError(BuilderError, ValueError):
    """The benchmark cannot run as asked (a ValueError too, as it was before this class)."""
