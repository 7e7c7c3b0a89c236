"""The ``ray`` runtime: replicas and gateways as Ray actors across a cluster's nodes.

``start`` creates a named, detached replica actor (:mod:`.fleet`) and returns at once; Ray
places it. ``observe`` asks every actor for its status in one batch (one Ray call each,
answers awaited together for ``ray.call_timeout_s``) and judges each replica: an actor Ray
reports dead (its node lost, or killed) is FAILED at once; one that stops answering is
FAILED after ``ray.unreachable_after_s``; an answering one is probed over HTTP like a local
replica. Usage (CPU time, resident memory) is what the actor reads of its server on its
node. ``stop`` asks the actor to drain its server (SIGTERM) and kills the actor once the
server has exited or the drain timeout has passed; the actor remembers that it drains, so
a restarted control plane finishes the job. The first ``observe`` of a new control plane
re-adopts every replica actor named in the fleet's namespace, learning each one's spec
from the actor itself: no duplicates, no orphans.

``publish`` keeps one gateway actor on every live node; gateways read the route table from
the control plane's API (``GET /api/v1/routes``, a long poll with the route token derived
from the control token), not from Ray, and ``published`` asks them for the table they hold.

As on the local runtime, every replica takes the fleet secret as its token and every gateway
shows it to replicas (:mod:`ferryman.fleet_secret`), so nothing on a node reaches a replica
around the gateway; the control plane's own probes carry it too. Both travel in the actor's
arguments, which Ray keeps in its GCS: whoever can reach the GCS can run code on every node
anyway (Ray has no authentication of its own), and nobody else can read them, whereas a
process's arguments are readable by every user of its node. Every actor records the
registry identity of its control plane, and ``running_fleet`` reports them, so a control
plane on another registry refuses the running fleet (:mod:`ferryman.control.fleet`).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import ray
from pydantic import ValidationError

from ferryman.config import Settings
from ferryman.errors import InvalidInput
from ferryman.gateway.routes import RouteTable
from ferryman.gateway.routewatch import RouteFeed, route_token
from ferryman.runtimes.base import Fleet, Replica, ReplicaSpec, ReplicaState, lasting_failure
from ferryman.runtimes.ray import fleet
from ferryman.types import Clock

logger = logging.getLogger(__name__)

GATEWAY_CHECK_S = 2.0
"""How often ``publish`` looks for nodes without a gateway (and gateways that died)."""


@dataclass
class Tracked:
    """What this control plane knows of one replica actor."""

    id: str
    actor: fleet.ActorHandle
    started_at_s: float
    spec: ReplicaSpec | None = None
    """None for an adopted actor until it has answered."""
    status: dict[str, Any] = field(default_factory=dict)
    """Its last answer."""
    last_answer_s: float | None = None
    state: ReplicaState = ReplicaState.STARTING
    stopping_since_s: float | None = None


@dataclass(frozen=True)
class Dead:
    """The answer of an actor Ray reports dead (its node lost, or killed)."""

    reason: str


Answer = Any
"""What the actor's method returned, a :class:`Dead`, or None (no answer in time)."""


def check_cluster(settings: Settings) -> int:
    """Join the cluster and count its live nodes; refuse (:class:`InvalidInput`) a cluster
    of several nodes without a registry and artifacts that every node reaches.

    The process stays joined: the control plane's runtime goes on with this connection.
    """
    fleet.connect(settings.ray)
    nodes = len(fleet.alive_nodes())
    if nodes < 2:
        return nodes
    missing = []
    if not settings.resolved_database_url.startswith("postgresql"):
        missing.append("the registry on PostgreSQL (--database-url postgresql+psycopg://…)")
    if settings.artifacts.url is None:
        missing.append("artifacts on S3 (FERRYMAN_ARTIFACTS__URL=s3://BUCKET/PREFIX)")
    if missing:
        raise InvalidInput(
            f"the Ray cluster at {settings.ray.address} has {nodes} nodes, which share no "
            f"disk: run it with {' and '.join(missing)}"
        )
    return nodes


def control_url(settings: Settings) -> str:
    """Where the gateway actors read the route table: ``ray.control_url``, else the API's
    bound address (a gateway actor keeps the URL it was created with, so a restarted control
    plane at another address needs the stable name, e.g. a Kubernetes Service's)."""
    if settings.ray.control_url:
        return settings.ray.control_url
    control = settings.control
    scheme = "https" if control.tls_cert_file else "http"
    return f"{scheme}://{control.host}:{control.port}"


class RayRuntime:
    """A :class:`~ferryman.runtimes.base.Runtime` of Ray actors."""

    def __init__(
        self,
        settings: Settings,
        control_token: str | None,
        registry_id: str = "",
        fleet_secret: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """``registry_id``: the registry whose control plane this is; ``fleet_secret``: the
        replicas' token (None: replicas without auth, as in a runtime opened only to look)."""
        self._settings = settings
        self._registry_id = registry_id
        self._fleet_secret = fleet_secret
        fingerprint = hashlib.sha256((fleet_secret or "").encode()).hexdigest()[:16]
        self._identity = {"registry": registry_id, "secret": fingerprint}
        self._config = settings.ray
        self._clock = clock
        self._owns_ray = fleet.connect(settings.ray)
        self._replicas: dict[str, Tracked] = {}
        self._is_adopted = False
        self._gateways: dict[str, fleet.ActorHandle] = {}
        self._gateway_urls: dict[str, str] = {}
        self._gateways_due_s = 0.0
        self._feed = RouteFeed(
            control_url(settings),
            route_token(control_token) if control_token else None,
            settings.gateway.backend_hosts,
        )
        headers = {"authorization": f"Bearer {fleet_secret}"} if fleet_secret else None
        self._http = httpx.Client(timeout=1.0, headers=headers)

    # -- replicas ------------------------------------------------------------------------

    def observe(self) -> list[Replica]:
        self._adopt()
        tracked = list(self._replicas.values())
        answers = self._ask([entry.actor.status for entry in tracked])
        now = self._clock()
        replicas = []
        for entry, answer in zip(tracked, answers, strict=True):
            if isinstance(answer, dict):
                self._learn(entry, answer, now)
            if entry.stopping_since_s is not None:
                self._finish_stopping(entry, answer, now)
            elif isinstance(answer, Dead):
                if entry.spec is None:  # adopted and already dead: nothing to report
                    self._forget(entry)
                else:
                    replicas.append(self._replica(entry, ReplicaState.FAILED, answer.reason))
            elif entry.spec is not None:
                replicas.append(self._judge(entry, answer is not None, now))
        return replicas

    def start(self, spec: ReplicaSpec) -> Replica:
        replica_id = f"{spec.endpoint}-{spec.variant}-{uuid.uuid4().hex[:8]}"
        actor = fleet.start_replica(
            self._settings, replica_id, asdict(spec), self._env(spec), self._registry_id
        )
        entry = Tracked(replica_id, actor, self._clock(), spec)
        self._replicas[replica_id] = entry
        logger.info("started replica actor %s", replica_id)
        return self._replica(entry, ReplicaState.STARTING)

    def stop(self, replica_id: str) -> None:
        entry = self._replicas.get(replica_id)
        if entry is None or entry.stopping_since_s is not None:
            return
        entry.stopping_since_s = self._clock()
        entry.actor.drain.remote()  # fire and forget: observe finishes the stop

    def running_fleet(self) -> Fleet:
        """The fleet's named actors and the registries they record ('' for an actor that did
        not answer, or was created before actors recorded one), and the held table's."""
        self._adopt()
        namespace = self._config.namespace
        names = [n for n in fleet.named_actors(namespace) if n.startswith(fleet.GATEWAY_PREFIX)]
        gateways = [a for a in (fleet.actor_named(n, namespace) for n in names) if a is not None]
        actors = [entry.actor for entry in self._replicas.values()] + gateways
        answers = self._ask([actor.status for actor in actors])
        registries = {
            str(answer.get("registry", "")) if isinstance(answer, dict) else ""
            for answer in answers
            if not isinstance(answer, Dead)
        }
        table = self.published() if gateways else None
        if table is not None:
            registries.add(table.registry)
        return Fleet(len(self._replicas), bool(gateways), frozenset(registries))

    def stop_fleet(self) -> int:
        self._adopt()
        running = [e.id for e in self._replicas.values() if e.stopping_since_s is None]
        for replica_id in running:
            self.stop(replica_id)
        deadline_s = time.monotonic() + self._settings.serving.drain_timeout_s + 10
        while self._replicas and time.monotonic() < deadline_s:
            self.observe()
            time.sleep(0.2)
        for entry in list(self._replicas.values()):
            self._forget(entry)
        for name in fleet.named_actors(self._config.namespace):
            actor = fleet.actor_named(name, self._config.namespace)
            if actor is not None and name.startswith(fleet.GATEWAY_PREFIX):
                fleet.kill(actor)
        self._gateways.clear()
        self._gateway_urls.clear()
        return len(running)

    def close(self) -> None:
        self._http.close()
        if self._owns_ray:
            ray.shutdown()

    def _adopt(self) -> None:
        """Once: track every replica actor of the namespace that this process did not start."""
        if self._is_adopted:
            return
        self._is_adopted = True
        for name in fleet.named_actors(self._config.namespace):
            if name.startswith(fleet.GATEWAY_PREFIX) or name in self._replicas:
                continue
            actor = fleet.actor_named(name, self._config.namespace)
            if actor is not None:
                self._replicas[name] = Tracked(name, actor, self._clock())
                logger.info("re-adopted replica actor %s", name)

    def _ask(self, methods: list[Any], *args: object) -> list[Answer]:
        """Call each actor method, awaiting all answers together for call_timeout_s."""
        refs = [method.remote(*args) for method in methods]
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=self._config.call_timeout_s)
        return [_answer(ref) for ref in refs]

    def _learn(self, entry: Tracked, status: dict[str, Any], now: float) -> None:
        if entry.last_answer_s is None:  # its first answer: its age is the actor's own
            entry.started_at_s = now - float(status["age_s"])
        entry.status = status
        entry.last_answer_s = now
        if entry.spec is None:
            entry.spec = ReplicaSpec(**status["spec"])
            if status["draining_s"] is not None:  # stopped by a control plane before us
                entry.stopping_since_s = now - float(status["draining_s"])

    def _judge(self, entry: Tracked, has_answered: bool, now: float) -> Replica:
        age_s = now - entry.started_at_s
        if not has_answered:
            if entry.last_answer_s is None:
                if age_s > self._settings.control.replica_startup_timeout_s:
                    reason = f"not placed after {age_s:.0f} s (does a node have its resources?)"
                    return self._replica(entry, ReplicaState.FAILED, reason)
                return self._replica(entry, ReplicaState.STARTING)
            silent_s = now - entry.last_answer_s
            if silent_s > self._config.unreachable_after_s:
                reason = f"its actor has not answered for {silent_s:.0f} s (node lost?)"
                return self._replica(entry, ReplicaState.FAILED, reason)
            return self._replica(entry, entry.state)
        code = entry.status["exit_code"]
        if code is not None:
            reason = f"its server exited with code {code} (see ray/{entry.id}/server.log)"
            return self._replica(entry, ReplicaState.FAILED, reason)
        return self._probe(entry, age_s)

    def _probe(self, entry: Tracked, age_s: float) -> Replica:
        try:
            answer = self._http.get(f"{entry.status['url']}/v2/health/ready")
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            return self._replica(entry, ReplicaState.READY)
        failure = lasting_failure(answer)
        if failure is not None:
            return self._replica(entry, ReplicaState.FAILED, failure)
        if age_s > self._settings.control.replica_startup_timeout_s:
            reason = f"not ready after {age_s:.0f} s (see ray/{entry.id}/server.log)"
            return self._replica(entry, ReplicaState.FAILED, reason)
        return self._replica(entry, ReplicaState.STARTING)

    def _finish_stopping(self, entry: Tracked, answer: Answer, now: float) -> None:
        since_s = entry.stopping_since_s or now
        has_exited = isinstance(answer, Dead) or (
            isinstance(answer, dict) and answer["exit_code"] is not None
        )
        drain_s = self._settings.serving.drain_timeout_s + 5
        if not has_exited and now - since_s > drain_s:
            logger.warning("replica %s did not drain in %.0f s; killing it", entry.id, drain_s)
            has_exited = True
        if has_exited:
            self._forget(entry)

    def _forget(self, entry: Tracked) -> None:
        fleet.kill(entry.actor)
        self._replicas.pop(entry.id, None)

    def _replica(self, entry: Tracked, state: ReplicaState, reason: str = "") -> Replica:
        entry.state = state
        status = entry.status
        assert entry.spec is not None  # noqa: S101 - only replicas with a spec are reported
        return Replica(
            entry.id, entry.spec, state, str(status.get("url", "")), entry.started_at_s, reason,
            node=str(status.get("node_id", "")) or "unplaced",
            cpu_s=status.get("cpu_s"), rss_bytes=status.get("rss_bytes"),
        )  # fmt: skip

    def _env(self, spec: ReplicaSpec) -> dict[str, str]:
        # The database URL travels in the actor's arguments, which Ray keeps in its GCS:
        # use a passwordless URL there (PGPASSFILE, or the server's trust of the nodes).
        env = fleet.settings_environment(self._settings, fleet.REPLICA_SECTIONS)
        env["FERRYMAN_DATABASE_URL"] = self._settings.resolved_database_url
        # The cores Ray reserves for the replica are the ones it fills (serving/cpus.py);
        # unbounded, it would count every core of its node.
        threads = spec.intra_op_threads or 1
        given = max(1, int(self._settings.ray.replica_num_cpus))
        env["FERRYMAN_SERVING__MODEL_CALLS"] = str(max(1, given // threads))
        env["FERRYMAN_SERVING__INTRA_OP_THREADS"] = str(threads)
        env["FERRYMAN_REGISTRY_ID"] = self._registry_id
        if self._fleet_secret is not None:  # the replica's token: see ferryman.fleet_secret
            env["FERRYMAN_SERVING__TOKEN"] = self._fleet_secret
        return {**env, **spec.serving_environment()}

    def _gateway_env(self) -> dict[str, str]:
        if self._fleet_secret is None:
            return {}
        return {"FERRYMAN_GATEWAY__REPLICA_TOKEN": self._fleet_secret}

    # -- gateways ------------------------------------------------------------------------

    def publish(self, table: RouteTable) -> None:
        """Keep a gateway on every live node (each reads ``table`` from the API itself)."""
        now = self._clock()
        if now < self._gateways_due_s:
            return
        self._gateways_due_s = now + GATEWAY_CHECK_S
        alive = fleet.alive_nodes()
        for node_id in alive:
            if node_id not in self._gateways:
                self._gateways[node_id] = fleet.gateway_on(
                    self._settings, node_id, self._feed, self._gateway_env(), self._identity
                )
        for node_id in set(self._gateways) - set(alive):
            del self._gateways[node_id]
        nodes = list(self._gateways)
        running = [self._gateways[node].ensure_running for node in nodes]
        answers = self._ask(running, self._identity)
        for node_id, answer in zip(nodes, answers, strict=True):
            if isinstance(answer, Dead):  # a new one next time
                logger.warning("the gateway actor on node %s died: %s", node_id, answer.reason)
                del self._gateways[node_id]
                self._gateway_urls.pop(node_id, None)
            elif answer == "":  # another registry's or fleet secret's: replaced
                logger.warning("replacing the gateway on node %s (another fleet's)", node_id)
                fleet.kill(self._gateways.pop(node_id))
                self._gateway_urls.pop(node_id, None)
            elif answer is not None:
                self._gateway_urls[node_id] = str(answer)
        for node_id in set(self._gateway_urls) - set(self._gateways):
            del self._gateway_urls[node_id]

    def published(self) -> RouteTable | None:
        """The newest table a gateway of the fleet holds."""
        namespace = self._config.namespace
        names = [n for n in fleet.named_actors(namespace) if n.startswith(fleet.GATEWAY_PREFIX)]
        actors = [fleet.actor_named(name, namespace) for name in names]
        answers = self._ask([actor.table for actor in actors if actor is not None])
        tables = []
        for answer in answers:
            if isinstance(answer, str):
                try:
                    tables.append(RouteTable.from_json(answer, self._feed.backend_hosts))
                except ValidationError:
                    continue
        return max(tables, key=lambda table: table.generation, default=None)

    def gateway_urls(self) -> list[str]:
        return sorted(self._gateway_urls.values())


def _answer(ref: Any) -> Answer:
    try:
        return ray.get(ref, timeout=0)
    except ray.exceptions.GetTimeoutError:
        return None
    except ray.exceptions.ActorUnavailableError:
        return None
    except ray.exceptions.RayActorError as exc:
        return Dead(f"its Ray actor died ({str(exc).strip().splitlines()[0][:200]})")
    except ray.exceptions.RayError as exc:
        logger.warning("a Ray call failed: %s", type(exc).__name__)
        return None
