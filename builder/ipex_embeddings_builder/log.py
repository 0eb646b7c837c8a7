"""The builder's two kinds of log record: diagnostics, and the lines of a run's report.

Library code logs; it never prints. Diagnostics (what validation and tuning are doing) go to the
module's own logger. The lines that are the result a user asked for (a build's stage lines, a
bench run's progress, a commit plan) go to a logger under `REPORT_LOGGER`, so that the command
line can write them to stdout and everything else to stderr (`cli.configure_logging`).
"""

from __future__ import annotations

import logging

__all__ = ["REPORT_LOGGER", "report_logger"]

REPORT_LOGGER = "ipex_embeddings_builder.report"


def report_logger(module: str) -> logging.Logger:
    """The report logger of `module` (a `__name__`): `<REPORT_LOGGER>.<its last part>`."""
    return logging.getLogger(f"{REPORT_LOGGER}.{module.rsplit('.', 1)[-1]}")
