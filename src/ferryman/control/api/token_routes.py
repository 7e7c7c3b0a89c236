"""``/api/v1/tokens``: scoped tokens (admin only). A new token's secret is in the answer to
its ``POST`` and nowhere else, ever."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ferryman.control.api.registry_routes import ActorDep, RegistryDep
from ferryman.registry import IssuedToken, TokenBook, TokenRecord, TokenRole

router = APIRouter(prefix="/api/v1")
TokenId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The token's id (tokens list).")]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=63, description="What the token is for, e.g. 'ci-deployer'.")
    role: TokenRole = Field(description="operator, viewer, or infer (one endpoint's inference).")
    endpoint: str | None = Field(default=None, description="The endpoint of an infer token.")


@router.get("/tokens")
def list_tokens(registry: RegistryDep, include_revoked: bool = False) -> list[TokenRecord]:
    """Scoped tokens, without their secrets (which are not kept)."""
    return registry.tokens.list(include_revoked)


@router.post("/tokens", status_code=201)
def create_token(
    body: TokenRequest, request: Request, registry: RegistryDep, actor: ActorDep
) -> IssuedToken:
    """A new token; its secret is shown in this answer only."""
    issued = registry.tokens.create(body.name, body.role, actor, body.endpoint)
    _reload(request)
    return issued


@router.delete("/tokens/{token_id}")
def revoke_token(
    token_id: TokenId, request: Request, registry: RegistryDep, actor: ActorDep
) -> TokenRecord:
    """Revoke a token: the control plane refuses it at once, the gateway at its next route
    table (within about a second)."""
    revoked = registry.tokens.revoke(token_id, actor)
    _reload(request)
    return revoked


def _reload(request: Request) -> None:
    book: TokenBook | None = getattr(request.app.state, "token_book", None)
    if book is not None:
        book.reload()
