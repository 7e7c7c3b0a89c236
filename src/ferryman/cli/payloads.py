"""``ferryman payloads``, ``feedback`` and ``quality``: the payload log from the shell."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, print_json, when
from ferryman.control.api.feedback_routes import feedback_answer
from ferryman.control.metrics.feedback import FeedbackSignals, thumbs
from ferryman.errors import InvalidInput
from ferryman.registry import Feedback, FeedbackStatus, PayloadTally, Rated

Endpoint = Annotated[str, typer.Argument(help="Endpoint name.")]
TIME_HELP = "ISO 8601, e.g. 2026-12-02T14:30; local time unless it has an offset"


def payloads(
    ctx: typer.Context,
    endpoint: Endpoint,
    version: Annotated[int | None, typer.Option(help="Only this model version.")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant, e.g. v2.")] = None,
    status: Annotated[int | None, typer.Option(help="Only this HTTP status, e.g. 500.")] = None,
    last_s: Annotated[float | None, typer.Option("--last", help="Only the last N seconds.")] = None,
    since: Annotated[str | None, typer.Option(help=f"From this time on ({TIME_HELP}).")] = None,
    until: Annotated[str | None, typer.Option(help=f"Before this time ({TIME_HELP}).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    json_output: JsonOption = False,
) -> None:
    """Requests the endpoint answered, as collected from its replicas (newest first)."""
    start = _moment(since, "--since")
    if last_s is not None:
        start = datetime.now(UTC) - timedelta(seconds=last_s)
    records = cli_context(ctx).registry().payloads.search(
        endpoint, version=version, variant=variant, status=status, since=start,
        until=_moment(until, "--until"), limit=limit,
    )  # fmt: skip
    if json_output:
        print_json(records)
        return
    table = Table("time", "request id", "variant", "status", "ms", "prediction", "label",
                  title=f"Payload log of {endpoint}")  # fmt: skip
    for record in records:
        table.add_row(when(record.time), record.request_id, record.variant, str(record.status),
                      f"{record.latency_ms:.1f}", _joined(record.predictions),
                      _joined(record.labels))  # fmt: skip
    console.print(table)


def feedback(
    ctx: typer.Context,
    request_id: Annotated[
        str | None, typer.Argument(help="Request id (ferryman-request-id).")
    ] = None,
    label: Annotated[str | None, typer.Argument(help="Its true label.")] = None,
    file: Annotated[
        Path | None, typer.Option(help='JSON lines of {"request_id": ..., "label": ...}.')
    ] = None,
) -> None:
    """Send ground truth for answered requests: one pair, or a file of them."""
    items = _read_items(file) if file is not None else []
    if request_id is not None:
        if label is None:
            raise InvalidInput("give the label after the request id: ferryman feedback ID LABEL")
        items.append(_item({"request_id": request_id, "label": label}, "the arguments"))
    if not items:
        raise InvalidInput("nothing to send: give REQUEST_ID LABEL, or --file")
    state = cli_context(ctx)
    registry = state.registry()
    pending = state.settings.control.max_pending_feedback
    results = registry.payloads.give_feedback(
        items, state.settings.user, registry.class_labels, pending
    )
    answer = feedback_answer(results)
    if answer.refused == len(results) == 1:
        raise InvalidInput(f"{results[0].status.value}: {results[0].detail}")
    for result in results:
        if result.status not in {FeedbackStatus.STORED, FeedbackStatus.UNCHANGED}:
            console.print(f"{result.request_id}: {result.status.value}: {result.detail}")
    console.print(
        f"{answer.stored} stored, {answer.corrected} corrected, {answer.unchanged} unchanged, "
        f"{answer.unknown} kept for requests not collected yet, "
        f"{answer.sampled_out} for requests the payload log sampled out, {answer.refused} refused"
        + (f" ({answer.not_kept} over control.max_pending_feedback)" if answer.not_kept else "")
    )
    if answer.refused == len(results):
        raise InvalidInput(f"none of the {len(results)} labels was stored; see the lines above")


def quality(
    ctx: typer.Context,
    endpoint: Endpoint,
    last_s: Annotated[float | None, typer.Option("--last", help="Only the last N seconds.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Accuracy, precision, recall and F1 from feedback, per variant of the endpoint; and a
    language model's votes (completions rated up and down, the thumbs-up rate)."""
    registry = cli_context(ctx).registry()
    since = None if last_s is None else datetime.now(UTC) - timedelta(seconds=last_s)
    signals = FeedbackSignals(registry)
    scored = {name: scores for name, (_, _, scores) in signals.by_variant(endpoint, since).items()}
    votes = {name: signals.rated(endpoint, name, since) for name in scored}
    logs = {tally.variant: tally for tally in registry.payloads.tallies(endpoint)}
    if json_output:
        print_json({name: {**q.as_json(), **thumbs(votes[name]),
                           "payload_log": _log_json(logs.get(name))}
                    for name, q in scored.items()})  # fmt: skip
        return
    is_rated = any(rated.rated for rated in votes.values())
    table = Table("variant", "labelled", "accuracy", "precision", "recall", "F1 (macro)",
                  *(("up / down", "thumbs up") if is_rated else ()),
                  "logged / answered", "sample rate", "sampled out", "dropped",
                  title=f"Quality of {endpoint} from feedback")  # fmt: skip
    for name, q in scored.items():
        table.add_row(name, str(q.labelled), *(f"{x:.3f}" if q.labelled else "" for x in
                      (q.accuracy, q.precision, q.recall, q.f1)),
                      *(_vote_cells(votes[name]) if is_rated else ()),
                      *_log_cells(logs.get(name)))  # fmt: skip
    console.print(table)


def _vote_cells(rated: Rated) -> tuple[str, str]:
    """Completions rated up / down, and the share up (empty without votes)."""
    rate = "" if rated.up_rate is None else f"{rated.up_rate:.3f}"
    return f"{rated.up} / {rated.down}", rate


def _log_json(log: PayloadTally | None) -> dict[str, object] | None:
    return None if log is None else log.model_dump(exclude={"variant"})


def _log_cells(log: PayloadTally | None) -> tuple[str, ...]:
    """What the variant's payload logs kept: requests logged of those answered, the declared
    sample rate, and those sampled out or dropped unread (never silently missing)."""
    if log is None:
        return ("", "", "", "")
    return (f"{log.logged - log.dropped} / {log.answered}", f"{log.sample_rate:g}",
            str(log.sampled_out), str(log.dropped))  # fmt: skip


def _read_items(path: Path) -> list[Feedback]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    items = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                document = json.loads(line)
            except ValueError:
                raise InvalidInput(f"{path}:{number} is not JSON") from None
            items.append(_item(document, f"{path}:{number}"))
    return items


def _item(document: object, where: str) -> Feedback:
    try:
        return Feedback.model_validate(document)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        raise InvalidInput(f"{where}: {field}: {problem['msg']}") from None


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a time; use ISO 8601, e.g. "
                           "2026-12-02T14:30 or 2026-12-02T14:30:00+00:00") from None  # fmt: skip
    return moment.astimezone(UTC)  # a time without an offset is local time


def _joined(values: list[str] | None) -> str:
    return "" if values is None else ", ".join(values)
