"""Fixtures for training tests: a registry on SQLite, and one digits run shared by a session."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.artifacts import LocalArtifactStore
from ferryman.registry import Database, Registry
from ferryman.training import RunEnvironment, RunOutcome, TrainingRequest, start_run
from ferryman.training.image import train_image_classifier

DIGITS_PARAMS = {"epochs": 8, "seed": 0}


def open_registry(root: Path) -> Registry:
    database = Database(f"sqlite:///{root / 'registry.db'}")
    database.migrate()
    return Registry(database, LocalArtifactStore(root / "artifacts"))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return open_registry(tmp_path)


@pytest.fixture(scope="session")
def digits_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return open_registry(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def digits_outcome(digits_registry: Registry) -> RunOutcome:
    """``ferryman train digits`` with a short CI budget (8 epochs, about 3 s on 2 cores)."""
    request = TrainingRequest("digits", "digits", DIGITS_PARAMS)
    return start_run(train_image_classifier, request, RunEnvironment(digits_registry, "ci"))
