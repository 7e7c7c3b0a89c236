"""Settings precedence: arguments > environment > ferryman.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ferryman.config import load_settings
from ferryman.errors import InvalidInput


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("FERRYMAN_DATA_DIR", "FERRYMAN_DATABASE_URL", "FERRYMAN_CONFIG", "FERRYMAN_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.data_dir == Path("ferryman-data")
    assert (
        settings.resolved_database_url
        == f"sqlite:///{Path('ferryman-data/registry.db').absolute()}"
    )
    assert settings.artifacts_dir == Path("ferryman-data/artifacts")


def test_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "ferryman.toml").write_text('data_dir = "from-toml"\nuser = "toml-user"\n')
    assert load_settings().data_dir == Path("from-toml")
    monkeypatch.setenv("FERRYMAN_DATA_DIR", "from-env")
    settings = load_settings()
    assert settings.data_dir == Path("from-env")
    assert settings.user == "toml-user"
    assert load_settings(data_dir="from-flag").data_dir == Path("from-flag")
    assert load_settings(data_dir=None).data_dir == Path("from-env")


def test_config_file_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "conf" / "prod.toml"
    config.parent.mkdir()
    config.write_text('database_url = "postgresql+psycopg://db/ferryman"\n')
    monkeypatch.setenv("FERRYMAN_CONFIG", str(config))
    assert load_settings().resolved_database_url == "postgresql+psycopg://db/ferryman"
    monkeypatch.setenv("FERRYMAN_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidInput, match="not a file"):
        load_settings()


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    (tmp_path / "ferryman.toml").write_text('data_dri = "typo"\n')
    with pytest.raises(ValidationError, match="data_dri"):
        load_settings()
