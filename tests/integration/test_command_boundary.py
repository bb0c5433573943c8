"""The command boundary on every durable store (SQLite file, PostgreSQL): who may do what, which
values are refused before they reach the store, and what a reused command id means.

Each test reproduces a finding of issue 13 on 41a43bf (where it failed) and holds it fixed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from ticketing.principals import Principal, Principals
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = pytest.mark.integration

AGENT = m.ActorModel(kind="agent", id="ana")
BOB = m.ActorModel(kind="customer", id="bob@acme.example")
CALLER = Principals.built_in().get("caller")
assert CALLER is not None


@pytest.fixture
def service(store_settings: Settings) -> Iterator[CommandService]:
    service = build_command_service(store_settings)
    yield service
    service.app.close()


def ok(reply: Reply) -> Reply:
    assert reply.ok, reply.as_dict()
    return reply


def code(reply: Reply) -> str:
    assert reply.error is not None, reply.as_dict()
    return reply.error.code


def position(service: CommandService) -> int:
    return service.app.recorder.max_notification_id() or 0


def given_a_ticket_with_an_internal_note(service: CommandService) -> UUID:
    ok(service.execute(m.CreateAccount(account_id="acme", account_name="Acme")))
    opened = ok(
        service.execute(
            m.OpenTicket(account_id="acme", requester=BOB.id, subject="VPN", actor=BOB), CALLER
        )
    )
    ticket = UUID(str(opened.ticket_id))
    note = m.AddComment(ticket_id=ticket, body="root cause", visibility="internal", actor=AGENT)
    ok(service.execute(note, CALLER))
    return ticket


# --- 1. the actor is proven, never claimed ---------------------------------------------------


def test_a_customer_through_a_service_can_do_none_of_what_only_staff_and_admins_may(
    service: CommandService,
) -> None:
    ticket = given_a_ticket_with_an_internal_note(service)
    attempts: list[m.Command] = [
        m.PrioritizeTicket(ticket_id=ticket, priority="urgent", actor=BOB),
        m.AssignTicket(ticket_id=ticket, team="vip", agent="bob", actor=BOB),
        m.RedactComment(ticket_id=ticket, comment_id="c1", reason="mine", actor=BOB),
        m.RecordSlaBreach(
            ticket_id=ticket, metric="first_reply", due_at=datetime.now(UTC), actor=BOB
        ),
        m.PublishSlaPolicy(
            policy_id="default", definition={"default": {"first_reply": 1}}, actor=BOB
        ),
        m.ChangeAccountTier(account_id="acme", tier="enterprise", actor=BOB),
    ]
    before = position(service)
    for command in attempts:
        reply = service.execute(command, CALLER)
        assert code(reply) == "forbidden", command.name
    assert position(service) == before
    history = service.load_ticket(ticket)
    assert history.comments[0]["body"] == "root cause"


def test_a_service_cannot_claim_system_or_automation_actors(service: CommandService) -> None:
    ticket = given_a_ticket_with_an_internal_note(service)
    for actor in ("system:sla-monitor", "automation:router", "agent:ana"):
        limited = Principal("crm", role="service", act_as=("customer:*",), accounts=("acme",))
        claimed = m.ActorModel.parse(actor)
        reply = service.execute(
            m.PrioritizeTicket(ticket_id=ticket, priority="high", actor=claimed), limited
        )
        assert code(reply) == "forbidden"
        assert reply.error is not None
        assert reply.error.details["missing_grant"] == f"act_as {actor}"


# --- 3. bad values are refused before they reach the store ------------------------------------


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "1970-01-01T00:00:00Z"]
)
def test_times_out_of_the_sane_window_are_validation_errors_naming_the_field(
    service: CommandService, moment: str
) -> None:
    ok(service.execute(m.CreateAccount(account_id="acme", account_name="Acme")))
    before = position(service)
    payload = {"account_id": "acme", "requester": BOB.id, "subject": "x", "occurred_at": moment}
    reply = service.execute_raw("open_ticket", payload)
    assert code(reply) == "validation_error"
    assert reply.error is not None
    assert reply.error.details["errors"][0]["field"] == "occurred_at"
    due = {"ticket_id": str(uuid4()), "metric": "first_reply", "due_at": moment}
    assert code(service.execute_raw("record_sla_breach", due)) == "validation_error"
    assert position(service) == before


def test_a_comment_dated_in_the_future_is_refused_and_later_commands_keep_their_time(
    service: CommandService,
) -> None:
    ticket = given_a_ticket_with_an_internal_note(service)
    future = m.AddComment(ticket_id=ticket, body="from 2099", occurred_at="2099-01-01T00:00:00Z")
    assert code(service.execute(future)) == "validation_error"
    tagged = ok(service.execute(m.TagTicket(ticket_id=ticket, tags=["later"])))
    assert tagged.events[0]["occurred_at"] < "2030"


@pytest.mark.parametrize("bad", ["1", True, 1.0, 2**63])
def test_expected_version_accepts_only_integers_in_range(service: CommandService, bad: Any) -> None:
    ticket = given_a_ticket_with_an_internal_note(service)
    payload = {"ticket_id": str(ticket), "priority": "high", "expected_version": bad}
    reply = service.execute_raw("prioritize_ticket", payload)
    assert code(reply) == "validation_error"


def test_sla_targets_and_cycles_are_bounded(service: CommandService) -> None:
    policy = {"policy_id": "default", "definition": {"default": {"resolution": 10**30}}}
    reply = service.execute_raw("publish_sla_policy", policy)
    assert code(reply) == "validation_error"
    assert (
        reply.error is not None and reply.error.details["field"] == "definition.default.resolution"
    )
    cycle = {"ticket_id": str(uuid4()), "metric": "first_reply", "cycle": 10**12, "due_at": "x"}
    assert code(service.execute_raw("record_sla_breach", cycle)) == "validation_error"


def test_a_command_the_store_refuses_never_fails_its_neighbours_in_a_group(
    service: CommandService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: 39 good commands and one that the store itself refuses
    ok(service.execute(m.CreateAccount(account_id="acme", account_name="Acme")))
    commands = [
        m.OpenTicket(account_id="acme", requester=BOB.id, subject=f"#{n}") for n in range(40)
    ]
    poison = commands[17].command_id
    real_save = service.app.save

    def save(*items: Any, **kwargs: Any) -> Any:
        if any(getattr(i, "command_id", None) == poison for i in items):
            raise OverflowError("date value out of range")
        return real_save(*items, **kwargs)

    monkeypatch.setattr(service.app, "save", save)
    before = position(service)
    # When
    replies = service.execute_many(commands)
    # Then
    assert [code(r) for r in replies if not r.ok] == ["store_unavailable"]
    assert not replies[17].ok
    assert sum(r.ok for r in replies) == 39
    assert position(service) > before


# --- 5. idempotency means the same command -----------------------------------------------------


def test_a_reused_command_id_with_another_body_or_ticket_is_a_duplicate_naming_the_difference(
    service: CommandService,
) -> None:
    ticket = given_a_ticket_with_an_internal_note(service)
    other = given_other_ticket(service)
    first = m.AddComment(command_id="k-1", ticket_id=ticket, body="hello", actor=AGENT)
    ok(service.execute(first))
    before = position(service)
    # an identical repeat gets the first reply
    assert service.execute(first).as_dict() == ok(service.execute(first)).as_dict()
    for changed, differs in (
        (first.model_copy(update={"body": "bye"}), ["body"]),
        (first.model_copy(update={"ticket_id": other}), ["(target)", "ticket_id"]),
        (m.TagTicket(command_id="k-1", ticket_id=ticket, tags=["x"]), ["(command)"]),
    ):
        reply = service.execute(changed)
        assert code(reply) == "duplicate_command_id"
        assert reply.error is not None
        assert set(differs) <= set(reply.error.details["differs"]), reply.error.details
    assert position(service) == before


def given_other_ticket(service: CommandService) -> UUID:
    opened = ok(service.execute(m.OpenTicket(account_id="acme", requester=BOB.id, subject="2")))
    return UUID(str(opened.ticket_id))


def test_the_group_path_checks_fingerprints_too(service: CommandService) -> None:
    ticket = given_a_ticket_with_an_internal_note(service)
    first = m.TagTicket(command_id="g-1", ticket_id=ticket, tags=["a"])
    ok(service.execute_many([first])[0])
    again = service.execute_many([first, first.model_copy(update={"tags": ["b"]})])
    assert again[0].ok
    assert code(again[1]) == "duplicate_command_id"


def test_history_can_still_be_imported_by_a_principal_granted_import(
    service: CommandService,
) -> None:
    ok(service.execute(m.CreateAccount(account_id="acme", account_name="Acme")))
    importer = Principals.built_in().get("importer")
    assert importer is not None
    old = datetime.now(UTC) - timedelta(days=400)
    command = m.OpenTicket(account_id="acme", requester=BOB.id, subject="old", occurred_at=old)
    assert code(service.execute(command, CALLER)) == "forbidden"
    ok(service.execute(command, importer))


def test_a_repeat_is_answered_only_to_a_principal_that_may_send_the_command(
    service: CommandService,
) -> None:
    ticket = given_a_ticket_with_an_internal_note(service)
    note = m.AddComment(
        command_id="n-1", ticket_id=ticket, body="secret", visibility="internal", actor=AGENT
    )
    ok(service.execute(note, CALLER))
    outsider = Principal("crm", role="service", act_as=("customer:*",), accounts=("acme",))
    reply = service.execute(note, outsider)
    assert code(reply) == "forbidden"
    assert "secret" not in reply.to_json()
    assert ok(service.execute(note, CALLER)).events[0]["body"] == "secret"
