"""Trigger rules: conditions, actions, no-op skipping, idempotent ids, loop safety, validation."""

from __future__ import annotations

from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.service import CommandService
from projections.queue.store import fold_ticket
from ticketing.domain.values import DEFAULT_CATEGORIES
from ticketing.workers import (
    MAX_CASCADE_DEPTH,
    Notification,
    Outcome,
    Rule,
    TriggerRulesError,
    evaluate,
    load_rules,
    parse_rules,
)
from ticketing.workers.triggers import cascade_depth

EXAMPLE = Path(__file__).parents[2] / "mappings" / "triggers.example.toml"
TICKET = "4cd73e7a-8d23-54bd-9edc-cb342a22bfec"
OPENED_AT = "2026-03-02T09:00:00+00:00"
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}
AGENT = {"kind": "agent", "id": "ana"}


# --- builders ----------------------------------------------------------------------------


def opened(**fields: Any) -> dict[str, Any]:
    """A TicketOpened payload in its wire shape."""
    payload: dict[str, Any] = {
        "type": "TicketOpened",
        "aggregate_id": TICKET,
        "version": 1,
        "occurred_at": OPENED_AT,
        "recorded_at": OPENED_AT,
        "actor": CUSTOMER,
        "command_id": "open-1",
        "account_id": "acme",
        "account_tier": "business",
        "requester": "bob@acme.example",
        "subject": "VPN drops every hour",
        "description": "",
        "channel": "web",
        "priority": "normal",
        "category": None,
        "tags": [],
        "follow_up_of": None,
    }
    payload.update(fields)
    return payload


def later(event_type: str, version: int, **fields: Any) -> dict[str, Any]:
    """A later ticket event; by default an agent's, at the opening time."""
    payload: dict[str, Any] = {
        "type": event_type,
        "aggregate_id": TICKET,
        "version": version,
        "occurred_at": OPENED_AT,
        "recorded_at": OPENED_AT,
        "actor": AGENT,
        "command_id": f"cmd-{version}",
    }
    payload.update(fields)
    return payload


def row_after(*events: dict[str, Any]) -> dict[str, Any]:
    """The queue row the projection folds from these events."""
    tickets: dict[str, dict[str, Any]] = {}
    for event in events:
        fold_ticket(tickets, event)
    return tickets[events[0]["aggregate_id"]]


def rules(*raw: dict[str, Any]) -> tuple[Rule, ...]:
    return parse_rules({"rules": list(raw)})


def rule(**fields: Any) -> dict[str, Any]:
    """A rule on TicketOpened that tags `hit`, with `fields` overriding."""
    return {"id": "r1", "on": "TicketOpened", "then": {"tag": ["hit"]}} | fields


def fires(conditions: dict[str, Any], event: dict[str, Any] | None = None) -> bool:
    event = event or opened()
    return bool(evaluate(rules(rule(**{"if": conditions})), event, row_after(event)))


# --- conditions --------------------------------------------------------------------------


def test_equals_matches_a_field_exactly() -> None:
    # Given / When / Then
    assert fires({"priority": {"equals": "normal"}})
    assert not fires({"priority": {"equals": "high"}})
    assert not fires({"subject": {"equals": "vpn drops every hour"}})


def test_a_bare_value_is_short_for_equals() -> None:
    assert fires({"account_tier": "business"})
    assert not fires({"account_tier": "enterprise"})


def test_in_matches_any_listed_value_and_not_in_none_of_them() -> None:
    assert fires({"channel": {"in": ["email", "web"]}})
    assert not fires({"channel": {"in": ["chat", "phone"]}})
    assert fires({"channel": {"not_in": ["chat", "phone"]}})
    assert not fires({"channel": {"not_in": ["web"]}})


def test_contains_is_a_case_insensitive_substring_of_the_subject() -> None:
    assert fires({"subject": {"contains": "vpn DROPS"}})
    assert not fires({"subject": {"contains": "outage"}})


def test_tag_conditions_ask_about_each_tag() -> None:
    # Given
    event = opened(tags=["vip-gold", "emea"])
    # Then: equals/in/contains hold when some tag matches, not_in when none does
    assert fires({"tags": {"equals": "emea"}}, event)
    assert not fires({"tags": {"equals": "vip"}}, event)
    assert fires({"tags": {"contains": "VIP"}}, event)
    assert fires({"tags": {"in": ["apac", "emea"]}}, event)
    assert not fires({"tags": {"not_in": ["emea"]}}, event)
    assert fires({"tags": {"not_in": ["apac"]}}, event)


def test_is_empty_and_is_set_tell_missing_values_from_present_ones() -> None:
    assert fires({"team": {"is_empty": True}})
    assert not fires({"team": {"is_set": True}})
    assert fires({"tags": {"is_empty": True}})
    assert fires({"requester": {"is_set": True}})
    assert fires({"category": {"is_empty": True}})
    assert fires({"category": {"is_set": False}})


def test_a_missing_value_equals_nothing_and_is_in_no_list() -> None:
    assert not fires({"team": {"equals": "tier2"}})
    assert not fires({"team": {"in": ["tier2"]}})
    assert fires({"team": {"not_in": ["tier2"]}})
    assert not fires({"team": {"contains": "tier"}})


def test_event_fields_are_read_by_dotted_path() -> None:
    # Given
    row = row_after(opened())
    comment = later("CommentAdded", 2, comment_id="c1", body="hi", visibility="internal")
    on_comments = rules(
        rule(
            on="CommentAdded",
            **{"if": {"event.visibility": "internal", "event.actor.kind": {"in": ["agent"]}}},
        )
    )
    # Then
    assert evaluate(on_comments, comment, row)
    assert not evaluate(on_comments, comment | {"visibility": "public"}, row)
    assert not evaluate(on_comments, comment | {"actor": CUSTOMER}, row)


def test_every_condition_must_hold() -> None:
    assert fires({"priority": "normal", "channel": "web"})
    assert not fires({"priority": "normal", "channel": "chat"})


def test_a_rule_fires_only_on_its_event_types_and_only_when_enabled() -> None:
    # Given
    event = opened()
    row = row_after(event)
    # Then
    assert not evaluate(rules(rule(on="CommentAdded")), event, row)
    assert not evaluate(rules(rule(enabled=False)), event, row)
    assert evaluate(rules(rule(on=["CommentAdded", "TicketOpened"])), event, row)


# --- actions -----------------------------------------------------------------------------


def outcomes_of(then: dict[str, Any], event: dict[str, Any] | None = None) -> list[Outcome]:
    event = event or opened()
    return evaluate(rules(rule(id="triage", then=then)), event, row_after(event))


def test_set_category_categorizes_as_automation_with_the_rule_id() -> None:
    # When
    [command] = outcomes_of({"set_category": "technical"})
    # Then
    assert command == m.CategorizeTicket(
        ticket_id=UUID(TICKET),
        category="technical",
        actor=m.ActorModel(kind="automation", id="triage"),
        command_id=f"trigger:1:triage:{TICKET}:1:category",
        occurred_at=datetime.fromisoformat(OPENED_AT),
    )


def test_set_priority_prioritizes() -> None:
    [command] = outcomes_of({"set_priority": "high"})
    assert isinstance(command, m.PrioritizeTicket)
    assert command.priority == "high"
    assert command.command_id == f"trigger:1:triage:{TICKET}:1:priority"


def test_set_team_and_assign_agent_make_one_assignment() -> None:
    [command] = outcomes_of({"set_team": "tier2", "assign_agent": "ana"})
    assert isinstance(command, m.AssignTicket)
    assert command.changes() == {"team": "tier2", "agent": "ana"}


def test_an_assignment_changes_only_what_differs() -> None:
    # Given: a ticket already with tier2
    assigned = later(
        "TicketAssigned", 2, team="tier2", agent=None, previous_team=None, previous_agent=None
    )
    routing = rules(
        rule(on="TicketAssigned", then={"set_team": "tier2", "assign_agent": "ana"}),
    )
    # When
    [command] = evaluate(routing, assigned, row_after(opened(), assigned))
    # Then: the team is left out, so the command keeps it
    assert isinstance(command, m.AssignTicket)
    assert command.changes() == {"agent": "ana"}


def test_tag_adds_only_the_missing_tags() -> None:
    [command] = outcomes_of({"tag": ["vip", "emea", "vip"]}, opened(tags=["emea"]))
    assert isinstance(command, m.TagTicket)
    assert command.tags == ["vip"]


def test_add_internal_note_adds_an_internal_comment_with_the_template_filled() -> None:
    [command] = outcomes_of({"add_internal_note": "Rule {rule_id} saw {subject}; team {team}."})
    assert isinstance(command, m.AddComment)
    assert command.visibility == "internal"
    assert command.body == "Rule triage saw VPN drops every hour; team -."
    assert command.actor == m.ActorModel(kind="automation", id="triage")


def test_notify_produces_a_notification_not_a_command() -> None:
    # When
    [notification] = outcomes_of(
        {"notify": {"channel": "oncall", "template": "{priority}: {subject} ({ticket_id})"}}
    )
    # Then
    assert notification == Notification(
        key=f"trigger:1:triage:{TICKET}:1:notify0",
        rule_id="triage",
        channel="oncall",
        ticket_id=UUID(TICKET),
        event_type="TicketOpened",
        message=f"normal: VPN drops every hour ({TICKET})",
        occurred_at=datetime.fromisoformat(OPENED_AT),
    )


def test_actions_come_in_a_fixed_order() -> None:
    outcomes = outcomes_of(
        {
            "notify": [{"channel": "a", "template": "x"}, {"channel": "b", "template": "y"}],
            "add_internal_note": "n",
            "tag": ["t"],
            "set_team": "tier2",
            "set_priority": "high",
            "set_category": "incident",
        }
    )
    assert [type(o).__name__ for o in outcomes] == [
        "CategorizeTicket",
        "PrioritizeTicket",
        "AssignTicket",
        "TagTicket",
        "AddComment",
        "Notification",
        "Notification",
    ]


# --- convergence -------------------------------------------------------------------------


def test_actions_the_ticket_already_satisfies_are_skipped() -> None:
    # Given: a ticket that already has everything the rule would set
    event = opened(category="technical", priority="high", tags=["vip"])
    # When
    outcomes = outcomes_of(
        {"set_category": "technical", "set_priority": "high", "tag": ["vip"]}, event
    )
    # Then
    assert outcomes == []


def test_a_later_rule_sees_the_changes_of_an_earlier_one() -> None:
    # Given
    ordered = rules(
        rule(id="escalate", then={"set_priority": "urgent", "tag": ["hot"]}),
        rule(id="route", **{"if": {"priority": "urgent"}}, then={"set_team": "tier2"}),
        rule(id="also-hot", then={"tag": ["hot"]}),
    )
    # When
    outcomes = evaluate(ordered, opened(), row_after(opened()))
    # Then: "route" fires on the urgent priority; "also-hot" has nothing left to add
    assert [
        (o.actor.id, type(o).__name__) for o in outcomes if not isinstance(o, Notification)
    ] == [
        ("escalate", "PrioritizeTicket"),
        ("escalate", "TagTicket"),
        ("route", "AssignTicket"),
    ]


def test_on_a_closed_ticket_rules_only_notify() -> None:
    # Given
    closed = later("TicketClosed", 2, from_status="solved", to_status="closed")
    closing_rules = rules(
        rule(
            on="TicketClosed",
            then={"tag": ["done"], "notify": {"channel": "audit", "template": "{status}"}},
        )
    )
    # When
    outcomes = evaluate(closing_rules, closed, row_after(opened(), closed))
    # Then
    assert [type(o) for o in outcomes] == [Notification]
    assert isinstance(outcomes[0], Notification)
    assert outcomes[0].message == "closed"


def test_evaluating_the_same_event_twice_gives_the_same_command_ids() -> None:
    # Given
    example = load_rules(EXAMPLE)
    event = opened(account_tier="enterprise", subject="Checkout outage")
    row = row_after(event)
    # When
    first, second = evaluate(example, event, row), evaluate(example, event, row)
    # Then
    assert first == second
    ids = [o.command_id for o in first if not isinstance(o, Notification)]
    assert len(set(ids)) == len(ids)


# --- against the real command service ----------------------------------------------------


def open_ticket(service: CommandService, **fields: Any) -> dict[str, Any]:
    """Create the account and open a ticket; returns the TicketOpened payload."""
    assert service.execute(
        m.CreateAccount(account_id="acme", account_name="Acme", tier="enterprise")
    ).ok
    ticket: dict[str, Any] = {
        "account_id": "acme",
        "requester": "bob@acme.example",
        "subject": "VPN drops every hour",
        "actor": m.ActorModel(kind="customer", id="bob"),
    }
    reply = service.execute(m.OpenTicket(**(ticket | fields)))
    assert reply.ok, reply.error
    event: dict[str, Any] = reply.events[0]
    return event


def run_automation(
    service: CommandService, rule_set: tuple[Rule, ...], *events: dict[str, Any]
) -> list[dict[str, Any]]:
    """What a trigger runner does: fold each event, evaluate, execute, feed the new events back.
    Returns the events automation caused; fails instead of hanging if it never settles."""
    tickets: dict[str, dict[str, Any]] = {}
    pending = deque(events)
    caused: list[dict[str, Any]] = []
    for _ in range(100):
        if not pending:
            return caused
        event = pending.popleft()
        fold_ticket(tickets, event)
        for outcome in evaluate(rule_set, event, tickets[event["aggregate_id"]]):
            if isinstance(outcome, Notification):
                continue
            reply = service.execute(outcome)
            assert reply.ok, reply.error
            caused.extend(reply.events)
            pending.extend(reply.events)
    raise AssertionError("automation never settled")


def command(service: CommandService, cmd: m.Command) -> list[dict[str, Any]]:
    reply = service.execute(cmd)
    assert reply.ok, reply.error
    return list(reply.events)


def test_re_executing_a_triggers_commands_appends_nothing(memory_service: CommandService) -> None:
    # Given
    event = open_ticket(memory_service, subject="Checkout outage")
    outcomes = evaluate(load_rules(EXAMPLE), event, row_after(event))
    commands = [o for o in outcomes if not isinstance(o, Notification)]
    first = [memory_service.execute(c) for c in commands]
    # When: a redelivered event yields the same commands again
    again = [memory_service.execute(c) for c in commands]
    # Then: the service recognises the ids and replies as before
    assert all(r.ok for r in first + again)
    assert [r.version for r in again] == [r.version for r in first]
    assert [r.events for r in again] == [r.events for r in first]


def test_a_rule_does_not_retrigger_itself(memory_service: CommandService) -> None:
    # Given: a rule that notes every comment, automation's included
    noter = rules(
        {
            "id": "noter",
            "on": "CommentAdded",
            "allow_automation": True,
            "then": {"add_internal_note": "seen"},
        }
    )
    opened_event = open_ticket(memory_service)
    ticket_id = UUID(opened_event["aggregate_id"])
    reply = command(memory_service, m.AddComment(ticket_id=ticket_id, body="any news?"))
    # When
    caused = run_automation(memory_service, noter, opened_event, *reply)
    # Then: one note for the customer's comment, none for the note itself
    assert [(e["type"], e["actor"], e["body"]) for e in caused] == [
        ("CommentAdded", {"kind": "automation", "id": "noter"}, "seen")
    ]


def test_rules_ignore_automations_changes_unless_they_opt_in(
    memory_service: CommandService,
) -> None:
    # Given: one rule raises priority, another (not opted in) reacts to priority changes
    chain = rules(
        rule(id="raise", then={"set_priority": "high"}),
        {
            "id": "route-high",
            "on": "TicketPrioritized",
            "if": {"priority": "high"},
            "then": {"set_team": "tier2"},
        },
    )
    # When
    caused = run_automation(memory_service, chain, open_ticket(memory_service))
    # Then: only the priority changes
    assert [(e["type"], e["actor"]["id"]) for e in caused] == [("TicketPrioritized", "raise")]


def test_a_rule_that_opts_in_reacts_to_another_rules_change(
    memory_service: CommandService,
) -> None:
    # Given
    chain = rules(
        rule(id="raise", then={"set_priority": "high"}),
        {
            "id": "route-high",
            "on": "TicketPrioritized",
            "allow_automation": True,
            "if": {"priority": "high"},
            "then": {"set_team": "tier2"},
        },
    )
    # When
    caused = run_automation(memory_service, chain, open_ticket(memory_service))
    # Then
    assert [(e["type"], e["actor"]["id"], e["command_id"].split(":")[1]) for e in caused] == [
        ("TicketPrioritized", "raise", "1"),
        ("TicketAssigned", "route-high", "2"),
    ]


def test_two_rules_that_ping_pong_priority_stop_at_the_cascade_limit(
    memory_service: CommandService,
) -> None:
    # Given: rules that contradict each other and both react to automation
    ping_pong = rules(
        {
            "id": "escalate",
            "on": "TicketPrioritized",
            "allow_automation": True,
            "if": {"priority": "high"},
            "then": {"set_priority": "urgent"},
        },
        {
            "id": "calm-down",
            "on": "TicketPrioritized",
            "allow_automation": True,
            "if": {"priority": "urgent"},
            "then": {"set_priority": "high"},
        },
    )
    opened_event = open_ticket(memory_service)
    ticket_id = UUID(opened_event["aggregate_id"])
    agent = m.ActorModel(kind="agent", id="ana")
    raised = command(
        memory_service, m.PrioritizeTicket(ticket_id=ticket_id, priority="high", actor=agent)
    )
    # When
    caused = run_automation(memory_service, ping_pong, opened_event, *raised)
    # Then: in each pass both rules fire (each sees the other's proposal), and the chain
    # stops once its events are MAX_CASCADE_DEPTH automated steps from the agent's change
    assert [(e["actor"]["id"], e["priority"], cascade_depth(e["command_id"])) for e in caused] == [
        ("escalate", "urgent", 1),
        ("calm-down", "high", 1),
        ("escalate", "urgent", 2),
        ("calm-down", "high", 3),
    ]


def test_two_rules_that_ping_pong_tags_settle_after_one_round(
    memory_service: CommandService,
) -> None:
    # Given: "a" implies "b" and "b" implies "a"
    ping_pong = rules(
        {
            "id": "a-means-b",
            "on": "TicketTagged",
            "allow_automation": True,
            "if": {"tags": "a"},
            "then": {"tag": ["b"]},
        },
        {
            "id": "b-means-a",
            "on": "TicketTagged",
            "allow_automation": True,
            "if": {"tags": "b"},
            "then": {"tag": ["a"]},
        },
    )
    opened_event = open_ticket(memory_service)
    ticket_id = UUID(opened_event["aggregate_id"])
    tagged = command(memory_service, m.TagTicket(ticket_id=ticket_id, tags=["a"]))
    # When
    caused = run_automation(memory_service, ping_pong, opened_event, *tagged)
    # Then: one automated tag, then both rules find nothing to change
    assert [(e["actor"]["id"], e["tags"]) for e in caused] == [("a-means-b", ["b"])]


def test_cascade_depth_is_read_from_the_command_id() -> None:
    assert cascade_depth("6f1c-human-command") == 0
    assert cascade_depth(None) == 0
    assert cascade_depth(f"trigger:2:r1:{TICKET}:4:tag") == 2
    assert cascade_depth("trigger:garbled") == MAX_CASCADE_DEPTH


def test_no_rule_fires_at_the_cascade_limit_even_when_it_opts_in() -> None:
    # Given
    opt_in = rules(rule(on="TicketTagged", allow_automation=True, then={"tag": ["more"]}))
    row = row_after(opened())

    def tagged_at(depth: int) -> dict[str, Any]:
        return later(
            "TicketTagged",
            2,
            tags=["x"],
            actor={"kind": "automation", "id": "other"},
            command_id=f"trigger:{depth}:other:{TICKET}:1:tag",
        )

    # Then
    assert evaluate(opt_in, tagged_at(MAX_CASCADE_DEPTH - 1), row)
    assert not evaluate(opt_in, tagged_at(MAX_CASCADE_DEPTH), row)


# --- validation --------------------------------------------------------------------------


def rejection(*raw: dict[str, Any], categories: tuple[str, ...] | None = None) -> str:
    with pytest.raises(TriggerRulesError) as caught:
        parse_rules({"rules": list(raw)}, categories=categories)
    return str(caught.value)


def test_an_unknown_ticket_field_is_named_with_its_rule() -> None:
    message = rejection(rule(id="vip", **{"if": {"priorty": "high"}}))
    assert "rule 'vip'" in message
    assert "if.priorty: unknown ticket field" in message


def test_a_bad_action_value_is_named_with_its_rule() -> None:
    message = rejection(rule(id="vip", then={"set_priority": "urgentt"}))
    assert "rule 'vip': then.set_priority:" in message


def test_a_misspelt_value_in_a_condition_is_an_error() -> None:
    message = rejection(rule(id="vip", **{"if": {"status": {"in": ["open", "solvd"]}}}))
    assert "rule 'vip'" in message
    assert "if.status: 'solvd' is not one of" in message


def test_an_unknown_operator_or_an_empty_condition_is_an_error() -> None:
    assert "if.subject.like: Extra inputs are not permitted" in rejection(
        rule(**{"if": {"subject": {"like": "vpn"}}})
    )
    assert "if.subject: give at least one of" in rejection(rule(**{"if": {"subject": {}}}))


def test_an_unknown_event_type_is_an_error() -> None:
    assert "rule 'r1': on: unknown event type(s) TicketOpen;" in rejection(rule(on="TicketOpen"))


def test_an_event_field_that_none_of_the_rules_events_has_is_an_error() -> None:
    message = rejection(rule(**{"if": {"event.visibility": "public"}}))
    assert "if.event.visibility: no event in on = ['TicketOpened'] has a field 'visibility'" in (
        message
    )


def test_an_unknown_template_placeholder_is_an_error() -> None:
    message = rejection(rule(id="note", then={"add_internal_note": "hi {asignee}"}))
    assert "rule 'note': then.add_internal_note: unknown placeholder(s) asignee" in message


def test_a_rule_without_actions_or_id_is_an_error() -> None:
    assert "rule 'r1': then: give at least one action" in rejection(rule(then={}))
    message = rejection({"on": "TicketOpened", "then": {"tag": ["x"]}})
    assert "rule #1 (no id): id: Field required" in message


def test_rule_ids_are_unique_slugs() -> None:
    assert "rule 'twin': id: used by an earlier rule" in rejection(rule(id="twin"), rule(id="twin"))
    assert "rule 'Bad Id': id:" in rejection(rule(id="Bad Id"))


def test_a_rule_cannot_take_another_workers_actor_id() -> None:
    # the triggers principal may act as automation:<rule id>, never as the router
    assert "rule 'router': id: 'router' is another worker's actor" in rejection(rule(id="router"))


def test_categories_are_checked_against_the_taxonomy_when_given() -> None:
    message = rejection(rule(then={"set_category": "billing"}), categories=DEFAULT_CATEGORIES)
    assert "then.set_category: 'billing' is not one of" in message
    assert rules(rule(then={"set_category": "billing"}))  # any well-formed name without one


def test_every_bad_rule_is_reported_at_once() -> None:
    message = rejection(rule(id="one", on="Nope"), rule(id="two", then={"tag": ["Bad Tag"]}))
    assert "rule 'one'" in message
    assert "rule 'two': then.tag.0:" in message


def test_a_file_that_is_not_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "triggers.toml"
    path.write_text("[[rules]\nid = 1\n")
    with pytest.raises(TriggerRulesError, match=r"triggers\.toml: not valid TOML"):
        load_rules(path)


def test_a_file_with_a_bad_rule_names_the_file_rule_and_field(tmp_path: Path) -> None:
    path = tmp_path / "triggers.toml"
    path.write_text('[[rules]]\nid = "vip"\non = "TicketOpened"\nthen.set_team = "tier 2"\n')
    with pytest.raises(TriggerRulesError, match=r"triggers\.toml: rule 'vip': then\.set_team:"):
        load_rules(path)


# --- the example file --------------------------------------------------------------------


def test_the_example_rules_load_against_the_default_taxonomy() -> None:
    example = load_rules(EXAMPLE, categories=DEFAULT_CATEGORIES)
    assert [r.id for r in example] == [
        "enterprise-outage",
        "urgent-to-tier2",
        "billing-subject",
        "live-channel",
        "customer-replied",
    ]


def test_the_example_rules_handle_an_enterprise_outage_from_chat() -> None:
    # Given
    event = opened(account_tier="enterprise", subject="Checkout OUTAGE in EU", channel="chat")
    # When
    outcomes = evaluate(load_rules(EXAMPLE), event, row_after(event))
    # Then: rule 1 makes it an urgent incident tagged outage and pages on-call; rule 2 sees
    # the urgent priority and routes it to tier2 with a note; rule 4 tags the live channel
    summary = [
        (o.rule_id, o.channel, o.message)
        if isinstance(o, Notification)
        else (
            o.actor.id,
            o.name,
            o.model_dump(include={"category", "priority", "team", "tags", "body"}),
        )
        for o in outcomes
    ]
    assert summary == [
        ("enterprise-outage", "categorize_ticket", {"category": "incident"}),
        ("enterprise-outage", "prioritize_ticket", {"priority": "urgent"}),
        ("enterprise-outage", "tag_ticket", {"tags": ["outage"]}),
        (
            "enterprise-outage",
            "oncall",
            f"Urgent outage for acme: Checkout OUTAGE in EU ({TICKET})",
        ),
        ("urgent-to-tier2", "assign_ticket", {"team": "tier2"}),
        (
            "urgent-to-tier2",
            "add_comment",
            {"body": "Routed to tier2 by rule urgent-to-tier2: priority is urgent."},
        ),
        ("live-channel", "tag_ticket", {"tags": ["live-channel"]}),
    ]


def test_the_example_rules_leave_an_ordinary_web_ticket_alone() -> None:
    event = opened()
    assert evaluate(load_rules(EXAMPLE), event, row_after(event)) == []


def test_the_example_rules_ping_the_agent_when_the_customer_replies() -> None:
    # Given: an assigned ticket
    assigned = later(
        "TicketAssigned", 2, team=None, agent="ana", previous_team=None, previous_agent=None
    )
    reply = later(
        "CommentAdded", 3, actor=CUSTOMER, comment_id="c1", body="still down", visibility="public"
    )
    note = reply | {"actor": AGENT, "visibility": "internal"}
    row = row_after(opened(), assigned, reply)
    # When
    [ping] = evaluate(load_rules(EXAMPLE), reply, row)
    # Then
    assert isinstance(ping, Notification)
    assert (ping.channel, ping.message) == (
        "agent-inbox",
        f"ana: the customer replied on VPN drops every hour ({TICKET})",
    )
    assert evaluate(load_rules(EXAMPLE), note, row) == []
