"""The one allow-list validator for names that users choose.

Model names, aliases, endpoint names and tag/metric/param keys all pass through
:func:`validate_name`; sha256 digests through :func:`validate_digest`. Nothing outside
these rules ever reaches a filesystem path, a URL or a label, so traversal strings such
as ``../x``, ``%2e%2e``, ``..\\``, NUL or full-width dots are refused by construction
rather than by a deny-list that can be bypassed.
"""

from __future__ import annotations

import re

from ferryman.errors import InvalidName

NAME_MAX_LENGTH = 63
KEY_MAX_LENGTH = 128

# A DNS-label-like name: it works as a URL segment, a Kubernetes object name and a
# Prometheus label value without any escaping.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Keys (tags, metrics, params) may also use the separators people use in metric names.
_KEY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.\-/]{0,126}[A-Za-z0-9])?")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def validate_name(value: str, kind: str = "name") -> str:
    """Return ``value`` if it is a valid model, alias or endpoint name, else raise.

    >>> validate_name("digits", "model name")
    'digits'
    """
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise InvalidName(
            f"{kind} {_show(value)} is not allowed; use 1-{NAME_MAX_LENGTH} lowercase letters, "
            "digits and '-', starting and ending with a letter or digit (e.g. 'digits-v2')"
        )
    return value


def validate_key(value: str, kind: str = "key") -> str:
    """Return ``value`` if it is a valid tag, metric or param key, else raise."""
    if not isinstance(value, str) or _KEY.fullmatch(value) is None or ".." in value:
        raise InvalidName(
            f"{kind} {_show(value)} is not allowed; use 1-{KEY_MAX_LENGTH} letters, digits "
            "and '_', '.', '-', '/', starting and ending with a letter or digit, no '..'"
        )
    return value


def validate_digest(value: str) -> str:
    """Return ``value`` if it is a lowercase hex sha256 digest, else raise."""
    if not isinstance(value, str) or _DIGEST.fullmatch(value) is None:
        raise InvalidName(
            f"digest {_show(value)} is not a sha256 digest; expected 64 lowercase hex characters"
        )
    return value


def _show(value: object) -> str:
    """Quote a rejected value for an error message, escaped and bounded in length."""
    text = ascii(value)
    return text if len(text) <= 80 else text[:77] + "..."
