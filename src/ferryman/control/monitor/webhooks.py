"""Alert events posted to webhooks: signed, retried with a capped back-off, never blocking.

:meth:`WebhookSender.send` only puts a delivery on a bounded queue and returns; one thread
the sender owns posts it. A delivery that fails (a transport error, a timeout, any answer
but 2xx) is retried after ``base_s``, then twice that, and so on up to ``max_s``, until
``max_attempts``; meanwhile other deliveries go out. On :meth:`WebhookSender.stop` every
delivery still queued gets one last attempt at once, however long its back-off had left,
within ``flush_s``; what is still queued after that is dropped and counted (the alerts
themselves are events in the registry). Given an :class:`Outbox` (the registry's
``webhook_outbox`` table), every delivery is written there before it is queued and removed
once delivered or given up, and :meth:`WebhookSender.start` queues again what a killed (or
stopped) control plane left there, with the same delivery id: at least once, across
restarts. Each attempt is signed in the Standard Webhooks format
(https://www.standardwebhooks.com), so receivers can verify it with its libraries:

- ``webhook-id``: a UUID, the same on every attempt (receivers drop repeats by it)
- ``webhook-timestamp``: the attempt's Unix time in seconds
- ``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 over ``id + "." + timestamp + "."
  + body``, keyed with the webhook's secret (its UTF-8 bytes)
- ``ferryman-event``: ``alert.fired`` or ``alert.resolved`` (also in the body)

A receiver recomputes the signature over the raw body, compares it in constant time, and
refuses timestamps more than a few minutes old and ids it has seen (replays). Neither
secrets nor URLs are logged — a URL can carry a token in its path — only the webhook's
name. Each attempt goes through the outbound policy (:mod:`ferryman.control.outbound`): the
URL's host is resolved, checked and connected to at the checked address, without redirects.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ferryman.control.outbound import OutboundPolicy, PinnedTransport
from ferryman.errors import FerrymanError
from ferryman.registry import OutboxEntry, WebhookTarget
from ferryman.types import Clock
from ferryman.version import __version__

logger = logging.getLogger(__name__)

EVENT_HEADER = "ferryman-event"
DELIVERY_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64>`` of HMAC-SHA256(secret, id + "." + timestamp + "." + body): the
    Standard Webhooks signature.

    >>> signature("0123456789abcdef", "msg_1", "1700000000", b"{}")[:12]
    'v1,3uojc/2k'
    """
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 1.0
    max_s: float = 60.0
    timeout_s: float = 5.0

    def delay_s(self, failed_attempts: int) -> float:
        """The wait after failure number ``failed_attempts``: base, twice that… capped."""
        return min(self.max_s, self.base_s * 2.0 ** max(0, failed_attempts - 1))


class Outbox(Protocol):
    """Where deliveries wait durably: the registry's :class:`~ferryman.registry.WebhookOutbox`."""

    def add(self, entry: OutboxEntry) -> None: ...

    def attempted(self, delivery_id: str, attempts: int) -> None: ...

    def settle(self, delivery_id: str) -> None: ...

    def pending(self) -> list[OutboxEntry]: ...


@dataclass
class Delivery:
    id: str
    target: WebhookTarget
    event: str
    body: bytes
    attempts: int = 0


class WebhookSender:
    """Posts alert events to webhooks from a thread of its own; ``send`` never blocks."""

    def __init__(
        self,
        policy: RetryPolicy,
        capacity: int = 1_000,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        outbox: Outbox | None = None,
        targets: Callable[[], list[WebhookTarget]] = list,
    ) -> None:
        """``targets`` names the webhooks that exist now: a delivery restored from the
        ``outbox`` goes to the one of its name (and is dropped if it was removed)."""
        self._policy = policy
        self._outbox = outbox
        self._targets = targets
        self._capacity = capacity
        self._clock = clock
        self._wall_clock = wall_clock
        # The transport itself, not a Client: a Client logs every request's full URL (which
        # may hold a token) at INFO, reads proxy variables and .netrc, and may follow redirects.
        # By default only public addresses are called (the outbound policy, no allow-list).
        self._transport = transport or PinnedTransport(OutboundPolicy())
        self._timeout = httpx.Timeout(policy.timeout_s).as_dict()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._is_stopping = False
        self._flush_until = 0.0
        self._thread = threading.Thread(target=self._run, name="ferryman-webhooks", daemon=True)
        self.delivered = 0
        self.dropped = 0
        self.given_up = 0

    def start(self) -> None:
        """Queue what the outbox holds from before (a restart), then start sending."""
        self._restore()
        self._thread.start()

    def _restore(self) -> None:
        if self._outbox is None:
            return
        try:
            entries = self._outbox.pending()
            targets = {target.name: target for target in self._targets()}
        except FerrymanError as exc:
            logger.error("webhooks: the outbox cannot be read (%s); sending new ones only", exc)
            return
        for entry in entries:
            target = targets.get(entry.webhook)
            if target is None:
                logger.warning("webhook %s: removed; delivery %s dropped", entry.webhook, entry.id)
                self._settle(entry.id)
                continue
            delivery = Delivery(entry.id, target, entry.event, entry.body.encode(), entry.attempts)
            with self._wake:
                heapq.heappush(self._queue, (self._clock(), next(self._order), delivery))
        if entries:
            logger.info("webhooks: %d deliveries restored from the outbox", len(entries))

    def _settle(self, delivery_id: str) -> None:
        """The delivery is done with (delivered or given up): out of the outbox."""
        if self._outbox is None:
            return
        try:
            self._outbox.settle(delivery_id)
        except FerrymanError as exc:  # it may be sent again after a restart: at least once
            logger.warning("webhooks: delivery %s stays in the outbox: %s", delivery_id, exc)

    def stop(self, flush_s: float = 5.0) -> None:
        """Give each queued delivery one last attempt within ``flush_s``, then stop the thread
        and close the transport; deliveries left after ``flush_s`` are dropped, with a warning."""
        with self._wake:
            self._is_stopping = True
            self._flush_until = self._clock() + flush_s
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=flush_s + 1.0)  # attempts are capped at the flush end
        self._transport.close()

    def send(self, target: WebhookTarget, event: str, payload: dict[str, Any]) -> bool:
        """Queue one event for ``target``; False (and a warning) when the queue is full."""
        delivery_id = str(uuid.uuid4())
        document = {"event": event, "delivery": delivery_id, **payload}
        body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        with self._wake:
            if len(self._queue) >= self._capacity:
                self.dropped += 1
                logger.warning("webhook %s: queue full (%d); %s dropped",
                               target.name, self._capacity, event)  # fmt: skip
                return False
            delivery = Delivery(delivery_id, target, event, body)
            if self._outbox is not None and not self._keep(delivery):
                return False
            heapq.heappush(self._queue, (self._clock(), next(self._order), delivery))
            self._wake.notify_all()
        return True

    def _keep(self, delivery: Delivery) -> bool:
        """Write the delivery to the outbox; False (and an error) if it cannot be."""
        entry = OutboxEntry(id=delivery.id, webhook=delivery.target.name,
                            event=delivery.event, body=delivery.body.decode())  # fmt: skip
        try:
            self._outbox.add(entry)  # type: ignore[union-attr]
        except FerrymanError as exc:
            self.dropped += 1
            logger.error("webhook %s: %s not kept in the outbox (%s); dropped",
                         delivery.target.name, delivery.event, exc)  # fmt: skip
            return False
        return True

    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._wake:
                delivery = self._next_due()
            if delivery is None:
                break
            self._attempt(delivery)
        self._flush()

    def _flush(self) -> None:
        """At stop: one last attempt for each queued delivery, oldest first, until the end."""
        while True:
            with self._wake:
                left_s = self._flush_until - self._clock()
                if not self._queue or left_s <= 0:
                    left, self._queue = len(self._queue), []
                    break
                delivery = heapq.heappop(self._queue)[2]
            self._attempt(delivery, last_s=left_s)
        if left:
            self.dropped += left
            logger.warning("webhooks: stopping with %d deliveries still queued; dropped", left)

    def _next_due(self) -> Delivery | None:
        """Wait (holding the condition) for the earliest delivery to fall due; None: stop."""
        while not self._is_stopping:
            if self._queue:
                wait_s = self._queue[0][0] - self._clock()
                if wait_s <= 0:
                    return heapq.heappop(self._queue)[2]
                self._wake.wait(timeout=wait_s)
            else:
                self._wake.wait()
        return None

    def _attempt(self, delivery: Delivery, last_s: float | None = None) -> None:
        """One attempt; on failure, queue a retry, unless ``last_s`` (at stop: the time left,
        which caps the attempt's timeout) says this attempt is the last."""
        delivery.attempts += 1
        timestamp = str(int(self._wall_clock()))
        headers = {
            "content-type": "application/json",
            "user-agent": f"ferryman/{__version__}",
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(
                delivery.target.secret, delivery.id, timestamp, delivery.body
            ),
        }
        request = httpx.Request(
            "POST", delivery.target.url, content=delivery.body, headers=headers,
            extensions={"timeout": self._timeout if last_s is None else
                        httpx.Timeout(min(self._policy.timeout_s, last_s)).as_dict()},
        )  # fmt: skip
        try:
            answer = self._transport.handle_request(request)
            try:
                answer.read()
            finally:
                answer.close()
            failure = None if answer.is_success else f"answered {answer.status_code}"
        except httpx.HTTPError as exc:
            failure = type(exc).__name__
        if failure is None:
            self.delivered += 1
            self._settle(delivery.id)
            return
        name, attempts = delivery.target.name, delivery.attempts
        if attempts >= self._policy.max_attempts or last_s is not None:
            self.given_up += 1
            logger.error("webhook %s: delivery %s %s after %d attempts (%s); giving up%s",
                         name, delivery.id, delivery.event, attempts, failure,
                         " (stopping)" if last_s is not None else "")  # fmt: skip
            if last_s is None:  # at stop, it stays in the outbox for the next start
                self._settle(delivery.id)
            return
        delay_s = self._policy.delay_s(attempts)
        if self._outbox is not None:
            with contextlib.suppress(FerrymanError):
                self._outbox.attempted(delivery.id, attempts)
        logger.warning("webhook %s: delivery %s attempt %d failed (%s); retrying in %.1f s",
                       name, delivery.id, attempts, failure, delay_s)  # fmt: skip
        with self._wake:
            due_s = self._clock() + delay_s
            heapq.heappush(self._queue, (due_s, next(self._order), delivery))
