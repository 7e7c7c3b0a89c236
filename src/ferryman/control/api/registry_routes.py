"""``/api/v1`` routes over the registry: models, versions, variants, aliases, runs, events.

Routes only translate HTTP to registry calls; the registry validates and raises the error
that the app's one handler renders as ``{"error": …}``.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ferryman.artifacts import StagedFile
from ferryman.control.api.security import TOKEN_ID_STATE
from ferryman.errors import InvalidInput, PayloadTooLarge
from ferryman.names import KEY_MAX_LENGTH, validate_key, validate_name
from ferryman.registry import (
    AliasRecord,
    EventRecord,
    ModelRecord,
    Registry,
    RunRecord,
    VariantRecord,
    VersionRecord,
    build_metadata,
)

router = APIRouter(prefix="/api/v1")

METADATA_HEADER = "ferryman-metadata"
ACTOR_HEADER = "ferryman-actor"
STAGE_BATCH_BYTES = 1 << 20
"""An upload is written to its temporary file this much at a time."""


def registry_of(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def actor_of(
    request: Request, actor: Annotated[str | None, Header(alias=ACTOR_HEADER)] = None
) -> str:
    """The caller for the audit log: ``api``, then the name the caller gives itself, then
    the id of the scoped token that authenticated (``api:alice:token-3``), which the caller
    cannot choose: a name alone let one token holder act under another's name."""
    parts = ["api"] if actor is None else ["api", validate_key(actor, "actor")]
    token_id = getattr(request.state, TOKEN_ID_STATE, None)
    if token_id is not None:
        parts.append(f"token-{token_id}")
    named = ":".join(parts)
    if len(named) > KEY_MAX_LENGTH:
        raise InvalidInput(
            f"the {ACTOR_HEADER} header is too long: the actor {named[:40]}... has "
            f"{len(named)} characters, over {KEY_MAX_LENGTH}; send a shorter name"
        )
    return named


RegistryDep = Annotated[Registry, Depends(registry_of)]
ActorDep = Annotated[str, Depends(actor_of)]


class AliasTarget(BaseModel):
    version: int | str
    force: bool = Field(
        default=False,
        description="Move production even to a version whose inputs its clients could not send.",
    )


@router.get("/models")
def list_models(registry: RegistryDep, include_archived: bool = False) -> list[ModelRecord]:
    return registry.list_models(include_archived)


@router.get("/models/{model}")
def get_model(model: str, registry: RegistryDep) -> ModelRecord:
    return registry.get_model(model)


@router.post("/models/{model}/archive")
def archive_model(model: str, registry: RegistryDep, actor: ActorDep) -> ModelRecord:
    return registry.archive_model(model, actor)


@router.get("/models/{model}/versions")
def list_versions(
    model: str, registry: RegistryDep, include_archived: bool = False
) -> list[VersionRecord]:
    return registry.list_versions(model, include_archived)


@router.post("/models/{model}/versions", status_code=201)
async def register_version(
    model: str,
    request: Request,
    actor: ActorDep,
    metadata: Annotated[str | None, Header(alias=METADATA_HEADER)] = None,
) -> VersionRecord:
    """Register the request body (an ONNX file) as the next version of ``model``.

    Metrics, params, tags, aliases and description travel as JSON in the
    ``Ferryman-Metadata`` header, so the body stays the file's bytes. The body streams to a
    temporary file in the artifact store's folder as it arrives (a model can be gigabytes;
    held in memory, a few at once would exhaust the control plane), refused with 413 as soon
    as it passes ``control.max_upload_bytes``; any failure removes the temporary.
    """
    fields = _metadata_fields(metadata)
    validate_name(model, "model name")
    registry = registry_of(request)
    limit_bytes = request.app.state.settings.control.max_upload_bytes
    _check_declared_length(request, limit_bytes)
    with await run_in_threadpool(registry.store.stage, limit_bytes) as staged:
        await _stream_to(staged, request, limit_bytes)
        await run_in_threadpool(staged.seal)
        register = registry.register_staged
        # Uploads stream in parallel, but are checked one at a time: parsing and checking a
        # graph holds about twice its size, and concurrent peaks must not add up.
        async with request.app.state.registering:
            return await run_in_threadpool(register, model, staged, actor, build_metadata(**fields))


@router.get("/models/{model}/versions/{version}")
def get_version(model: str, version: str, registry: RegistryDep) -> VersionRecord:
    return registry.get_version(model, version)


@router.post("/models/{model}/versions/{version}/archive")
def archive_version(
    model: str, version: str, registry: RegistryDep, actor: ActorDep
) -> VersionRecord:
    return registry.archive_version(model, version, actor)


@router.get("/models/{model}/versions/{version}/variants")
def list_variants(model: str, version: str, registry: RegistryDep) -> list[VariantRecord]:
    return registry.list_variants(model, version)


@router.put("/models/{model}/aliases/{alias}")
def set_alias(
    model: str, alias: str, target: AliasTarget, registry: RegistryDep, actor: ActorDep
) -> AliasRecord:
    return registry.set_alias(model, alias, target.version, actor, force=target.force)


@router.delete("/models/{model}/aliases/{alias}", status_code=204)
def remove_alias(model: str, alias: str, registry: RegistryDep, actor: ActorDep) -> None:
    registry.remove_alias(model, alias, actor)


@router.get("/runs")
def list_runs(
    registry: RegistryDep,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RunRecord]:
    return registry.runs.list(model, limit)


@router.get("/runs/{run_id}")
def get_run(run_id: str, registry: RegistryDep) -> RunRecord:
    return registry.runs.get(run_id)


@router.get("/events")
def list_events(
    registry: RegistryDep,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    after_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,  # a database BIGINT
) -> list[EventRecord]:
    return registry.list_events(model, limit, after_id)


def _metadata_fields(header: str | None) -> dict[str, object]:
    if header is None:
        return {}
    try:
        fields = json.loads(header)
    except ValueError:
        raise InvalidInput(f"the {METADATA_HEADER} header is not valid JSON") from None
    if not isinstance(fields, dict):
        raise InvalidInput(f"the {METADATA_HEADER} header must be a JSON object")
    return fields


async def _stream_to(staged: StagedFile, request: Request, limit_bytes: int) -> None:
    """Write the body to ``staged`` in batches of up to ``STAGE_BATCH_BYTES`` on a worker
    thread (a slow disk must not stall the event loop), a batch that would pass the limit at
    once, so the 413 comes as soon as the limit is passed."""
    pending = bytearray()
    async for chunk in request.stream():
        pending += chunk
        if len(pending) >= STAGE_BATCH_BYTES or staged.size_bytes + len(pending) > limit_bytes:
            await run_in_threadpool(staged.write, bytes(pending))
            pending.clear()
    await run_in_threadpool(staged.write, bytes(pending))


def _check_declared_length(request: Request, limit_bytes: int) -> None:
    """413 before a byte is read when the declared ``Content-Length`` is over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLarge(f"the upload declares {declared} bytes; the limit is {limit_bytes}")


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit_bytes`` (never buffered past)."""
    _check_declared_length(request, limit_bytes)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit_bytes:
            raise PayloadTooLarge(f"the upload passed {limit_bytes} bytes, the limit; refused")
        chunks.append(chunk)
    return b"".join(chunks)
