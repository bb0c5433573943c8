"""The wire contract: the checked-in event schema is current, stays backward compatible, and
every event the domain produces validates against it."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from projections.wire import EVENT_MESSAGE, SCHEMA_PATH, json_schema, parse_event_message
from ticketing.domain.events import PUBLISHED_EVENT_TYPES, event_payload
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

REGENERATE = 'python -c "from projections.wire import write_schema; write_schema()"'
AGENT = m.ActorModel(kind="agent", id="ana")
CUSTOMER = m.ActorModel(kind="customer", id="bob@acme.example")
SLA_MONITOR = m.ActorModel(kind="system", id="sla-monitor")

Schema = dict[str, Any]


# --- the compatibility checker --------------------------------------------------------------


def _resolve(node: Schema, schema: Schema) -> Schema:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def json_types(node: Schema, schema: Schema) -> frozenset[str]:
    """The JSON types a property may hold (`string`, `string:date-time`, `array<string>`,
    `object`, `null`…), through `$ref`s and unions."""
    node = _resolve(node, schema)
    if "anyOf" in node or "oneOf" in node:
        members = node.get("anyOf", []) + node.get("oneOf", [])
        return frozenset().union(*(json_types(member, schema) for member in members))
    kinds = node.get("type", "any")
    found = set()
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "array":
            items = sorted(json_types(node.get("items", {}), schema))
            found.add(f"array<{'|'.join(items)}>")
        elif kind == "string" and "format" in node:
            found.add(f"string:{node['format']}")
        else:
            found.add(kind)
    return frozenset(found)


def _compare_object(
    where: str, old: Schema, new: Schema, old_s: Schema, new_s: Schema
) -> list[str]:
    problems: list[str] = []
    old_properties = old.get("properties", {})
    new_properties = new.get("properties", {})
    for name, old_property in old_properties.items():
        if name not in new_properties:
            problems.append(f"{where}: field {name!r} was removed")
            continue
        before = json_types(old_property, old_s)
        after = json_types(new_properties[name], new_s)
        if before != after:
            problems.append(
                f"{where}: field {name!r} changed type from {sorted(before)} to {sorted(after)}"
            )
            continue
        old_nested = _resolve(old_property, old_s)
        if "properties" in old_nested:
            new_nested = _resolve(new_properties[name], new_s)
            problems += _compare_object(f"{where}.{name}", old_nested, new_nested, old_s, new_s)
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        problems.append(f"{where}: field {name!r} is newly required")
    return problems


def event_definitions(schema: Schema) -> dict[str, Schema]:
    """Event type name -> its object schema, from the union's discriminator mapping."""
    mapping = schema["discriminator"]["mapping"]
    return {name: _resolve({"$ref": ref}, schema) for name, ref in mapping.items()}


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What would break a consumer written against `old`: a removed event type or field, a
    field whose JSON type changed, a field required now that was optional or absent before."""
    problems: list[str] = []
    old_events = event_definitions(old)
    new_events = event_definitions(new)
    for name, old_event in old_events.items():
        if name not in new_events:
            problems.append(f"{name}: event type was removed")
            continue
        problems += _compare_object(name, old_event, new_events[name], old, new)
    return problems


@pytest.fixture
def checked_in() -> Schema:
    schema: Schema = json.loads(SCHEMA_PATH.read_text())
    return schema


# --- the checked-in schema ------------------------------------------------------------------


def test_the_checked_in_schema_is_the_one_the_wire_models_generate() -> None:
    generated = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    assert SCHEMA_PATH.read_text() == generated, (
        f"projections/schema/events.schema.json is stale: if the wire change is deliberate "
        f"(and backward compatible), run `{REGENERATE}` and commit the result"
    )


def test_the_current_wire_models_are_backward_compatible_with_the_checked_in_schema(
    checked_in: Schema,
) -> None:
    assert breaking_changes(checked_in, json_schema()) == []


def test_the_checker_accepts_an_identical_schema_and_an_added_optional_field(
    checked_in: Schema,
) -> None:
    grown = copy.deepcopy(checked_in)
    grown["$defs"]["TicketOpened"]["properties"]["language"] = {"type": "string"}
    assert breaking_changes(checked_in, checked_in) == []
    assert breaking_changes(checked_in, grown) == []


def test_the_checker_catches_a_removed_field(checked_in: Schema) -> None:
    broken = copy.deepcopy(checked_in)
    del broken["$defs"]["TicketOpened"]["properties"]["requester"]
    broken["$defs"]["TicketOpened"]["required"].remove("requester")
    assert breaking_changes(checked_in, broken) == ["TicketOpened: field 'requester' was removed"]


def test_the_checker_catches_a_changed_type(checked_in: Schema) -> None:
    broken = copy.deepcopy(checked_in)
    broken["$defs"]["TicketRated"]["properties"]["score"] = {"type": "string"}
    broken["$defs"]["TicketAssigned"]["properties"]["agent"] = {"type": "string"}
    assert breaking_changes(checked_in, broken) == [
        "TicketAssigned: field 'agent' changed type from ['null', 'string'] to ['string']",
        "TicketRated: field 'score' changed type from ['integer'] to ['string']",
    ]


def test_the_checker_catches_a_changed_type_inside_a_shared_definition(
    checked_in: Schema,
) -> None:
    broken = copy.deepcopy(checked_in)
    broken["$defs"]["WireActor"]["properties"]["id"] = {"type": "integer"}
    problems = breaking_changes(checked_in, broken)
    assert len(problems) == len(PUBLISHED_EVENT_TYPES)
    assert "CommentAdded.actor: field 'id' changed type from ['string'] to ['integer']" in problems


def test_the_checker_catches_a_new_required_field(checked_in: Schema) -> None:
    broken = copy.deepcopy(checked_in)
    broken["$defs"]["CommentAdded"]["properties"]["language"] = {"type": "string"}
    broken["$defs"]["CommentAdded"]["required"].append("language")
    assert breaking_changes(checked_in, broken) == [
        "CommentAdded: field 'language' is newly required"
    ]


def test_the_checker_catches_a_removed_event_type(checked_in: Schema) -> None:
    broken = copy.deepcopy(checked_in)
    del broken["discriminator"]["mapping"]["TicketUntagged"]
    assert breaking_changes(checked_in, broken) == ["TicketUntagged: event type was removed"]


# --- the domain's events on the wire --------------------------------------------------------


def test_every_published_event_type_has_a_wire_model() -> None:
    wire_types = set(json_schema()["discriminator"]["mapping"])
    assert {cls.__name__ for cls in PUBLISHED_EVENT_TYPES} == wire_types


def ok(reply: Reply) -> Reply:
    assert reply.ok, reply.as_dict()
    return reply


def full_lifecycle(service: CommandService) -> None:
    """Commands that between them cause every published event type."""
    ok(service.execute(m.CreateAccount(account_id="acme", account_name="Acme Corp")))
    hours = {"time_zone": "Europe/Berlin", "weekly_hours": {"mon": [["09:00", "17:00"]]}}
    ok(service.execute(m.PublishCalendar(calendar_id="office", definition=hours)))
    policy = {"calendar": "office", "default": {"first_reply": 60, "resolution": 600}}
    ok(service.execute(m.PublishSlaPolicy(policy_id="default", definition=policy)))
    for command in (
        m.PublishCalendar(calendar_id="office", definition={**hours, "holidays": ["2026-12-25"]}),
        m.PublishSlaPolicy(policy_id="default", definition={**policy, "warning_at": 0.5}),
        m.JoinTeam(agent_id="ana", team="tier1"),
        m.LeaveTeam(agent_id="ana", team="tier1"),
        m.SetAgentAvailability(agent_id="ana", availability="away"),
        m.SetAgentCapacity(agent_id="ana", capacity=5),
    ):
        ok(service.execute(command))
    opened = m.OpenTicket(
        account_id="acme",
        requester="bob@acme.example",
        subject="VPN drops every hour",
        description="Since Monday",
        channel="email",
        tags=["vpn"],
        actor=CUSTOMER,
    )
    ticket = ok(service.execute(opened)).ticket_id
    assert ticket is not None
    for command in (
        m.RecordSlaWarning(
            ticket_id=ticket,
            metric="first_reply",
            due_at=datetime.now(UTC),
            threshold=0.5,
            actor=SLA_MONITOR,
        ),
        m.RecordSlaBreach(
            ticket_id=ticket, metric="first_reply", due_at=datetime.now(UTC), actor=SLA_MONITOR
        ),
        m.CategorizeTicket(ticket_id=ticket, category="technical", actor=AGENT),
        m.PrioritizeTicket(ticket_id=ticket, priority="high", actor=AGENT),
        m.AssignTicket(ticket_id=ticket, team="tier1", agent="ana", actor=AGENT),
        m.AddComment(ticket_id=ticket, body="Which client?", actor=AGENT),
        m.AddComment(ticket_id=ticket, body="Checked logs", visibility="internal", actor=AGENT),
        m.RedactComment(ticket_id=ticket, comment_id="c2", reason="privacy request", actor=AGENT),
        m.ChangeStatus(ticket_id=ticket, status="on_hold", reason="vendor", actor=AGENT),
        m.TagTicket(ticket_id=ticket, tags=["vendor", "network"], actor=AGENT),
        m.UntagTicket(ticket_id=ticket, tags=["vendor"], actor=AGENT),
        m.ResolveTicket(ticket_id=ticket, resolution="patched", actor=AGENT),
        m.ReopenTicket(ticket_id=ticket, reason="came back", actor=CUSTOMER),
        m.ResolveTicket(ticket_id=ticket, resolution="patched again", actor=AGENT),
        m.RateTicket(ticket_id=ticket, score=4, comment="ok", actor=CUSTOMER),
        m.CloseTicket(ticket_id=ticket, actor=AGENT),
        m.ChangeAccountTier(account_id="acme", tier="enterprise"),
        m.RenameAccount(account_id="acme", account_name="Acme Inc"),
    ):
        ok(service.execute(command))
    follow_up = m.OpenTicket.model_validate(
        {**opened.model_dump(), "command_id": "follow-up", "follow_up_of": ticket}
    )
    ok(service.execute(follow_up))


def test_every_event_of_a_full_lifecycle_validates_against_its_wire_model() -> None:
    # Given a full lifecycle on the in-memory store
    service = build_command_service(Settings(event_store="memory"))
    try:
        full_lifecycle(service)
        notifications = service.app.recorder.select_notifications(start=1, limit=10_000)
        events = [(n.id, service.app.mapper.to_domain_event(n)) for n in notifications]
    finally:
        service.app.close()
    published = [(nid, e) for nid, e in events if isinstance(e, PUBLISHED_EVENT_TYPES)]
    assert {type(e) for _, e in published} == set(PUBLISHED_EVENT_TYPES)

    for notification_id, event in published:
        # When it is put on the wire the way the relay does it
        payload = {**event_payload(event), "notification_id": notification_id}
        message = parse_event_message(json.dumps(payload, separators=(",", ":")))
        # Then it validates, and the wire model names every field it carries
        assert message.notification_id == notification_id
        model = type(message)
        assert set(payload) == set(model.model_fields), model.__name__
        assert EVENT_MESSAGE.validate_python(payload) == message
