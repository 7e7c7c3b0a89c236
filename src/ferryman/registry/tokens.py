"""Scoped tokens: who, besides the admin token's holder, may call Ferryman, and for what.

Three roles: ``operator`` (every control-plane route but token and webhook management),
``viewer`` (reads only) and ``infer`` (one endpoint's inference through the gateway, nothing
on the control plane). A token is ``fm_`` plus 256 random bits, shown once at creation; only
its SHA-256 is stored, so a stolen database yields no usable token. Revoking keeps the row
(``revoked_at``) for the audit trail. ``last_used_at`` is written lazily by whoever checks
tokens (:meth:`Tokens.mark_used`), never on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ferryman.errors import Conflict, InvalidInput, NotFound
from ferryman.names import validate_name
from ferryman.registry.audit import append_event
from ferryman.registry.database import Database
from ferryman.registry.records import Record
from ferryman.registry.tables import ApiTokenRow
from ferryman.types import Clock

TOKEN_PREFIX = "fm_"  # noqa: S105 - a prefix, not a secret


class TokenRole(StrEnum):
    OPERATOR = "operator"
    VIEWER = "viewer"
    INFER = "infer"


class TokenRecord(Record):
    """A token as listed: everything but its secret (which is not kept)."""

    id: int
    name: str
    role: TokenRole
    endpoint: str | None
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedToken(Record):
    """A new token and its secret: the only time the secret is seen."""

    token: str
    record: TokenRecord


@dataclass(frozen=True, slots=True)
class ActiveToken:
    """What a checker needs of a token that is not revoked."""

    id: int
    role: TokenRole
    endpoint: str | None
    digest: str


def token_digest(token: str | bytes) -> str:
    """The stored form of a token: SHA-256, hex (the secret has 256 random bits, so no salt
    or slow hash is needed: there is nothing to guess).

    >>> token_digest("fm_x")[:12]
    '27aa5f70b5a6'
    """
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).hexdigest()


class Tokens:
    """Create, list, revoke and read scoped tokens; each change is one event."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self._db = database
        self._clock = clock

    def create(
        self, name: str, role: TokenRole, actor: str, endpoint: str | None = None
    ) -> IssuedToken:
        """A new token; ``endpoint`` is required for ``infer`` and refused for the others."""
        if role is TokenRole.INFER and endpoint is None:
            raise InvalidInput("an infer token names its endpoint; add --endpoint NAME")
        if role is not TokenRole.INFER and endpoint is not None:
            raise InvalidInput(
                f"a {role.value} token is not tied to an endpoint; drop --endpoint, or use "
                "--scope infer for an inference token of endpoint " + repr(endpoint)
            )
        if endpoint is not None:
            validate_name(endpoint, "endpoint name")
        validate_name(name, "token name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)

        def work(session: Session) -> TokenRecord:
            row = ApiTokenRow(
                name=name, role=role.value, endpoint=endpoint, digest=token_digest(token),
                created_by=actor, created_at=self._clock(),
            )  # fmt: skip
            session.add(row)
            session.flush()
            details = {"name": name, "role": role.value, "endpoint": endpoint}
            append_event(session, row.created_at, actor, "token.created",
                         ("token", str(row.id), None), details=details)  # fmt: skip
            return _record(row)

        return IssuedToken(token=token, record=self._db.write(work))

    def revoke(self, token_id: int, actor: str) -> TokenRecord:
        """Revoke a token for good (it stays listed with ``--all``)."""

        def work(session: Session) -> TokenRecord:
            row = session.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(f"no token {token_id}; see `ferryman tokens list`")
            if row.revoked_at is not None:
                raise Conflict(f"token {token_id} ({row.name}) is already revoked")
            row.revoked_at = self._clock()
            append_event(session, row.revoked_at, actor, "token.revoked",
                         ("token", str(row.id), None), details={"name": row.name})  # fmt: skip
            return _record(row)

        return self._db.write(work)

    def active(self) -> list[ActiveToken]:
        """Every token not revoked, with its digest: what the checkers hold in memory."""
        with self._db.reading() as session:
            rows = session.execute(
                select(ApiTokenRow.id, ApiTokenRow.role, ApiTokenRow.endpoint, ApiTokenRow.digest)
                .where(ApiTokenRow.revoked_at.is_(None))
                .order_by(ApiTokenRow.id)
            )
            return [ActiveToken(id, TokenRole(role), endpoint, digest)
                    for id, role, endpoint, digest in rows]  # fmt: skip

    def inference_digests(self) -> dict[str, tuple[str, ...]]:
        """Digests of the active infer tokens, by endpoint (what the route table carries)."""
        found: dict[str, list[str]] = {}
        for token in self.active():
            if token.role is TokenRole.INFER and token.endpoint is not None:
                found.setdefault(token.endpoint, []).append(token.digest)
        return {endpoint: tuple(sorted(digests)) for endpoint, digests in found.items()}

    def mark_used(self, used: Mapping[int, datetime]) -> None:
        """Record when tokens were last used (one transaction for all of them)."""
        if not used:
            return

        def work(session: Session) -> None:
            for token_id, at in used.items():
                session.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=at)
                )

        self._db.write(work)

    # Last: within the class, ``list`` names this method from here on.
    def list(self, include_revoked: bool = False) -> list[TokenRecord]:
        """Tokens by id (not their secrets, which are not kept); revoked ones on request."""
        with self._db.reading() as session:
            query = select(ApiTokenRow).order_by(ApiTokenRow.id)
            if not include_revoked:
                query = query.where(ApiTokenRow.revoked_at.is_(None))
            return [_record(row) for row in session.scalars(query)]


def _record(row: ApiTokenRow) -> TokenRecord:
    return TokenRecord(
        id=row.id, name=row.name, role=TokenRole(row.role), endpoint=row.endpoint,
        created_by=row.created_by, created_at=row.created_at, last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )  # fmt: skip


class TokenBook:
    """The scoped tokens that are not revoked, in memory by digest, for the middleware.

    Reloaded from the registry at most every ``refresh_s`` (and at once after a change made
    through this process), so a revocation holds within ``refresh_s``. Last use is written
    back at most every ``last_used_every_s``. A lookup hashes the presented token once: the
    dict lookup on its SHA-256 reveals nothing about any stored token.
    """

    def __init__(
        self,
        tokens: Tokens,
        refresh_s: float = 1.0,
        last_used_every_s: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._tokens = tokens
        self._refresh_s = refresh_s
        self._last_used_every_s = last_used_every_s
        self._clock = clock
        self._by_digest: dict[str, ActiveToken] = {}
        self._ids: frozenset[int] = frozenset()
        self._loaded_at: float | None = None
        self._used: dict[int, datetime] = {}
        self._flushed_at = clock()

    def find(self, presented: bytes) -> ActiveToken | None:
        """The active token ``presented`` is, if any (its use is noted)."""
        self._refresh()
        digest = token_digest(presented)
        token = self._by_digest.get(digest)
        if token is None or not hmac.compare_digest(token.digest, digest):
            return None
        self._used[token.id] = datetime.now(UTC)
        return token

    def is_active(self, token_id: int) -> bool:
        self._refresh()
        return token_id in self._ids

    def reload(self) -> None:
        """Read the tokens again now (after a create or revoke here)."""
        active = self._tokens.active()
        self._by_digest = {token.digest: token for token in active}
        self._ids = frozenset(token.id for token in active)
        self._loaded_at = self._clock()

    def _refresh(self) -> None:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._refresh_s:
            self.reload()
        if self._used and now - self._flushed_at >= self._last_used_every_s:
            used, self._used = self._used, {}
            self._flushed_at = now
            self._tokens.mark_used(used)
