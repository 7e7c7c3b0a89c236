"""An open-loop load generator: requests leave at fixed times, whatever the answers do.

A closed loop (send, wait, send) slows down with the server and hides its queue; here
request ``i`` is due at ``start + i / rate`` and its latency counts from that moment, so a
server that falls behind shows it in p99 and in the achieved rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
import numpy as np

from ferryman.registry import LoadStep

ACHIEVED_SHARE = 0.99
CLIENT_LAG_MS = 50.0
"""Sends later than this behind schedule mean the generator, not only the replica, strained."""
"""A rate is carried only if at least this share of it was answered (and none failed)."""


async def open_loop(
    client: httpx.AsyncClient,
    path: str,
    bodies: Sequence[bytes],
    rate_qps: float,
    *,
    duration_s: float,
    grace_s: float = 5.0,
) -> LoadStep:
    """Send ``rate_qps x duration_s`` POSTs of ``bodies`` (in turn) to ``path`` at fixed times.

    Answers still missing ``grace_s`` after the last send count as errors. The achieved rate
    is the successful answers over the time from the first send to the last answer (at least
    ``duration_s``), so answers that trail behind the schedule lower it.
    """
    count = max(1, round(rate_qps * duration_s))
    latencies_s: list[float] = []
    errors = 0
    last_done_s = 0.0
    start_s = time.perf_counter()

    async def one(index: int, due_s: float) -> None:
        nonlocal errors, last_done_s
        try:
            response = await client.post(
                path,
                content=bodies[index % len(bodies)],
                headers={"content-type": "application/json"},
            )
            is_ok = response.status_code == 200
        except httpx.HTTPError:
            is_ok = False
        done_s = time.perf_counter()
        last_done_s = max(last_done_s, done_s)
        if is_ok:
            latencies_s.append(done_s - due_s)
        else:
            errors += 1

    tasks: list[asyncio.Task[None]] = []
    lag_s = 0.0
    for index in range(count):
        due_s = start_s + index / rate_qps
        delay_s = due_s - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        else:
            lag_s = max(lag_s, -delay_s)
        tasks.append(asyncio.create_task(one(index, due_s)))
    _, late = await asyncio.wait(tasks, timeout=grace_s) if tasks else (set(), set())
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    errors += len(late)
    elapsed_s = max(duration_s, last_done_s - start_s)
    return LoadStep(
        target_qps=rate_qps,
        achieved_qps=len(latencies_s) / elapsed_s,
        sent=count,
        errors=errors,
        p50_ms=_percentile_ms(latencies_s, 50),
        p99_ms=_percentile_ms(latencies_s, 99),
        send_lag_ms=lag_s * 1000.0,
    )


def is_carried(step: LoadStep, p99_target_ms: float) -> bool:
    """No errors, ≥ 99% of the rate achieved, and p99 within the target."""
    return (
        step.errors == 0
        and step.achieved_qps >= ACHIEVED_SHARE * step.target_qps
        and step.p99_ms is not None
        and step.p99_ms <= p99_target_ms
    )


def why_not_carried(step: LoadStep, p99_target_ms: float) -> str:
    """Why ``step`` broke the target, in words (empty if it did not)."""
    reason = _broken_rule(step, p99_target_ms)
    if reason and step.send_lag_ms > CLIENT_LAG_MS:
        reason += (
            f" (the load generator fell {step.send_lag_ms:.0f} ms behind: it may be the limit)"
        )
    return reason


def _broken_rule(step: LoadStep, p99_target_ms: float) -> str:
    if step.errors:
        return f"{step.errors} of {step.sent} requests failed at {step.target_qps:g} qps"
    if step.achieved_qps < ACHIEVED_SHARE * step.target_qps:
        return (
            f"achieved {step.achieved_qps:.1f} of {step.target_qps:g} qps (< {ACHIEVED_SHARE:.0%})"
        )
    if step.p99_ms is None or step.p99_ms > p99_target_ms:
        return f"p99 {step.p99_ms or 0:.1f} ms > {p99_target_ms:g} ms at {step.target_qps:g} qps"
    return ""


def _percentile_ms(latencies_s: list[float], q: float) -> float | None:
    if not latencies_s:
        return None
    return float(np.percentile(np.asarray(latencies_s), q)) * 1000.0
