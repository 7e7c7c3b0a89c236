"""``ferryman payloads``, ``feedback`` and ``quality`` over a real SQLite registry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ferryman.config import load_settings
from ferryman.registry import CollectedPayload, Registry

Run = Callable[..., tuple[int, str, str]]


def collected(tmp_path: Path) -> None:
    """Three answered requests of endpoint m, as the collector would have kept them."""
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    records = [
        CollectedPayload(seq=n, request_id=f"r{n}", time=time.time(), status=200,
                         latency_ms=2.0, predictions=[str(n % 2)])
        for n in range(1, 4)
    ]  # fmt: skip
    registry.payloads.add("m", "v1", ("m", 1), "replica-a", records)
    registry.close()


def test_search_label_and_score(run: Run, tmp_path: Path) -> None:
    collected(tmp_path)
    code, out, _ = run("payloads", "m", "--json")
    assert code == 0
    assert [r["request_id"] for r in json.loads(out)] == ["r3", "r2", "r1"]

    assert run("feedback", "r1", "1")[0] == 0  # right: r1 predicted "1"
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"request_id": "r2", "label": "1"}\n\n{"request_id": "r3", "label": "1"}\n')
    code, out, _ = run("feedback", "--file", str(labels))
    assert code == 0
    assert "2 stored, 0 corrected, 0 unchanged, 0 kept for requests not collected yet" in out
    code, out, _ = run("feedback", "r1", "0")  # a change of mind: a correction, not a second row
    assert "r1: corrected: replaced the earlier label 1" in out
    assert "0 stored, 1 corrected" in out
    code, out, _ = run("feedback", "r9", "1")
    assert "r9: unknown_request: no collected answer has this request id yet" in out

    code, out, _ = run("quality", "m", "--json")
    scores = json.loads(out)["v1"]
    assert (scores["labelled"], scores["accuracy"]) == (3, 1 / 3)
    code, out, _ = run("payloads", "m", "--limit", "1")
    assert "r3" in out
    assert "r1" not in out


def test_bad_feedback_is_one_line_that_says_why(run: Run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"request_id": "../x", "label": "1"}\n')
    code, _, err = run("feedback", "--file", str(broken))
    assert code == 1
    assert "broken.jsonl:1: request_id" in err
    assert run("feedback", "r1")[0] == 1
    assert "nothing to send" in run("feedback")[2]
    collected(tmp_path)
    two = tmp_path / "two.jsonl"
    two.write_text('{"request_id": "r1", "label": ["1", "0"]}\n')
    code, _, err = run("feedback", "--file", str(two))
    assert code == 1
    assert "wrong_row_count: request r1 answered 1 rows and got 2 labels" in err
    assert "not deployed" in run("quality", "nowhere")[2]


def test_search_by_variant_status_and_time_range(run: Run, tmp_path: Path) -> None:
    """The payload log answers by endpoint, version, variant, status and a time range."""
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    start = time.time() - 3600
    records = [
        CollectedPayload(seq=n, request_id=f"r{n}", time=start + n * 600,
                         status=500 if n == 3 else 200, latency_ms=2.0)
        for n in range(1, 6)
    ]  # fmt: skip
    registry.payloads.add("m", "v1", ("m", 1), "replica-a", records[:3])
    registry.payloads.add("m", "v2", ("m", 2), "replica-b", records[3:])
    registry.close()

    def found(*args: str) -> list[str]:
        code, out, err = run("payloads", "m", "--json", *args)
        assert code == 0, err
        return [r["request_id"] for r in json.loads(out)]

    assert found("--variant", "v2") == ["r5", "r4"]
    assert found("--version", "1") == ["r3", "r2", "r1"]
    assert found("--status", "500") == ["r3"]
    iso = datetime.fromtimestamp(start + 1500, UTC).isoformat()
    end = datetime.fromtimestamp(start + 2500, UTC).isoformat()
    assert found("--since", iso, "--until", end) == ["r4", "r3"]
    local = datetime.fromtimestamp(start + 2500).replace(microsecond=0).isoformat()  # no offset
    assert found("--until", local) == ["r4", "r3", "r2", "r1"]
    code, _, err = run("payloads", "m", "--since", "yesterday")
    assert code == 1
    assert "--since 'yesterday' is not a time" in err


def test_quality_shows_a_language_models_votes(run: Run, tmp_path: Path) -> None:
    collected(tmp_path)  # endpoint m: a classifier's answers
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    completions = [
        CollectedPayload(seq=n, request_id=f"cmpl-{n}", time=time.time(), status=200,
                         latency_ms=20.0, kind="completion")
        for n in range(1, 5)
    ]  # fmt: skip
    registry.payloads.add("chat", "v1", ("lm", 1), "replica-lm", completions)
    registry.close()
    for completion, vote in (("cmpl-1", "up"), ("cmpl-2", "up"), ("cmpl-3", "down")):
        assert run("feedback", completion, vote)[0] == 0
    code, out, _ = run("quality", "chat", "--json")
    assert code == 0
    scores = json.loads(out)["v1"]
    assert (scores["thumbs_up"], scores["thumbs_down"], scores["thumbs_up_rate"]) == (2, 1, 2 / 3)
    code, out, _ = run("quality", "chat")
    assert "up / down" in out
    assert "2 / 1" in out
    assert "0.667" in out
    code, out, err = run("quality", "m")
    assert code == 0, err
    assert "accuracy" in out
    assert "up / down" not in out  # no votes on a classifier: no such columns
