"""Dynamic batching: requests wait in one bounded queue and run together.

A batch is cut when it holds ``max_batch_size`` rows, when its oldest request has waited
``max_delay_ms``, or at once when no other request is on its way (so a lone client never
waits for company). Requests whose inputs agree on everything but the batch axis share a
model call; each gets its own rows back. A full queue refuses at once (503 with
Retry-After), every request has a deadline (504), and a model error fails only the request
that causes it: when a call of several requests raises, each runs again alone, so a poison
input fails by itself and its batch-mates are answered (RELIABILITY F3a). A call that
succeeds costs nothing more.

The batcher is driven by event-loop callbacks, not by a task of its own: the first request
into an empty queue schedules a cut for the loop's next turn (so the requests that arrive
in the same turn join it), and a fast model runs right in that callback; only a slow
model's batch becomes a task, which awaits the executor. Deadlines share one timer, set
for the earliest deadline among the requests still waiting. Measured (callgrind, digits
model): a timer set and cancelled per request cost ~6,000 instructions of a ~390,000
instruction request, and the batcher's own task ~10,000 more at concurrency 1.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from ferryman.engines import ModelEngine
from ferryman.errors import DeadlineExceeded, FerrymanError, Unavailable
from ferryman.serving.metrics import ReplicaMetrics

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]

INLINE_BELOW_S = 0.0005
"""Model calls that typically take less than this run on the event loop itself: for tiny
models the hop to the executor thread and back costs several times the call. Slower models
(and any model until its first call was timed) run on the executor."""


@dataclass(frozen=True)
class BatchPolicy:
    """When to cut a batch and how much may wait."""

    max_batch_size: int
    max_delay_s: float
    queue_capacity: int
    is_batchable: bool
    """True when every input has a dynamic first axis, so requests can be stacked."""
    subject: str = "the model"
    """How messages name the model: ``digits v3 (onnx-fp32)``."""
    max_calls: int = 1
    """Model calls that may run at once, each on its own executor thread (a slow model's;
    a fast one runs on the event loop, one call at a time). The queue is shared among them
    evenly: a batch takes at most its share of what waits, so no thread idles while
    another works through a long batch."""


@dataclass(slots=True)
class _Pending:
    inputs: Arrays
    rows: int
    group: Hashable
    enqueued_at: float
    deadline: float
    future: asyncio.Future[Arrays]


class Batcher:
    """Runs a runtime's ``predict`` on batches, one model call at a time on ``executor``."""

    def __init__(
        self,
        runtime: ModelEngine,
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
        self._queued_rows = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        """Set by :meth:`start`; None while stopped (requests then queue, and wait)."""
        self._cut: asyncio.Handle | None = None
        """The scheduled cut of the next batch, if any."""
        self._cut_waits = False
        """True when that cut is the end of a wait for company (``max_delay_s``)."""
        self._running: dict[asyncio.Task[None], list[_Pending]] = {}
        """The batches on the executor, by their task: at most ``max_calls`` at once."""
        self._typical_call_s = math.inf  # unknown until a call was timed
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.outstanding = 0
        """Requests submitted and not yet answered."""
        self.subject = policy.subject

    @property
    def queued(self) -> int:
        """Requests waiting for a model call."""
        return len(self._queue)

    def start(self) -> None:
        """Start cutting batches on the running loop (until :meth:`stop`)."""
        self._loop = loop = asyncio.get_running_loop()
        if self._queue:
            self._cut_soon(loop)

    async def stop(self) -> None:
        """Stop cutting batches; requests not yet answered fail with 503."""
        unanswered = [*self._in_model(), *self._queue]
        self._loop = None
        if self._cut is not None:
            self._cut.cancel()
            self._cut = None
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        _fail(unanswered, Unavailable("the replica is shutting down", 1))
        self._queue.clear()
        self._queued_rows = 0

    async def submit(self, inputs: Arrays, deadline: float) -> Arrays:
        """Queue ``inputs`` and wait for their outputs until ``deadline`` (monotonic s)."""
        if len(self._queue) >= self._policy.queue_capacity:
            raise Unavailable(
                f"{self._policy.queue_capacity} requests already wait for {self.subject}; "
                "retry shortly or add replicas",
                retry_after_s=1,
            )
        now = time.monotonic()
        pending = _Pending(inputs, *self._shape_of(inputs), now, deadline,
                           asyncio.get_running_loop().create_future())  # fmt: skip
        self._queue.append(pending)
        self._queued_rows += pending.rows
        self.outstanding += 1
        loop = self._loop
        if loop is not None and len(self._running) < self._policy.max_calls:
            if self._cut is None:
                self._cut_soon(loop)  # the loop's next turn decides whether to wait for company
            elif self._cut_waits and not self._should_wait():
                self._cut.cancel()  # the batch is full, or nobody else is coming
                self._cut_soon(loop)
        if deadline < self._timer_at:  # the first, or a shorter (gRPC) deadline
            self._arm(deadline)
        try:
            return await pending.future
        finally:
            self.outstanding -= 1

    def _cut_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        self._cut = loop.call_soon(self._cut_batch, False)
        self._cut_waits = False

    def _cut_batch(self, has_waited: bool) -> None:
        """Cut a batch and run it, or first wait once for company (a loop callback)."""
        self._cut = None
        loop = self._loop
        if not self._queue or len(self._running) >= self._policy.max_calls or loop is None:
            return
        if not has_waited and self._should_wait():
            cut_in_s = self._queue[0].enqueued_at + self._policy.max_delay_s - time.monotonic()
            self._cut = loop.call_later(max(cut_in_s, 0.0), self._cut_batch, True)
            self._cut_waits = True
            return
        is_fast = self._typical_call_s < INLINE_BELOW_S
        batch = self._take(is_fast)
        if batch and is_fast:
            try:
                self._run_here(batch)
            except Exception:  # a bug here must not strand every request of the batch
                logger.exception("batching failed for %d request(s)", len(batch))
                _fail(batch, FerrymanError("internal error while batching; see the replica log"))
        elif batch:
            task = loop.create_task(self._run_off_loop(batch), name="batch")
            self._running[task] = batch
            task.add_done_callback(self._ran)
            if len(self._running) >= self._policy.max_calls:
                return
        if self._queue:
            self._cut_soon(loop)

    def _ran(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if self._queue and self._loop is not None and self._cut is None:
            self._cut_soon(self._loop)

    def _in_model(self) -> list[_Pending]:
        """The requests of the batches on the executor (the queue holds the rest)."""
        return [pending for batch in self._running.values() for pending in batch]

    def _arm(self, deadline: float) -> None:
        """Set the deadline timer for ``deadline`` (it only ever moves earlier, or re-arms)."""
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = deadline
        self._timer = loop.call_later(max(deadline - time.monotonic(), 0.0), self._expire_due)

    def _expire_due(self) -> None:
        """Fail the waiting requests whose deadline passed; set the timer for the next one.

        A request that waits is in the queue or in the batch on the executor (a batch run on
        the loop is over before the timer can fire). Under steady traffic the timer fires
        about once per request deadline, armed for the oldest request of its time.
        """
        self._timer, self._timer_at = None, math.inf
        now = time.monotonic()
        next_deadline = math.inf
        for pending in (*self._in_model(), *self._queue):
            if pending.future.done():
                continue
            if pending.deadline <= now:  # the batcher skips it, or drops its late answer
                timeout_s = pending.deadline - pending.enqueued_at
                pending.future.set_exception(_expired(self.subject, timeout_s))
            else:
                next_deadline = min(next_deadline, pending.deadline)
        if next_deadline < math.inf:
            self._arm(next_deadline)

    def _shape_of(self, inputs: Arrays) -> tuple[int, Hashable]:
        if not self._policy.is_batchable:
            return 1, object()
        if len(inputs) == 1:  # the common case, without sorting
            ((name, first),) = inputs.items()
            return int(first.shape[0]), (name, first.shape[1:], first.dtype.char)
        first = next(iter(inputs.values()))
        group = tuple((name, a.shape[1:], a.dtype.char) for name, a in sorted(inputs.items()))
        return int(first.shape[0]), group

    def _should_wait(self) -> bool:
        """Wait for company while the batch has room and admitted requests are on their way."""
        if self._queued_rows >= self._policy.max_batch_size:
            return False
        return self._arrivals() > self.outstanding

    def _take(self, is_whole: bool = True) -> list[_Pending]:
        """The next batch: up to ``max_batch_size`` rows, or (``is_whole`` False) up to its
        share of the waiting rows among the ``max_calls`` calls."""
        batch: list[_Pending] = []
        rows = 0
        limit = self._policy.max_batch_size
        calls = self._policy.max_calls
        if not is_whole and calls > 1:
            limit = min(limit, -(-self._queued_rows // calls))
        while self._queue:
            pending = self._queue[0]
            if batch and rows + pending.rows > limit:
                break
            self._queue.popleft()
            self._queued_rows -= pending.rows
            if not pending.future.done():  # else its deadline passed while it waited
                batch.append(pending)
                rows += pending.rows
        return batch

    def _groups(self, batch: list[_Pending]) -> list[list[_Pending]]:
        """The batch's requests by what they can share (one model call per group)."""
        started = time.monotonic()
        queue_s = self._metrics.queue_s
        for pending in batch:
            queue_s.observe(started - pending.enqueued_at)
        if len(batch) == 1:
            return [batch]
        groups: dict[Hashable, list[_Pending]] = {}
        for pending in batch:
            groups.setdefault(pending.group, []).append(pending)
        return list(groups.values())

    def _run_here(self, batch: list[_Pending]) -> None:
        """Run a fast model's batch on the loop, in the cut's callback."""
        started = time.monotonic()
        for items in self._groups(batch):
            self._metrics.batch_size.observe(len(items))
            try:
                outputs = self._predict(items)
            except Exception as exc:
                if len(items) == 1:
                    _fail(items, _failure(self.subject, 1, exc))
                    continue
                _log_isolating(self.subject, len(items), exc)
                for pending in items:  # alone, so only the poison input fails
                    try:
                        _deliver([pending], self._predict([pending]))
                    except Exception as alone:
                        _fail([pending], _failure(self.subject, 1, alone))
            else:
                _deliver(items, outputs)
        self._metrics.compute_s.observe(time.monotonic() - started)

    async def _run_off_loop(self, batch: list[_Pending]) -> None:
        """Run a slow (or not yet timed) model's batch on the executor, group by group."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            for items in self._groups(batch):
                self._metrics.batch_size.observe(len(items))
                try:
                    outputs = await loop.run_in_executor(self._executor, self._predict, items)
                except Exception as exc:
                    if len(items) == 1:
                        _fail(items, _failure(self.subject, 1, exc))
                        continue
                    _log_isolating(self.subject, len(items), exc)
                    for pending in items:  # alone, so only the poison input fails
                        if pending.future.done():  # its deadline passed meanwhile
                            continue
                        try:
                            alone = await loop.run_in_executor(
                                self._executor, self._predict, [pending]
                            )
                        except Exception as error:
                            _fail([pending], _failure(self.subject, 1, error))
                        else:
                            _deliver([pending], alone)
                else:
                    _deliver(items, outputs)
        except Exception:  # a bug here must not strand every request of the batch
            logger.exception("batching failed for %d request(s)", len(batch))
            _fail(batch, FerrymanError("internal error while batching; see the replica log"))
        self._metrics.compute_s.observe(time.monotonic() - started)

    def _predict(self, items: list[_Pending]) -> list[Arrays]:
        if len(items) == 1:
            return [self._timed_predict(items[0].inputs)]
        names = items[0].inputs.keys()
        stacked = {name: np.concatenate([p.inputs[name] for p in items]) for name in names}
        outputs = self._timed_predict(stacked)
        total = sum(p.rows for p in items)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != total:
                raise FerrymanError(
                    f"{self.subject} returned output {name!r} with shape {list(array.shape)} "
                    f"for a batch of {total} rows; batching needs the batch as the first axis"
                )
        answers = []
        start = 0
        for pending in items:  # views of the batch's outputs, one slice per request
            end = start + pending.rows
            answers.append({name: array[start:end] for name, array in outputs.items()})
            start = end
        return answers

    def _timed_predict(self, inputs: Arrays) -> Arrays:
        started = time.perf_counter()
        outputs = self._runtime.predict(inputs)
        elapsed_s = time.perf_counter() - started
        self._typical_call_s = min(self._typical_call_s, elapsed_s * 4) * 0.8 + elapsed_s * 0.2
        return outputs


def _failure(subject: str, count: int, exc: Exception) -> FerrymanError:
    """What the requests of a failed model call are told."""
    return exc if isinstance(exc, FerrymanError) else _model_failed(subject, count, exc)


def _log_isolating(subject: str, count: int, exc: Exception) -> None:
    logger.warning(
        "%s failed on a batch of %d (%s: %s); running each request alone",
        subject, count, type(exc).__name__, str(exc)[:200],
    )  # fmt: skip


def _expired(subject: str, timeout_s: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"no answer from {subject} within the request deadline of {timeout_s:.3f} s; "
        "the replica is overloaded or the model is slow"
    )


def _model_failed(subject: str, count: int, exc: Exception) -> FerrymanError:
    logger.warning("%s failed on a batch of %d: %s", subject, count, exc)
    return FerrymanError(
        f"{subject} failed on a batch of {count} request(s): {type(exc).__name__}: {str(exc)[:300]}"
    )


def _fail(items: list[_Pending], error: FerrymanError) -> None:
    for pending in items:
        if not pending.future.done():
            pending.future.set_exception(error)


def _deliver(items: list[_Pending], outputs: list[Arrays]) -> None:
    for pending, result in zip(items, outputs, strict=True):
        if not pending.future.done():
            pending.future.set_result(result)
