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
in the same turn join it). Deadlines share one timer, set for the earliest deadline among
the requests still waiting. Measured (callgrind, digits model): a timer set and cancelled per
request cost ~6,000 instructions of a ~390,000 instruction request, and a task of the
batcher's own ~10,000 more at concurrency 1.

Every model call runs on the executor's thread, never on the event loop, however fast the
model has been (RELIABILITY F4): a call cannot be stopped once it runs, so a call on the loop
that turns slow (one input in a thousand, a page fault, a lock inside the model) would hold
every request of the replica past its deadline: no 504, no 503, no health answer. On the
executor the loop keeps answering while the call runs: 504 at each deadline, 503 over the
queue. A batch goes to the executor with one ``submit`` and comes back with one
``call_soon_threadsafe`` (no task, no asyncio future per batch); poison isolation's retries
run on the same thread, and results are delivered on the loop (asyncio futures and the
metrics are the loop's alone). bench/serving/hop.py measures what the hop costs against the
former inline path.

Up to ``max_calls`` batches run at once, each on its own executor thread (ONNX Runtime
releases the GIL while it runs, so single-threaded calls in parallel use every core with one
copy of the model; ``serving/cpus.py`` fits the number to the cores). A batch then takes at
most its share of the waiting rows, so no thread idles while another works through a long
batch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np

from ferryman.engines import ModelEngine
from ferryman.errors import DeadlineExceeded, FerrymanError, Unavailable
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
    subject: str = "the model"
    """How messages name the model: ``digits v3 (onnx-fp32)``."""
    max_calls: int = 1
    """Model calls that may run at once, each on its own executor thread."""


@dataclass(slots=True)
class _Pending:
    inputs: Arrays
    rows: int
    group: Hashable
    enqueued_at: float
    deadline: float
    future: asyncio.Future[Arrays]


class Batcher:
    """Runs a runtime's ``predict`` on batches, up to ``max_calls`` at once on ``executor``."""

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
        self._running: dict[int, list[_Pending]] = {}
        """The batches on the executor, by their identity: at most ``max_calls`` at once."""
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
        self._loop = None  # a call still running is not waited for; its answers are dropped
        if self._cut is not None:
            self._cut.cancel()
            self._cut = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        _fail(unanswered, Unavailable("the replica is shutting down", 1))
        self._running.clear()
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
        batch = self._take()
        if not batch:  # every request taken had passed its deadline
            if self._queue:
                self._cut_soon(loop)
            return
        self._running[id(batch)] = batch
        groups = self._groups(batch)
        work = self._executor.submit(self._run_groups, groups)
        work.add_done_callback(lambda done: _call_soon(loop, self._ran, batch, groups, done))
        if self._queue and len(self._running) < self._policy.max_calls:
            self._cut_soon(loop)  # another thread is free: its share of what waits

    def _ran(
        self,
        batch: list[_Pending],
        groups: list[list[_Pending]],
        work: Future[tuple[list[Sequence[Arrays | Exception]], float]],
    ) -> None:
        """Deliver a batch's answers (a loop callback, once the executor has run it)."""
        if self._running.pop(id(batch), None) is not batch:  # stopped meanwhile: failed
            return
        try:
            answers, compute_s = work.result()
            for items, outcome in zip(groups, answers, strict=True):
                self._metrics.batch_size.observe(len(items))
                for pending, answer in zip(items, outcome, strict=True):
                    if pending.future.done():  # its deadline passed during the call
                        continue
                    if isinstance(answer, Exception):
                        pending.future.set_exception(_failure(self.subject, 1, answer))
                    else:
                        pending.future.set_result(answer)
            self._metrics.compute_s.observe(compute_s)
        except Exception:  # a bug here must not strand every request of the batch
            logger.exception("batching failed for %d request(s)", len(batch))
            _fail(batch, FerrymanError("internal error while batching; see the replica log"))
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

        A request that waits is in the queue or in the batch on the executor. Under steady
        traffic the timer fires about once per request deadline, armed for the oldest request
        of its time.
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

    def _take(self) -> list[_Pending]:
        """The next batch: up to ``max_batch_size`` rows and, with several calls, up to its
        share of the waiting rows among them."""
        batch: list[_Pending] = []
        rows = 0
        limit = self._policy.max_batch_size
        if self._policy.max_calls > 1:
            limit = min(limit, -(-self._queued_rows // self._policy.max_calls))
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

    def _run_groups(
        self, groups: list[list[_Pending]]
    ) -> tuple[list[Sequence[Arrays | Exception]], float]:
        """Run a batch's groups (on the executor's thread): each request's outputs or error,
        and the seconds it took. Touches no future and no metric: those are the loop's."""
        started = time.monotonic()
        answers: list[Sequence[Arrays | Exception]] = []
        for items in groups:
            try:
                answers.append(self._predict(items))
            except Exception as exc:
                if len(items) == 1:
                    answers.append([exc])
                    continue
                _log_isolating(self.subject, len(items), exc)
                alone: list[Arrays | Exception] = []
                for pending in items:  # alone, so only the poison input fails
                    if pending.future.done():  # its deadline passed (a read across threads:
                        alone.append(exc)  # at worst one more call, whose answer is dropped)
                        continue
                    try:
                        alone.append(self._predict([pending])[0])
                    except Exception as error:
                        alone.append(error)
                answers.append(alone)
        return answers, time.monotonic() - started

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
        answers = []
        start = 0
        for pending in items:  # views of the batch's outputs, one slice per request
            end = start + pending.rows
            answers.append({name: array[start:end] for name, array in outputs.items()})
            start = end
        return answers


def _call_soon(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object
) -> None:
    """``callback(*args)`` on ``loop`` (from any thread); nothing once the loop is closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the replica stopped and its loop closed while the model ran
        logger.debug("a model call ended after its event loop closed")


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
