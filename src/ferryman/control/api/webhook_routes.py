"""``POST /api/v1/webhooks/mlflow``: MLflow's model-registry webhook, verified by signature.

MLflow cannot send Ferryman's bearer token, so this route is authenticated by the HMAC
signature of the shared secret instead (the security middleware lists it as signed); an
unsigned or wrongly signed delivery gets 401, a stale one 400.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ferryman.control.api.mlflow import MlflowImporter, verify
from ferryman.control.api.registry_routes import read_body, registry_of

router = APIRouter(prefix="/api/v1")

MAX_DELIVERY_BYTES = 1024 * 1024


@router.post("/webhooks/mlflow")
async def mlflow_webhook(request: Request) -> dict[str, Any]:
    """Import a new MLflow model version (a local ONNX file) or move an alias, or say why not."""
    settings = request.app.state.settings.control
    body = await read_body(request, MAX_DELIVERY_BYTES)
    secret = settings.mlflow_webhook_secret
    delivery = verify(
        secret.get_secret_value() if secret else None,
        request.headers,
        body,
        time.time(),
        settings.mlflow_webhook_tolerance_s,
    )
    importer = MlflowImporter(registry_of(request), settings)
    return await run_in_threadpool(importer.handle, delivery)
