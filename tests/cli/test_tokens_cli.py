"""``ferryman tokens`` over a real SQLite registry: a token is printed once, then never."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ferryman.config import load_settings
from ferryman.registry import Registry, TokenRole, token_digest

Run = Callable[..., tuple[int, str, str]]


def test_create_list_and_revoke(run: Run, tmp_path: Path) -> None:
    code, out, err = run("tokens", "create", "--endpoint", "digits", "--scope", "infer")
    assert code == 0, err
    token = out.strip()
    assert re.fullmatch(r"fm_[A-Za-z0-9_-]{43}", token)
    assert "shown this once" in err
    code, out, _ = run("tokens", "create", "--role", "viewer", "--name", "grafana")
    assert code == 0

    code, out, _ = run("tokens", "list")
    assert "digits-infer" in out
    assert "grafana" in out
    assert token not in out
    registry = Registry.open(load_settings(data_dir=tmp_path / "ferryman-data"))
    try:
        digits = next(t for t in registry.tokens.active() if t.role is TokenRole.INFER)
        assert digits.digest == token_digest(token)
        assert digits.endpoint == "digits"
    finally:
        registry.close()

    code, out, _ = run("tokens", "revoke", str(digits.id))
    assert (code, out.strip()) == (0, f"Token {digits.id} (digits-infer) revoked.")
    code, out, _ = run("tokens", "list")
    assert "digits-infer" not in out
    code, out, _ = run("tokens", "list", "--all")
    assert "digits-infer" in out


def test_a_token_needs_a_role_or_the_infer_scope(run: Run) -> None:
    code, _, err = run("tokens", "create")
    assert code == 1
    assert "--role operator|viewer, or --scope infer --endpoint NAME" in err
    code, _, err = run("tokens", "create", "--scope", "infer")
    assert code == 1
    assert "names its endpoint" in err
