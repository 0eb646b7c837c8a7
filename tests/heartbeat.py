"""Measure whether awaited work leaves the event loop free: a 2 ms heartbeat runs beside it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def with_heartbeat(
    start_work: Callable[[], Awaitable[Any]],
) -> tuple[Any, float, float, int]:
    """Start and await work while a 2 ms heartbeat runs: (result, longest gap, elapsed, beats)."""
    gaps: list[float] = []
    finished = asyncio.Event()

    async def beat() -> None:
        last = time.perf_counter()
        while not finished.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beater = asyncio.create_task(beat())
    await asyncio.sleep(0.01)
    gaps.clear()
    started = time.perf_counter()
    result = await start_work()
    elapsed = time.perf_counter() - started
    finished.set()
    await beater
    return result, max(gaps), elapsed, len(gaps)
