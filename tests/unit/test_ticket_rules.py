"""Every rule of the Ticket aggregate, one given/when/then test (or table of cases) per rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest

from tests.builders import (
    AGENT,
    AUTOMATION,
    CUSTOMER,
    OTHER_AGENT,
    T0,
    at,
    opened_ticket,
    replayed,
    ticket_in,
    unsaved_ticket,
)
from ticketing.domain.errors import (
    ForbiddenError,
    InvalidTransitionError,
    TicketClosedError,
    TicketingError,
    TimeOutOfOrderError,
    ValidationError,
)
from ticketing.domain.events import (
    CommentAdded,
    StatusChanged,
    TicketAssigned,
    TicketCategorized,
    TicketClosed,
    TicketOpened,
    TicketPrioritized,
    TicketRated,
    TicketReopened,
    TicketResolved,
    TicketTagged,
    TicketUntagged,
)
from ticketing.domain.status_rules import ALLOWED_TRANSITIONS
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Actor, ActorKind, Channel, Priority, Status, Visibility
from ticketing.store.application import replay_events

Command = Callable[[Ticket], None]

STATUS_NAMES = [str(s) for s in Status]


def types_of(events: Sequence[Any]) -> list[type]:
    return [type(e) for e in events]


def collected(ticket: Ticket) -> list[Any]:
    """`collect_events()`, typed loosely because each event class has its own fields."""
    return list(ticket.collect_events())


def set_status(status: Status | str, when: datetime) -> Command:
    return lambda t: t.change_status(status, actor=AGENT, at=when)


def assert_refused(
    ticket: Ticket, command: Command, error: type[TicketingError], code: str
) -> None:
    """The command raises `error` with `code`, appends nothing and leaves the state untouched."""
    version, state = ticket.version, ticket.as_dict()
    with pytest.raises(error) as caught:
        command(ticket)
    assert caught.value.code == code
    assert ticket.collect_events() == []
    assert ticket.version == version
    assert ticket.as_dict() == state


# --- the status model ---------------------------------------------------------------------

ALLOWED_MOVES = [
    (source, target)
    for source in Status
    for target in sorted(ALLOWED_TRANSITIONS[source], key=list(Status).index)
]
FORBIDDEN_MOVES = [
    (source, target)
    for source in Status
    for target in Status
    if source is not Status.CLOSED
    and target is not source
    and target not in ALLOWED_TRANSITIONS[source]
]


def move_id(move: tuple[Status, Status]) -> str:
    return f"{move[0]}->{move[1]}"


def status_event_for(source: Status, target: Status) -> type:
    """Solving, closing and reopening have their own events; other moves are StatusChanged."""
    if target is Status.SOLVED:
        return TicketResolved
    if target is Status.CLOSED:
        return TicketClosed
    if source is Status.SOLVED:
        return TicketReopened
    return StatusChanged


def test_status_model_matches_the_design() -> None:
    # Given the table in docs/status-model.md: work moves freely between new/open/pending/on_hold
    # (never back to new), anything unsolved can be solved, solved reopens or closes, closed is
    # final.
    working = {Status.OPEN, Status.PENDING, Status.ON_HOLD}
    designed = {
        Status.NEW: frozenset(working | {Status.SOLVED}),
        Status.OPEN: frozenset({Status.PENDING, Status.ON_HOLD, Status.SOLVED}),
        Status.PENDING: frozenset({Status.OPEN, Status.ON_HOLD, Status.SOLVED}),
        Status.ON_HOLD: frozenset({Status.OPEN, Status.PENDING, Status.SOLVED}),
        Status.SOLVED: frozenset({Status.OPEN, Status.CLOSED}),
        Status.CLOSED: frozenset(),
    }
    # When / Then
    assert designed == ALLOWED_TRANSITIONS


@pytest.mark.parametrize(("source", "target"), ALLOWED_MOVES, ids=list(map(move_id, ALLOWED_MOVES)))
def test_every_allowed_status_change_records_one_status_event(
    source: Status, target: Status
) -> None:
    # Given
    ticket = ticket_in(source)
    version = ticket.version
    # When
    ticket.change_status(target, actor=OTHER_AGENT, reason="why", at=at(10), command_id="cmd-9")
    # Then
    events = collected(ticket)
    assert types_of(events) == [status_event_for(source, target)]
    (event,) = events
    assert (event.from_status, event.to_status) == (str(source), str(target))
    assert event.actor == OTHER_AGENT.as_dict()
    assert event.occurred_at == at(10)
    assert event.command_id == "cmd-9"
    assert ticket.status is target
    assert ticket.version == version + 1


@pytest.mark.parametrize(
    ("source", "target"), FORBIDDEN_MOVES, ids=list(map(move_id, FORBIDDEN_MOVES))
)
def test_every_forbidden_status_change_is_refused_as_an_invalid_transition(
    source: Status, target: Status
) -> None:
    # Given
    ticket = ticket_in(source)
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.change_status(target, actor=AGENT, at=at(10)),
        InvalidTransitionError,
        "invalid_transition",
    )
    assert ticket.status is source


def test_forbidden_moves_include_leaving_solved_for_a_working_status() -> None:
    # Given / When / Then: guards the parametrized table above against becoming empty
    assert (Status.SOLVED, Status.PENDING) in FORBIDDEN_MOVES
    assert (Status.OPEN, Status.CLOSED) in FORBIDDEN_MOVES
    assert (Status.OPEN, Status.NEW) in FORBIDDEN_MOVES


def test_status_change_records_the_reason_given() -> None:
    # Given
    ticket = ticket_in("open")
    # When
    ticket.change_status("on_hold", actor=AGENT, reason="waiting on vendor", at=at(10))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, StatusChanged)
    assert (event.from_status, event.to_status, event.reason) == (
        "open",
        "on_hold",
        "waiting on vendor",
    )


def test_setting_the_status_to_solved_records_the_reason_as_resolution() -> None:
    # Given
    ticket = ticket_in("pending")
    # When
    ticket.change_status("solved", actor=AGENT, reason="patched", at=at(10), command_id="c-2")
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketResolved)
    assert (event.from_status, event.to_status, event.resolution) == (
        "pending",
        "solved",
        "patched",
    )
    assert ticket.status is Status.SOLVED
    assert ticket.resolution == "patched"


def test_resolving_a_ticket_records_the_resolution() -> None:
    # Given
    ticket = ticket_in("open")
    # When
    ticket.resolve(actor=AGENT, resolution="restarted the gateway", at=at(10), command_id="c-3")
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketResolved)
    assert (event.from_status, event.to_status, event.resolution) == (
        "open",
        "solved",
        "restarted the gateway",
    )
    assert (event.actor, event.occurred_at, event.command_id) == (AGENT.as_dict(), at(10), "c-3")
    assert ticket.as_dict()["resolution"] == "restarted the gateway"


def test_a_new_ticket_can_be_solved_straight_away() -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.resolve(actor=AGENT, resolution="duplicate", at=at(10))
    # Then
    assert types_of(ticket.collect_events()) == [TicketResolved]
    assert ticket.status is Status.SOLVED


def test_closing_a_solved_ticket_records_a_closed_event() -> None:
    # Given
    ticket = ticket_in("solved")
    # When
    ticket.close(actor=AGENT, at=at(10), command_id="c-4")
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketClosed)
    assert (event.from_status, event.to_status) == ("solved", "closed")
    assert (event.actor, event.occurred_at, event.command_id) == (AGENT.as_dict(), at(10), "c-4")
    assert ticket.status is Status.CLOSED


@pytest.mark.parametrize("status", ["new", "open", "pending", "on_hold"])
def test_only_a_solved_ticket_can_be_closed(status: str) -> None:
    # Given
    ticket = ticket_in(status)
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.close(actor=AGENT, at=at(10)),
        InvalidTransitionError,
        "invalid_transition",
    )


def test_setting_a_solved_ticket_to_open_is_a_counted_reopen() -> None:
    # Given
    ticket = ticket_in("solved")
    # When
    ticket.change_status("open", actor=AGENT, reason="fix did not hold", at=at(10))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketReopened)
    assert (event.from_status, event.to_status, event.reason) == (
        "solved",
        "open",
        "fix did not hold",
    )
    assert ticket.status is Status.OPEN
    assert ticket.reopen_count == 1


def test_reopening_a_solved_ticket_counts_every_reopen() -> None:
    # Given
    ticket = ticket_in("solved")
    # When
    ticket.reopen(actor=AGENT, reason="again", at=at(10), command_id="c-5")
    ticket.resolve(actor=AGENT, resolution="fixed for real", at=at(11))
    ticket.reopen(actor=CUSTOMER, at=at(12))
    # Then
    events = collected(ticket)
    assert types_of(events) == [TicketReopened, TicketResolved, TicketReopened]
    assert (events[0].reason, events[0].command_id) == ("again", "c-5")
    assert ticket.reopen_count == 2
    assert ticket.status is Status.OPEN


@pytest.mark.parametrize("status", ["new", "open", "pending", "on_hold"])
def test_only_a_solved_ticket_can_be_reopened(status: str) -> None:
    # Given
    ticket = ticket_in(status)
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.reopen(actor=AGENT, at=at(10)),
        InvalidTransitionError,
        "invalid_transition",
    )
    assert ticket.reopen_count == 0


def test_changing_the_resolution_of_a_solved_ticket_needs_a_reopen_first() -> None:
    # Given
    ticket = ticket_in("solved")
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.resolve(actor=AGENT, resolution="something else", at=at(10)),
        InvalidTransitionError,
        "invalid_transition",
    )
    assert ticket.resolution == "fixed"


# --- assignment -----------------------------------------------------------------------------


def test_assigning_an_agent_starts_work_on_a_new_ticket() -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.assign(agent="ana", actor=OTHER_AGENT, at=at(5), command_id="c-6")
    # Then
    events = collected(ticket)
    assert types_of(events) == [TicketAssigned, StatusChanged]
    assigned, moved = events
    assert (assigned.team, assigned.agent) == (None, "ana")
    assert (assigned.previous_team, assigned.previous_agent) == (None, None)
    assert (moved.from_status, moved.to_status, moved.reason) == ("new", "open", "assigned")
    for event in events:
        assert (event.actor, event.occurred_at, event.command_id) == (
            OTHER_AGENT.as_dict(),
            at(5),
            "c-6",
        )
    assert ticket.status is Status.OPEN
    assert (ticket.team, ticket.agent) == (None, "ana")


def test_routing_a_new_ticket_to_a_team_alone_keeps_it_new() -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.assign(team="network", actor=AUTOMATION, at=at(5))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketAssigned)
    assert (event.team, event.agent) == ("network", None)
    assert ticket.status is Status.NEW


def test_assigning_team_and_agent_together_starts_work_on_a_new_ticket() -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.assign(team="network", agent="ana", actor=AGENT, at=at(5))
    # Then
    assert types_of(ticket.collect_events()) == [TicketAssigned, StatusChanged]
    assert (ticket.team, ticket.agent, ticket.status) == ("network", "ana", Status.OPEN)


@pytest.mark.parametrize("status", ["pending", "on_hold", "solved"])
def test_reassigning_a_ticket_in_progress_keeps_its_status(status: str) -> None:
    # Given
    ticket = ticket_in(status)
    # When
    ticket.assign(agent="ben", actor=AGENT, at=at(10))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketAssigned)
    assert (event.previous_agent, event.agent) == ("ana", "ben")
    assert ticket.status == status


def test_assigning_keeps_the_field_not_mentioned() -> None:
    # Given
    ticket = opened_ticket()
    ticket.assign(team="network", agent="ana", actor=AGENT, at=at(1))
    ticket.collect_events()
    # When
    ticket.assign(team="billing", actor=AGENT, at=at(2))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketAssigned)
    assert (event.team, event.agent, event.previous_team, event.previous_agent) == (
        "billing",
        "ana",
        "network",
        "ana",
    )


def test_unassigning_the_agent_with_none_keeps_the_team() -> None:
    # Given
    ticket = opened_ticket()
    ticket.assign(team="network", agent="ana", actor=AGENT, at=at(1))
    ticket.collect_events()
    # When
    ticket.assign(agent=None, actor=AGENT, at=at(2))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketAssigned)
    assert (event.team, event.agent, event.previous_agent) == ("network", None, "ana")
    assert (ticket.team, ticket.agent) == ("network", None)
    assert ticket.status is Status.OPEN


def test_unassigning_team_and_agent_with_none_clears_both() -> None:
    # Given
    ticket = opened_ticket()
    ticket.assign(team="network", agent="ana", actor=AGENT, at=at(1))
    ticket.collect_events()
    # When
    ticket.assign(team=None, agent=None, actor=AGENT, at=at(2))
    # Then
    assert types_of(ticket.collect_events()) == [TicketAssigned]
    assert (ticket.team, ticket.agent) == (None, None)


# --- comments -------------------------------------------------------------------------------


def test_agent_public_reply_starts_work_on_a_new_ticket() -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.add_comment("looking into it", actor=AGENT, at=at(5), command_id="c-7")
    # Then
    events = collected(ticket)
    assert types_of(events) == [CommentAdded, StatusChanged]
    comment, moved = events
    assert (comment.comment_id, comment.body, comment.visibility) == (
        "c1",
        "looking into it",
        "public",
    )
    assert (moved.from_status, moved.to_status, moved.reason) == ("new", "open", "agent_replied")
    for event in events:
        assert (event.actor, event.occurred_at, event.command_id) == (
            AGENT.as_dict(),
            at(5),
            "c-7",
        )
    assert ticket.status is Status.OPEN


@pytest.mark.parametrize("status", ["open", "pending", "on_hold", "solved"])
def test_agent_public_reply_keeps_a_ticket_that_is_not_new_where_it_is(status: str) -> None:
    # Given
    ticket = ticket_in(status)
    # When
    ticket.add_comment("an update", actor=AGENT, at=at(10))
    # Then
    assert types_of(ticket.collect_events()) == [CommentAdded]
    assert ticket.status == status


@pytest.mark.parametrize(
    "actor", [AUTOMATION, Actor(ActorKind.AI, "bot"), Actor(ActorKind.SYSTEM, "ticketing")]
)
def test_a_public_reply_by_anyone_but_an_agent_keeps_a_new_ticket_new(actor: Actor) -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.add_comment("we received your request", actor=actor, at=at(5))
    # Then
    assert types_of(ticket.collect_events()) == [CommentAdded]
    assert ticket.status is Status.NEW


def test_customer_reply_reopens_a_pending_ticket() -> None:
    # Given
    ticket = ticket_in("pending")
    # When
    ticket.add_comment("still broken", visibility=Visibility.PUBLIC, actor=CUSTOMER, at=at(10))
    # Then
    events = collected(ticket)
    assert types_of(events) == [CommentAdded, StatusChanged]
    moved = events[1]
    assert (moved.from_status, moved.to_status, moved.reason) == (
        "pending",
        "open",
        "customer_replied",
    )
    assert moved.actor == CUSTOMER.as_dict()
    assert ticket.status is Status.OPEN
    assert ticket.reopen_count == 0


def test_customer_reply_on_a_solved_ticket_is_a_counted_reopen() -> None:
    # Given
    ticket = ticket_in("solved")
    # When
    ticket.add_comment("it is back", actor=CUSTOMER, at=at(10), command_id="c-8")
    # Then
    events = collected(ticket)
    assert types_of(events) == [CommentAdded, TicketReopened]
    reopened = events[1]
    assert (reopened.from_status, reopened.to_status, reopened.reason) == (
        "solved",
        "open",
        "customer_replied",
    )
    assert (reopened.actor, reopened.occurred_at, reopened.command_id) == (
        CUSTOMER.as_dict(),
        at(10),
        "c-8",
    )
    assert ticket.status is Status.OPEN
    assert ticket.reopen_count == 1


@pytest.mark.parametrize("status", ["new", "open", "on_hold"])
def test_customer_reply_keeps_a_ticket_that_is_not_waiting_on_them(status: str) -> None:
    # Given
    ticket = ticket_in(status)
    # When
    ticket.add_comment("any news?", actor=CUSTOMER, at=at(10))
    # Then
    assert types_of(ticket.collect_events()) == [CommentAdded]
    assert ticket.status == status


def test_customer_cannot_add_an_internal_note() -> None:
    # Given
    ticket = ticket_in("open")
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.add_comment("psst", visibility=Visibility.INTERNAL, actor=CUSTOMER, at=at(10)),
        ForbiddenError,
        "forbidden",
    )


@pytest.mark.parametrize("status", ["new", "open", "pending", "on_hold", "solved"])
@pytest.mark.parametrize("actor", [AGENT, AUTOMATION], ids=["agent", "automation"])
def test_internal_notes_never_change_status(status: str, actor: Actor) -> None:
    # Given
    ticket = ticket_in(status)
    # When
    ticket.add_comment("note to self", visibility=Visibility.INTERNAL, actor=actor, at=at(10))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, CommentAdded)
    assert event.visibility == "internal"
    assert ticket.status == status
    assert ticket.reopen_count == 0


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_a_comment_needs_a_body(body: str) -> None:
    # Given
    ticket = ticket_in("open")
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.add_comment(body, actor=AGENT, at=at(10)),
        ValidationError,
        "validation_error",
    )


def test_comments_are_numbered_and_keep_their_author() -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.add_comment("first", actor=CUSTOMER, at=at(1))
    ticket.add_comment("second", visibility=Visibility.INTERNAL, actor=AGENT, at=at(2))
    # Then
    events = collected(ticket)
    assert [e.comment_id for e in events] == ["c1", "c2"]
    assert ticket.as_dict()["comments"] == [
        {
            "comment_id": "c1",
            "body": "first",
            "visibility": "public",
            "author": CUSTOMER.as_dict(),
            "occurred_at": at(1).isoformat(),
            "redacted": False,
        },
        {
            "comment_id": "c2",
            "body": "second",
            "visibility": "internal",
            "author": AGENT.as_dict(),
            "occurred_at": at(2).isoformat(),
            "redacted": False,
        },
    ]


# --- closed tickets are read-only -----------------------------------------------------------

CLOSED_REFUSALS: dict[str, Command] = {
    "agent reply": lambda t: t.add_comment("hello?", actor=AGENT, at=at(10)),
    "customer reply": lambda t: t.add_comment("still broken", actor=CUSTOMER, at=at(10)),
    "internal note": lambda t: t.add_comment("note", visibility=Visibility.INTERNAL, actor=AGENT),
    "assign": lambda t: t.assign(agent="ben", actor=AGENT, at=at(10)),
    "unassign": lambda t: t.assign(agent=None, actor=AGENT, at=at(10)),
    "tag": lambda t: t.tag(["vpn"], actor=AGENT, at=at(10)),
    "untag": lambda t: t.untag(["vpn"], actor=AGENT, at=at(10)),
    "categorize": lambda t: t.categorize("usage", actor=AGENT, at=at(10)),
    "prioritize": lambda t: t.prioritize(Priority.URGENT, actor=AGENT, at=at(10)),
    "reopen": lambda t: t.reopen(actor=CUSTOMER, at=at(10)),
    "resolve": lambda t: t.resolve(actor=AGENT, resolution="again", at=at(10)),
    **{
        f"set status {status}": set_status(status, at(10))
        for status in STATUS_NAMES
        if status != "closed"
    },
}


@pytest.mark.parametrize("command", CLOSED_REFUSALS.values(), ids=CLOSED_REFUSALS.keys())
def test_a_closed_ticket_refuses_every_change(command: Command) -> None:
    # Given
    ticket = ticket_in("closed")
    # When / Then
    assert_refused(ticket, command, TicketClosedError, "ticket_closed")
    assert ticket.status is Status.CLOSED


# --- ratings --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["solved", "closed"])
def test_a_solved_or_closed_ticket_can_be_rated(status: str) -> None:
    # Given
    ticket = ticket_in(status)
    # When
    ticket.rate(5, comment="quick and kind", actor=CUSTOMER, at=at(10), command_id="c-10")
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketRated)
    assert (event.score, event.comment) == (5, "quick and kind")
    assert (event.actor, event.occurred_at, event.command_id) == (
        CUSTOMER.as_dict(),
        at(10),
        "c-10",
    )
    assert ticket.rating == {"score": 5, "comment": "quick and kind"}
    assert ticket.status == status


@pytest.mark.parametrize("status", ["new", "open", "pending", "on_hold"])
def test_a_ticket_still_in_progress_cannot_be_rated(status: str) -> None:
    # Given
    ticket = ticket_in(status)
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.rate(4, actor=CUSTOMER, at=at(10)),
        InvalidTransitionError,
        "invalid_transition",
    )
    assert ticket.rating is None


@pytest.mark.parametrize("score", [-1, 0, 6, 10])
def test_a_score_outside_one_to_five_is_refused(score: int) -> None:
    # Given
    ticket = ticket_in("solved")
    # When / Then
    assert_refused(
        ticket,
        lambda t: t.rate(score, actor=CUSTOMER, at=at(10)),
        ValidationError,
        "validation_error",
    )


@pytest.mark.parametrize("score", [1, 5])
def test_the_bounds_of_the_score_are_accepted(score: int) -> None:
    # Given
    ticket = ticket_in("solved")
    # When
    ticket.rate(score, actor=CUSTOMER, at=at(10))
    # Then
    assert types_of(ticket.collect_events()) == [TicketRated]
    assert ticket.rating == {"score": score, "comment": None}


def test_a_later_rating_replaces_the_earlier_one_and_both_stay_in_history() -> None:
    # Given
    ticket = ticket_in("solved")
    ticket.rate(2, comment="slow", actor=CUSTOMER, at=at(10))
    # When
    ticket.rate(4, comment="better after the follow-up", actor=CUSTOMER, at=at(11))
    # Then
    events = collected(ticket)
    assert types_of(events) == [TicketRated, TicketRated]
    assert [(e.score, e.comment) for e in events] == [
        (2, "slow"),
        (4, "better after the follow-up"),
    ]
    assert ticket.rating == {"score": 4, "comment": "better after the follow-up"}


def test_the_same_score_with_a_new_comment_is_a_new_rating() -> None:
    # Given
    ticket = ticket_in("solved")
    ticket.rate(4, actor=CUSTOMER, at=at(10))
    ticket.collect_events()
    # When
    ticket.rate(4, comment="forgot to say thanks", actor=CUSTOMER, at=at(11))
    # Then
    assert types_of(ticket.collect_events()) == [TicketRated]
    assert ticket.rating == {"score": 4, "comment": "forgot to say thanks"}


def test_an_identical_rating_appends_nothing() -> None:
    # Given
    ticket = ticket_in("closed")
    ticket.rate(3, comment="ok", actor=CUSTOMER, at=at(10))
    ticket.collect_events()
    version = ticket.version
    # When
    ticket.rate(3, comment="ok", actor=CUSTOMER, at=at(11))
    # Then
    assert ticket.collect_events() == []
    assert ticket.version == version
    assert ticket.as_dict()["updated_at"] == at(10).isoformat()


def test_a_rating_survives_a_reopen() -> None:
    # Given
    ticket = ticket_in("solved")
    ticket.rate(1, actor=CUSTOMER, at=at(10))
    # When
    ticket.reopen(actor=AGENT, at=at(11))
    # Then
    assert types_of(ticket.collect_events()) == [TicketRated, TicketReopened]
    assert ticket.rating == {"score": 1, "comment": None}


# --- commands that change nothing append nothing --------------------------------------------

NO_OPS: dict[str, tuple[Callable[[], Ticket], Command]] = {
    "same priority": (
        lambda: opened_ticket(priority=Priority.HIGH),
        lambda t: t.prioritize(Priority.HIGH, actor=AGENT, at=at(10)),
    ),
    "same priority given as text": (
        opened_ticket,
        lambda t: t.prioritize("normal", actor=AGENT, at=at(10)),  # type: ignore[arg-type]
    ),
    "same category": (
        lambda: opened_ticket(category="usage"),
        lambda t: t.categorize("usage", actor=AGENT, at=at(10)),
    ),
    "same agent": (
        lambda: ticket_in("open"),
        lambda t: t.assign(agent="ana", actor=AGENT, at=at(10)),
    ),
    "same team and agent": (
        lambda: ticket_in("pending"),
        lambda t: t.assign(team=None, agent="ana", actor=AGENT, at=at(10)),
    ),
    "assign mentioning nothing": (
        lambda: ticket_in("open"),
        lambda t: t.assign(actor=AGENT, at=at(10)),
    ),
    "unassign an unassigned ticket": (
        opened_ticket,
        lambda t: t.assign(team=None, agent=None, actor=AGENT, at=at(10)),
    ),
    "same tags": (
        lambda: opened_ticket(tags=["vpn", "billing"]),
        lambda t: t.tag(["billing", "vpn", "vpn"], actor=AGENT, at=at(10)),
    ),
    "no tags": (opened_ticket, lambda t: t.tag([], actor=AGENT, at=at(10))),
    "untag an absent tag": (
        lambda: opened_ticket(tags=["vpn"]),
        lambda t: t.untag(["billing"], actor=AGENT, at=at(10)),
    ),
    "close a closed ticket": (
        lambda: ticket_in("closed"),
        lambda t: t.close(actor=AGENT, at=at(10)),
    ),
    "resolve with the same resolution": (
        lambda: ticket_in("solved"),
        lambda t: t.resolve(actor=AGENT, resolution="fixed", at=at(10)),
    ),
    "resolve a solved ticket without a resolution": (
        lambda: ticket_in("solved"),
        lambda t: t.resolve(actor=AGENT, at=at(10)),
    ),
    **{
        f"set the same status {status}": (
            partial(ticket_in, status),
            set_status(status, at(10)),
        )
        for status in STATUS_NAMES
    },
}


@pytest.mark.parametrize(("given", "command"), NO_OPS.values(), ids=NO_OPS.keys())
def test_a_command_that_changes_nothing_appends_nothing(
    given: Callable[[], Ticket], command: Command
) -> None:
    # Given
    ticket = given()
    version, state = ticket.version, ticket.as_dict()
    # When
    command(ticket)
    # Then
    assert ticket.collect_events() == []
    assert ticket.version == version
    assert ticket.as_dict() == state


# --- categories, priorities, tags -----------------------------------------------------------


def test_categorizing_records_the_previous_category() -> None:
    # Given
    ticket = opened_ticket(category="usage")
    # When
    ticket.categorize("incident", actor=AGENT, at=at(10), command_id="c-11")
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketCategorized)
    assert (event.category, event.previous_category) == ("incident", "usage")
    assert ticket.category == "incident"


def test_prioritizing_records_the_previous_priority() -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.prioritize(Priority.URGENT, actor=AGENT, at=at(10))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketPrioritized)
    assert (event.priority, event.previous_priority) == ("urgent", "normal")
    assert ticket.priority is Priority.URGENT


def test_tagging_records_only_the_tags_not_already_there() -> None:
    # Given
    ticket = opened_ticket(tags=["vpn"])
    # When
    ticket.tag(["vpn", "outage", "billing", "outage"], actor=AGENT, at=at(10))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketTagged)
    assert event.tags == ["outage", "billing"]
    assert ticket.tags == ["billing", "outage", "vpn"]


def test_untagging_records_only_the_tags_that_were_there() -> None:
    # Given
    ticket = opened_ticket(tags=["vpn", "outage"])
    # When
    ticket.untag(["outage", "billing"], actor=AGENT, at=at(10))
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketUntagged)
    assert event.tags == ["outage"]
    assert ticket.tags == ["vpn"]


INVALID_TAGS = ["Has Space", "UPPER", "", "-leading-dash", "x" * 51, "émoji", "a/b"]


@pytest.mark.parametrize("tag", INVALID_TAGS)
@pytest.mark.parametrize("verb", ["tag", "untag"])
def test_a_tag_with_invalid_syntax_is_refused(tag: str, verb: str) -> None:
    # Given
    ticket = opened_ticket(tags=["vpn"])
    # When / Then
    assert_refused(
        ticket,
        lambda t: getattr(t, verb)(["vpn", tag], actor=AGENT, at=at(10)),
        ValidationError,
        "validation_error",
    )


@pytest.mark.parametrize("tag", INVALID_TAGS)
def test_a_ticket_cannot_be_opened_with_an_invalid_tag(tag: str) -> None:
    # Given / When / Then
    with pytest.raises(ValidationError) as caught:
        unsaved_ticket(tags=[tag])
    assert caught.value.code == "validation_error"


@pytest.mark.parametrize("tag", ["vpn", "a", "sla:breach", "v1.2_x-y", "x" * 50])
def test_short_lowercase_tokens_are_valid_tags(tag: str) -> None:
    # Given
    ticket = opened_ticket()
    # When
    ticket.tag([tag], actor=AGENT, at=at(10))
    # Then
    assert ticket.tags == [tag]


# --- opening --------------------------------------------------------------------------------


def test_opening_a_ticket_records_who_when_and_which_command() -> None:
    # Given / When
    ticket = unsaved_ticket(
        channel=Channel.EMAIL,
        priority=Priority.HIGH,
        category="technical",
        tags=["vpn", "outage", "vpn"],
        description="since Monday",
        follow_up_of="earlier-ticket",
    )
    # Then
    (event,) = collected(ticket)
    assert isinstance(event, TicketOpened)
    assert event.originator_version == 1
    assert (event.actor, event.occurred_at, event.command_id) == (
        CUSTOMER.as_dict(),
        T0,
        "open-1",
    )
    assert (event.channel, event.priority, event.category) == ("email", "high", "technical")
    assert event.tags == ["vpn", "outage"]
    state = ticket.as_dict()
    assert state["status"] == "new"
    assert state["version"] == 1
    assert state["tags"] == ["outage", "vpn"]
    assert (state["team"], state["agent"], state["rating"], state["resolution"]) == (
        None,
        None,
        None,
        None,
    )
    assert state["reopen_count"] == 0
    assert state["opened_at"] == state["updated_at"] == T0.isoformat()
    assert state["follow_up_of"] == "earlier-ticket"


# --- time -----------------------------------------------------------------------------------

# Commands that each record at least one event on a solved ticket whose last change is at(3).
TIMED_COMMANDS: dict[str, Callable[[Ticket, datetime], None]] = {
    "comment": lambda t, when: t.add_comment("hi", actor=AGENT, at=when),
    "customer reply": lambda t, when: t.add_comment("back", actor=CUSTOMER, at=when),
    "assign": lambda t, when: t.assign(agent="ben", actor=AGENT, at=when),
    "categorize": lambda t, when: t.categorize("usage", actor=AGENT, at=when),
    "prioritize": lambda t, when: t.prioritize(Priority.LOW, actor=AGENT, at=when),
    "tag": lambda t, when: t.tag(["vpn"], actor=AGENT, at=when),
    "set status open": lambda t, when: t.change_status("open", actor=AGENT, at=when),
    "reopen": lambda t, when: t.reopen(actor=AGENT, at=when),
    "close": lambda t, when: t.close(actor=AGENT, at=when),
    "rate": lambda t, when: t.rate(5, actor=CUSTOMER, at=when),
}


@pytest.mark.parametrize("command", TIMED_COMMANDS.values(), ids=TIMED_COMMANDS.keys())
def test_a_change_dated_before_the_latest_change_is_refused(
    command: Callable[[Ticket, datetime], None],
) -> None:
    # Given
    ticket = ticket_in("solved")
    assert ticket.last_occurred_at == at(3)
    # When / Then
    assert_refused(
        ticket,
        lambda t: command(t, at(3) - timedelta(microseconds=1)),
        TimeOutOfOrderError,
        "time_out_of_order",
    )


@pytest.mark.parametrize("command", TIMED_COMMANDS.values(), ids=TIMED_COMMANDS.keys())
def test_a_change_dated_at_the_same_moment_as_the_latest_is_accepted(
    command: Callable[[Ticket, datetime], None],
) -> None:
    # Given
    ticket = ticket_in("solved")
    # When
    command(ticket, at(3))
    # Then
    events = collected(ticket)
    assert events
    assert all(e.occurred_at == at(3) for e in events)
    assert ticket.as_dict()["updated_at"] == at(3).isoformat()


def test_a_change_dated_later_moves_the_ticket_clock_forward() -> None:
    # Given
    ticket = ticket_in("open")
    # When
    ticket.add_comment("update", actor=AGENT, at=at(60))
    # Then
    assert [e.occurred_at for e in collected(ticket)] == [at(60)]
    assert ticket.as_dict()["updated_at"] == at(60).isoformat()
    assert_refused(
        ticket,
        lambda t: t.add_comment("late", actor=AGENT, at=at(59)),
        TimeOutOfOrderError,
        "time_out_of_order",
    )


def test_a_naive_time_is_refused_when_opening() -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match="time zone"):
        unsaved_ticket(at=datetime(2026, 3, 2, 9, 0))


def test_a_naive_time_is_refused_for_a_change() -> None:
    # Given
    ticket = ticket_in("open")
    version = ticket.version
    # When / Then
    with pytest.raises(ValueError, match="time zone"):
        ticket.add_comment("hi", actor=AGENT, at=datetime(2026, 3, 3, 9, 0))
    assert ticket.collect_events() == []
    assert ticket.version == version


def test_times_in_other_zones_are_recorded_in_utc() -> None:
    # Given
    ticket = opened_ticket()
    paris_summer = timezone(timedelta(hours=2))
    # When
    ticket.add_comment("bonjour", actor=AGENT, at=datetime(2026, 3, 2, 12, 0, tzinfo=paris_summer))
    # Then
    events = collected(ticket)
    assert [e.occurred_at for e in events] == [at(60), at(60)]
    assert all(e.occurred_at.tzinfo is UTC for e in events)


def test_without_a_time_the_clock_supplies_now() -> None:
    # Given
    before = datetime.now(UTC)
    # When
    ticket = unsaved_ticket(at=None)
    ticket.add_comment("hi", actor=AGENT)
    # Then
    after = datetime.now(UTC)
    events = collected(ticket)
    assert len(events) == 3
    assert all(before <= e.occurred_at <= after for e in events)
    assert events[0].occurred_at <= events[1].occurred_at


def test_without_a_time_the_clock_never_goes_backwards() -> None:
    # Given: an imported ticket whose latest change is dated after the clock's now
    future = datetime(2100, 1, 1, tzinfo=UTC)
    ticket = opened_ticket(at=future)
    # When
    ticket.add_comment("hi", actor=AGENT)
    ticket.change_status("pending", actor=AGENT)
    # Then
    events = collected(ticket)
    assert types_of(events) == [CommentAdded, StatusChanged, StatusChanged]
    assert [e.occurred_at for e in events] == [future, future, future]


# --- every event says who, when and why -----------------------------------------------------


def cause(actor: Actor = OTHER_AGENT) -> dict[str, Any]:
    return {"actor": actor, "at": at(42), "command_id": "cmd-42"}


RECORDING_COMMANDS: dict[str, tuple[Callable[[], Ticket], Actor, Command]] = {
    "open": (lambda: unsaved_ticket(**cause(CUSTOMER)), CUSTOMER, lambda t: None),
    "categorize": (opened_ticket, AGENT, lambda t: t.categorize("usage", **cause(AGENT))),
    "prioritize": (opened_ticket, AGENT, lambda t: t.prioritize(Priority.HIGH, **cause(AGENT))),
    "assign": (opened_ticket, OTHER_AGENT, lambda t: t.assign(agent="ben", **cause())),
    "agent reply": (opened_ticket, OTHER_AGENT, lambda t: t.add_comment("hi", **cause())),
    "customer reply on pending": (
        lambda: ticket_in("pending"),
        CUSTOMER,
        lambda t: t.add_comment("hi", **cause(CUSTOMER)),
    ),
    "customer reply on solved": (
        lambda: ticket_in("solved"),
        CUSTOMER,
        lambda t: t.add_comment("hi", **cause(CUSTOMER)),
    ),
    "status": (
        lambda: ticket_in("open"),
        AGENT,
        lambda t: t.change_status("on_hold", **cause(AGENT)),
    ),
    "resolve": (lambda: ticket_in("on_hold"), AGENT, lambda t: t.resolve(**cause(AGENT))),
    "reopen": (lambda: ticket_in("solved"), AUTOMATION, lambda t: t.reopen(**cause(AUTOMATION))),
    "close": (lambda: ticket_in("solved"), AUTOMATION, lambda t: t.close(**cause(AUTOMATION))),
    "rate": (lambda: ticket_in("closed"), CUSTOMER, lambda t: t.rate(5, **cause(CUSTOMER))),
    "tag": (opened_ticket, AUTOMATION, lambda t: t.tag(["vpn"], **cause(AUTOMATION))),
    "untag": (
        lambda: opened_ticket(tags=["vpn"]),
        AGENT,
        lambda t: t.untag(["vpn"], **cause(AGENT)),
    ),
}


@pytest.mark.parametrize(
    ("given", "actor", "command"), RECORDING_COMMANDS.values(), ids=RECORDING_COMMANDS.keys()
)
def test_every_event_records_actor_time_and_command_id(
    given: Callable[[], Ticket], actor: Actor, command: Command
) -> None:
    # Given
    ticket = given()
    # When
    command(ticket)
    # Then
    events = collected(ticket)
    assert events
    for event in events:
        assert event.actor == actor.as_dict()
        assert event.occurred_at == at(42)
        assert event.command_id == "cmd-42"
        assert event.originator_id == ticket.id


# --- replay ---------------------------------------------------------------------------------


def full_history() -> Ticket:
    """A ticket taken through every kind of event, its whole history still pending."""
    ticket = unsaved_ticket(tags=["vpn"], category="usage")
    ticket.assign(team="network", actor=AUTOMATION, at=at(1))
    ticket.categorize("incident", actor=AGENT, at=at(2))
    ticket.prioritize(Priority.URGENT, actor=AGENT, at=at(2))
    ticket.add_comment("on it", actor=AGENT, at=at(3))
    ticket.add_comment("vendor ticket 123", visibility=Visibility.INTERNAL, actor=AGENT, at=at(4))
    ticket.change_status("on_hold", actor=AGENT, reason="vendor", at=at(5))
    ticket.change_status("pending", actor=AGENT, at=at(6))
    ticket.add_comment("still broken", actor=CUSTOMER, at=at(7))
    ticket.tag(["outage", "sla:breach"], actor=AUTOMATION, at=at(8))
    ticket.untag(["vpn"], actor=AGENT, at=at(8))
    ticket.assign(agent="ben", actor=AGENT, at=at(9))
    ticket.resolve(actor=OTHER_AGENT, resolution="firmware update", at=at(10))
    ticket.rate(2, comment="took long", actor=CUSTOMER, at=at(11))
    ticket.add_comment("happened again", actor=CUSTOMER, at=at(12))
    ticket.change_status("solved", actor=OTHER_AGENT, reason="rollback", at=at(13))
    ticket.change_status("open", actor=OTHER_AGENT, at=at(14))
    ticket.resolve(actor=OTHER_AGENT, at=at(15))
    ticket.rate(4, actor=CUSTOMER, at=at(16))
    ticket.close(actor=Actor(ActorKind.SYSTEM, "ticketing"), at=at(17))
    return ticket


def test_replaying_the_events_rebuilds_the_live_state() -> None:
    # Given
    ticket = full_history()
    # When
    events = collected(ticket)
    rebuilt = replayed(events)
    # Then
    assert {type(e) for e in events} == {
        TicketOpened,
        TicketCategorized,
        TicketPrioritized,
        TicketAssigned,
        CommentAdded,
        StatusChanged,
        TicketResolved,
        TicketReopened,
        TicketClosed,
        TicketRated,
        TicketTagged,
        TicketUntagged,
    }
    assert isinstance(rebuilt, Ticket)
    assert rebuilt.as_dict() == ticket.as_dict()
    assert ticket.version == len(events)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    state = ticket.as_dict()
    assert state["status"] == "closed"
    assert state["reopen_count"] == 2
    assert state["rating"] == {"score": 4, "comment": None}
    assert state["tags"] == ["outage", "sla:breach"]
    assert (state["team"], state["agent"]) == ("network", "ben")


def test_replaying_any_prefix_rebuilds_the_state_at_that_version() -> None:
    # Given
    ticket = unsaved_ticket()
    states = [ticket.as_dict()]
    commands: list[Command] = [
        lambda t: t.assign(agent="ana", actor=AGENT, at=at(1)),
        lambda t: t.change_status("pending", actor=AGENT, at=at(2)),
        lambda t: t.add_comment("hello", actor=CUSTOMER, at=at(3)),
        lambda t: t.resolve(actor=AGENT, at=at(4)),
    ]
    for command in commands:
        command(ticket)
        states.append(ticket.as_dict())
    # When
    events = collected(ticket)
    # Then
    assert [state["version"] for state in states] == [1, 3, 4, 6, 7]
    for state in states:
        assert replayed(events[: state["version"]]).as_dict() == state


def test_the_application_replay_rebuilds_the_same_state() -> None:
    # Given
    ticket = full_history()
    events = collected(ticket)
    # When
    rebuilt = replay_events(None, events)
    # Then
    assert rebuilt.as_dict() == ticket.as_dict()
    assert rebuilt.version == len(events)
