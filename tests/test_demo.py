"""The demo runs end to end on a fresh data dir and tells the story it promises."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ferryman.config import load_settings
from ferryman.demo.story import MODEL, run_demo
from ferryman.registry import Registry


def test_demo_story(tmp_path: Path) -> None:
    registry = Registry.open(load_settings(data_dir=tmp_path / "data"))
    console = Console(record=True, width=120)
    run_demo(registry, "demo-user", tmp_path / "work", console)
    text = console.export_text()

    assert "A pickle was refused" in text
    assert registry.get_version(MODEL, "production").version == 2
    actions = [e.action for e in registry.list_events(MODEL)]
    assert actions == ["model.created", "version.registered", "version.registered", "alias.set"]
    registry.close()
