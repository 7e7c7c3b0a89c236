"""Webhook delivery against a real receiver on 127.0.0.1: signed, retried, never blocking."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ferryman.artifacts import LocalArtifactStore
from ferryman.control.monitor.webhooks import RetryPolicy, WebhookSender, signature
from ferryman.registry import Database, Registry, WebhookTarget
from tests.control.webhook_receiver import loopback_transport, receiving

SECRET = "canary-secret-0123456789"
FAST = RetryPolicy(max_attempts=3, base_s=0.05, max_s=0.2, timeout_s=2.0)


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    running = WebhookSender(FAST, capacity=10, transport=loopback_transport())
    running.start()
    yield running
    running.stop()


def test_the_signature_is_the_standard_webhooks_v1_signature() -> None:
    assert signature("0123456789abcdef", "msg_1", "1700000000", b"{}") == (
        "v1,3uojc/2kvL+KpJkw4ZNrA/5YjEs9cdfKdc3lXIvRjkk="
    )  # printf 'msg_1.1700000000.{}' | openssl dgst -sha256 -hmac 0123456789abcdef -binary
    #    | base64


def test_the_standard_webhooks_library_verifies_a_real_delivery(sender: WebhookSender) -> None:
    """Receivers can use the standard's own library (standardwebhooks on PyPI)."""
    with receiving() as receiver:
        target = WebhookTarget(name="ops", url=receiver.url, secret=SECRET)
        sender.send(target, "alert.fired", {"alert": {"rule": "error-rate"}})
        [request] = receiver.wait_for(1)
    verified = Webhook(SECRET.encode()).verify(request.body, request.headers)
    assert verified["delivery"] == request.headers["webhook-id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(b"another-secret-0123456789").verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET.encode()).verify(request.body + b" ", request.headers)


def test_a_receiver_on_loopback_gets_nothing_without_the_allow_list(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 14: webhooks could be aimed inward; by default only public addresses are called."""
    caplog.set_level(logging.WARNING)
    guarded = WebhookSender(RetryPolicy(max_attempts=2, base_s=0.01, max_s=0.01))
    guarded.start()
    try:
        with receiving() as receiver:
            target = WebhookTarget(name="ops", url=receiver.url, secret=SECRET)
            guarded.send(target, "alert.fired", {"alert": {}})
            deadline = time.monotonic() + 10
            while guarded.given_up < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert receiver.received == []
    finally:
        guarded.stop()
    assert (guarded.delivered, guarded.given_up) == (0, 1)
    assert "OutboundDenied" in caplog.text


def test_a_delivery_is_signed_and_identified(sender: WebhookSender) -> None:
    with receiving() as receiver:
        target = WebhookTarget(name="ops", url=receiver.url, secret=SECRET)
        assert sender.send(target, "alert.fired", {"alert": {"rule": "error-rate"}})
        [request] = receiver.wait_for(1)
    assert receiver.is_signed(request, SECRET)
    assert not receiver.is_signed(request, "another-secret-0123456789")
    headers = request.headers
    assert headers["ferryman-event"] == "alert.fired"
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert not any(name.startswith("ferryman-") and name != "ferryman-event" for name in headers)
    body = json.loads(request.body)
    assert body == {"event": "alert.fired", "delivery": headers["webhook-id"],
                    "alert": {"rule": "error-rate"}}  # fmt: skip
    assert SECRET not in request.body.decode() + json.dumps(headers)


def test_a_failing_receiver_gets_the_third_attempt(
    sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with receiving(fail_first=2) as receiver:
        target = WebhookTarget(name="ops", url=receiver.url + "?token=url-canary", secret=SECRET)
        sender.send(target, "alert.resolved", {"alert": {}})
        attempts = receiver.wait_for(3)
    assert [a.status for a in attempts] == [500, 500, 204]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1  # one delivery
    assert all(receiver.is_signed(a, SECRET) for a in attempts)
    assert len({a.body for a in attempts}) == 1
    deadline = time.monotonic() + 5
    while sender.delivered < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (sender.delivered, sender.given_up) == (1, 0)
    assert "attempt 1 failed (answered 500)" in caplog.text
    assert SECRET not in caplog.text
    assert "url-canary" not in caplog.text


def test_it_gives_up_after_the_last_attempt_with_backoff(sender: WebhookSender) -> None:
    with receiving(fail_first=100) as receiver:
        target = WebhookTarget(name="ops", url=receiver.url, secret=SECRET)
        started = time.monotonic()
        sender.send(target, "alert.fired", {})
        attempts = receiver.wait_for(3)
        time.sleep(0.3)  # bounded: a 4th attempt would come within 0.2 s
        assert len(receiver.received) == 3
    assert time.monotonic() - started >= 0.05 + 0.1  # waits of base, then twice base
    assert sender.given_up == 1
    assert [a.status for a in attempts] == [500, 500, 500]


def test_unreachable_receivers_do_not_hold_the_others(sender: WebhookSender) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"  # nothing listens
    with receiving() as receiver:
        dead = WebhookTarget(name="dead", url=dead_url, secret=SECRET)
        live = WebhookTarget(name="live", url=receiver.url, secret=SECRET)
        started = time.monotonic()
        assert sender.send(dead, "alert.fired", {})
        assert sender.send(live, "alert.fired", {})
        assert time.monotonic() - started < 0.05  # send never blocks
        receiver.wait_for(1)
    deadline = time.monotonic() + 5
    while sender.given_up < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (sender.delivered, sender.given_up) == (1, 1)


def test_a_full_queue_drops_new_deliveries_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # not started: nothing leaves the queue
    stopped = WebhookSender(FAST, capacity=2, transport=loopback_transport())
    target = WebhookTarget(name="ops", url="http://127.0.0.1:9/hook", secret=SECRET)
    assert stopped.send(target, "alert.fired", {})
    assert stopped.send(target, "alert.fired", {})
    assert not stopped.send(target, "alert.fired", {})
    assert (stopped.pending(), stopped.dropped) == (2, 1)
    assert "queue full" in caplog.text
    stopped.stop()


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(base_s=1.0, max_s=10.0)
    assert [policy.delay_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_a_delivery_waiting_for_its_retry_gets_a_last_attempt_at_stop() -> None:
    patient = WebhookSender(
        RetryPolicy(max_attempts=5, base_s=60.0, timeout_s=2.0), transport=loopback_transport()
    )
    patient.start()
    with receiving(fail_first=1) as receiver:
        target = WebhookTarget(name="ops", url=receiver.url, secret=SECRET)
        patient.send(target, "alert.fired", {"alert": {"rule": "p99"}})
        receiver.wait_for(1)  # failed; the retry is due in 60 s
        started = time.monotonic()
        patient.stop(flush_s=5.0)
        stopped_in_s = time.monotonic() - started
        attempts = receiver.wait_for(2, timeout_s=1.0)
    assert [a.status for a in attempts] == [500, 204]
    assert (patient.delivered, patient.dropped, patient.given_up) == (1, 0, 0)
    assert stopped_in_s < 3.0


def test_the_last_attempt_at_stop_is_cut_at_the_flush_end() -> None:
    slow = WebhookSender(
        RetryPolicy(max_attempts=5, base_s=60.0, timeout_s=30.0), transport=loopback_transport()
    )
    slow.start()
    with receiving(fail_first=1, hang_after=1) as receiver:
        target = WebhookTarget(name="silent", url=receiver.url, secret=SECRET)
        slow.send(target, "alert.fired", {})
        receiver.wait_for(1)  # failed; the retry is due in 60 s
        started = time.monotonic()
        slow.stop(flush_s=0.5)  # the last attempt hangs: cut at 0.5 s, not the 30 s timeout
        stopped_in_s = time.monotonic() - started
        assert len(receiver.wait_for(2, timeout_s=1.0)) == 2
    assert stopped_in_s < 1.3  # the thread ended on its own (the join would wait 1.5 s)
    assert (slow.delivered, slow.given_up, slow.dropped) == (0, 1, 0)


CHILD = """
import sys, time
from pathlib import Path
from ferryman.control.monitor.webhooks import RetryPolicy, WebhookSender
from ferryman.registry import Database, Registry
from ferryman.artifacts import LocalArtifactStore
from tests.control.webhook_receiver import loopback_transport

database = Database(sys.argv[1])
registry = Registry(database, LocalArtifactStore(Path(sys.argv[2])))
sender = WebhookSender(RetryPolicy(max_attempts=5, base_s=60.0, timeout_s=2.0),
                       outbox=registry.outbox, targets=registry.alerts.webhook_targets,
                       transport=loopback_transport())
sender.start()
for number in range(3):
    sender.send(registry.alerts.webhook_targets()[0], "alert.fired", {"n": number})
print("queued", flush=True)
time.sleep(60)
"""


def test_deliveries_queued_when_the_control_plane_is_killed_are_delivered_after_restart(
    tmp_path: Path,
) -> None:
    """Issue 13: a sender process killed with SIGKILL while its deliveries wait for a retry;
    the next sender on the same registry delivers them, each with its own delivery id."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    database = Database(url)
    database.migrate()
    registry = Registry(database, LocalArtifactStore(tmp_path / "artifacts"))
    with receiving(fail_first=3) as receiver:
        registry.alerts.put_webhook("ops", receiver.url, SECRET, "alice")
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(tmp_path / "artifacts")],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "queued"
            assert len(receiver.wait_for(3)) == 3  # each failed once; retries are 60 s away
            time.sleep(0.2)  # let the child record the failed attempts
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        assert len(registry.outbox.pending()) == 3

        restarted = WebhookSender(
            FAST,
            outbox=registry.outbox,
            targets=registry.alerts.webhook_targets,
            transport=loopback_transport(),
        )
        restarted.start()
        try:
            received = receiver.wait_for(6)
        finally:
            restarted.stop()
    first = [r.headers["webhook-id"] for r in received[:3]]
    again = [r.headers["webhook-id"] for r in received[3:6]]
    assert sorted(again) == sorted(first)
    assert all(r.status == 204 for r in received[3:6])
    assert sorted(json.loads(r.body)["n"] for r in received[3:6]) == [0, 1, 2]
    assert registry.outbox.pending() == []
    registry.close()
