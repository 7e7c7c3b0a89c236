"""The registry: durable truth about models, versions, aliases, variants, runs and events."""

from __future__ import annotations

from ferryman.registry.alerts import (
    AlertChange,
    AlertLevel,
    AlertRecord,
    AlertRule,
    Alerts,
    AlertStatus,
    RuleSpec,
    WebhookRecord,
    WebhookTarget,
)
from ferryman.registry.capacity import CapacityResult, CapacityResults, LoadStep, ServingConfig
from ferryman.registry.database import Database
from ferryman.registry.deployments import (
    Autoscaling,
    DeploymentRecord,
    Deployments,
    DeploymentSpec,
    HeaderRuleSpec,
    VariantSpec,
    scaled,
)
from ferryman.registry.feedback import Feedback, FeedbackResult, FeedbackStatus
from ferryman.registry.history import SERIES, MetricHistory, MetricSample
from ferryman.registry.lookup import MAX_VERSION, VersionRef
from ferryman.registry.metadata import VersionMetadata, build_metadata
from ferryman.registry.outbox import OutboxEntry, WebhookOutbox
from ferryman.registry.payloads import (
    CollectedPage,
    CollectedPayload,
    Labelled,
    PayloadRecord,
    Payloads,
    PayloadTally,
    PayloadTotals,
    Rated,
)
from ferryman.registry.policies import (
    OfflineGate,
    Policies,
    PolicyRecord,
    Trigger,
    offline_gate,
)
from ferryman.registry.records import (
    AliasRecord,
    Checkpoint,
    EventRecord,
    MetricPoint,
    ModelRecord,
    RunRecord,
    RunStatus,
    VariantRecord,
    VariantStatus,
    VersionRecord,
)
from ferryman.registry.registry import PRODUCTION, Registry
from ferryman.registry.rollouts import RolloutRecord, Rollouts, RolloutStatus
from ferryman.registry.runs import RunLog
from ferryman.registry.tokens import (
    ActiveToken,
    IssuedToken,
    TokenBook,
    TokenRecord,
    TokenRole,
    Tokens,
    token_digest,
)

__all__ = [
    "MAX_VERSION",
    "PRODUCTION",
    "SERIES",
    "ActiveToken",
    "AlertChange",
    "AlertLevel",
    "AlertRecord",
    "AlertRule",
    "AlertStatus",
    "Alerts",
    "AliasRecord",
    "Autoscaling",
    "CapacityResult",
    "CapacityResults",
    "Checkpoint",
    "CollectedPage",
    "CollectedPayload",
    "Database",
    "DeploymentRecord",
    "DeploymentSpec",
    "Deployments",
    "EventRecord",
    "Feedback",
    "FeedbackResult",
    "FeedbackStatus",
    "HeaderRuleSpec",
    "IssuedToken",
    "Labelled",
    "LoadStep",
    "MetricHistory",
    "MetricPoint",
    "MetricSample",
    "ModelRecord",
    "OfflineGate",
    "OutboxEntry",
    "PayloadRecord",
    "PayloadTally",
    "PayloadTotals",
    "Payloads",
    "Policies",
    "PolicyRecord",
    "Rated",
    "Registry",
    "RolloutRecord",
    "RolloutStatus",
    "Rollouts",
    "RuleSpec",
    "RunLog",
    "RunRecord",
    "RunStatus",
    "ServingConfig",
    "TokenBook",
    "TokenRecord",
    "TokenRole",
    "Tokens",
    "Trigger",
    "VariantRecord",
    "VariantSpec",
    "VariantStatus",
    "VersionMetadata",
    "VersionRecord",
    "VersionRef",
    "WebhookOutbox",
    "WebhookRecord",
    "WebhookTarget",
    "build_metadata",
    "offline_gate",
    "scaled",
    "token_digest",
]
