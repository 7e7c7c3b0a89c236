"""Which role may call which control-plane route, and the scoped tokens held in memory.

Roles, widest first: ``admin`` (the control-token file), ``operator`` (rollouts, scaling,
deployments, policies, feedback, alerts, the registry: everything but tokens and webhook
secrets), ``viewer`` (reads only) and ``infer`` (a data-plane token: nothing here).

:data:`CONTROL_ROUTES` is the one literal decision per route and method; the security
middleware enforces it and the route census (``tests/control/api/test_security.py``) fails
when the app exposes a route that is not in it. A path that matches no entry needs admin.
"""

from __future__ import annotations

import re
from enum import StrEnum
from types import MappingProxyType

from ferryman.registry import TokenRole


class Access(StrEnum):
    """Who may call a route."""

    OPEN = "open"
    """Anyone: health, the login page, static files (nothing private)."""
    SIGNED = "signed"
    """A request signed by another system (checked by the route itself), no token."""
    SESSION = "session"
    """Any signed-in role (logging out)."""
    READ = "read"
    """Viewer, operator, admin."""
    OPERATE = "operate"
    """Operator, admin."""
    ADMIN = "admin"
    """The admin token only."""


ADMIN = "admin"
ALLOWED: MappingProxyType[Access, frozenset[str]] = MappingProxyType({
    Access.SESSION: frozenset({ADMIN, TokenRole.OPERATOR, TokenRole.VIEWER}),
    Access.READ: frozenset({ADMIN, TokenRole.OPERATOR, TokenRole.VIEWER}),
    Access.OPERATE: frozenset({ADMIN, TokenRole.OPERATOR}),
    Access.ADMIN: frozenset({ADMIN}),
})  # fmt: skip
_R, _O, _A = Access.READ, Access.OPERATE, Access.ADMIN

CONTROL_ROUTES: MappingProxyType[tuple[str, str], Access] = MappingProxyType({
    ("GET", "/healthz"): Access.OPEN,
    ("GET", "/ui/login"): Access.OPEN,
    ("POST", "/ui/login"): Access.OPEN,
    ("GET", "/ui/assets/{name:path}"): Access.OPEN,
    ("POST", "/api/v1/webhooks/mlflow"): Access.SIGNED,
    ("GET", "/api/v1/routes"): Access.SIGNED,  # the gateways' route token, checked there
    ("POST", "/ui/logout"): Access.SESSION,
    ("GET", "/"): _R,
    ("GET", "/ui"): _R,
    ("GET", "/ui/"): _R,
    ("GET", "/ui/endpoints/{endpoint}"): _R,
    ("GET", "/ui/models"): _R,
    ("GET", "/ui/models/{model}"): _R,
    ("GET", "/ui/rollouts"): _R,
    ("GET", "/ui/rollouts/{rollout_id}"): _R,
    ("GET", "/ui/events"): _R,
    ("GET", "/metrics"): _R,
    ("GET", "/openapi.json"): _R,
    ("GET", "/api/v1/models"): _R,
    ("GET", "/api/v1/models/{model}"): _R,
    ("POST", "/api/v1/models/{model}/archive"): _O,
    ("GET", "/api/v1/models/{model}/versions"): _R,
    ("POST", "/api/v1/models/{model}/versions"): _O,
    ("GET", "/api/v1/models/{model}/versions/{version}"): _R,
    ("POST", "/api/v1/models/{model}/versions/{version}/archive"): _O,
    ("GET", "/api/v1/models/{model}/versions/{version}/variants"): _R,
    ("GET", "/api/v1/models/{model}/versions/{version}/capacity"): _R,
    ("POST", "/api/v1/models/{model}/versions/{version}/capacity"): _O,
    ("GET", "/api/v1/capacity/jobs/{job_id}"): _R,
    ("GET", "/api/v1/costs"): _R,
    ("GET", "/api/v1/costs/daily"): _R,
    ("PUT", "/api/v1/models/{model}/aliases/{alias}"): _O,
    ("DELETE", "/api/v1/models/{model}/aliases/{alias}"): _O,
    ("GET", "/api/v1/runs"): _R,
    ("GET", "/api/v1/runs/{run_id}"): _R,
    ("GET", "/api/v1/events"): _R,
    ("GET", "/api/v1/deployments"): _R,
    ("GET", "/api/v1/deployments/{endpoint}"): _R,
    ("PUT", "/api/v1/deployments/{endpoint}"): _O,
    ("POST", "/api/v1/deployments/{endpoint}/scale"): _O,
    ("DELETE", "/api/v1/deployments/{endpoint}"): _O,
    ("POST", "/api/v1/feedback"): _O,
    ("GET", "/api/v1/endpoints"): _R,
    ("GET", "/api/v1/endpoints/{endpoint}/history"): _R,
    ("GET", "/api/v1/endpoints/{endpoint}/payloads"): _R,
    ("GET", "/api/v1/endpoints/{endpoint}/quality"): _R,
    ("GET", "/api/v1/rollouts"): _R,
    ("POST", "/api/v1/rollouts"): _O,
    ("GET", "/api/v1/rollouts/{rollout_id}"): _R,
    ("GET", "/api/v1/rollouts/{rollout_id}/events"): _R,
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): _O,
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): _O,
    ("POST", "/api/v1/rollouts/{rollout_id}/promote"): _O,
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): _O,
    ("POST", "/api/v1/rollouts/{rollout_id}/rollback"): _O,
    ("GET", "/api/v1/policies"): _R,
    ("GET", "/api/v1/policies/{model}"): _R,
    ("PUT", "/api/v1/policies/{model}"): _O,
    ("DELETE", "/api/v1/policies/{model}"): _O,
    ("GET", "/api/v1/alerts"): _R,
    ("GET", "/api/v1/alert-rules"): _R,
    ("PUT", "/api/v1/alert-rules/{name}"): _O,
    ("DELETE", "/api/v1/alert-rules/{name}"): _O,
    ("GET", "/api/v1/alert-webhooks"): _R,
    ("PUT", "/api/v1/alert-webhooks/{name}"): _A,
    ("DELETE", "/api/v1/alert-webhooks/{name}"): _A,
    ("GET", "/api/v1/tokens"): _A,
    ("POST", "/api/v1/tokens"): _A,
    ("DELETE", "/api/v1/tokens/{token_id}"): _A,
    ("POST", "/api/v1/fleet/stop"): _A,
})  # fmt: skip
"""Every control-plane route and method → who may call it. HEAD follows GET."""


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join(
        (".+" if part.endswith(":path}") else "[^/]+") if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(body)


_PATTERNS = tuple(
    (method, _pattern(path), access) for (method, path), access in CONTROL_ROUTES.items()
)


def access_of(method: str, path: str) -> Access:
    """The access rule of a request; admin for anything no entry names.

    >>> access_of("POST", "/api/v1/rollouts/3/pause"), access_of("HEAD", "/api/v1/models")
    (<Access.OPERATE: 'operate'>, <Access.READ: 'read'>)
    """
    method = "GET" if method == "HEAD" else method
    for entry_method, pattern, access in _PATTERNS:
        if entry_method == method and pattern.fullmatch(path):
            return access
    return Access.ADMIN


def role_refusal(role: str, method: str, path: str) -> str | None:
    """Why ``role`` may not call ``method path`` (None: it may)."""
    access = access_of(method, path)
    if access in (Access.OPEN, Access.SIGNED) or role in ALLOWED[access]:
        return None
    if role == TokenRole.INFER:
        return (
            "an inference token is for the gateway only; the control plane needs an admin, "
            "operator or viewer token"
        )
    needed = "the admin token" if access is Access.ADMIN else "an operator or the admin token"
    return f"a {role} token may not {method} {path[:120]}; this needs {needed}"
