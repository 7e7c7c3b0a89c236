"""``POST /api/v1/webhooks/mlflow``: MLflow's model-registry webhook, verified by signature.

MLflow cannot send Ferryman's bearer token, so this route is authenticated by the HMAC
signature of the shared secret instead (the security middleware lists it as signed); an
unsigned or wrongly signed delivery gets 401, a stale one 400, a delivery id already
received within the window (a replay; remembered in the registry, so across restarts) 409.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ferryman.control.api.mlflow import MlflowImporter, verify
from ferryman.control.api.registry_routes import read_body, registry_of
from ferryman.errors import FerrymanError

router = APIRouter(prefix="/api/v1")

MAX_DELIVERY_BYTES = 1024 * 1024
SOURCE = "mlflow"


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
    registry = registry_of(request)
    # A delivery verifies for tolerance_s either side of its timestamp: 2x that from now.
    window_s = 2 * settings.mlflow_webhook_tolerance_s
    await run_in_threadpool(registry.deliveries.remember, SOURCE, delivery.id, window_s)
    importer = MlflowImporter(registry, settings)
    try:
        return await run_in_threadpool(importer.handle, delivery)
    except Exception as exc:
        if not (isinstance(exc, FerrymanError) and exc.status_code < 500):
            # not acted on: MLflow retries a 5xx with the same id, which must get in
            await run_in_threadpool(registry.deliveries.forget, SOURCE, delivery.id)
        raise
