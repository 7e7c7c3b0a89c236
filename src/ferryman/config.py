"""Settings: built once at the entry point and passed down, never read at import time.

Precedence, highest first: values passed in (CLI flags), environment variables with the
prefix ``FERRYMAN_`` (nested sections use ``__``: ``FERRYMAN_SERVING__PORT``), the TOML
file (``ferryman.toml`` in the working directory, or the file ``FERRYMAN_CONFIG`` names),
then the defaults below.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ferryman.errors import InvalidInput

DEFAULT_CONFIG_FILE = "ferryman.toml"


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def _state_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "ferryman" if runtime else Path.home() / ".cache" / "ferryman"


class ServingSettings(BaseModel):
    """The data plane of one replica: where it listens, how it batches, what it refuses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1", description="Interface the replica binds; loopback unless told."
    )
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0: any free port).")
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Host header values accepted besides loopback names and the bound address "
        "(DNS-rebinding guard); others get 403.",
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate: serve HTTPS.")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of the cert.")
    grpc_port: int | None = Field(
        default=None, ge=0, le=65535, description="gRPC port of the V2 protocol; None: no gRPC."
    )
    max_batch_size: int = Field(
        default=32, ge=1, le=4096, description="Most rows (batch entries) one model call takes."
    )
    max_delay_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Longest the oldest queued request waits for a batch to fill, in ms; "
        "the wait is skipped when no other request is on its way.",
    )
    queue_capacity: int = Field(
        default=512, ge=1, description="Requests that may wait for the model; more get 503."
    )
    request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Deadline of every request from its body's arrival; then 504.",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body; more gets 413."
    )
    max_string_elements: int = Field(
        default=100_000, ge=1,
        description="Most elements of one BYTES (text) input; each becomes a Python string.",
    )  # fmt: skip
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest total of request header bytes; 431."
    )
    max_header_count: int = Field(
        default=100, ge=8, description="Most request headers; more gets 431."
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish."
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="ONNX Runtime intra-op threads per model call; 0: the usable cores over "
        "model_calls (1 when neither is set).",
    )
    model_calls: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Model calls that may run at once, each on a thread of its own; 0: the "
        "usable cores over intra_op_threads (one per core when neither is set).",
    )
    cache_entries: int = Field(
        default=0, ge=0, description="Response cache size in entries; 0: no cache."
    )
    cache_redis_url: str | None = Field(
        default=None,
        description="Shared response cache, e.g. redis://127.0.0.1:6379/0; None: in-process.",
    )
    payload_log_capacity: int = Field(
        default=10_000, ge=1, le=1_000_000,
        description="Inference records the replica keeps for the control plane to collect.",
    )  # fmt: skip
    payload_input_sample_rate: float = Field(
        default=0.1, ge=0, le=1, description="Share of payload records that keep their inputs."
    )
    payload_sample_rate: float = Field(
        default=1.0, ge=0, le=1,
        description="Share of requests the payload log keeps, chosen by a hash of the request "
        "id so anyone holding an id can tell whether it was logged; the rest are counted as "
        "sampled out.",
    )  # fmt: skip
    payload_max_input_bytes: int = Field(
        default=16 * 1024, ge=0, description="Inputs larger than this are never kept, in bytes."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token every request but liveness must carry (401 without it); "
        "`ferryman up` hands each replica its fleet's secret here (FERRYMAN_SERVING__TOKEN). "
        "None: no auth (a replica served on its own, on loopback).",
    )
    is_remote_without_auth_allowed: bool = Field(
        default=False,
        description="Allow binding a non-loopback host without a token (one with `token` "
        "may always); off, such a bind refuses to start (RELIABILITY S2).",
    )


class GenerationSettings(BaseModel):
    """Limits of a replica that serves a language model (the OpenAI-compatible routes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_prompt_tokens: int = Field(
        default=512, ge=1, le=1_000_000, description="Longest prompt, in tokens (400 beyond)."
    )
    max_completion_tokens: int = Field(
        default=256, ge=1, le=1_000_000, description="Largest max_tokens a request may ask for."
    )
    default_max_tokens: int = Field(
        default=16, ge=1, le=1_000_000, description="max_tokens when a request gives none."
    )
    max_streams: int = Field(
        default=8, ge=1, le=100_000, description="Generations at once; 429 beyond."
    )
    cache_dir: Path | None = Field(
        default=None, description="Where model bundles are unpacked; default: data dir/bundles."
    )


class ControlSettings(BaseModel):
    """The control plane: where its API listens, who may call it, and how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1", description="Interface the API binds; loopback unless told."
    )
    port: int = Field(default=7070, ge=0, le=65535, description="HTTP(S) port of the API.")
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Host header values accepted besides loopback names and the bound address "
        "(DNS-rebinding guard); others get 403.",
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate: serve HTTPS.")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of the cert.")
    auth_required: bool = Field(
        default=True, description="Require the bearer token on every API route (keep it on)."
    )
    allow_insecure_bind: bool = Field(
        default=False,
        description="Allow a non-loopback bind without auth; refused unless this is set.",
    )
    runtime: Literal["local", "ray"] = Field(
        default="local",
        description="Where replicas run: 'local' (processes on this machine) or 'ray' (actors "
        "on a Ray cluster, see the ray section).",
    )
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1024, description="Largest model upload, in bytes; more gets 413."
    )
    max_body_bytes: int = Field(
        default=64 * 1024**2,
        ge=1024,
        description="Largest request body but a model upload (JSON: feedback batches, plans), "
        "in bytes; more gets 413. A JSON body is held and parsed whole.",
    )
    session_ttl_s: float = Field(
        default=12 * 3600.0,
        ge=60,
        le=30 * 24 * 3600,
        description="How long a dashboard login lasts; then the token is asked for again.",
    )
    reconcile_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="Time between two passes of the control loop."
    )
    route_grace_s: float = Field(
        default=1.0,
        ge=0,
        description="Time a new route table has to reach the gateway before replicas leave.",
    )
    replica_startup_timeout_s: float = Field(
        default=120.0, gt=0, description="A replica not ready after this long has failed."
    )
    gateway_probe_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Deadline of the health request the loop sends the serving gateway each "
        "pass; one that misses it on two passes in a row is hung, and is killed so that its "
        "warm standby serves.",
    )
    payload_collect_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="How often replicas' payload logs are collected."
    )
    payload_retention_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="How long collected requests are kept."
    )
    payload_max_rows_per_endpoint: int = Field(
        default=200_000, ge=100, description="Most collected requests kept per endpoint."
    )
    max_pending_feedback: int = Field(
        default=100_000,
        ge=0,
        description="Most labels kept for request ids no collected answer has yet (waiting to "
        "be joined; each is forgotten after payload_retention_s). Past it, a new one is not "
        "kept, and its item in the answer says so.",
    )
    monitor_interval_s: float = Field(
        default=10.0, gt=0, le=300,
        description="Resolution of the metric history: one sample per variant this often.",
    )  # fmt: skip
    history_retention_s: float = Field(
        default=24 * 3600.0, ge=60, le=7 * 24 * 3600,
        description="How long the metric history is kept, in memory and in the registry.",
    )  # fmt: skip
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Longest wait for a webhook receiver's answer."
    )
    webhook_max_attempts: int = Field(
        default=5, ge=1, le=20, description="Deliveries of one alert event before giving up."
    )
    webhook_retry_base_s: float = Field(
        default=1.0, gt=0, le=600,
        description="Wait before the first retry; doubled for each further one.",
    )  # fmt: skip
    webhook_retry_max_s: float = Field(
        default=60.0, gt=0, le=3600, description="Longest wait between two delivery attempts."
    )
    webhook_queue_capacity: int = Field(
        default=1_000, ge=1, le=100_000,
        description="Deliveries waiting (retries included); more are dropped with a warning.",
    )  # fmt: skip
    mlflow_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret of MLflow's model-registry webhook (POST "
        "/api/v1/webhooks/mlflow); None: every delivery is refused.",
    )
    mlflow_webhook_tolerance_s: float = Field(
        default=300.0, gt=0, le=3600,
        description="How far a delivery's timestamp may be from now, either way (replay guard).",
    )  # fmt: skip
    mlflow_import_dirs: tuple[Path, ...] = Field(
        default=(),
        description="Directories an MLflow version's source must lie in (a local ONNX file, or "
        "a model directory with model.onnx) to be imported; empty: nothing is imported.",
    )
    mlflow_models: dict[str, str] = Field(
        default_factory=dict,
        description="MLflow model name → Ferryman model name; unlisted names are used as they "
        "are when valid.",
    )
    prometheus_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#@]+(/[^\s?#@]*)?$",  # no credentials: URLs get logged
        description="A Prometheus server that scrapes the gateway (ferryman export prometheus): "
        "rollout analysis reads the gateway's counters from it instead of scraping the gateway "
        "itself. None: the control plane scrapes.",
    )


class GatewaySettings(BaseModel):
    """The gateway: the one address of all endpoints, applying the route table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1", description="Interface the gateway binds; loopback unless told."
    )
    port: int = Field(
        default=8000, ge=0, le=65535, description="HTTP port (replicas default to 8080)."
    )
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Host header values accepted besides loopback names and the bound address "
        "(DNS-rebinding guard); others get 403.",
    )
    allow_insecure_bind: bool = Field(
        default=False,
        description="Allow a non-loopback bind; the gateway has no auth of its own.",
    )
    tls_cert_file: Path | None = Field(default=None, description="PEM certificate: serve HTTPS.")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of the cert.")
    routes_file: Path | None = Field(
        default=None, description="Route table JSON to apply; default: routes.json in the data dir."
    )
    routes_poll_interval_s: float = Field(
        default=0.15, gt=0, le=10, description="How often the route file is checked for changes."
    )
    backend_hosts: tuple[str, ...] = Field(
        default=(),
        description="Backend hosts allowed besides loopback in the route table: names, IP "
        "addresses, or networks (CIDR, e.g. 10.244.0.0/16, for replicas on pods' addresses).",
    )
    replica_token: SecretStr | None = Field(
        default=None,
        description="The fleet's secret, sent to replicas as their bearer token (`ferryman up` "
        "sets it through FERRYMAN_GATEWAY__REPLICA_TOKEN); None: replicas without auth.",
    )
    connect_timeout_s: float = Field(
        default=1.0, gt=0, description="Longest wait to connect to a replica; then the next one."
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for a replica's whole answer; then 504."
    )
    try_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Longest wait for one replica's answer to one try; then 504, never "
        "retried (the replica may have processed it), and the replica is skipped for "
        "backend_recheck_s. Default: request_timeout_s.",
    )
    sticky_judged_per_key: int = Field(
        default=10,
        ge=1,
        description="Requests one sticky key (the route's sticky header, which clients choose) "
        "adds to the traffic rollouts judge per sticky_window_s; the rest are answered and "
        "counted apart, so one client cannot outweigh many users.",
    )
    sticky_window_s: float = Field(
        default=10.0, gt=0, le=3600, description="The window of sticky_judged_per_key."
    )
    sticky_keys_max: int = Field(
        default=65_536,
        ge=1,
        le=10_000_000,
        description="Sticky keys counted per window (memory bound); a key beyond them is not "
        "judged in that window.",
    )
    backend_recheck_s: float = Field(
        default=2.0,
        gt=0,
        description="How long a replica that refused a connection, timed out or broke a "
        "connection is skipped.",
    )
    pool_connections_per_backend: int = Field(
        default=256, ge=1, description="Most idle keep-alive connections kept to one replica."
    )
    pool_keepalive_s: float = Field(
        default=4.0,
        gt=0,
        description="Idle time before a pooled connection is closed; below the replica's own.",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body; more gets 413."
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest total of request header bytes; 431."
    )
    max_header_count: int = Field(
        default=100, ge=8, description="Most request headers; more gets 431."
    )
    shadow_max_in_flight: int = Field(
        default=64, ge=0, description="Most shadow copies on their way; more are dropped."
    )
    shadow_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a shadow answer before it is an error."
    )
    shadow_tolerance: float = Field(
        default=1e-3, ge=0, description="Relative (and absolute) difference of outputs that match."
    )

    @field_validator("backend_hosts")
    @classmethod
    def _check_networks(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        """A network entry (one with '/') must parse now, not at the first route table."""
        for entry in hosts:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not a network; e.g. 10.244.0.0/16") from None
        return hosts


class ConnectionSettings(BaseModel):
    """Client connections, the same rules for every server (replica, gateway, control plane).

    uvicorn alone puts no deadline on a request's head or body, so a client trickling
    bytes (slowloris) would hold a connection and its file descriptor for ever.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    head_timeout_s: float = Field(
        default=10.0, gt=0, le=300,
        description="A request head (request line and headers) must be complete this long "
        "after the connection opened or the head's first byte; then 408 and close.",
    )  # fmt: skip
    body_timeout_s: float = Field(
        default=10.0, gt=0, le=300,
        description="Time a request body has after its head, plus one second for every "
        "body_min_rate_bytes_s bytes that arrive; then 408 and close.",
    )  # fmt: skip
    body_min_rate_bytes_s: int = Field(
        default=8 * 1024, ge=1,
        description="Slowest average body rate, in bytes a second, that never times out.",
    )  # fmt: skip
    idle_timeout_s: float = Field(
        default=20.0, gt=0, le=300,
        description="An idle keep-alive connection is closed after this long.",
    )  # fmt: skip
    max_connections: int = Field(
        default=4096, ge=16, le=1_000_000,
        description="Most open client connections (fewer if the fd limit allows fewer); one "
        "more closes an idle one, else the slowest request still arriving.",
    )  # fmt: skip
    insecure_http: bool = Field(
        default=False,
        description="Serve plain HTTP on a non-loopback address (no TLS cert and key): tokens "
        "and data then cross the network in clear, with a warning at start. Off, such a bind "
        "refuses to start (ferryman --insecure-http sets it).",
    )


class OutboundSettings(BaseModel):
    """Requests Ferryman itself sends (alert webhooks, Prometheus): public addresses only.

    Loopback, link-local (cloud metadata), private, unspecified and the control plane's own
    addresses are refused unless listed here (ferryman.control.outbound).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: tuple[str, ...] = Field(
        default=(),
        description="Destinations allowed although not public: CIDRs (10.0.0.0/8, fd00::/8) "
        "or host:port (hooks.internal:443, 127.0.0.1:9000).",
    )


class ArtifactSettings(BaseModel):
    """Where artifact bytes live: the data dir by default, or an S3 bucket shared by nodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = Field(
        default=None,
        pattern=r"^s3://[^\s/?#@]+(/[^\s?#@]*)?$",  # credentials: the AWS chain
        description="s3://BUCKET[/PREFIX] to keep artifacts in S3 (read through a local cache "
        "on each node); None: the data dir's artifacts directory.",
    )
    endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#@]+(/[^\s?#@]*)?$",
        description="Endpoint of an S3-compatible store (MinIO, Ceph, moto); None: AWS's.",
    )
    region: str | None = Field(default=None, description="S3 region; None: the AWS chain's.")
    cache_dir: Path | None = Field(
        default=None,
        description="Local cache of S3 artifacts on this node; default: artifact-cache in the "
        "data dir.",
    )
    multipart_threshold_bytes: int = Field(
        default=64 * 1024 * 1024, ge=5 * 1024 * 1024,
        description="Uploads and copies larger than this go in parts of this size, in bytes.",
    )  # fmt: skip


class RaySettings(BaseModel):
    """The ``ray`` runtime: which cluster, which namespace, what each replica asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field(
        default="auto",
        description="Address of the Ray cluster's head (HOST:PORT of its GCS), or 'auto'.",
    )
    namespace: str = Field(
        default="ferryman",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="Ray namespace of this fleet's named actors; one per fleet.",
    )
    control_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#@]+$",
        description="Base URL at which the gateway actors on the Ray nodes reach the control "
        "plane's API (e.g. its Kubernetes Service, http://ferryman-control.ferryman.svc:7070); "
        "None: http(s)://control.host:control.port, which must then be an address the nodes "
        "reach (not 0.0.0.0).",
    )
    node_ip_address: str | None = Field(
        default=None,
        description="This process's address as a Ray node (when it differs from the one Ray "
        "detects, e.g. on a cluster of several loopback addresses); None: Ray's guess.",
    )
    replica_num_cpus: float = Field(
        default=1.0, ge=0, description="CPUs Ray reserves for each replica (fractions allowed)."
    )
    replica_memory_bytes: int | None = Field(
        default=None, ge=0, description="Memory Ray reserves for each replica, in bytes."
    )
    replica_num_gpus: float = Field(default=0.0, ge=0, description="GPUs for each replica.")
    replica_node_id: str | None = Field(
        default=None,
        description="Place replicas on this Ray node (soft affinity); None: spread them.",
    )
    call_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="Longest wait for an actor's answer in one tick."
    )
    unreachable_after_s: float = Field(
        default=10.0, gt=0,
        description="A replica whose actor has not answered for this long has failed (an "
        "actor Ray reports dead has failed at once).",
    )  # fmt: skip


class TrainingSettings(BaseModel):
    """Training runs and the gate their exported variants must pass."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fp32_parity_max_abs_diff: float = Field(
        default=1e-4,
        ge=0,
        description="Largest output difference (absolute) an onnx-fp32 variant may show "
        "against the model it was exported from.",
    )
    int8_accuracy_drop_max_pct: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="Most validation accuracy, in percentage points, a quantised variant may "
        "lose against onnx-fp32 before the gate rejects it.",
    )
    latency_repeats_count: int = Field(
        default=20, ge=1, le=10_000, description="Timed runs per batch size (median reported)."
    )


class CostSettings(BaseModel):
    """What the fleet's machines cost, for endpoint costs and recommendations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: str | None = Field(
        default=None,
        description="Instance shape (a name in the catalogue) each replica runs on; "
        "None: costs are not shown.",
    )
    catalogue: Path | None = Field(
        default=None,
        description="TOML file of instance shapes and prices per hour; None: the example "
        "catalogue shipped with Ferryman (example prices).",
    )


class Settings(BaseSettings):
    """Everything a Ferryman process can be told; each field says its unit."""

    model_config = SettingsConfigDict(
        env_prefix="FERRYMAN_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(
        default=Path("ferryman-data"),
        description="Where the registry database (by default) and the artifacts live.",
    )
    state_dir: Path = Field(
        default_factory=_state_dir,
        description="Where a running control plane notes its data dir, so commands from "
        "another shell find it without --data-dir; default $XDG_RUNTIME_DIR/ferryman, "
        "else ~/.cache/ferryman.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the registry, e.g. postgresql+psycopg://host/db; "
        "default: the SQLite file registry.db in the data dir.",
    )
    user: str = Field(
        default_factory=_current_user,
        description="Who is recorded as the actor of changes (created_by, events).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", description="Level of the CLI's log output (on stderr)."
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="Rich console lines for people, JSON lines for machines."
    )
    sqlite_busy_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a SQLite writer waits for the lock."
    )
    registry_id: str | None = Field(
        default=None,
        max_length=64,
        description="The registry identity a replica must load from (set by the control "
        "plane that starts it); a replica whose database is another registry refuses to start.",
    )
    serving: ServingSettings = Field(
        default_factory=ServingSettings, description="The data plane of a replica."
    )
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings, description="Replicas that serve language models."
    )
    control: ControlSettings = Field(
        default_factory=ControlSettings, description="The control plane's API server."
    )
    gateway: GatewaySettings = Field(
        default_factory=GatewaySettings, description="The gateway in front of all endpoints."
    )
    connections: ConnectionSettings = Field(
        default_factory=ConnectionSettings,
        description="Deadlines and a cap on client connections, for every server.",
    )
    outbound: OutboundSettings = Field(
        default_factory=OutboundSettings,
        description="Where Ferryman's own requests (webhooks, Prometheus) may go.",
    )

    training: TrainingSettings = Field(
        default_factory=TrainingSettings, description="Training runs and the variant gate."
    )
    artifacts: ArtifactSettings = Field(
        default_factory=ArtifactSettings, description="Where artifact bytes live."
    )
    ray: RaySettings = Field(default_factory=RaySettings, description="The Ray runtime.")
    cost: CostSettings = Field(
        default_factory=CostSettings, description="Instance shape and catalogue of the fleet."
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: the configured one or the data dir's SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'registry.db').absolute()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def artifact_cache_dir(self) -> Path:
        """The node-local cache of an S3 artifact store."""
        return self.artifacts.cache_dir or self.data_dir / "artifact-cache"

    @property
    def bundles_dir(self) -> Path:
        """Where model bundles are unpacked for ONNX Runtime GenAI, by digest."""
        return self.generation.cache_dir or self.data_dir / "bundles"

    @property
    def routes_path(self) -> Path:
        """The route table file the control plane writes and the gateway reads."""
        return self.gateway.routes_file or self.data_dir / "routes.json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        named = os.environ.get("FERRYMAN_CONFIG")
        if named and not Path(named).is_file():
            raise InvalidInput(f"FERRYMAN_CONFIG names {named!r}, which is not a file")
        toml_file = Path(named or DEFAULT_CONFIG_FILE)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))


def load_settings(**overrides: Any) -> Settings:
    """Build the process's settings; ``None`` overrides mean "not given"."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
