"""Dashboard sessions: signed, expiring, bound to the token; CSRF tokens bound to the session."""

from __future__ import annotations

import pytest

from ferryman.dashboard.session import Sessions, clear_cookie_header, set_cookie_header
from tests.support import SteppedClock as Clock


def test_a_session_is_valid_until_it_expires() -> None:
    clock = Clock(1_800_000_000.0)  # a wall clock: Unix seconds
    sessions = Sessions("token-a", ttl_s=3600, clock=clock)
    cookie = sessions.issue()
    assert sessions.is_valid(cookie)
    clock.now_s += 3599
    assert sessions.is_valid(cookie)
    clock.now_s += 1
    assert not sessions.is_valid(cookie)


def test_a_session_from_the_future_is_refused() -> None:
    clock = Clock(1_800_000_000.0)  # a wall clock: Unix seconds
    cookie = Sessions("token-a", ttl_s=3600, clock=clock).issue()
    clock.now_s -= 3600
    assert not Sessions("token-a", ttl_s=3600, clock=clock).is_valid(cookie)


def test_rotating_the_token_ends_every_session() -> None:
    cookie = Sessions("token-a", ttl_s=3600).issue()
    assert not Sessions("token-b", ttl_s=3600).is_valid(cookie)
    assert Sessions("token-a", ttl_s=3600).is_valid(cookie)


def test_each_login_is_a_different_session() -> None:
    sessions = Sessions("token-a", ttl_s=3600)
    first, second = sessions.issue(), sessions.issue()
    assert first != second
    assert sessions.csrf_token(first) != sessions.csrf_token(second)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c + "x",
        lambda c: c[:-1],
        lambda c: c.replace("v2.", "v1.", 1),
        lambda c: c.replace(c.split(".")[1], str(int(c.split(".")[1]) + 3600), 1),
        lambda c: c.rsplit(".", 1)[0],
        lambda c: "",
        lambda c: "....",
    ],
)
def test_a_tampered_cookie_is_refused(change: object) -> None:
    sessions = Sessions("token-a", ttl_s=3600)
    cookie = sessions.issue()
    assert callable(change)
    assert not sessions.is_valid(change(cookie))


def test_a_scoped_session_carries_its_role_and_cannot_be_raised_to_admin() -> None:
    sessions = Sessions("token-a", ttl_s=3600)
    cookie = sessions.issue("viewer", 7)
    info = sessions.read(cookie)
    assert info is not None
    assert (info.role, info.token_id) == ("viewer", 7)
    assert sessions.read(cookie.replace(".viewer.7.", ".admin.0.", 1)) is None
    assert sessions.read(cookie.replace(".viewer.7.", ".operator.7.", 1)) is None


def test_the_csrf_token_belongs_to_its_session() -> None:
    sessions = Sessions("token-a", ttl_s=3600)
    cookie, other = sessions.issue(), sessions.issue()
    token = sessions.csrf_token(cookie)
    assert sessions.is_csrf_valid(cookie, token)
    assert not sessions.is_csrf_valid(other, token)
    assert not sessions.is_csrf_valid(cookie, None)
    assert not sessions.is_csrf_valid(cookie, "")
    assert not sessions.is_csrf_valid(cookie, token[:-1])
    assert token not in cookie


def test_the_token_is_checked_but_not_kept() -> None:
    sessions = Sessions("the-real-token", ttl_s=3600)
    assert sessions.is_token("the-real-token")
    assert not sessions.is_token("the-real-token ")
    assert not sessions.is_token("")
    assert "the-real-token" not in repr(vars(sessions))


def test_cookie_flags() -> None:
    plain = set_cookie_header("v", 600, is_secure=False)
    assert plain == "ferryman_session=v; Max-Age=600; Path=/; HttpOnly; SameSite=Strict"
    assert set_cookie_header("v", 600, is_secure=True).endswith("; Secure")
    cleared = clear_cookie_header(is_secure=False)
    assert cleared.startswith("ferryman_session=; Max-Age=0;")
