"""The fleet's actors on Ray: how they are named, placed, created, found and killed.

Every actor of a fleet lives in the fleet's namespace (``ray.namespace``), detached, so it
outlives the control plane that created it. A replica actor is named by its replica id; a
gateway actor by ``gateway:<node id>``, one per node, pinned to it, listening on the node's
address and the gateway port (``gateway.port``). Listing the namespace's
names is how a restarted control plane finds (re-adopts) what it started.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import ray
from pydantic import SecretStr
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ferryman.config import RaySettings, Settings
from ferryman.errors import Unavailable
from ferryman.gateway.routewatch import RouteFeed
from ferryman.runtimes.ray.servers import GatewayServer, ReplicaServer

logger = logging.getLogger(__name__)

GATEWAY_PREFIX = "gateway:"
REPLICA_SECTIONS = ("serving", "connections", "artifacts")
GATEWAY_SECTIONS = ("gateway", "connections")

ActorHandle = Any
"""A Ray actor handle (Ray types its methods dynamically)."""


CONNECT_TRIES = 4
"""Joins tried before giving up, 2, 4 then 8 s apart: Ray Client starts a server process per
driver on the head, and on a busy head that start can miss Ray's own deadline once."""


def connect(
    settings: RaySettings, tries: int = CONNECT_TRIES, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Join the Ray cluster as a driver in the fleet's namespace; False if already joined.

    A cluster that refuses the driver (no GCS there, or Ray Client's server failing to start)
    is tried ``tries`` times, then :class:`Unavailable` says so in one line.
    """
    if ray.is_initialized():
        return False
    for attempt in range(1, tries + 1):
        try:
            ray.init(
                address=settings.address,
                namespace=settings.namespace,
                _node_ip_address=settings.node_ip_address,
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
            break
        except ConnectionError as exc:
            ray.shutdown()  # a half-made client connection is dropped before the next try
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            why = lines[-1] if lines else type(exc).__name__
            if attempt == tries:
                raise Unavailable(
                    f"the Ray cluster at {settings.address} did not take this driver "
                    f"({tries} tries): {why}"
                ) from exc
            logger.warning("the Ray cluster at %s did not take this driver (%s); trying "
                           "again in %d s", settings.address, why, 2**attempt)  # fmt: skip
            sleep(2**attempt)
    logger.info("joined the Ray cluster at %s, namespace %s", settings.address, settings.namespace)
    return True


def settings_environment(settings: Settings, sections: tuple[str, ...]) -> dict[str, str]:
    """``FERRYMAN_…`` variables that give a child on another node these settings sections
    (its own environment's Ferryman settings are dropped), plus the log settings. Secrets are
    left out (they would read '**********'): the runtime adds the ones a child needs."""
    env: dict[str, str] = {
        "FERRYMAN_LOG_LEVEL": settings.log_level,
        "FERRYMAN_LOG_FORMAT": settings.log_format,
    }
    for section in sections:
        model = getattr(settings, section)
        values = model.model_dump(mode="json")
        for name, value in values.items():
            if value is not None and not isinstance(getattr(model, name), SecretStr):
                text = value if isinstance(value, str) else json.dumps(value)
                env[f"FERRYMAN_{section.upper()}__{name.upper()}"] = text
    return env


def start_replica(
    settings: Settings,
    replica_id: str,
    spec: dict[str, object],
    env: dict[str, str],
    registry: str,
) -> ActorHandle:
    """Create the replica's actor; Ray places it (spread, or near ``replica_node_id``)."""
    config = settings.ray
    strategy: object = "SPREAD"
    if config.replica_node_id:
        strategy = NodeAffinitySchedulingStrategy(config.replica_node_id, soft=True)
    options: dict[str, object] = {
        "name": replica_id,
        "namespace": config.namespace,
        "lifetime": "detached",
        "max_restarts": 0,
        "num_cpus": config.replica_num_cpus,
        "num_gpus": config.replica_num_gpus,
        "scheduling_strategy": strategy,
    }
    if config.replica_memory_bytes:
        options["memory"] = config.replica_memory_bytes
    actor = ray.remote(ReplicaServer).options(**options)
    return actor.remote(spec, str(settings.data_dir.absolute()), env, registry)


def gateway_on(
    settings: Settings,
    node_id: str,
    feed: RouteFeed,
    env: dict[str, str],
    identity: dict[str, str],
) -> ActorHandle:
    """The gateway actor of ``node_id``: the one that runs, or a new one pinned to the node
    (``env`` beyond the gateway's settings sections; ``identity`` see GatewayServer)."""
    actor = ray.remote(GatewayServer).options(
        name=f"{GATEWAY_PREFIX}{node_id}",
        namespace=settings.ray.namespace,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=0,
        num_cpus=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    )
    env = settings_environment(settings, GATEWAY_SECTIONS) | env
    data_dir = str(settings.data_dir.absolute())
    return actor.remote(feed, data_dir, env, identity, settings.gateway.port)


def alive_nodes() -> list[str]:
    """Ids of the nodes Ray holds alive now."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [str(node["NodeID"]) for node in nodes if node.get("Alive")]


def named_actors(namespace: str) -> list[str]:
    """Names of the live named actors in ``namespace``."""
    found = ray.util.list_named_actors(all_namespaces=True)
    return [str(entry["name"]) for entry in found if entry.get("namespace") == namespace]


def actor_named(name: str, namespace: str) -> ActorHandle | None:
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:  # gone since it was listed
        return None


def kill(actor: ActorHandle) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except (ValueError, ray.exceptions.RayError):
        logger.debug("actor already gone")
