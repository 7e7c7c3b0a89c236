"""``/api/v1`` routes of alerts: what fired, the rules, and the webhooks told about it.

Rules: the defaults are listed with the users' own, marked ``default``; ``PUT`` with a
default's name overrides it (``"enabled": false`` disables it) and ``DELETE`` of that name
restores the default. Webhooks: the secret is write-only — accepted, used to sign, never
returned.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.control.monitor.alerts import RuleListing, check_removable, rule_listing
from ferryman.control.outbound import OutboundPolicy
from ferryman.names import validate_name
from ferryman.registry import AlertRecord, AlertStatus, RuleSpec, WebhookRecord
from ferryman.registry.alerts import check_webhook_url

router = APIRouter(prefix="/api/v1")


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="http(s) URL the alert events are posted to.")
    secret: str | None = Field(
        default=None,
        max_length=256,
        description="Signs each delivery (HMAC-SHA256); required for a new webhook, "
        "omitted: keep the current one. Never returned.",
    )


@router.get("/alerts")
def list_alerts(
    registry: RegistryDep,
    state: Literal["firing", "resolved", "all"] = "all",
    endpoint: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertRecord]:
    """Alerts, newest first."""
    status = None if state == "all" else AlertStatus(state)
    return registry.alerts.find(status, endpoint, limit)


@router.get("/alert-rules")
def list_rules(registry: RegistryDep) -> list[RuleListing]:
    """Every rule in force: the defaults (or their overrides), then the users' own."""
    return rule_listing(registry.alerts.rules())


@router.put("/alert-rules/{name}")
def put_rule(name: str, spec: RuleSpec, registry: RegistryDep, actor: ActorDep) -> RuleListing:
    registry.alerts.put_rule(name, spec, actor)
    return next(r for r in rule_listing(registry.alerts.rules()) if r.name == name)


@router.delete("/alert-rules/{name}", status_code=204)
def remove_rule(name: str, registry: RegistryDep, actor: ActorDep) -> None:
    validate_name(name, "rule name")
    check_removable(name, registry.alerts.rules())
    registry.alerts.remove_rule(name, actor)


@router.get("/alert-webhooks")
def list_webhooks(registry: RegistryDep) -> list[WebhookRecord]:
    return registry.alerts.webhooks()


@router.put("/alert-webhooks/{name}")
def put_webhook(
    name: str, body: WebhookBody, registry: RegistryDep, actor: ActorDep, request: Request
) -> WebhookRecord:
    """Add or change a webhook; a URL the outbound policy refuses gets 400 with the reason."""
    check_webhook_url(body.url)  # the URL's form first, then where it leads
    OutboundPolicy.from_settings(request.app.state.settings).check_url(body.url)
    return registry.alerts.put_webhook(name, body.url, body.secret, actor)


@router.delete("/alert-webhooks/{name}", status_code=204)
def remove_webhook(name: str, registry: RegistryDep, actor: ActorDep) -> None:
    validate_name(name, "webhook name")
    registry.alerts.remove_webhook(name, actor)
