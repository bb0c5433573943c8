"""The command service's contract, held on every durable store (real SQLite file, PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = pytest.mark.integration

AGENT = m.ActorModel(kind="agent", id="ana")
CUSTOMER = m.ActorModel(kind="customer", id="bob@acme.example")

ServiceFactory = Callable[[], CommandService]


@pytest.fixture
def new_service(store_settings: Settings) -> Iterator[ServiceFactory]:
    """Builds command services on the one store under test and closes them all afterwards."""
    opened: list[CommandService] = []

    def build() -> CommandService:
        service = build_command_service(store_settings)
        opened.append(service)
        return service

    yield build
    for service in opened:
        service.app.close()


@pytest.fixture
def service(new_service: ServiceFactory) -> CommandService:
    return new_service()


def ok(reply: Reply) -> Reply:
    assert reply.ok, reply.as_dict()
    return reply


def position(service: CommandService) -> int:
    """The store's last notification id: it moves if and only if something was appended."""
    return service.app.recorder.max_notification_id() or 0


def ticket_version(service: CommandService, ticket_id: UUID) -> int:
    return service.load_ticket(ticket_id).version


def create_account(service: CommandService, account_id: str = "acme") -> None:
    ok(service.execute(m.CreateAccount(account_id=account_id, account_name="Acme Corp")))


def open_ticket(service: CommandService, **overrides: Any) -> UUID:
    fields: dict[str, Any] = {
        "account_id": "acme",
        "requester": "bob@acme.example",
        "subject": "VPN drops every hour",
        "actor": CUSTOMER,
    }
    fields.update(overrides)
    reply = ok(service.execute(m.OpenTicket(**fields)))
    assert reply.ticket_id is not None
    return UUID(reply.ticket_id)


def event_types(reply: Reply) -> list[str]:
    return [e["type"] for e in reply.events]


def error_code(reply: Reply) -> str:
    assert not reply.ok, reply.as_dict()
    assert reply.error is not None
    return reply.error.code


# --- lifecycle --------------------------------------------------------------------------


def test_a_ticket_goes_through_its_whole_life_by_commands(
    service: CommandService, new_service: ServiceFactory
) -> None:
    # Given
    create_account(service)
    # When
    opened = ok(
        service.execute(
            m.OpenTicket(
                account_id="acme",
                requester="bob@acme.example",
                subject="VPN drops every hour",
                category="technical",
                priority="high",
                tags=["vpn"],
                actor=CUSTOMER,
            )
        )
    )
    assert opened.ticket_id is not None
    tid = UUID(opened.ticket_id)
    steps: list[tuple[m.Command, list[str]]] = [
        (
            m.AssignTicket(ticket_id=tid, team="network", agent="ana", actor=AGENT),
            ["TicketAssigned", "StatusChanged"],
        ),
        (
            m.AddComment(ticket_id=tid, body="checking logs", visibility="internal", actor=AGENT),
            ["CommentAdded"],
        ),
        (m.AddComment(ticket_id=tid, body="which client version?", actor=AGENT), ["CommentAdded"]),
        (m.ChangeStatus(ticket_id=tid, status="pending", actor=AGENT), ["StatusChanged"]),
        (
            m.AddComment(ticket_id=tid, body="4.2.1", actor=CUSTOMER),
            ["CommentAdded", "StatusChanged"],
        ),
        (
            m.TagTicket(ticket_id=tid, tags=["client-4.2", "regression"], actor=AGENT),
            ["TicketTagged"],
        ),
        (m.UntagTicket(ticket_id=tid, tags=["regression"], actor=AGENT), ["TicketUntagged"]),
        (m.PrioritizeTicket(ticket_id=tid, priority="urgent", actor=AGENT), ["TicketPrioritized"]),
        (
            m.ResolveTicket(ticket_id=tid, resolution="upgrade to 4.3", actor=AGENT),
            ["TicketResolved"],
        ),
        (m.ReopenTicket(ticket_id=tid, reason="still drops", actor=CUSTOMER), ["TicketReopened"]),
        (
            m.ChangeStatus(ticket_id=tid, status="solved", reason="patched", actor=AGENT),
            ["TicketResolved"],
        ),
        (m.RateTicket(ticket_id=tid, score=5, comment="great", actor=CUSTOMER), ["TicketRated"]),
        (m.CloseTicket(ticket_id=tid, actor=AGENT), ["TicketClosed"]),
    ]
    versions = [opened.version or 0]
    for command, expected_types in steps:
        reply = ok(service.execute(command))
        assert reply.ticket_id == str(tid)
        assert event_types(reply) == expected_types, command
        versions.append(reply.version or 0)
    # Then: a fresh service replays the same state from the store
    replayed = new_service().load_ticket(tid).as_dict()
    assert replayed["status"] == "closed"
    assert replayed["team"] == "network"
    assert replayed["agent"] == "ana"
    assert replayed["priority"] == "urgent"
    assert replayed["category"] == "technical"
    assert replayed["tags"] == ["client-4.2", "vpn"]
    assert replayed["resolution"] == "patched"
    assert replayed["rating"] == {"score": 5, "comment": "great"}
    assert replayed["reopen_count"] == 1
    assert [c["visibility"] for c in replayed["comments"]] == ["internal", "public", "public"]
    stored = list(service.app.events.get(tid))
    assert replayed["version"] == len(stored) == versions[-1] == 16
    assert all(a < b for a, b in pairwise(versions))
    # And: a closed ticket stays read-only
    assert error_code(service.execute(m.TagTicket(ticket_id=tid, tags=["late"]))) == (
        "ticket_closed"
    )


# --- idempotency ------------------------------------------------------------------------


def _script(tid: UUID) -> list[m.Command]:
    """One command of each kind that changes a ticket, plus a no-op."""
    return [
        m.AssignTicket(command_id="c-assign", ticket_id=tid, agent="ana", actor=AGENT),
        m.AddComment(command_id="c-comment", ticket_id=tid, body="on it", actor=AGENT),
        m.TagTicket(command_id="c-tag", ticket_id=tid, tags=["vpn"], actor=AGENT),
        m.TagTicket(command_id="c-tag-again", ticket_id=tid, tags=["vpn"], actor=AGENT),
        m.ResolveTicket(command_id="c-resolve", ticket_id=tid, resolution="fixed", actor=AGENT),
    ]


def test_repeating_a_command_id_returns_the_first_reply_and_appends_nothing(
    service: CommandService,
) -> None:
    # Given
    create_account(service)
    open_command = m.OpenTicket(
        command_id="c-open", account_id="acme", requester="bob@acme.example", subject="Hi"
    )
    first_open = ok(service.execute(open_command))
    assert first_open.ticket_id is not None
    tid = UUID(first_open.ticket_id)
    script = _script(tid)
    first = [ok(service.execute(c)) for c in script]
    assert first[3].events == []  # the no-op still answers, with nothing changed
    before, version = position(service), ticket_version(service, tid)
    # When
    again = [service.execute(c) for c in [open_command, *script]]
    # Then
    assert [r.as_dict() for r in again] == [r.as_dict() for r in [first_open, *first]]
    assert position(service) == before
    assert ticket_version(service, tid) == version


def test_a_repeated_command_is_still_recognised_after_a_restart(
    service: CommandService, new_service: ServiceFactory
) -> None:
    # Given
    create_account(service)
    account_command = m.CreateAccount(command_id="c-acct", account_id="globex", account_name="G")
    first_account = ok(service.execute(account_command))
    open_command = m.OpenTicket(
        command_id="c-open", account_id="acme", requester="bob@acme.example", subject="Hi"
    )
    first_open = ok(service.execute(open_command))
    assert first_open.ticket_id is not None
    tid = UUID(first_open.ticket_id)
    script = _script(tid)
    first = [ok(service.execute(c)) for c in script]
    before, version = position(service), ticket_version(service, tid)
    service.app.close()
    # When
    restarted = new_service()
    again = [restarted.execute(c) for c in [account_command, open_command, *script]]
    # Then
    assert [r.as_dict() for r in again] == [
        r.as_dict() for r in [first_account, first_open, *first]
    ]
    assert position(restarted) == before
    assert ticket_version(restarted, tid) == version


def test_reusing_a_command_id_for_another_command_is_refused(service: CommandService) -> None:
    # Given
    create_account(service)
    tid = open_ticket(service)
    ok(service.execute(m.TagTicket(command_id="c-1", ticket_id=tid, tags=["vpn"])))
    before, version = position(service), ticket_version(service, tid)
    # When
    reply = service.execute(m.AddComment(command_id="c-1", ticket_id=tid, body="hello"))
    # Then
    assert error_code(reply) == "duplicate_command_id"
    assert reply.error is not None
    assert reply.error.details.get("field") == "command_id"
    assert position(service) == before
    assert ticket_version(service, tid) == version


# --- optimistic concurrency -------------------------------------------------------------


def test_a_stale_expected_version_is_a_conflict_and_appends_nothing(
    service: CommandService,
) -> None:
    # Given
    create_account(service)
    tid = open_ticket(service)
    ok(service.execute(m.TagTicket(ticket_id=tid, tags=["vpn"], expected_version=1)))
    before = position(service)
    # When
    reply = service.execute(m.AddComment(ticket_id=tid, body="hello", expected_version=1))
    # Then
    assert error_code(reply) == "version_conflict"
    assert reply.error is not None
    assert reply.error.details["expected_version"] == 1
    assert reply.error.details["actual_version"] == 2
    assert position(service) == before
    assert ticket_version(service, tid) == 2
    # And: the current version is accepted
    reply = ok(service.execute(m.AddComment(ticket_id=tid, body="hi", expected_version=2)))
    assert reply.version == 3


def test_a_stale_expected_version_on_an_account_is_a_conflict_and_appends_nothing(
    service: CommandService,
) -> None:
    # Given
    create_account(service)
    ok(service.execute(m.RenameAccount(account_id="acme", account_name="Acme Inc")))
    before = position(service)
    # When
    reply = service.execute(
        m.ChangeAccountTier(account_id="acme", tier="enterprise", expected_version=1)
    )
    # Then
    assert error_code(reply) == "version_conflict"
    assert position(service) == before
    assert service.load_account("acme").tier == "standard"


def test_a_rejected_command_is_not_recorded_so_its_id_may_be_reused(
    service: CommandService,
) -> None:
    # Given
    create_account(service)
    tid = open_ticket(service)
    refused = service.execute(m.CloseTicket(command_id="c-close", ticket_id=tid))
    assert error_code(refused) == "invalid_transition"
    ok(service.execute(m.ResolveTicket(ticket_id=tid)))
    # When
    reply = service.execute(m.CloseTicket(command_id="c-close", ticket_id=tid))
    # Then
    assert event_types(ok(reply)) == ["TicketClosed"]
    assert service.load_ticket(tid).status == "closed"


# --- bad input leaves the store unchanged -----------------------------------------------

Case = Callable[[CommandService, UUID], Reply]

BAD_INPUT: dict[str, tuple[Case, str, str]] = {
    "malformed: empty body": (
        lambda s, t: s.execute_raw("add_comment", {"ticket_id": str(t), "body": ""}),
        "validation_error",
        "body",
    ),
    "malformed: ticket id": (
        lambda s, t: s.execute_raw("tag_ticket", '{"ticket_id": "ticket-1", "tags": ["a"]}'),
        "validation_error",
        "ticket_id",
    ),
    "malformed: bad tag": (
        lambda s, t: s.execute_raw("tag_ticket", {"ticket_id": str(t), "tags": ["Not A Tag"]}),
        "validation_error",
        "tags.0",
    ),
    "malformed: score 9": (
        lambda s, t: s.execute_raw("rate_ticket", {"ticket_id": str(t), "score": 9}),
        "validation_error",
        "score",
    ),
    "malformed: unknown field": (
        lambda s, t: s.execute_raw("close_ticket", {"ticket_id": str(t), "force": True}),
        "validation_error",
        "force",
    ),
    "malformed: actor kind": (
        lambda s, t: s.execute_raw(
            "close_ticket", {"ticket_id": str(t), "actor": {"kind": "robot", "id": "r2"}}
        ),
        "validation_error",
        "actor.kind",
    ),
    "illegal transition: close a new ticket": (
        lambda s, t: s.execute(m.CloseTicket(ticket_id=t)),
        "invalid_transition",
        "",
    ),
    "illegal transition: rate an unsolved ticket": (
        lambda s, t: s.execute(m.RateTicket(ticket_id=t, score=4, actor=CUSTOMER)),
        "invalid_transition",
        "",
    ),
    "unknown ticket": (
        lambda s, t: s.execute(m.TagTicket(ticket_id=uuid4(), tags=["vpn"])),
        "not_found",
        "ticket_id",
    ),
    "unknown account on open": (
        lambda s, t: s.execute(
            m.OpenTicket(account_id="initech", requester="p@initech.example", subject="Hi")
        ),
        "not_found",
        "account_id",
    ),
    "unknown category on open": (
        lambda s, t: s.execute(
            m.OpenTicket(
                account_id="acme", requester="b@acme.example", subject="Hi", category="billing"
            )
        ),
        "validation_error",
        "category",
    ),
    "unknown category on categorize": (
        lambda s, t: s.execute(m.CategorizeTicket(ticket_id=t, category="billing")),
        "validation_error",
        "category",
    ),
}


def _fields_named(reply: Reply) -> set[str]:
    """The fields an error blames: pydantic problems list them, domain errors name one."""
    assert reply.error is not None
    details = reply.error.details
    named = {p["field"] for p in details.get("errors", [])}
    if "field" in details:
        named.add(details["field"])
    return named


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_and_leaves_the_store_unchanged(
    service: CommandService, case: str
) -> None:
    # Given
    create_account(service)
    tid = open_ticket(service)
    before, version = position(service), ticket_version(service, tid)
    run, code, field = BAD_INPUT[case]
    # When
    reply = run(service, tid)
    # Then
    assert error_code(reply) == code
    assert reply.error is not None
    assert reply.error.message
    if field:
        assert field in _fields_named(reply), reply.error.details
    if case.startswith("malformed"):
        assert [p["field"] for p in reply.error.details["errors"]] == [field]
    assert position(service) == before
    assert ticket_version(service, tid) == version


# --- concurrent writers -----------------------------------------------------------------


WRITERS, TAGS_PER_WRITER = 4, 20


def race_to_tag_one_ticket(new_service: ServiceFactory) -> tuple[list[Reply], set[str], int]:
    """Several threads, each with its own service on the same store, tag one ticket at once.

    Returns every reply, the ticket's tags and its version as a fresh service reads them."""
    setup = new_service()
    create_account(setup)
    tid = open_ticket(setup)
    services = [new_service() for _ in range(WRITERS)]
    replies: list[list[Reply]] = [[] for _ in range(WRITERS)]
    crashes: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def write(index: int) -> None:
        try:
            start.wait(timeout=30)
            for n in range(TAGS_PER_WRITER):
                command = m.TagTicket(ticket_id=tid, tags=[f"w{index}-t{n}"], actor=AGENT)
                replies[index].append(services[index].execute(command))
        except BaseException as error:  # reported by the main thread below
            crashes.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert crashes == []
    ticket = new_service().load_ticket(tid)
    return [r for rs in replies for r in rs], set(ticket.tags), ticket.version


def test_racing_writers_on_one_ticket_lose_no_acknowledged_update(
    new_service: ServiceFactory,
) -> None:
    # When
    replies, tags, version = race_to_tag_one_ticket(new_service)
    # Then: every change answered ok is stored, exactly once, at its own version
    acknowledged = [r for r in replies if r.ok]
    assert tags == {e["tags"][0] for r in acknowledged for e in r.events}
    assert version == 1 + len(acknowledged)
    assert sorted(r.version or 0 for r in acknowledged) == list(range(2, version + 1))
    # and anything refused was refused as a conflict, not lost silently
    assert {r.error.code for r in replies if r.error} <= {"version_conflict"}


def test_racing_writers_without_expected_version_all_succeed_by_retrying(
    new_service: ServiceFactory,
) -> None:
    # When
    replies, tags, version = race_to_tag_one_ticket(new_service)
    # Then
    assert [r.as_dict() for r in replies if not r.ok] == []
    assert len(replies) == WRITERS * TAGS_PER_WRITER
    assert tags == {f"w{i}-t{n}" for i in range(WRITERS) for n in range(TAGS_PER_WRITER)}
    assert version == 1 + WRITERS * TAGS_PER_WRITER


# --- group commit -----------------------------------------------------------------------


def test_execute_many_commits_commands_on_different_tickets_and_each_stays_idempotent(
    service: CommandService,
) -> None:
    # Given
    create_account(service)
    first, second, third = (open_ticket(service) for _ in range(3))
    before = position(service)
    commands: list[m.Command] = [
        m.TagTicket(ticket_id=first, tags=["vpn"]),
        m.AddComment(ticket_id=second, body="on it", actor=AGENT),
        m.AssignTicket(ticket_id=third, team="network"),
        m.OpenTicket(account_id="acme", requester="c@acme.example", subject="Printer on fire"),
    ]
    # When
    replies = service.execute_many(commands)
    # Then
    assert all(r.ok for r in replies), [r.as_dict() for r in replies]
    assert [event_types(r) for r in replies] == [
        ["TicketTagged"],
        ["CommentAdded", "StatusChanged"],
        ["TicketAssigned"],
        ["TicketOpened"],
    ]
    assert service.load_ticket(first).tags == ["vpn"]
    assert service.load_ticket(second).status == "open"
    assert service.load_ticket(third).team == "network"
    assert replies[3].ticket_id is not None
    assert service.load_ticket(UUID(replies[3].ticket_id)).subject == "Printer on fire"
    # five events plus one command record per command
    after = position(service)
    assert after == before + 5 + len(commands)
    # And: each command repeated later, alone or as a group, changes nothing
    assert [service.execute(c).as_dict() for c in commands] == [r.as_dict() for r in replies]
    assert [r.as_dict() for r in service.execute_many(commands)] == [r.as_dict() for r in replies]
    assert position(service) == after


def test_execute_many_applies_two_commands_on_the_same_ticket(service: CommandService) -> None:
    # Given
    create_account(service)
    tid = open_ticket(service)
    # When
    replies = service.execute_many(
        [
            m.TagTicket(ticket_id=tid, tags=["vpn"], actor=AGENT),
            m.AddComment(ticket_id=tid, body="internal note", visibility="internal", actor=AGENT),
        ]
    )
    # Then
    assert all(r.ok for r in replies), [r.as_dict() for r in replies]
    assert [r.version for r in replies] == [2, 3]
    ticket = service.load_ticket(tid)
    assert ticket.tags == ["vpn"]
    assert [c["body"] for c in ticket.comments] == ["internal note"]
    assert ticket.version == 3


def test_execute_many_answers_each_bad_command_without_blocking_the_good_ones(
    service: CommandService,
) -> None:
    # Given
    create_account(service)
    tid = open_ticket(service)
    other = open_ticket(service)
    before = position(service)
    # When
    replies = service.execute_many(
        [
            m.CloseTicket(ticket_id=tid),
            m.TagTicket(ticket_id=other, tags=["vpn"]),
            m.TagTicket(ticket_id=uuid4(), tags=["vpn"]),
        ]
    )
    # Then
    assert [r.ok for r in replies] == [False, True, False]
    assert [r.error.code for r in replies if r.error] == ["invalid_transition", "not_found"]
    assert position(service) == before + 2
    assert ticket_version(service, tid) == 1
    assert ticket_version(service, other) == 2
