"""Secrets out of what Ferryman shows: one way to quote a URL that may carry credentials.

A URL reaches a listing, an error message or a log line in one form only, the one
:func:`redact_url` gives: user info (``user:password@``, or a token used as the user name)
becomes ``***@``, every query value becomes ``***`` (``?token=…`` and signed URLs' ``sig=…``
alike; the keys stay, so the URL is still recognisable) and a fragment becomes ``#***``.
The scheme, host, port and path stay.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

MASK = "***"
UNPARSEABLE = "(a URL that cannot be parsed)"


def redact_url(url: str) -> str:
    """``url`` without its credentials, query values or fragment.

    >>> redact_url("https://user:hunter2@example.com:8443/hook?token=abc&v=2#frag")
    'https://***@example.com:8443/hook?token=***&v=***#***'
    >>> redact_url("postgresql+psycopg://root@127.0.0.1:5432/test")
    'postgresql+psycopg://***@127.0.0.1:5432/test'
    >>> redact_url("s3://bucket/models/m.onnx")
    's3://bucket/models/m.onnx'
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here, not in urlsplit
    except ValueError:
        return UNPARSEABLE
    return SplitResult(
        parts.scheme,
        _netloc(parts.netloc),
        parts.path,
        _query(parts.query),
        MASK if parts.fragment else "",
    ).geturl()


def _netloc(netloc: str) -> str:
    _, at, host = netloc.rpartition("@")
    return f"{MASK}@{host}" if at else netloc


def _query(query: str) -> str:
    if not query:
        return ""
    fields = []
    for field in query.split("&"):
        key, has_value, _ = field.partition("=")
        fields.append(f"{key}={MASK}" if has_value else MASK if field else "")
    return "&".join(fields)
