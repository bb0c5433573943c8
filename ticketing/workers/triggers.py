"""Triggers: declarative "on event X, if the ticket looks like this, then do that" rules.

A rules file (TOML, see `mappings/triggers.example.toml`) is a list of rules. Each rule names
the ticket event types it listens to (`on`), conditions on the ticket's queue row and on the
event payload (`if`), and actions (`then`). `evaluate` is pure: given one event payload (the
wire shape of `projections/wire.py`) and the ticket's queue row as it stands after that event,
it returns the commands to run through the command service and the notifications to send. It
never touches NATS or a store; the process that runs triggers does that.

Evaluation order. Rules run in file order, each at most once per event. Every rule sees the
changes that earlier rules proposed for the same event (Zendesk's semantics), both in its
conditions and in no-op skipping, so "enterprise outage -> urgent" followed by "urgent -> tier2"
routes a new ticket in one pass.

Provenance and idempotency. Every command carries `actor = automation:<rule id>`, the event's
`occurred_at`, and a deterministic command id
`trigger:<depth>:<rule id>:<ticket id>:<event version>:<action>`, so evaluating the same event
twice (a redelivery, a restart) yields the same ids and the command service appends nothing the
second time. Notifications carry the same kind of key for the sender to deduplicate on.

Loop safety, in four layers:
1. Self-exclusion: a rule never fires on an event caused by itself (actor `automation:<its id>`),
   whatever else it allows.
2. Opt-in: an event caused by any automation (actor kind `automation`) fires only the rules that
   set `allow_automation = true`; by default automation reacts to people and systems only.
3. Cascade budget: the command id records how deep in a chain of automated changes it is (a
   human's event is depth 0; a command caused by an event of depth d has depth d + 1). No rule
   fires on an event of depth `MAX_CASCADE_DEPTH` or more, so even rules that opt in and
   contradict each other (high -> urgent, urgent -> high) stop after that many automated events.
4. Convergence: an action that would not change the ticket (the category, priority, team or
   agent it already has; tags it already carries) is skipped, so rules that agree settle after
   one round instead of echoing each other up to the budget. A closed ticket is read-only
   forever, so on a closed ticket rules only notify.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self, TypeAlias
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from commands import models as m
from projections import wire
from ticketing.domain.events import TICKET_EVENT_TYPES
from ticketing.domain.values import (
    TAG_PATTERN,
    ActorKind,
    Channel,
    Priority,
    SlaTier,
    Status,
    Visibility,
)
from ticketing.principals import RESERVED_ACTORS
from ticketing.toml_files import describe_validation, read_toml

MAX_CASCADE_DEPTH = 3
"""No rule fires on an event that is this many automated steps away from a human's change."""

COMMAND_ID_PREFIX = "trigger"

TICKET_FIELDS = (
    "status",
    "priority",
    "category",
    "channel",
    "team",
    "agent",
    "account_id",
    "account_tier",
    "tags",
    "subject",
    "requester",
)
"""Queue-row fields that conditions and templates may read."""

TEMPLATE_NAMES = frozenset({*TICKET_FIELDS, "ticket_id", "event_type", "rule_id"})

EVENT_TYPES = tuple(cls.__name__ for cls in TICKET_EVENT_TYPES)
"""The ticket events a rule may listen to (account events change no ticket)."""

_WIRE_MODELS: dict[str, type[wire.WireEvent]] = {
    cls.__name__: cls for cls in wire.WireEvent.__subclasses__()
}

_ENUM_FIELDS: dict[str, type[StrEnum]] = {
    "status": Status,
    "priority": Priority,
    "channel": Channel,
    "account_tier": SlaTier,
    "event.actor.kind": ActorKind,
    "event.visibility": Visibility,
}
"""Fields whose compared values must be members of a closed set, so a typo fails loading."""

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
NotifyChannel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-:#.@]{0,63}$")]
Scalar: TypeAlias = str | bool | int


class TriggerRulesError(ValueError):
    """The rules file is unreadable or invalid; the message names the rule id and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_template(template: str) -> str:
    unknown = sorted(set(_PLACEHOLDER.findall(template)) - TEMPLATE_NAMES)
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join(unknown)}; use {{name}} with one of "
            f"{', '.join(sorted(TEMPLATE_NAMES))}"
        )
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise ValueError("placeholders look like {subject} (lowercase names in single braces)")
    return template


Template = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


# --- rules -------------------------------------------------------------------------------


class Condition(_Strict):
    """Tests on one field; every operator given must hold.

    On `tags` (a list) the operators ask about its elements: `equals`, `in` and `contains` hold
    when some tag matches, `not_in` when no tag is in the list. `contains` is a case-insensitive
    substring test. A missing or null field equals nothing, is in no list and contains nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True)

    equals: Scalar | None = None
    in_: Annotated[list[Scalar], Field(min_length=1)] | None = Field(default=None, alias="in")
    not_in: Annotated[list[Scalar], Field(min_length=1)] | None = None
    contains: Annotated[str, StringConstraints(min_length=1)] | None = None
    is_empty: bool | None = None
    is_set: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`priority = "urgent"` means `priority = { equals = "urgent" }`."""
        return {"equals": data} if isinstance(data, str | bool | int) else data

    @model_validator(mode="after")
    def _some_operator(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one of equals, in, not_in, contains, is_empty, is_set")
        return self

    def compared_values(self) -> list[Scalar]:
        values: list[Scalar] = [] if self.equals is None else [self.equals]
        return values + list(self.in_ or ()) + list(self.not_in or ())

    def holds(self, actual: Any) -> bool:
        many = isinstance(actual, list | tuple | set | frozenset)
        items: list[Any] = list(actual) if many else ([] if actual is None else [actual])
        empty = not items or items == [""]
        checks = (
            self.equals is None or self.equals in items,
            self.in_ is None or any(item in self.in_ for item in items),
            self.not_in is None or not any(item in self.not_in for item in items),
            self.contains is None
            or any(
                isinstance(item, str) and self.contains.casefold() in item.casefold()
                for item in items
            ),
            self.is_empty is None or self.is_empty == empty,
            self.is_set is None or self.is_set != empty,
        )
        return all(checks)


class Notify(_Strict):
    """Tell a channel (a name the notification sender knows) a rendered message."""

    channel: NotifyChannel
    template: Template

    @field_validator("template")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return _check_template(value)


class Actions(_Strict):
    """What a rule does, in this order; an action the ticket already satisfies is skipped."""

    set_category: m.CategoryName | None = None
    set_priority: Priority | None = None
    set_team: m.Identifier | None = None
    assign_agent: m.Identifier | None = None
    tag: Annotated[list[m.Tag], Field(min_length=1, max_length=m.MAX_TAGS)] | None = None
    add_internal_note: Template | None = None
    notify: list[Notify] | None = None

    @field_validator("notify", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, Mapping) else value

    @field_validator("add_internal_note")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value)

    @model_validator(mode="after")
    def _some_action(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one action")
        return self


class Rule(_Strict):
    """One trigger: `on` these events, `if` every condition holds, `then` these actions."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True)

    id: RuleId
    description: str = ""
    enabled: bool = True
    on: Annotated[list[str], Field(min_length=1)]
    conditions: dict[str, Condition] = Field(default_factory=dict, alias="if")
    then: Actions
    allow_automation: bool = False
    """Also fire on events caused by other rules (never on this rule's own events)."""

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("on")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in EVENT_TYPES]
        if unknown:
            raise ValueError(
                f"unknown event type(s) {', '.join(unknown)}; one of {', '.join(EVENT_TYPES)}"
            )
        return value

    @model_validator(mode="after")
    def _fields_and_values(self, info: ValidationInfo) -> Self:
        categories = (info.context or {}).get("categories")
        for name, condition in self.conditions.items():
            where = f"if.{name}"
            if name.startswith("event."):
                self._check_event_path(name, where)
            elif name not in TICKET_FIELDS:
                raise ValueError(
                    f"{where}: unknown ticket field; one of {', '.join(TICKET_FIELDS)} "
                    "or event.<field>"
                )
            _check_values(where, name, condition.compared_values(), categories)
        if categories is not None and self.then.set_category is not None:
            _check_values("then.set_category", "category", [self.then.set_category], categories)
        return self

    def _check_event_path(self, name: str, where: str) -> None:
        top = name.split(".")[1]
        known = {f for event in self.on for f in _WIRE_MODELS[event].model_fields}
        if top not in known:
            raise ValueError(
                f"{where}: no event in on = {self.on} has a field {top!r}; "
                f"fields: {', '.join(sorted(known))}"
            )

    def listens_to(self, event_type: str) -> bool:
        return self.enabled and event_type in self.on


def _check_values(
    where: str, name: str, values: Sequence[Scalar], categories: Iterable[str] | None
) -> None:
    allowed: set[str] | None = None
    if name in _ENUM_FIELDS:
        allowed = {str(member) for member in _ENUM_FIELDS[name]}
    elif name == "category" and categories is not None:
        allowed = set(categories)
    for value in values:
        if allowed is not None and value not in allowed:
            raise ValueError(f"{where}: {value!r} is not one of {', '.join(sorted(allowed))}")
        if name == "tags" and not (isinstance(value, str) and TAG_PATTERN.match(value)):
            raise ValueError(f"{where}: {value!r} is not a tag (lowercase, digits, _-:.)")


class Notification(_Strict):
    """A message a rule asks to send; not a ticket change, so not a command or an event."""

    key: str
    """Deterministic, like a trigger's command id: the sender deduplicates on it."""
    rule_id: str
    channel: str
    ticket_id: UUID
    event_type: str
    message: str
    occurred_at: AwareDatetime


Outcome: TypeAlias = (
    m.CategorizeTicket
    | m.PrioritizeTicket
    | m.AssignTicket
    | m.TagTicket
    | m.AddComment
    | Notification
)


# --- loading -----------------------------------------------------------------------------


def parse_rules(
    data: Mapping[str, Any], *, categories: Iterable[str] | None = None
) -> tuple[Rule, ...]:
    """Validate a parsed rules document (`{"rules": [...]}`); `categories`, when given, is the
    configured taxonomy that `set_category` and category conditions must use."""
    unknown_keys = sorted(set(data) - {"rules"})
    if unknown_keys:
        raise TriggerRulesError(
            f"unknown top-level key(s) {', '.join(unknown_keys)}; use [[rules]]"
        )
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise TriggerRulesError("rules: expected a list of [[rules]] tables")
    context = {"categories": None if categories is None else frozenset(categories)}
    rules: list[Rule] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules, start=1):
        label = _rule_label(raw, index)
        try:
            rule = Rule.model_validate(raw, context=context)
        except ValidationError as error:
            problems.append(f"{label}: {describe_validation(error)}")
            continue
        if rule.id in seen:
            problems.append(f"{label}: id: used by an earlier rule; rule ids are unique")
        if f"automation:{rule.id}" in RESERVED_ACTORS:
            problems.append(f"{label}: id: {rule.id!r} is another worker's actor; pick another")
        seen.add(rule.id)
        rules.append(rule)
    if problems:
        raise TriggerRulesError("; ".join(problems))
    return tuple(rules)


def load_rules(path: Path | str, *, categories: Iterable[str] | None = None) -> tuple[Rule, ...]:
    """Read and validate a rules file; any problem is one `TriggerRulesError` naming the file,
    the rule and the field."""
    path = Path(path)
    data = read_toml(path, TriggerRulesError, "rules")
    try:
        return parse_rules(data, categories=categories)
    except TriggerRulesError as error:
        raise TriggerRulesError(f"{path}: {error}") from error


def _rule_label(raw: Any, index: int) -> str:
    rule_id = raw.get("id") if isinstance(raw, Mapping) else None
    return f"rule {rule_id!r}" if isinstance(rule_id, str) else f"rule #{index} (no id)"


# --- evaluation --------------------------------------------------------------------------


@dataclass
class _Ticket:
    """A working copy of the queue row that proposed changes are applied to."""

    fields: dict[str, Any]
    tags: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> _Ticket:
        tags = row.get("tags") or []
        if isinstance(tags, str):  # the queue store keeps tags as JSON text
            tags = json.loads(tags)
        return cls({name: row.get(name) for name in TICKET_FIELDS}, list(tags))

    def get(self, name: str) -> Any:
        return self.tags if name == "tags" else self.fields.get(name)


def cascade_depth(command_id: str | None) -> int:
    """How many automated steps separate this command from a change by a person or system:
    0 for any id not made by a trigger; an unreadable trigger id counts as the limit."""
    if not command_id or not command_id.startswith(f"{COMMAND_ID_PREFIX}:"):
        return 0
    depth = command_id.split(":")[1]
    return int(depth) if depth.isdigit() else MAX_CASCADE_DEPTH


def may_fire(rule: Rule, event: Mapping[str, Any]) -> bool:
    """The loop-safety gate (see the module docstring), before any condition is looked at."""
    actor = event.get("actor") or {}
    by_automation = actor.get("kind") == ActorKind.AUTOMATION
    if by_automation and (actor.get("id") == rule.id or not rule.allow_automation):
        return False
    return cascade_depth(event.get("command_id")) < MAX_CASCADE_DEPTH


def evaluate(
    rules: Iterable[Rule], event: Mapping[str, Any], ticket: Mapping[str, Any]
) -> list[Outcome]:
    """The commands and notifications `rules` ask for in response to `event`.

    `event` is a ticket event in its wire shape; `ticket` is the ticket's queue row after that
    event was folded in (tags as a list or as the store's JSON text). Same inputs, same
    outcomes, same command ids."""
    state = _Ticket.from_row(ticket)
    outcomes: list[Outcome] = []
    for rule in rules:
        if not rule.listens_to(event["type"]) or not may_fire(rule, event):
            continue
        if all(
            condition.holds(_lookup(name, event, state))
            for name, condition in rule.conditions.items()
        ):
            outcomes.extend(_act(rule, event, state))
    return outcomes


def _lookup(name: str, event: Mapping[str, Any], state: _Ticket) -> Any:
    if not name.startswith("event."):
        return state.get(name)
    value: Any = event
    for part in name.split(".")[1:]:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _act(rule: Rule, event: Mapping[str, Any], state: _Ticket) -> list[Outcome]:
    """Turn a firing rule's actions into outcomes, applying each change to `state`."""
    ticket_id = UUID(str(event["aggregate_id"]))
    depth = cascade_depth(event.get("command_id")) + 1
    occurred_at = _aware(event["occurred_at"])

    def envelope(action: str) -> dict[str, Any]:
        return {
            "ticket_id": ticket_id,
            "command_id": (
                f"{COMMAND_ID_PREFIX}:{depth}:{rule.id}:{ticket_id}:{event['version']}:{action}"
            ),
            "actor": m.ActorModel(kind=ActorKind.AUTOMATION, id=rule.id),
            "occurred_at": occurred_at,
        }

    then = rule.then
    outcomes: list[Outcome] = []
    if state.get("status") != Status.CLOSED:
        fields = state.fields
        if then.set_category is not None and fields["category"] != then.set_category:
            fields["category"] = then.set_category
            outcomes.append(m.CategorizeTicket(category=then.set_category, **envelope("category")))
        if then.set_priority is not None and fields["priority"] != then.set_priority:
            fields["priority"] = str(then.set_priority)
            outcomes.append(m.PrioritizeTicket(priority=then.set_priority, **envelope("priority")))
        changes = {
            key: value
            for key, value in (("team", then.set_team), ("agent", then.assign_agent))
            if value is not None and fields[key] != value
        }
        if changes:
            fields.update(changes)
            outcomes.append(m.AssignTicket(**changes, **envelope("assign")))
        missing = [t for t in dict.fromkeys(then.tag or ()) if t not in state.tags]
        if missing:
            state.tags.extend(missing)
            outcomes.append(m.TagTicket(tags=missing, **envelope("tag")))
        if then.add_internal_note is not None:
            outcomes.append(
                m.AddComment(
                    body=_render(then.add_internal_note, rule, event, state),
                    visibility=Visibility.INTERNAL,
                    **envelope("note"),
                )
            )
    for index, notify in enumerate(then.notify or ()):
        outcomes.append(
            Notification(
                key=envelope(f"notify{index}")["command_id"],
                rule_id=rule.id,
                channel=notify.channel,
                ticket_id=ticket_id,
                event_type=event["type"],
                message=_render(notify.template, rule, event, state),
                occurred_at=occurred_at,
            )
        )
    return outcomes


def _render(template: str, rule: Rule, event: Mapping[str, Any], state: _Ticket) -> str:
    """Fill `{name}` from the ticket (after earlier actions), tags comma-joined, null as '-'."""
    values: dict[str, Any] = {
        **state.fields,
        "tags": ", ".join(state.tags),
        "ticket_id": str(event["aggregate_id"]),
        "event_type": event["type"],
        "rule_id": rule.id,
    }

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return "-" if value is None or value == "" else str(value)

    return _PLACEHOLDER.sub(replace, template)


def _aware(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"event occurred_at {value!r} has no time zone")
    return moment
