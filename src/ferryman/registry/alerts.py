"""Alerts as the registry keeps them: user rules, alerts fired and resolved, webhooks.

Rules are stored by name; a stored rule named like a default rule overrides it (the
defaults live in ``ferryman.control.monitor.alerts``). An alert row is written when a rule starts
to hold for a variant and updated when it stops; each change writes its audit event in
the same transaction. A webhook's secret signs deliveries: it is stored, used by the
sender, and never handed out by a listing or written to the audit log; nor is the query of
its URL, which often holds the receiver's own token.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ferryman.errors import InvalidInput, NotFound
from ferryman.names import validate_name
from ferryman.redaction import redact_url
from ferryman.registry.audit import append_event
from ferryman.registry.database import Database
from ferryman.registry.history import SERIES
from ferryman.registry.records import Record
from ferryman.registry.tables import AlertRow, AlertRuleRow, AlertWebhookRow

MAX_LIST = 1_000
MAX_URL_LENGTH = 2048

Comparison = Literal[">", ">=", "<", "<="]


class AlertLevel(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class RuleSpec(BaseModel):
    """When a variant's series crosses a threshold for long enough, an alert fires."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    series: str = Field(description=f"One of: {', '.join(SERIES)}.")
    comparison: Comparison = Field(description="How the value compares with the threshold.")
    threshold: float
    for_s: float = Field(
        default=0.0, ge=0, le=24 * 3600, description="How long it must hold before firing."
    )
    min_samples: int = Field(
        default=0, ge=0, le=10_000_000,
        description="The fewest observations behind the value for the rule to hold: labelled "
        "rows (accuracy, f1), rated completions (thumbs_up_rate), input rows (input_drift_psi) "
        "or requests in the interval (qps, error_rate, p50_ms, p99_ms); other series have none "
        "and ignore it.",
    )  # fmt: skip
    level: AlertLevel = AlertLevel.WARNING
    endpoint: str | None = Field(default=None, description="Only this endpoint; None: all.")
    enabled: bool = Field(default=True, description="False: never evaluated (e.g. a default).")
    description: str = Field(default="", max_length=300)

    @field_validator("series")
    @classmethod
    def _known_series(cls, value: str) -> str:
        if value not in SERIES:
            raise ValueError(f"series {value!r} is not recorded; use one of: {', '.join(SERIES)}")
        return value

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"threshold {value} is not a finite number")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_name(value, "endpoint name")


class AlertRule(RuleSpec):
    name: str

    @field_validator("name")
    @classmethod
    def _rule_name(cls, value: str) -> str:
        return validate_name(value, "rule name")


class AlertRecord(Record):
    id: int
    rule: str
    level: AlertLevel
    endpoint: str
    variant: str
    state: AlertStatus
    value: float | None
    threshold: float
    message: str
    started_at: datetime
    resolved_at: datetime | None


class AlertChange(Record):
    """A rule started (fired) or stopped (resolved) holding for one variant."""

    rule: str
    level: AlertLevel
    endpoint: str
    variant: str
    value: float | None
    threshold: float
    message: str


class WebhookRecord(Record):
    """A webhook as listed: never its secret, and its URL without query values or user info
    (a receiver's token often rides in ``?token=…``; see :func:`ferryman.redaction.redact_url`).
    """

    name: str
    url: str
    updated_by: str
    updated_at: datetime


class WebhookTarget(Record):
    """What the sender needs: where to post and the secret to sign with."""

    name: str
    url: str
    secret: str = Field(repr=False)


class Alerts:
    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    # -- rules ---------------------------------------------------------------------------

    def rules(self) -> list[AlertRule]:
        """The stored rules (users' own and overrides of defaults), by name."""
        with self._db.reading() as session:
            rows = session.scalars(select(AlertRuleRow).order_by(AlertRuleRow.name))
            return [AlertRule(name=row.name, **row.rule) for row in rows]

    def put_rule(self, name: str, spec: RuleSpec, actor: str) -> AlertRule:
        rule = AlertRule(name=validate_name(name, "rule name"), **spec.model_dump())

        def work(session: Session) -> AlertRule:
            now = self._clock()
            row = session.scalar(select(AlertRuleRow).where(AlertRuleRow.name == name))
            if row is None:
                row = AlertRuleRow(name=name)
                session.add(row)
            row.rule, row.updated_by, row.updated_at = spec.model_dump(mode="json"), actor, now
            details = spec.model_dump(mode="json")
            append_event(session, now, actor, "alert_rule.set", ("alert_rule", name, None),
                         details=details)  # fmt: skip
            return rule

        return self._db.write(work)

    def remove_rule(self, name: str, actor: str) -> None:
        def work(session: Session) -> None:
            row = session.scalar(select(AlertRuleRow).where(AlertRuleRow.name == name))
            if row is None:
                raise NotFound(f"no stored alert rule {name!r} (ferryman alerts rules lists them)")
            session.delete(row)
            append_event(session, self._clock(), actor, "alert_rule.removed",
                         ("alert_rule", name, None))  # fmt: skip

        self._db.write(work)

    # -- alerts --------------------------------------------------------------------------

    def record(
        self, fired: Sequence[AlertChange], resolved: Sequence[AlertChange], actor: str
    ) -> list[AlertRecord]:
        """Open an alert per ``fired`` and close the open one per ``resolved``, with events."""

        def work(session: Session) -> list[AlertRecord]:
            now = self._clock()
            changed: list[AlertRecord] = []
            for change in fired:
                row = AlertRow(
                    rule=change.rule, level=change.level.value, endpoint=change.endpoint,
                    variant=change.variant, state=AlertStatus.FIRING.value, value=change.value,
                    threshold=change.threshold, message=change.message, started_at=now,
                )  # fmt: skip
                session.add(row)
                session.flush()
                changed.append(_alert(row))
                _alert_event(session, now, actor, "alert.fired", row)
            for change in resolved:
                for row in session.scalars(_open(change)):
                    row.state, row.resolved_at = AlertStatus.RESOLVED.value, now
                    row.value, row.message = change.value, change.message
                    changed.append(_alert(row))
                    _alert_event(session, now, actor, "alert.resolved", row)
            return changed

        if not fired and not resolved:
            return []
        return self._db.write(work)

    def find(
        self,
        state: AlertStatus | None = None,
        endpoint: str | None = None,
        limit: int = 200,
    ) -> list[AlertRecord]:
        """Alerts, newest first (firing ones only, resolved ones only, or both)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit {limit} must be in 1..{MAX_LIST}")
        query = select(AlertRow)
        if state is not None:
            query = query.where(AlertRow.state == state.value)
        if endpoint is not None:
            query = query.where(AlertRow.endpoint == validate_name(endpoint, "endpoint name"))
        with self._db.reading() as session:
            rows = session.scalars(query.order_by(AlertRow.id.desc()).limit(limit))
            return [_alert(row) for row in rows]

    # -- webhooks ------------------------------------------------------------------------

    def webhooks(self) -> list[WebhookRecord]:
        with self._db.reading() as session:
            rows = session.scalars(select(AlertWebhookRow).order_by(AlertWebhookRow.name))
            return [_webhook(row) for row in rows]

    def webhook_targets(self) -> list[WebhookTarget]:
        """Every webhook with its secret: for the sender only, never for a listing."""
        with self._db.reading() as session:
            rows = session.scalars(select(AlertWebhookRow).order_by(AlertWebhookRow.name))
            return [WebhookTarget(name=row.name, url=row.url, secret=row.secret) for row in rows]

    def put_webhook(self, name: str, url: str, secret: str | None, actor: str) -> WebhookRecord:
        """Add or change a webhook; ``secret`` None keeps the one it has."""
        validate_name(name, "webhook name")
        check_webhook_url(url)
        if secret is not None:
            check_secret(secret)

        def work(session: Session) -> WebhookRecord:
            now = self._clock()
            row = session.scalar(select(AlertWebhookRow).where(AlertWebhookRow.name == name))
            if row is None:
                if secret is None:
                    raise InvalidInput(
                        f"webhook {name!r} is new and needs a secret to sign its deliveries "
                        "(16-256 characters, e.g. from: openssl rand -hex 32)"
                    )
                row = AlertWebhookRow(name=name)
                session.add(row)
            row.url, row.updated_by, row.updated_at = url, actor, now
            if secret is not None:
                row.secret = secret
            details = {"host": urlsplit(url).hostname, "secret_changed": secret is not None}
            append_event(session, now, actor, "alert_webhook.set", ("alert_webhook", name, None),
                         details=details)  # fmt: skip
            return _webhook(row)

        return self._db.write(work)

    def remove_webhook(self, name: str, actor: str) -> None:
        def work(session: Session) -> None:
            row = session.scalar(select(AlertWebhookRow).where(AlertWebhookRow.name == name))
            if row is None:
                raise NotFound(f"no alert webhook {name!r} (ferryman alerts webhooks lists them)")
            session.delete(row)
            append_event(session, self._clock(), actor, "alert_webhook.removed",
                         ("alert_webhook", name, None))  # fmt: skip

        self._db.write(work)


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it, else InvalidInput."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"the webhook URL has {len(url)} characters; at most {MAX_URL_LENGTH}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInput(
            "the webhook URL cannot be parsed; give http(s)://host[:port]/path"
        ) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput(
            f"webhook URLs must be http:// or https:// with a host; got scheme {parts.scheme!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "the webhook URL carries credentials; remove them (deliveries are signed with the "
            "webhook's secret instead)"
        )
    if port == 0 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput("the webhook URL has a zero port or control characters; fix it")
    return url


def check_secret(secret: str) -> str:
    if not 16 <= len(secret) <= 256 or not secret.isprintable():
        raise InvalidInput(
            f"a webhook secret must be 16-256 printable characters; the one given has "
            f"{len(secret)} (e.g. openssl rand -hex 32)"
        )
    return secret


def _open(change: AlertChange) -> Select[AlertRow]:
    return select(AlertRow).where(
        AlertRow.state == AlertStatus.FIRING.value,
        AlertRow.rule == change.rule,
        AlertRow.endpoint == change.endpoint,
        AlertRow.variant == change.variant,
    )


def _alert_event(session: Session, now: datetime, actor: str, action: str, row: AlertRow) -> None:
    details = {"id": row.id, "rule": row.rule, "level": row.level, "variant": row.variant,
               "value": row.value, "threshold": row.threshold, "message": row.message}  # fmt: skip
    subject = ("alert", f"{row.endpoint}/{row.variant}/{row.rule}", None)
    append_event(session, now, actor, action, subject, details=details)


def _alert(row: AlertRow) -> AlertRecord:
    return AlertRecord(
        id=row.id, rule=row.rule, level=AlertLevel(row.level), endpoint=row.endpoint,
        variant=row.variant, state=AlertStatus(row.state), value=row.value,
        threshold=row.threshold, message=row.message, started_at=row.started_at,
        resolved_at=row.resolved_at,
    )  # fmt: skip


def _webhook(row: AlertWebhookRow) -> WebhookRecord:
    return WebhookRecord(
        name=row.name, url=redact_url(row.url), updated_by=row.updated_by,
        updated_at=row.updated_at,
    )  # fmt: skip
