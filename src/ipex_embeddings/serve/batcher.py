"""Dynamic batching: concurrent requests' inputs coalesced into one model call.

Each request is a job: a key (the options its inputs need, e.g. ("query", truncate_dim=128)) and
its inputs. The batcher's loop takes the oldest job, waits at most `max_wait_s` from its arrival
for more jobs with the same key, up to `max_batch` inputs, and runs them as one call in its own
worker thread (never on the event loop); each job gets its own rows back. Jobs with another key
wait for a later call, so options never mix. One call runs at a time per batcher; jobs that
arrive meanwhile form the next call.

The models pad every input to a fixed width bucket, so a row never depends on its batch-mates:
coalescing changes no vector, bit for bit. When a call fails (a bad text in one request), each
job of it is run alone, so the error reaches only the request at fault, with its own indices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import NotReadyError, QueueFullError
from .metrics import Metrics

__all__ = ["Batcher", "RunBatch"]

logger = logging.getLogger(__name__)

RunBatch = Callable[[Hashable, list[Any]], Sequence[np.ndarray]]
"""`run(key, inputs)`: arrays that each have one row per input (e.g. vectors and token counts)."""


@dataclass
class Job:
    """One request's inputs waiting in a batcher."""

    key: Hashable
    inputs: list[Any]
    future: asyncio.Future[tuple[np.ndarray, ...]]
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """Queues jobs of one model and runs them in coalesced calls on a worker thread.

    Create and use it on one event loop: `start()`, then `await submit(key, inputs)` from any
    number of requests, then `await stop()`.
    """

    def __init__(self, name: str, run: RunBatch, *, max_batch: int, max_wait_s: float,
                 max_queue: int, metrics: Metrics) -> None:
        self.name = name
        self._run_batch = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._metrics = metrics
        self._jobs: deque[Job] = deque()
        self._pending = 0  # inputs queued or running
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ipex-serve-{name}")
        self._task: asyncio.Task[None] | None = None
        self._running: list[Job] = []
        self._stopping = False

    @property
    def pending(self) -> int:
        """Inputs queued or running now."""
        return self._pending

    def start(self) -> None:
        """Start the loop that forms and runs the calls (on the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Finish the running call, refuse queued jobs with 503, and end the worker thread."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for job in [*self._running, *self._jobs]:
            if not job.future.done():
                job.future.set_exception(NotReadyError("The server is shutting down."))
        self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, inputs: list[Any]) -> tuple[np.ndarray, ...]:
        """Queue `inputs` (one request's) and wait for their rows: one array per output of the
        run function, each of len(inputs) rows, in input order.

        Raises:
            QueueFullError: queueing them would exceed `max_queue` inputs (answer 429).
            NotReadyError: the server is shutting down.
            Exception: what the model raised on these inputs run alone (e.g. InvalidTextError).
        """
        if self._stopping:
            raise NotReadyError("The server is shutting down.")
        if self._pending + len(inputs) > self.max_queue:
            self._metrics.rejected.labels(self.name).inc()
            raise QueueFullError(self.name, self._pending, self.max_queue)
        job = Job(key, inputs, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._add_pending(len(inputs))
        self._arrived.set()
        return await job.future

    def _add_pending(self, count: int) -> None:
        self._pending += count
        self._metrics.queue_depth.labels(self.name).set(self._pending)

    async def _loop(self) -> None:
        while True:
            while not self._jobs:
                self._arrived.clear()
                await self._arrived.wait()
            batch = await self._collect()
            if batch:
                await self._run(batch)

    def _same_key_inputs(self, key: Hashable) -> int:
        return sum(len(job.inputs) for job in self._jobs if job.key == key)

    async def _collect(self) -> list[Job]:
        """The next call's jobs: the oldest job's key, FIFO, up to `max_batch` inputs (a larger
        job runs alone), after waiting until `max_wait_s` past the oldest job's arrival."""
        first = self._jobs[0]
        deadline = first.enqueued + self.max_wait_s
        while self._same_key_inputs(first.key) < self.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        batch: list[Job] = []
        count = 0
        for job in list(self._jobs):
            if job.key != first.key:
                continue
            if batch and count + len(job.inputs) > self.max_batch:
                break
            self._jobs.remove(job)
            if job.future.done():  # its request was cancelled (client gone) while queued
                self._add_pending(-len(job.inputs))
                continue
            batch.append(job)
            count += len(job.inputs)
        return batch

    async def _run(self, batch: list[Job]) -> None:
        inputs = [item for job in batch for item in job.inputs]
        started = time.perf_counter()
        for job in batch:
            self._metrics.queue_wait.labels(self.name).observe(started - job.enqueued)
        self._metrics.batch_texts.labels(self.name).observe(len(inputs))
        loop = asyncio.get_running_loop()
        self._running = batch
        try:
            try:
                outputs = await loop.run_in_executor(
                    self._executor, self._run_batch, batch[0].key, inputs)
            except Exception as err:
                await self._run_alone(batch, err)
                return
            self._metrics.batch_seconds.labels(self.name).observe(time.perf_counter() - started)
            offset = 0
            for job in batch:
                rows = tuple(out[offset:offset + len(job.inputs)] for out in outputs)
                offset += len(job.inputs)
                if not job.future.done():
                    job.future.set_result(rows)
        finally:
            self._running = []
            self._add_pending(-len(inputs))

    async def _run_alone(self, batch: list[Job], err: Exception) -> None:
        """After a failed call: each job alone, so an error names its own request's inputs."""
        if len(batch) == 1:
            if not batch[0].future.done():
                batch[0].future.set_exception(err)
            return
        logger.debug("A call of %d jobs failed (%s); running them one by one.", len(batch), err)
        loop = asyncio.get_running_loop()
        for job in batch:
            try:
                rows = await loop.run_in_executor(
                    self._executor, self._run_batch, job.key, job.inputs)
            except Exception as alone:
                if not job.future.done():
                    job.future.set_exception(alone)
                continue
            if not job.future.done():
                job.future.set_result(tuple(rows))
