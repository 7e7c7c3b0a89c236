"""Dynamic batching: requests wait in one bounded queue and run together.

A batch is cut when it holds ``max_batch_size`` rows, when its oldest request has waited
``max_delay_ms``, or at once when no other request is on its way (so a lone client never
waits for company). Requests whose inputs agree on everything but the batch axis share a
model call; each gets its own rows back. A full queue refuses at once (503 with
Retry-After), every request has a deadline (504), and a model error fails only the requests
of the call that raised it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from ferryman.errors import DeadlineExceeded, FerrymanError, Unavailable
from ferryman.runtimes import ModelRuntime
from ferryman.serving.metrics import ReplicaMetrics

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class BatchPolicy:
    """When to cut a batch and how much may wait."""

    max_batch_size: int
    max_delay_s: float
    queue_capacity: int
    is_batchable: bool
    """True when every input has a dynamic first axis, so requests can be stacked."""


@dataclass(slots=True)
class _Pending:
    inputs: Arrays
    rows: int
    group: Hashable
    enqueued_at: float
    future: asyncio.Future[Arrays]


class Batcher:
    """Runs a runtime's ``predict`` on batches, one model call at a time on ``executor``."""

    def __init__(
        self,
        runtime: ModelRuntime,
        executor: Executor,
        policy: BatchPolicy,
        metrics: ReplicaMetrics,
        arrivals: Callable[[], int] = lambda: 0,
    ) -> None:
        self._runtime = runtime
        self._executor = executor
        self._policy = policy
        self._metrics = metrics
        self._arrivals = arrivals
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.outstanding = 0
        """Requests submitted and not yet answered."""
        self.subject = "the model"

    @property
    def queued(self) -> int:
        """Requests waiting for a model call."""
        return len(self._queue)

    def start(self) -> None:
        """Start the batching loop (owned by this object, stopped by :meth:`stop`)."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        """Stop the loop; requests still queued fail with 503."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(Unavailable("the replica is shutting down", 1))

    async def submit(self, inputs: Arrays, deadline: float) -> Arrays:
        """Queue ``inputs`` and wait for their outputs until ``deadline`` (monotonic s)."""
        if len(self._queue) >= self._policy.queue_capacity:
            raise Unavailable(
                f"{self._policy.queue_capacity} requests already wait for {self.subject}; "
                "retry shortly or add replicas",
                retry_after_s=1,
            )
        now = time.monotonic()
        pending = _Pending(
            inputs, *self._shape_of(inputs), now, asyncio.get_running_loop().create_future()
        )
        self._queue.append(pending)
        self._wakeup.set()
        self.outstanding += 1
        try:
            return await asyncio.wait_for(pending.future, timeout=max(deadline - now, 0.0))
        except TimeoutError:
            raise DeadlineExceeded(
                f"no answer from {self.subject} within the request deadline of "
                f"{deadline - now:.3f} s; the replica is overloaded or the model is slow"
            ) from None
        finally:
            self.outstanding -= 1

    def _shape_of(self, inputs: Arrays) -> tuple[int, Hashable]:
        if not self._policy.is_batchable:
            return 1, object()
        first = next(iter(inputs.values()))
        group = tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(inputs.items()))
        return int(first.shape[0]), group

    async def _loop(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run_batch(batch)

    async def _next_batch(self) -> list[_Pending]:
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        await asyncio.sleep(0)  # let requests that arrived in this same tick join
        cut_at = self._queue[0].enqueued_at + self._policy.max_delay_s
        while self._should_wait():
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), cut_at - time.monotonic())
            except TimeoutError:
                break
        return self._take()

    def _should_wait(self) -> bool:
        if sum(p.rows for p in self._queue) >= self._policy.max_batch_size:
            return False
        coming = self._arrivals() - self.outstanding
        return (
            coming > 0 and time.monotonic() < self._queue[0].enqueued_at + self._policy.max_delay_s
        )

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            pending = self._queue[0]
            if pending.future.done():  # its deadline passed while it waited
                self._queue.popleft()
                continue
            if batch and rows + pending.rows > self._policy.max_batch_size:
                break
            batch.append(self._queue.popleft())
            rows += pending.rows
        return batch

    async def _run_batch(self, batch: list[_Pending]) -> None:
        started = time.monotonic()
        for pending in batch:
            self._metrics.queue_s.observe(started - pending.enqueued_at)
        groups: dict[Hashable, list[_Pending]] = {}
        for pending in batch:
            groups.setdefault(pending.group, []).append(pending)
        loop = asyncio.get_running_loop()
        for items in groups.values():
            self._metrics.batch_size.observe(len(items))
            try:
                outputs = await loop.run_in_executor(self._executor, self._predict, items)
            except FerrymanError as exc:
                _fail(items, exc)
            except Exception as exc:  # a model error fails its own call, nothing else
                logger.warning("%s failed on a batch of %d: %s", self.subject, len(items), exc)
                _fail(items, FerrymanError(
                    f"{self.subject} failed on a batch of {len(items)} request(s): "
                    f"{type(exc).__name__}: {str(exc)[:300]}"
                ))  # fmt: skip
            else:
                _deliver(items, outputs)
        self._metrics.compute_s.observe(time.monotonic() - started)

    def _predict(self, items: list[_Pending]) -> list[Arrays]:
        if len(items) == 1:
            return [self._runtime.predict(items[0].inputs)]
        names = items[0].inputs.keys()
        stacked = {name: np.concatenate([p.inputs[name] for p in items]) for name in names}
        outputs = self._runtime.predict(stacked)
        total = sum(p.rows for p in items)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != total:
                raise FerrymanError(
                    f"{self.subject} returned output {name!r} with shape {list(array.shape)} "
                    f"for a batch of {total} rows; batching needs the batch as the first axis"
                )
        bounds = np.cumsum([p.rows for p in items])[:-1]
        split = {name: np.split(array, bounds) for name, array in outputs.items()}
        return [{name: parts[i] for name, parts in split.items()} for i in range(len(items))]


def _fail(items: list[_Pending], error: FerrymanError) -> None:
    for pending in items:
        if not pending.future.done():
            pending.future.set_exception(error)


def _deliver(items: list[_Pending], outputs: list[Arrays]) -> None:
    for pending, result in zip(items, outputs, strict=True):
        if not pending.future.done():
            pending.future.set_result(result)
