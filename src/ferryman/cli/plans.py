"""The rollout plan's command-line options, shared by ``rollout start`` and ``policy set``.

They are declared once, generated from the plan models (``rollouts.plans.PLANS`` and
``rollouts.gates.Gates``): one option per field of any strategy's plan, named after the field
(``max_p99_ms`` → ``--max-p99-ms``; a ``_s`` suffix is dropped: ``bake_s`` → ``--bake``),
typed and documented by it. ``--plan FILE|JSON`` gives a whole plan, in the model's own shape,
from a file or inline; options given beside it override its fields.

Every option defaults to "not given", so the plan's own default applies; an option that
does not belong to the chosen strategy is refused by name (``--bake`` on a canary), and the
plan is checked by the parser the API uses (``rollouts.plans.parse_plan``).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ferryman.control.rollouts.gates import CanaryPlan, Gates
from ferryman.control.rollouts.plans import (
    PLANS,
    Plan,
    Strategy,
    parse_plan,
    parse_strategy,
    shown,
)
from ferryman.errors import InvalidInput

Planned = tuple[Strategy, Plan]
"""What a command decorated with :func:`plan_options` receives as ``planned``."""

NESTED = frozenset({"gates", "canary"})
"""Plan fields that hold a model: their own fields are the options, not they."""
GATES = tuple(Gates.model_fields)
CANARY_OF_SHADOW = ("steps", "threshold")
"""A shadow's canary's own options (its ``interval_s`` is the shadow's)."""
FLAGS = {"promote_winner": "--promote-winner/--report-only"}
"""Boolean fields whose two flags read better than ``--x/--no-x``."""
PLAN_FILE_LIMIT = 1 << 20
"""Largest ``--plan`` file read (a plan is a few hundred bytes)."""


def flag(name: str) -> str:
    """The option of a plan field: ``warmup_timeout_s`` → ``--warmup-timeout``."""
    return "--" + name.removesuffix("_s").replace("_", "-")


@dataclass(frozen=True)
class PlanField:
    """One option: a field of one or more strategies' plans (or of their gates)."""

    name: str
    kind: type
    description: str
    defaults: tuple[tuple[Strategy, object], ...]
    gate: bool
    numbers: bool
    """A list of numbers, given as ``10,50,100``."""

    @property
    def strategies(self) -> tuple[Strategy, ...]:
        return tuple(strategy for strategy, _ in self.defaults)

    def _of_shadows_canary(self, strategy: Strategy) -> bool:
        return strategy is Strategy.SHADOW and (self.gate or self.name in CANARY_OF_SHADOW)

    def help(self) -> str:
        """``Gate (canary, blue-green, shadow): Latency bound, p99. [500]``."""
        where = ", ".join(
            shown(strategy) + (" --then-canary" if self._of_shadows_canary(strategy) else "")
            for strategy in self.strategies
        )
        values = {_shown_default(value) for _, value in self.defaults}
        if len(values) == 1:
            default = values.pop()
        else:
            default = ", ".join(f"{shown(s)} {_shown_default(v)}" for s, v in self.defaults)
        label = f"Gate ({where})" if self.gate else where
        if len(self.strategies) == len(PLANS) and not self.gate:
            label = "All"
        text = self.description or self.name.replace("_", " ").capitalize() + "."
        return f"{label}: {text} [{default}]"


def plan_fields() -> dict[str, PlanField]:
    """Every plan field a command line can set, in the order the strategies list them."""
    found: dict[str, list[tuple[Strategy, FieldInfo, bool]]] = {}
    for strategy, model in PLANS.items():
        for name, info in model.model_fields.items():
            if name not in NESTED:
                found.setdefault(name, []).append((strategy, info, False))
    for strategy, model in PLANS.items():
        if "gates" in model.model_fields or strategy is Strategy.SHADOW:
            for name, info in Gates.model_fields.items():
                found.setdefault(name, []).append((strategy, info, True))
    for name in CANARY_OF_SHADOW:
        found[name].append((Strategy.SHADOW, CanaryPlan.model_fields[name], False))
    fields = {}
    for name, places in found.items():
        kinds = {_option_type(name, info.annotation) for _, info, _ in places}
        if len(kinds) != 1:
            raise TypeError(f"plan field {name} has different types in different plans")
        defaults: dict[Strategy, object] = {}
        for strategy, info, _ in places:
            defaults.setdefault(strategy, info.get_default(call_default_factory=True))
        fields[name] = PlanField(
            name=name,
            kind=kinds.pop(),
            description=next((info.description for _, info, _ in places if info.description), "")
            or "",
            defaults=tuple(defaults.items()),
            gate=any(is_gate for _, _, is_gate in places),
            numbers=any(get_origin(info.annotation) is tuple for _, info, _ in places),
        )
    flags = [flag(name) for name in fields]
    if len(set(flags)) != len(flags):
        raise TypeError(f"two plan fields share an option: {sorted(flags)}")
    return fields


def _option_type(name: str, annotation: object) -> type:
    """The type of a field's option: its own (None dropped); text for a choice or a list."""
    kinds: tuple[object, ...] = (annotation,)
    if get_origin(annotation) in (Union, UnionType):
        kinds = tuple(arg for arg in get_args(annotation) if arg is not NoneType)
    if len(kinds) == 1:
        kind = kinds[0]
        if get_origin(kind) is Literal or get_origin(kind) is tuple:
            return str
        if kind in (bool, int, float, str):
            return kind
    raise TypeError(f"plan field {name}: no command-line option for {annotation}")


def _shown_default(value: object) -> str:
    if value is None:
        return "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, BaseModel):
        return "default"
    return str(value)


FIELDS = plan_fields()
PLAN_SOURCE = "plan_source"
"""The parameter of ``--plan`` (a command's own ``plan`` would read as the built plan)."""


def _parameters() -> list[inspect.Parameter]:
    """The generated options, as parameters of a command's signature."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    strategies = ", ".join(shown(strategy) for strategy in PLANS)
    parameters = [
        inspect.Parameter(
            "strategy", keyword, default="canary",
            annotation=Annotated[str, typer.Option(help=f"{strategies}.")],
        ),
        inspect.Parameter(
            PLAN_SOURCE, keyword, default=None,
            annotation=Annotated[str | None, typer.Option(
                "--plan", metavar="FILE|JSON",
                help="The whole plan, in the strategy's own shape (e.g. {\"steps\": [20, 100], "
                "\"gates\": {\"min_accuracy\": 0.9}}), from a JSON file or inline; options "
                "given beside it override its fields.",
            )],
        ),
    ]  # fmt: skip
    for field in FIELDS.values():
        decls = FLAGS.get(field.name) or flag(field.name)
        if field.kind is bool and field.name not in FLAGS:
            decls = f"{decls}/--no-{decls.removeprefix('--')}"
        option = typer.Option(decls, help=field.help(), show_default=False)
        parameters.append(
            inspect.Parameter(
                field.name, keyword, default=None,
                annotation=Annotated[field.kind | None, option],
            )
        )  # fmt: skip
    parameters.append(
        inspect.Parameter(
            "then_canary", keyword, default=False,
            annotation=Annotated[bool, typer.Option(
                "--then-canary", help="shadow: continue into a canary (--steps…) if agreed."
            )],
        )
    )  # fmt: skip
    return parameters


def plan_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` takes the plan options, generated from the plan models, in place of its
    parameter ``planned``, and receives the strategy and the checked plan there."""
    signature = inspect.signature(command, eval_str=True)
    if "planned" not in signature.parameters:
        raise TypeError(f"{command.__name__} has no parameter 'planned'")
    generated = _parameters()
    names = {parameter.name for parameter in generated}
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name in names:
            raise TypeError(f"{command.__name__}: {parameter.name} is a plan option")
        if parameter.name == "planned":
            parameters.extend(generated)
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def with_plan(**kwargs: Any) -> None:
        options = {name: kwargs.pop(name) for name in names}
        strategy = options.pop("strategy")
        source = options.pop(PLAN_SOURCE)
        kwargs["planned"] = build_plan(strategy, options, source)
        command(**kwargs)

    with_plan.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return with_plan


def build_plan(
    strategy_name: str, options: Mapping[str, object], source: str | None = None
) -> Planned:
    """The strategy and the plan that ``--plan`` (``source``) and the options describe (an
    option wins over the same field of ``--plan``); a misplaced or bad one is an error."""
    strategy = parse_strategy(strategy_name)
    given = {k: v for k, v in options.items() if v is not None and k != "then_canary"}
    then_canary = bool(options.get("then_canary"))
    stray = sorted(set(given) - _accepted(strategy))
    if then_canary and strategy is not Strategy.SHADOW:
        stray.append("then_canary")
    if stray:
        flags = ", ".join(flag(name) for name in stray)
        raise InvalidInput(f"{flags} does not apply to a {shown(strategy)} rollout")
    for name, value in list(given.items()):
        if FIELDS[name].numbers:
            given[name] = parse_numbers(flag(name), str(value))
    base = read_plan(source) if source is not None else {}
    gates: dict[str, object] = {}
    if "gates" in PLANS[strategy].model_fields or strategy is Strategy.SHADOW:
        gates = {name: given.pop(name) for name in GATES if name in given}
    if strategy is Strategy.SHADOW:
        canary: dict[str, object] = {k: given.pop(k) for k in CANARY_OF_SHADOW if k in given}
        if not then_canary and base.get("canary") is None:
            if canary or gates:
                raise InvalidInput("--steps, --threshold and gates need --then-canary on a shadow")
        else:
            if gates:
                canary["gates"] = gates
            if "interval_s" in given:
                canary["interval_s"] = given["interval_s"]
            given["canary"] = canary
    elif gates:
        given["gates"] = gates
    return strategy, parse_plan(strategy, _merged(base, given))


def _accepted(strategy: Strategy) -> set[str]:
    """The options that belong to a strategy's plan (a shadow's include its canary's)."""
    return {name for name, field in FIELDS.items() if strategy in field.strategies}


def _merged(base: Mapping[str, object], over: Mapping[str, object]) -> dict[str, object]:
    """``base`` with ``over``'s fields in place of its own, model fields merged field by field."""
    merged = dict(base)
    for key, value in over.items():
        inner = merged.get(key)
        if isinstance(value, Mapping) and isinstance(inner, Mapping):
            merged[key] = _merged(inner, value)
        else:
            merged[key] = value
    return merged


def read_plan(source: str) -> dict[str, Any]:
    """``--plan``'s value: inline JSON (it starts with ``{`` or ``[``), or a JSON file's path."""
    text = source
    where = "--plan"
    if not source.lstrip().startswith(("{", "[")):
        path = Path(source).expanduser()
        where = f"--plan {source}"
        try:
            with path.open("rb") as file:
                raw = file.read(PLAN_FILE_LIMIT + 1)
        except FileNotFoundError:
            raise InvalidInput(
                f"{where}: no such file (give a JSON file or a JSON object)"
            ) from None
        except OSError as exc:
            raise InvalidInput(f"{where}: cannot be read ({exc.strerror})") from None
        if len(raw) > PLAN_FILE_LIMIT:
            raise InvalidInput(f"{where}: larger than {PLAN_FILE_LIMIT} bytes; not a plan")
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: not UTF-8 text") from None
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{where}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(plan, dict):
        raise InvalidInput(f"{where}: a plan is a JSON object, not {type(plan).__name__}")
    return plan


def describe(strategy: Strategy, plan: Plan) -> str:
    """One line for people: what the plan will do."""
    data = plan.model_dump()
    if strategy is Strategy.CANARY:
        steps = "/".join(map(str, data["steps"]))
        return (f"canary {steps}, every {data['interval_s']:g} s, {data['threshold']} failed "
                "checks roll back")  # fmt: skip
    if strategy is Strategy.BLUE_GREEN:
        return (f"blue-green: warm a full pool, switch at once, bake {data['bake_s']:g} s "
                "with the old pool kept for an instant switch back")  # fmt: skip
    if strategy is Strategy.AB_TEST:
        then = "promote the winner" if data["promote_winner"] else "report the winner"
        return (f"A/B test on {data['metric']}: {data['split']}% of users by "
                f"{data['sticky_header']} for at most {data['max_duration_s']:g} s, alpha "
                f"{data['alpha']}, then {then}")  # fmt: skip
    then = " then a canary if it agrees" if data["canary"] else ""
    return f"shadow for {data['duration_s']:g} s, compared with the baseline, never served{then}"


def parse_numbers(option: str, text: str) -> tuple[int, ...]:
    """``"10,50,100"`` → (10, 50, 100); anything else is a clear error naming ``option``."""
    try:
        return tuple(int(number) for number in text.split(","))
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a list of numbers like 10,50,100") from None
