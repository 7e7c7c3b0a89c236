"""Scoped tokens in the registry, on SQLite and PostgreSQL: hashed, revocable, audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ferryman.errors import Conflict, InvalidInput, NotFound
from ferryman.registry import Registry, TokenRole, token_digest


def test_a_token_is_kept_as_its_digest_and_listed_without_it(registry: Registry) -> None:
    issued = registry.tokens.create("app", TokenRole.INFER, "alice", endpoint="digits")
    viewer = registry.tokens.create("grafana", TokenRole.VIEWER, "alice")
    assert issued.token != viewer.token
    assert [t.name for t in registry.tokens.list()] == ["app", "grafana"]
    active = {t.id: t for t in registry.tokens.active()}
    assert active[issued.record.id].digest == token_digest(issued.token)
    assert active[issued.record.id].endpoint == "digits"
    assert registry.tokens.inference_digests() == {"digits": (token_digest(issued.token),)}
    events = [e for e in registry.list_events(limit=10) if e.action == "token.created"]
    assert [e.details["name"] for e in events] == ["app", "grafana"]
    assert all(issued.token not in str(e.details) for e in events)


def test_revoking_keeps_the_row_and_drops_the_token_from_the_active(registry: Registry) -> None:
    issued = registry.tokens.create("app", TokenRole.INFER, "alice", endpoint="digits")
    revoked = registry.tokens.revoke(issued.record.id, "bob")
    assert revoked.revoked_at is not None
    assert registry.tokens.active() == []
    assert registry.tokens.inference_digests() == {}
    assert registry.tokens.list() == []
    assert [t.id for t in registry.tokens.list(include_revoked=True)] == [issued.record.id]
    with pytest.raises(Conflict, match="already revoked"):
        registry.tokens.revoke(issued.record.id, "bob")
    with pytest.raises(NotFound, match="no token 999"):
        registry.tokens.revoke(999, "bob")
    assert registry.list_events(limit=1)[-1].action == "token.revoked"


def test_last_use_is_recorded_for_many_tokens_at_once(registry: Registry) -> None:
    first = registry.tokens.create("a", TokenRole.OPERATOR, "alice")
    second = registry.tokens.create("b", TokenRole.VIEWER, "alice")
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    registry.tokens.mark_used({first.record.id: at, second.record.id: at})
    assert [t.last_used_at for t in registry.tokens.list()] == [at, at]


@pytest.mark.parametrize(
    ("name", "role", "endpoint", "message"),
    [
        ("app", TokenRole.INFER, None, "names its endpoint"),
        ("ops", TokenRole.OPERATOR, "digits", "not tied to an endpoint"),
        ("../x", TokenRole.VIEWER, None, "token name"),
        ("app", TokenRole.INFER, "Bad Name", "endpoint name"),
    ],
)
def test_bad_tokens_are_refused(
    registry: Registry, name: str, role: TokenRole, endpoint: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        registry.tokens.create(name, role, "alice", endpoint)
    assert registry.tokens.list() == []
