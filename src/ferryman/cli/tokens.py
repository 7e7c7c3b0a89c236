"""``ferryman tokens``: operator, viewer and per-endpoint inference tokens (admin's tool:
it acts on the data dir's registry directly, like the other commands)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.table import Table

from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, errors, print_json, when
from ferryman.errors import InvalidInput
from ferryman.registry import TokenRole

tokens_app = typer.Typer(no_args_is_help=True)


@tokens_app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[
        Literal["operator", "viewer"] | None,
        typer.Option(help="operator (acts) or viewer (reads) on the control plane."),
    ] = None,
    scope: Annotated[
        Literal["infer"] | None,
        typer.Option(help="infer: a token for one endpoint's inference through the gateway."),
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="The endpoint of an infer token.")] = None,
    name: Annotated[
        str | None, typer.Option(help="What it is for (default: role/endpoint).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a token and print it once: it is stored hashed and cannot be shown again."""
    if (role is None) == (scope is None):
        raise InvalidInput("give --role operator|viewer, or --scope infer --endpoint NAME")
    chosen = TokenRole(role) if role is not None else TokenRole.INFER
    label = name or (f"{endpoint}-infer" if endpoint and chosen is TokenRole.INFER else chosen)
    context = cli_context(ctx)
    issued = context.registry().tokens.create(label, chosen, context.settings.user, endpoint)
    if json_output:
        print_json(issued)
        return
    record = issued.record
    target = f" for endpoint {record.endpoint}" if record.endpoint else ""
    errors.print(f"Token {record.id} ({record.name}, {record.role.value}{target}); "
                 "shown this once, keep it secret:")  # fmt: skip
    console.print(issued.token, soft_wrap=True)


@tokens_app.command("list")
def list_tokens(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Revoked ones too.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Scoped tokens (never their secrets)."""
    found = cli_context(ctx).registry().tokens.list(show_all)
    if json_output:
        print_json(found)
        return
    table = Table("id", "name", "role", "endpoint", "created", "by", "last used", "revoked",
                  title="Tokens")  # fmt: skip
    for token in found:
        table.add_row(
            str(token.id), token.name, token.role.value, token.endpoint or "",
            when(token.created_at), token.created_by, when(token.last_used_at),
            when(token.revoked_at),
        )  # fmt: skip
    console.print(table if found else "Tokens: none")


@tokens_app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[
        int,
        typer.Argument(metavar="ID", min=1, max=2**31 - 1, help="The token's id (tokens list)."),
    ],
) -> None:
    """Revoke a token: the control plane refuses it within a second, the gateway at its
    next route table (the control loop's next pass)."""
    context = cli_context(ctx)
    revoked = context.registry().tokens.revoke(token_id, context.settings.user)
    console.print(f"Token {revoked.id} ({revoked.name}) revoked.")
