"""What a Ray actor's server is told: the parent's settings sections, through its environment."""

from __future__ import annotations

import os

import pytest

from ferryman.config import load_settings
from ferryman.errors import InvalidInput
from ferryman.runtimes.ray.fleet import GATEWAY_SECTIONS, REPLICA_SECTIONS, settings_environment
from ferryman.runtimes.ray.runtime import control_url


def test_a_child_on_another_node_gets_the_settings_sections_of_its_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = load_settings(
        log_level="INFO",
        serving={"max_batch_size": 7, "drain_timeout_s": 2.5,
                 "is_remote_without_auth_allowed": True},
        gateway={"backend_hosts": ("10.0.0.5", "10.244.0.0/16"), "allow_insecure_bind": True},
        connections={"idle_timeout_s": 3.0},
        artifacts={"url": "s3://models/fleet", "endpoint_url": "http://127.0.0.1:9000"},
    )  # fmt: skip
    env = settings_environment(parent, (*REPLICA_SECTIONS, *GATEWAY_SECTIONS))
    for key in [key for key in os.environ if key.startswith("FERRYMAN_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir("/")  # no ferryman.toml

    child = load_settings()
    for section in ("serving", "gateway", "connections", "artifacts"):
        assert getattr(child, section) == getattr(parent, section)
    assert child.log_level == "INFO"
    assert "FERRYMAN_DATABASE_URL" not in env  # the runtime adds it for replicas only


def test_secrets_of_the_parent_are_not_passed_on_as_settings() -> None:
    """A dumped secret reads '**********'; the runtime adds the fleet secret itself."""
    parent = load_settings(serving={"token": "s3cret"}, gateway={"replica_token": "s3cret"})
    env = settings_environment(parent, (*REPLICA_SECTIONS, *GATEWAY_SECTIONS))
    assert "FERRYMAN_SERVING__TOKEN" not in env
    assert "FERRYMAN_GATEWAY__REPLICA_TOKEN" not in env
    assert not any("*****" in value or "s3cret" in value for value in env.values())


def test_gateway_actors_reach_the_control_plane_at_its_stable_name_when_given_one() -> None:
    """Bound to 0.0.0.0 in a pod, the API's own address is no URL for another node."""
    bound = load_settings(control={"host": "0.0.0.0", "port": 7070})
    assert control_url(bound) == "http://0.0.0.0:7070"
    named = load_settings(
        control={"host": "0.0.0.0", "port": 7070},
        ray={"control_url": "http://ferryman-control.ml.svc:7070"},
    )
    assert control_url(named) == "http://ferryman-control.ml.svc:7070"
    with pytest.raises((InvalidInput, ValueError), match="control_url"):
        load_settings(ray={"control_url": "http://user:pw@control:7070/api"})
