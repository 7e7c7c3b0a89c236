"""redact_url: the one form in which a URL that may carry credentials is shown."""

from __future__ import annotations

import pytest

from ferryman.redaction import UNPARSEABLE, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/a/b", "https://hooks.example.com/a/b"),
        ("https://u:pw@h.example:8443/x", "https://***@h.example:8443/x"),
        ("https://ghp_token@github.com/o/r", "https://***@github.com/o/r"),
        ("https://a@b:c@h/x", "https://***@h/x"),
        ("http://h/x?token=t&v=2", "http://h/x?token=***&v=***"),
        ("http://h/x?bare-secret", "http://h/x?***"),
        ("http://h/x?a=&&b=1", "http://h/x?a=***&&b=***"),
        ("http://h/x#access_token=t", "http://h/x#***"),
        (
            "postgresql+psycopg://root:pw@127.0.0.1:5432/test?options=x",
            "postgresql+psycopg://***@127.0.0.1:5432/test?options=***",
        ),
        ("/srv/models/m.onnx", "/srv/models/m.onnx"),
        ("http://[::1/x", UNPARSEABLE),
        ("http://h:port/x", UNPARSEABLE),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
