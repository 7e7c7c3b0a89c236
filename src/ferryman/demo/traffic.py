"""The demo's clients: labelled digits sent through the gateway at a fixed, bounded rate.

Each answer is scored against the image's true label, per model version (from the
``ferryman-model-version`` header), so the summary can show what users actually got. The
true labels also go back to the control plane as feedback, in batches and a little late,
as a labelling team would send them: that is what the accuracy gate judges versions on.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
import numpy.typing as npt

FEEDBACK_EVERY_S = 1.0


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    latency_s: dict[str, list[float]] = field(default_factory=dict)
    failed: int = 0
    labels_sent: int = 0

    def accuracy(self, version: str) -> float | None:
        served = self.requests[version]
        return self.correct[version] / served if served else None

    def latency_ms(self, version: str, quantile: float) -> float | None:
        seen = self.latency_s.get(version)
        return float(np.quantile(seen, quantile)) * 1000 if seen else None


@dataclass(frozen=True)
class FeedbackTarget:
    """Where true labels go: the control plane's feedback route and its token."""

    url: str
    token: str


class DigitsTraffic:
    """Sends ``rate`` requests per second (at most ``max_s`` seconds) from a thread."""

    def __init__(
        self,
        url: str,
        input_name: str,
        images: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        *,
        rate: float = 25.0,
        max_s: float = 600.0,
        feedback: FeedbackTarget | None = None,
    ) -> None:
        self._url = url
        self._bodies = [_body(input_name, image) for image in images]
        self._labels = [int(label) for label in labels]
        self._interval_s = 1.0 / rate
        self._max_s = max_s
        self.tally = Tally()
        self._feedback = feedback
        self._labels_due: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Tally:
        self._stop.set()
        self._thread.join(timeout=30)
        return self.tally

    def _run(self) -> None:
        started = flushed = time.monotonic()
        index = 0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() - started < self._max_s:
                position = index % len(self._bodies)
                self._send(client, self._bodies[position], self._labels[position])
                index += 1
                if time.monotonic() - flushed >= FEEDBACK_EVERY_S:
                    self._send_feedback(client)
                    flushed = time.monotonic()
                self._stop.wait(max(0.0, started + index * self._interval_s - time.monotonic()))
            self._send_feedback(client)

    def _send(self, client: httpx.Client, body: bytes, label: int) -> None:
        sent = time.perf_counter()
        try:
            answer = client.post(self._url, content=body)
        except httpx.HTTPError:
            self.tally.failed += 1
            return
        if answer.status_code != 200:
            self.tally.failed += 1
            return
        version = answer.headers.get("ferryman-model-version", "?")
        scores = answer.json()["outputs"][0]["data"]
        self.tally.requests[version] += 1
        self.tally.correct[version] += int(int(np.argmax(scores)) == label)
        self.tally.latency_s.setdefault(version, []).append(time.perf_counter() - sent)
        request_id = answer.headers.get("ferryman-request-id")
        if self._feedback is not None and request_id:
            self._labels_due.append({"request_id": request_id, "label": str(label)})

    def _send_feedback(self, client: httpx.Client) -> None:
        """Post the labels learnt since the last time (kept for the next try on failure)."""
        if self._feedback is None or not self._labels_due:
            return
        batch = self._labels_due[:5000]
        headers = {"authorization": f"Bearer {self._feedback.token}"}
        try:
            answer = client.post(self._feedback.url, json=batch, headers=headers)
        except httpx.HTTPError:
            return
        if answer.status_code in (200, 400):  # 400: none could be stored; resending won't help
            del self._labels_due[: len(batch)]
            self.tally.labels_sent += len(batch)


def _body(input_name: str, image: npt.NDArray[np.float32]) -> bytes:
    tensor = {
        "name": input_name,
        "datatype": "FP32",
        "shape": [1, *image.shape],
        "data": [round(float(v), 4) for v in image.ravel()],
    }
    return json.dumps({"inputs": [tensor]}).encode()
