"""SLA what-if: tickets with hand-timed histories replayed under another policy, beside the
policy each actually had; every expected figure is worked out by hand in the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from replay.stream import stream_batches
from ticketing.domain.business_hours import BusinessCalendar
from ticketing.domain.sla_definitions import build_policy, checked_policy_definition
from ticketing.domain.sla_policy import SlaMetric, SlaPolicy
from ticketing.sla.what_if import WhatIfResult, what_if

AGENT = m.ActorModel(kind="agent", id="ana")
CUSTOMER = m.ActorModel(kind="customer", id="bob")
WEEKDAYS_9_TO_5 = BusinessCalendar.create(
    "UTC", {day: [("09:00", "17:00")] for day in ("mon", "tue", "wed", "thu", "fri")}
)


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Policies are published in force from before every ticket here."""


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in March 2026 (the 2nd is a Monday, the 6th a Friday, the 9th a Monday)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def ok(service: CommandService, command: m.Command) -> Reply:
    reply = service.execute(command)
    assert reply.ok, reply
    return reply


def publish(service: CommandService, **targets: int) -> None:
    definition = {"default": targets}
    ok(service, m.PublishSlaPolicy(policy_id="default", definition=definition, occurred_at=EPOCH))


def account(service: CommandService, account_id: str = "acme", tier: str = "business") -> None:
    ok(service, m.CreateAccount(account_id=account_id, account_name=account_id, tier=tier))


def open_ticket(
    service: CommandService, at: datetime, *, account_id: str = "acme", priority: str = "normal"
) -> UUID:
    reply = ok(
        service,
        m.OpenTicket(
            account_id=account_id,
            requester="bob@acme.example",
            subject="VPN drops",
            priority=priority,
            occurred_at=at,
            actor=CUSTOMER,
        ),
    )
    assert reply.ticket_id is not None
    return UUID(reply.ticket_id)


def comment(
    service: CommandService, ticket: UUID, at: datetime, actor: m.ActorModel = AGENT
) -> None:
    ok(service, m.AddComment(ticket_id=ticket, body="hello", occurred_at=at, actor=actor))


def policy(calendar: BusinessCalendar | None = None, **targets: int) -> SlaPolicy:
    definition = checked_policy_definition({"default": targets})
    return build_policy("trial", 1, definition, calendar)


def payloads(service: CommandService) -> Iterator[list[dict[str, Any]]]:
    return ([event.payload for event in batch] for batch in stream_batches(service.app))


def run(
    service: CommandService, alternative: SlaPolicy, now: datetime, **options: Any
) -> WhatIfResult:
    return what_if(payloads(service), alternative, now=now, **options)


def counts(result: WhatIfResult, column: str, metric: str = "first_reply") -> dict[str, Any]:
    figures: dict[str, Any] = result.overall.as_dict()[column]["metrics"][metric]
    return figures


@pytest.fixture
def service(memory_service: CommandService) -> CommandService:
    account(memory_service)
    return memory_service


def test_a_reply_after_45_minutes_breaches_30_minutes_and_achieves_60(
    service: CommandService,
) -> None:
    # Given: the ticket really ran on a 60-minute policy; the agent answered after 45 minutes
    publish(service, first_reply=60)
    ticket = open_ticket(service, utc(2, 9))
    comment(service, ticket, utc(2, 9, 45))
    # When
    stricter = run(service, policy(first_reply=30), utc(3, 9))
    looser = run(service, policy(first_reply=60), utc(3, 9))
    # Then
    assert counts(stricter, "actual") == {
        "measured": 1,
        "achieved": 1,
        "breached": 0,
        "running": 0,
        "breach_rate": 0.0,
    }
    assert counts(stricter, "what_if") == {
        "measured": 1,
        "achieved": 0,
        "breached": 1,
        "running": 0,
        "breach_rate": 1.0,
    }
    assert counts(looser, "what_if") == counts(looser, "actual") == counts(stricter, "actual")
    assert counts(stricter, "what_if", "resolution")["measured"] == 0  # no resolution target


def test_business_hours_stop_over_the_weekend(service: CommandService) -> None:
    # Given: opened Friday 16:30, answered Monday 09:45: 30 + 45 = 75 business minutes, but
    # 65 h 15 min of calendar time; no policy was ever published
    ticket = open_ticket(service, utc(6, 16, 30))
    comment(service, ticket, utc(9, 9, 45))
    now = utc(10, 12)
    # When
    hour = run(service, policy(WEEKDAYS_9_TO_5, first_reply=60), now)
    ninety = run(service, policy(WEEKDAYS_9_TO_5, first_reply=90), now)
    day_24x7 = run(service, policy(first_reply=480), now)
    # Then
    assert (counts(hour, "what_if")["breached"], counts(hour, "what_if")["achieved"]) == (1, 0)
    assert (counts(ninety, "what_if")["breached"], counts(ninety, "what_if")["achieved"]) == (0, 1)
    assert counts(day_24x7, "what_if")["breached"] == 1
    assert hour.overall.actual.unmeasured == 1  # no pin: nothing to compare with
    assert counts(hour, "actual")["measured"] == 0
    assert counts(hour, "actual")["breach_rate"] is None


def test_each_ticket_keeps_the_version_it_was_opened_under(service: CommandService) -> None:
    # Given: both tickets answered after 45 minutes; the first opened under version 1 (60 min),
    # the second under version 2 (30 min)
    publish(service, first_reply=60)
    first = open_ticket(service, utc(2, 9))
    comment(service, first, utc(2, 9, 45))
    publish(service, first_reply=30)
    second = open_ticket(service, utc(2, 10))
    comment(service, second, utc(2, 10, 45))
    # When
    result = run(service, policy(first_reply=50), utc(3, 9))
    # Then
    assert counts(result, "actual") == {
        "measured": 2,
        "achieved": 1,
        "breached": 1,
        "running": 0,
        "breach_rate": 0.5,
    }
    assert counts(result, "what_if")["achieved"] == 2
    assert result.overall.actual.unmeasured == 0


def test_unanswered_tickets_run_until_their_target_passes(service: CommandService) -> None:
    # Given: opened at 10:00, nobody has answered
    publish(service, first_reply=30)
    open_ticket(service, utc(2, 10))
    # When / Then: at 10:20 it still runs on 30 minutes; by 11:00 it is breached
    early = run(service, policy(first_reply=30), utc(2, 10, 20))
    late = run(service, policy(first_reply=30), utc(2, 11))
    assert counts(early, "what_if") == {
        "measured": 1,
        "achieved": 0,
        "breached": 0,
        "running": 1,
        "breach_rate": None,
    }
    assert counts(late, "what_if")["breached"] == counts(late, "actual")["breached"] == 1


def test_only_tickets_opened_in_the_window_count(service: CommandService) -> None:
    # Given: tickets opened on the 2nd, 3rd and 5th
    for day in (2, 3, 5):
        open_ticket(service, utc(day, 9))
    # When: since the 3rd, as of the 4th
    result = run(service, policy(first_reply=30), utc(4, 9), since=utc(3, 0))
    # Then: only the ticket of the 3rd
    assert result.tickets == 1
    assert result.as_dict()["since"] == "2026-03-03T00:00:00+00:00"


def test_next_reply_cycles_and_segments_by_tier_and_current_priority(
    memory_service: CommandService,
) -> None:
    # Given: a business ticket answered at 09:10; the customer writes at 10:00 and gets the
    # next answer at 11:30 (90 min); an enterprise ticket raised to urgent, never answered
    account(memory_service, "acme", "business")
    account(memory_service, "globex", "enterprise")
    chat = open_ticket(memory_service, utc(2, 9))
    comment(memory_service, chat, utc(2, 9, 10))
    comment(memory_service, chat, utc(2, 10), CUSTOMER)
    comment(memory_service, chat, utc(2, 11, 30))
    quiet = open_ticket(memory_service, utc(2, 9), account_id="globex")
    ok(
        memory_service,
        m.PrioritizeTicket(ticket_id=quiet, priority="urgent", occurred_at=utc(2, 9, 5)),
    )
    events = sum(len(batch) for batch in payloads(memory_service))
    read: list[int] = []
    # When: 60-minute targets for both replies, as of 12:00
    result = run(
        memory_service,
        policy(first_reply=60, next_reply=60),
        utc(2, 12),
        progress=read.append,
    )
    # Then: first reply: one achieved (10 min), one breached (never answered); next reply: the
    # one cycle breached (90 > 60)
    assert counts(result, "what_if") == {
        "measured": 2,
        "achieved": 1,
        "breached": 1,
        "running": 0,
        "breach_rate": 0.5,
    }
    assert counts(result, "what_if", str(SlaMetric.NEXT_REPLY))["breached"] == 1
    segments = {(s["tier"], s["priority"]): s for s in result.as_dict()["by_segment"]}
    assert sorted(segments) == [("business", "normal"), ("enterprise", "urgent")]
    urgent = segments["enterprise", "urgent"]["what_if"]
    assert urgent["tickets"] == 1
    assert urgent["metrics"]["first_reply"]["breached"] == 1
    assert segments["business", "normal"]["what_if"]["metrics"]["next_reply"]["measured"] == 1
    assert sum(read) == result.events_read == events
