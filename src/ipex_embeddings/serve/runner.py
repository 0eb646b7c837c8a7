"""Run the server with uvicorn: one process, or several worker processes on one port."""

from __future__ import annotations

import copy
import logging
import os
import signal
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .app import SETTINGS_ENV, create_app, quiet_truncation_warnings
from .settings import ServeSettings

__all__ = ["log_config", "run_server"]

logger = logging.getLogger(__name__)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config, with the runtime's loggers (`ipex_embeddings.*`) on stderr at
    `level` too (applied in every worker process)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["ipex_embeddings"] = {
        "handlers": ["default"], "level": level.upper(), "propagate": False,
    }
    return config


def run_server(settings: ServeSettings, *, host: str = "127.0.0.1", port: int = 8080,
               workers: int = 1, graceful_timeout: float = 30.0, log_level: str = "info") -> int:
    """Serve until SIGTERM or SIGINT, then drain: stop accepting, let requests in flight finish
    (at most `graceful_timeout` seconds), stop the batchers. Returns the exit status: 0 after a
    clean shutdown, 1 when the models failed to load.

    `workers` > 1 runs that many processes on one port (each loads the models; give each
    `settings.threads` = cores / workers), through `$IPEX_EMBED_SERVE_SETTINGS`.

    Raises:
        ValueError: a bad setting.
        OSError: the port cannot be bound.
    """
    settings.check()
    quiet_truncation_warnings()
    options: dict[str, Any] = {
        "host": host, "port": port, "timeout_graceful_shutdown": graceful_timeout,
        "log_config": log_config(log_level), "log_level": log_level,
    }
    if workers > 1:
        os.environ[SETTINGS_ENV] = settings.to_json()
        uvicorn.run("ipex_embeddings.serve.app:create_app_from_env", factory=True,
                    workers=workers, **options)
        return 0
    failed: list[BaseException] = []

    def stop(err: BaseException) -> None:
        failed.append(err)
        server.should_exit = True

    server = uvicorn.Server(uvicorn.Config(create_app(settings, on_load_error=stop), **options))
    # uvicorn re-raises the signal it stopped on once drained; with the default handler a
    # SIGTERM would then kill the process (exit -15) after a clean shutdown. Take it as done.
    previous = {sig: signal.signal(sig, _drained) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed or not server.started:
        return 1
    return 0


def _drained(signum: int, frame: object) -> None:
    logger.info("Stopped on %s after draining.", signal.Signals(signum).name)
