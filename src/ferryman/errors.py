"""The one error tree of Ferryman.

Every error carries the HTTP status a server renders it with, as ``{"error": message}``
(the Open Inference Protocol's shape); the CLI prints the message on one line and exits 1.
Messages say the value, the rule and the fix.

    FerrymanError (500)
    ├── InvalidInput (400)                  a value breaks a rule the caller can fix
    │   ├── InvalidName (400)               a model name, alias, tag key, digest…
    │   └── UnsafeArtifact (415)            pickle, joblib, torch.save, unknown format
    ├── Unauthenticated (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    │   ├── ModelNotFound / VersionNotFound / AliasNotFound / RunNotFound
    │   └── ArtifactNotFound
    ├── MethodNotAllowed (405)              a known path, another method; carries Allow
    ├── Conflict (409)                      archived object, duplicate variant…
    ├── PayloadTooLarge (413)
    ├── HeadersTooLarge (431)
    ├── ArtifactCorrupt (500)               stored bytes no longer match their digest
    ├── BadGateway (502)                    a replica failed after it may have seen a request
    ├── Unavailable (503)                   not ready, overloaded; may carry Retry-After
    │   └── TooManyRequests (429)           every generation slot of a replica is busy
    ├── DeadlineExceeded (504)
    └── StorageFull (507)                   the artifact store ran out of space
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class FerrymanError(Exception):
    """Root of every error Ferryman raises on purpose."""

    status_code: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(FerrymanError):
    status_code = 400


class InvalidName(InvalidInput):
    pass


class UnsafeArtifact(InvalidInput):
    status_code = 415


class Unauthenticated(FerrymanError):
    status_code = 401


class Forbidden(FerrymanError):
    status_code = 403


class NotFound(FerrymanError):
    status_code = 404


class ModelNotFound(NotFound):
    pass


class VersionNotFound(NotFound):
    pass


class AliasNotFound(NotFound):
    pass


class RunNotFound(NotFound):
    pass


class ArtifactNotFound(NotFound):
    pass


class MethodNotAllowed(FerrymanError):
    """A known path asked with a method it does not take; ``allowed`` fills ``Allow``."""

    status_code = 405

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(FerrymanError):
    status_code = 409


class PayloadTooLarge(FerrymanError):
    status_code = 413


class HeadersTooLarge(FerrymanError):
    status_code = 431


class ArtifactCorrupt(FerrymanError):
    pass


class BadGateway(FerrymanError):
    """A replica failed after the request may have reached it (so it is never retried)."""

    status_code = 502


class Unavailable(FerrymanError):
    status_code = 503

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooManyRequests(Unavailable):
    """A replica's concurrent-stream limit is reached; the client should retry later."""

    status_code = 429


class DeadlineExceeded(FerrymanError):
    status_code = 504


class StorageFull(FerrymanError):
    status_code = 507


def error_for_status(status_code: int, message: str) -> FerrymanError:
    """The error a client raises for a server's ``{"error": message}`` with this status."""
    by_status: dict[int, type[FerrymanError]] = {
        400: InvalidInput,
        401: Unauthenticated,
        403: Forbidden,
        404: NotFound,
        409: Conflict,
        413: PayloadTooLarge,
        415: UnsafeArtifact,
        431: HeadersTooLarge,
        502: BadGateway,
        503: Unavailable,
        504: DeadlineExceeded,
        507: StorageFull,
    }
    error_class = by_status.get(status_code)
    if error_class is None:
        return InvalidInput(message) if 400 <= status_code < 500 else FerrymanError(message)
    return error_class(message)


_PLACES = frozenset({"body", "query", "path", "header"})


def describe_problem(problem: Mapping[str, Any]) -> str:
    """One of pydantic's validation errors as a sentence a person reads: the field, the value
    given, and the rule.

    >>> describe_problem({"loc": ("variants", 0, "replicas"), "input": 100,
    ...                   "msg": "Input should be less than or equal to 64"})
    'replicas of variant 1 is 100; it should be less than or equal to 64'
    >>> describe_problem({"loc": ("body", "endpoint"), "msg": "Field required"})
    'endpoint is missing'
    """
    where = _field_name(problem.get("loc", ()))
    message = str(problem.get("msg", "is not valid"))
    if message == "Field required":
        return f"{where} is missing" if where else "a required field is missing"
    if message == "Extra inputs are not permitted":
        return f"{where} is not a field here" if where else message
    if message.startswith("Value error, "):  # a validator's own words name field and value
        said = message.removeprefix("Value error, ")
        return said if not where or (" " not in where and where in said) else f"{where}: {said}"
    rule = message[0].lower() + message[1:] if message else message
    rule = rule.replace("input should", "it should", 1)
    value = problem.get("input")
    if where and _may_echo(where, value):
        return f"{where} is {value!r}; {rule}"
    return f"{where}: {rule}" if where else rule


_SECRET_WORDS = ("secret", "token", "password", "key", "url", "credential")


def _may_echo(where: str, value: object) -> bool:
    """A value is quoted back only when short, plain and not possibly a secret: nothing of a
    field named like one, and nothing with a URL's user info or scheme (``u:pw@host``)."""
    if not isinstance(value, (str, int, float, bool)) or len(str(value)) > 80:
        return False
    if any(word in where.lower() for word in _SECRET_WORDS):
        return False
    return not (isinstance(value, str) and ("@" in value or "://" in value))


def _field_name(loc: Sequence[object]) -> str:
    """``("body", "variants", 0, "replicas")`` → ``"replicas of variant 1"``."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in _PLACES:
        parts = parts[1:]
    named: list[str] = []
    for part in parts:
        if isinstance(part, int):
            container = named.pop() if named else "items"
            is_plural = container.endswith("s") and len(container) > 3
            named.append(f"{container[:-1] if is_plural else container} {part + 1}")
        elif not str(part).startswith("function-"):  # a validator's name, not a field's
            named.append(str(part))
    return " of ".join(reversed(named))
