"""The payload log of a replica: a bounded record of the inference requests it answered.

Every inference request over HTTP leaves one record: its request id, arrival time, status,
latency, the top-1 prediction of each row (classifiers) and each row's input summaries
(the values the version's training reference histograms, for input drift), and whether the
client pinned the version (such a record is kept, but no rollout gate reads it). A sampled share
of records also keeps the input tensors, up to a size cap. The log is a ring: the newest
``capacity`` records, numbered by a sequence that only grows. The control plane reads it
with ``GET /ferryman/v1/payloads?after=SEQ`` and keeps what it needs (feedback joins labels
to predictions by request id); nothing here touches a disk or a database.

Nothing is lost silently. A log may sample at a declared ``sample_rate``: a request is kept
when :func:`~ferryman.protocol.payload_sampling.is_logged` says so for its id, the others
are counted as sampled out. A record the ring overwrites before a reader that named this log's
``instance`` was given it is counted as dropped here; the control plane, which knows what
it stored, counts its own gaps exactly (see the collector). Every page carries the totals
(``answered``, ``sampled_out``, ``dropped``) and the declared rate, and ``/metrics`` exposes
them (``ferryman_payload_records_total{outcome}``); the control plane shows its counts
beside the quality figures.

A finished record is kept as its encoded JSON: bytes are invisible to the cyclic garbage
collector, so a full ring of 10,000 records adds nothing to the collector's work (as Python
objects, the records made every full collection walk them all; measured ~90 µs per request
at 3,000 requests/s). A read joins those bytes into its answer as they are, so reading
costs the replica almost nothing per record.
"""

from __future__ import annotations

import os
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy.typing as npt
import orjson

from ferryman.errors import InvalidInput
from ferryman.protocol import strings
from ferryman.protocol.codecs import json_default
from ferryman.protocol.payload_sampling import is_logged
from ferryman.reference import row_summaries
from ferryman.serving.classes import Reading

Arrays = dict[str, npt.NDArray[Any]]
MAX_READ = 20_000


@dataclass(slots=True)
class Payload:
    """One request as the log keeps it; filled in as the request is answered."""

    request_id: str
    time_s: float
    correlation_id: str | None = None
    """The client's own id for the request (``x-request-id``), never used to join feedback."""
    status: int = 0
    latency_ms: float = 0.0
    predictions: list[str] | None = None
    summaries: dict[str, list[float]] | None = None
    inputs: Arrays | None = None
    """The sampled input tensors (held until the record is encoded), or None."""
    reading: Reading | None = None
    """The answer read as classes, whose labels are ``predictions`` (not encoded)."""
    kind: str | None = None
    """``completion`` for a language model's answer (feedback rates it up or down)."""
    pinned: bool = False
    """The client named the version (``/versions/N``): it picked this variant, so the
    request is no sample of the split, and figures a rollout judges leave it out."""
    seq: int = field(default=0)
    is_logged: bool = True
    """Whether the log keeps this request (False: sampled out at the declared rate)."""

    def as_json(self) -> dict[str, Any]:
        inputs = self.inputs
        return {
            "seq": self.seq,
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "time": self.time_s,
            "status": self.status,
            "latency_ms": int(self.latency_ms * 1000 + 0.5) / 1000,  # µs; 3x cheaper than round()
            "predictions": self.predictions,
            "summaries": self.summaries,
            "inputs": None if inputs is None else {n: _tensor(a) for n, a in inputs.items()},
            "kind": self.kind,
            "pinned": self.pinned,
        }

    def encode(self) -> bytes:
        """The record as JSON (numpy arrays written by orjson, without a Python list).

        Copied into a bytes object of its own size: orjson's answer keeps the 4 KiB buffer
        it wrote into, so a full ring of ~200-byte records held 40 MiB instead of 2 MiB
        (``bench/serving/soak_rss.py``: the replica's RSS grew 4 KiB a request until the
        ring was full).
        """
        encoded = orjson.dumps(self.as_json(), option=orjson.OPT_SERIALIZE_NUMPY,
                               default=json_default)  # fmt: skip
        return memoryview(encoded).tobytes()


@dataclass(frozen=True)
class PayloadPolicy:
    """How much the log keeps."""

    capacity: int = 10_000
    input_sample_rate: float = 0.1
    max_input_bytes: int = 16 * 1024
    sample_rate: float = 1.0
    """Share of requests the log keeps, chosen by request id (:func:`is_logged`)."""


@dataclass
class PayloadTotals:
    """What became of every answered request since the replica started."""

    answered: int = 0
    sampled_out: int = 0
    """Not kept: the declared sample rate left them out (their ids say so)."""
    dropped: int = 0
    """Kept, then overwritten by newer records before any reader took them."""


class PayloadLog:
    """The ring of recent payloads; ``begin`` at arrival, ``describe``, then ``finish``."""

    def __init__(
        self,
        policy: PayloadPolicy,
        summary_names: Sequence[str] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.instance = os.urandom(8).hex()
        self._summary_names = tuple(summary_names)
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security
        self._records: deque[bytes] = deque(maxlen=policy.capacity)
        self._seq = 0
        self._handed = 0
        """The highest sequence given to a reader that named this instance."""
        self.totals = PayloadTotals()
        self._is_sampling = policy.sample_rate < 1.0

    def begin(self, request_id: str, correlation_id: str | None = None) -> Payload:
        payload = Payload(request_id, time.time(), correlation_id)
        if self._is_sampling:
            payload.is_logged = is_logged(request_id, self.policy.sample_rate)
        return payload

    def describe(self, payload: Payload, inputs: Arrays, reading: Reading | None) -> None:
        """Note the request's predictions (the class of each row, as it was answered), input
        summaries and (sampled) input tensors."""
        if reading is not None:
            payload.reading = reading
            payload.predictions = reading.labels
        if not payload.is_logged:
            return
        first = next(iter(inputs.values()), None) if self._summary_names else None
        if first is not None:
            self._summarise(payload, first)
        if (
            self._rng.random() < self.policy.input_sample_rate
            and sum(map(_content_bytes, inputs.values())) <= self.policy.max_input_bytes
        ):
            payload.inputs = dict(inputs)

    def _summarise(self, payload: Payload, first: npt.NDArray[Any]) -> None:
        if first.ndim >= 1 and first.dtype.kind in "biuf":  # text has no summaries
            values = row_summaries(self._summary_names, first)
            payload.summaries = {name: [round(float(v), 6) for v in row] for name, row in
                                 values.items()} or None  # fmt: skip

    def finish(self, payload: Payload, status: int, elapsed_s: float) -> None:
        """Close the record with the answer's status and latency, and keep it (or count it as
        sampled out; a kept record that pushes out one no reader took counts as dropped)."""
        totals = self.totals
        totals.answered += 1
        if not payload.is_logged:
            totals.sampled_out += 1
            return
        self._seq += 1
        payload.seq = self._seq
        payload.status = status
        payload.latency_ms = elapsed_s * 1000
        records = self._records
        if len(records) == records.maxlen and self._seq - len(records) > self._handed:
            totals.dropped += 1  # the oldest record, about to be overwritten, was never read
        records.append(payload.encode())

    def outcomes(self) -> dict[str, int]:
        """Answered requests by outcome, for ``/metrics``: ``logged`` (kept, collected or
        waiting), ``sampled_out`` and ``dropped`` (of those logged, overwritten unread)."""
        totals = self.totals
        return {
            "logged": totals.answered - totals.sampled_out,
            "sampled_out": totals.sampled_out,
            "dropped": totals.dropped,
        }

    def page(self, after: int, limit: int, instance: str | None = None) -> bytes:
        """Records with a sequence above ``after``, oldest first, at most ``limit``, as one
        JSON document (the records' bytes joined as they are kept).

        A reader names the ``instance`` its cursor ``after`` belongs to; only a page for a
        reader that named this log's instance counts as taken (others are cursors of an
        earlier replica process, or a first look, whose pages the reader reads again).
        ``dropped`` is how many records after ``after`` this reader can no longer have;
        ``totals`` are the replica's since it started (see :class:`PayloadTotals`).
        """
        if after < 0 or not 1 <= limit <= MAX_READ:
            raise InvalidInput(
                f"after={after}, limit={limit}: after must be ≥ 0 and limit in 1..{MAX_READ}"
            )
        records = self._records
        oldest = self._seq - len(records) + 1  # the sequence of the first record kept
        start = max(0, after + 1 - oldest)
        end = min(len(records), start + limit)
        last = oldest + end - 1 if end > start else max(after, oldest - 1)
        if instance in (None, self.instance):
            self._handed = max(self._handed, last)
        totals = self.totals
        head = orjson.dumps({
            "instance": self.instance,
            "next": last,
            "dropped": max(0, oldest - after - 1),
            "sample_rate": self.policy.sample_rate,
            "totals": {"answered": totals.answered, "sampled_out": totals.sampled_out,
                       "dropped": totals.dropped},
        })  # fmt: skip
        chosen = islice(records, start, end)
        return b"".join((head[:-1], b',"records":[', b",".join(chosen), b"]}"))

    def read(self, after: int, limit: int, instance: str | None = None) -> dict[str, Any]:
        """:meth:`page`, decoded."""
        document: dict[str, Any] = orjson.loads(self.page(after, limit, instance))
        return document


def payload_of(scope: Mapping[str, Any]) -> Payload | None:
    """The payload record the edge opened for this request (None outside the edge)."""
    payload: Payload | None = scope.get("state", {}).get("payload")
    return payload


def _content_bytes(array: npt.NDArray[Any]) -> int:
    return strings.content_bytes(array) if array.dtype.kind in "OSU" else int(array.nbytes)


def _tensor(array: npt.NDArray[Any]) -> dict[str, Any]:
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": array.ravel()}
