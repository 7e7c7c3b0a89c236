"""Registry commands: register, models, versions, alias, events."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ferryman.cli.context import cli_context
from ferryman.cli.output import JsonOption, console, pairs, print_json, size, when
from ferryman.errors import InvalidInput
from ferryman.reference import input_guide
from ferryman.registry import VersionRecord

models_app = typer.Typer(
    rich_markup_mode=None, help="List and archive models.", no_args_is_help=True
)
versions_app = typer.Typer(
    rich_markup_mode=None, help="List, show and archive versions.", no_args_is_help=True
)
alias_app = typer.Typer(
    rich_markup_mode=None,
    help="Move aliases such as production and candidate.",
    no_args_is_help=True,
)


def register(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(
            help="The model file (.onnx), or a language model's folder: ONNX Runtime GenAI's "
            "(genai_config.json) or Hugging Face's (config.json, safetensors), exported here."
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. digits.")],
    metric: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="A metric (a number), e.g. auc=0.91; repeatable."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="A training parameter, e.g. lr=0.01; repeatable."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="A tag, e.g. team=fraud; repeatable."),
    ] = None,
    alias: Annotated[list[str] | None, typer.Option(help="Alias to point at it.")] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Convert a scikit-learn pickle to ONNX first. Loading a pickle runs code "
            "from the file: only for files you trust. The pickle is never stored.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Register a model file (or a language model's folder) as the next version of MODEL."""
    source = path
    if path.is_dir():
        workdir = Path(ctx.with_resource(tempfile.TemporaryDirectory(prefix="ferryman-")))
        path = _bundle(path, workdir)
    if trust:
        workdir = Path(ctx.with_resource(tempfile.TemporaryDirectory(prefix="ferryman-")))
        path = _convert_trusted(path, workdir)
        tag = [*(tag or []), *TRUSTED_TAGS]
    metrics = {key: _float(key, value) for key, value in parse_pairs(metric, "--metric").items()}
    record = (
        cli_context(ctx)
        .client()
        .register(
            path,
            model,
            metrics=metrics,
            params=dict(parse_pairs(param, "--param")),
            tags=parse_pairs(tag, "--tag"),
            aliases=alias or (),
            description=description,
        )
    )
    if trust:  # the audit log keeps who trusted which pickle
        details = {"source": source.name, "source_sha256": _sha256(source)}
        subject = ("version", f"{record.model}/{record.version}", record.model)
        state = cli_context(ctx)
        state.registry().record_event(
            state.settings.user, "version.trusted_pickle", subject, details
        )
    if json_output:
        print_json({"model": record.model, "version": record.version, "digest": record.digest})
        return
    console.print(
        f"Registered [bold]{record.model}[/] v{record.version} "
        f"(sha256:{record.digest[:12]}, {size(record.size_bytes)})"
        + (f", aliases: {', '.join(record.aliases)}" if record.aliases else "")
    )


TRUSTED_TAGS = ("converted_from=pickle", "trust=explicit")
GATE_COLUMNS = ("accuracy", "max |diff|", "b1 ms", "b32 ms", "gate")


def _gate_cells(gate: dict[str, Any]) -> list[str]:
    """The export gate's figures (ferryman.export.VariantReport), or the raw gate if other."""
    if not {"accuracy", "latency_ms_b1", "latency_ms_b32", "reason"} <= gate.keys():
        return ["", "", "", "", pairs(gate)]
    diff = gate.get("max_abs_diff")
    return [
        f"{gate['accuracy']:.2%}",
        "" if diff is None else f"{diff:.2g}",
        f"{gate['latency_ms_b1']:.3f}",
        f"{gate['latency_ms_b32']:.3f}",
        str(gate["reason"]),
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _convert_trusted(path: Path, workdir: Path) -> Path:
    """The ONNX form of a trusted scikit-learn pickle, written into ``workdir``."""
    from ferryman.export.conversion import convert_trusted_file  # noqa: PLC0415 - sklearn

    converted = workdir / "converted.onnx"
    converted.write_bytes(convert_trusted_file(path))
    return converted


@models_app.command("list")
def list_models(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List models with their newest version and aliases."""
    models = cli_context(ctx).client().list_models()
    if json_output:
        print_json(models)
        return
    table = Table("model", "latest", "aliases", "created", "by", title="Models")
    for item in models:
        aliases = ", ".join(f"{name}→v{number}" for name, number in item.aliases.items())
        latest = "" if item.latest_version is None else f"v{item.latest_version}"
        table.add_row(item.name, latest, aliases, when(item.created_at), item.created_by)
    console.print(table)


@versions_app.command("list")
def list_versions(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    json_output: JsonOption = False,
) -> None:
    """List the active versions of MODEL."""
    versions = cli_context(ctx).client().list_versions(model)
    if json_output:
        print_json(versions)
        return
    table = Table("version", "aliases", "format", "size", "metrics", "created", "by", title=model)
    for item in versions:
        table.add_row(
            f"v{item.version}",
            ", ".join(item.aliases),
            item.format,
            size(item.size_bytes),
            pairs(item.metrics),
            when(item.created_at),
            item.created_by,
        )
    console.print(table)


@versions_app.command("show")
def show_version(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Number, alias or 'latest'.")] = "latest",
    json_output: JsonOption = False,
) -> None:
    """Show one version: metadata, signature, lineage and variants."""
    state = cli_context(ctx)
    client = state.client()
    record = client.get_version(model, version)
    variants = client.list_variants(model, record.version)
    reference = state.registry().get_reference(model, record.version)
    guide = input_guide(reference) if reference is not None else {}
    if json_output:
        print_json(
            {
                **record.model_dump(mode="json"),
                "variants": [variant.model_dump(mode="json") for variant in variants],
                "inputs_take": guide,
                "classes": list(reference.labels) if reference is not None else [],
            }
        )
        return
    console.print(_version_summary(record))
    signature = Table("", "name", "datatype", "shape", "values", title="Signature")
    for role, specs in (("input", record.signature.inputs), ("output", record.signature.outputs)):
        for spec in specs:
            shape = "?" if spec.shape is None else str(list(spec.shape))
            low_high = guide.get(spec.name, {}).get("range") if role == "input" else None
            values = "" if low_high is None else f"{low_high[0]:g} to {low_high[1]:g}"
            signature.add_row(role, spec.name, spec.datatype, shape, values)
    console.print(signature)
    if reference is not None and reference.labels:
        console.print(f"Classes: {', '.join(reference.labels)}")
    for name, about in guide.items():
        if "example" in about:
            example = about["example"]
            shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                              for v in example["data"][:16])  # fmt: skip
            more = ", …" if len(example["data"]) > 16 else ""
            console.print(
                f"Input example ({name}, {example['datatype']} {list(example['shape'])}): "
                f"[{shown}{more}]",
                soft_wrap=True,
            )
    if variants:
        table = Table("variant", "status", "size", *GATE_COLUMNS, title="Variants")
        for variant in variants:
            table.add_row(
                variant.kind, variant.status, size(variant.size_bytes), *_gate_cells(variant.gate)
            )
        console.print(table)


@versions_app.command("archive")
def archive_version(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Number or alias.")],
    json_output: JsonOption = False,
) -> None:
    """Archive a version: hidden and never deployed, but kept."""
    record = cli_context(ctx).client().archive_version(model, version)
    if json_output:
        print_json(record)
        return
    console.print(f"Archived [bold]{record.model}[/] v{record.version}")


@alias_app.command("set")
def set_alias(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    version: Annotated[str, typer.Argument(help="Version number (or another alias).")],
    force: Annotated[
        bool,
        typer.Option(help="Move production even where its clients' inputs would be refused."),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Point ALIAS of MODEL at VERSION (production only where its clients can follow)."""
    record = cli_context(ctx).client().set_alias(model, alias, version, force=force)
    if json_output:
        print_json(record)
        return
    moved = "" if record.previous_version is None else f" (was v{record.previous_version})"
    console.print(f"{record.model}@{record.alias} → v{record.version}{moved}")


@alias_app.command("remove")
def remove_alias(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to remove.")],
) -> None:
    """Remove ALIAS from MODEL (recorded as an event)."""
    cli_context(ctx).client().remove_alias(model, alias)
    console.print(f"{model}@{alias} removed")


def events(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest events.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """Show the audit log: who did what to which object, when."""
    found = cli_context(ctx).client().list_events(model, limit)
    if json_output:
        print_json(found)
        return
    table = Table("#", "when", "actor", "action", "object", "details", title="Events")
    for event in found:
        table.add_row(
            str(event.id),
            when(event.at),
            event.actor,
            event.action,
            event.object_key,
            pairs(event.details),
        )
    console.print(table)


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``["k=v", …]`` from repeated options into a dict; a malformed one is a clear error."""
    parsed: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} {item!r} is not KEY=VALUE (e.g. {option} accuracy=0.97)")
        parsed[key] = value
    return parsed


def _bundle(folder: Path, workdir: Path) -> Path:
    """A language model's folder as one bundle file: packed, or exported first (HF)."""
    from ferryman.artifacts.bundle import pack_bundle  # noqa: PLC0415

    bundle = workdir / "model.tar"
    if (folder / "genai_config.json").is_file():
        bundle.write_bytes(pack_bundle(folder))
        return bundle
    if not (folder / "config.json").is_file():
        raise InvalidInput(
            f"{folder} has neither genai_config.json (ONNX Runtime GenAI) nor config.json "
            "(Hugging Face); register a .onnx file or one of those folders"
        )
    unsafe = sorted(p.name for p in folder.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl"})
    if unsafe:
        raise InvalidInput(
            f"{folder} holds {', '.join(unsafe)}: pickled weights run code when loaded, so "
            "Ferryman exports only safetensors folders; save with safe_serialization=True"
        )
    from ferryman.training.language import export_hf_folder  # noqa: PLC0415 - llm extra

    bundle.write_bytes(export_hf_folder(folder, workdir / "onnx"))
    return bundle


def _float(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"--metric {key}={value!r}: the value is not a number") from None


def _version_summary(record: VersionRecord) -> Table:
    table = Table.grid(padding=(0, 2))
    rows = {
        "model": f"{record.model} v{record.version}",
        "aliases": ", ".join(record.aliases),
        "artifact": f"{record.format}, {size(record.size_bytes)}, sha256:{record.digest}",
        "metrics": pairs(record.metrics),
        "params": pairs(record.params),
        "tags": pairs(record.tags),
        "data": record.data_fingerprint or "",
        "lineage": f"run {record.parent_run} → v{record.version}" if record.parent_run else "",
        "created": f"{when(record.created_at)} by {record.created_by}",
        "archived": when(record.archived_at),
        "description": record.description,
    }
    for key, value in rows.items():
        if value:
            table.add_row(f"[bold]{key}[/]", value)
    return table
