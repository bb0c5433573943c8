"""The SLA monitor's fold and timer on a real SQLite state file, fed from a real event store
(in memory) and driven by an explicit clock: its commands go back through the command service
and its events come back into the fold, as they would over NATS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from commands import models as m
from commands.service import CommandService
from projections.stream_event import StreamEvent
from replay.stream import stream_batches
from ticketing.workers.outbox import AutomationStore
from ticketing.workers.sla_monitor import SlaMonitor

MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}


class Drill:
    """A monitor state file, the store it reads and a clock the test moves."""

    def __init__(self, service: CommandService, path: Path) -> None:
        self.service = service
        self.path = path
        self.store = AutomationStore(path, SlaMonitor(settle_seconds=0))
        self.sent: list[dict[str, Any]] = []

    def restart(self) -> None:
        """A new monitor process on the same state file."""
        self.store.close()
        self.store = AutomationStore(self.path, SlaMonitor(settle_seconds=0))

    def catch_up(self) -> None:
        position = self.store.position()
        events = [e for batch in stream_batches(self.service.app) for e in batch]
        self.store.apply([StreamEvent(e.sequence, e.payload) for e in events[position:]])

    def at(self, now: datetime) -> list[dict[str, Any]]:
        """Fold what is new, fire timers at `now`, deliver the commands; return their events."""
        self.catch_up()
        self.store.tick(now)
        return self.deliver(now)

    def deliver(self, now: datetime) -> list[dict[str, Any]]:
        """Send the outbox as the command deliverer does (a stale judgement is final)."""
        recorded: list[dict[str, Any]] = []
        for item in self.store.due(now):
            reply = self.service.execute_raw(item.body["name"], item.body["payload"])
            stale = reply.error is not None and reply.error.code == "version_conflict"
            assert reply.ok or stale, reply.as_dict()
            self.store.delivered(item, "ok" if reply.ok else "stale", now)
            self.sent.append(item.body)
            recorded.extend(reply.events)
        self.catch_up()
        return recorded


@pytest.fixture
def drill(memory_service: CommandService, tmp_path: Path) -> Drill:
    ok(
        memory_service,
        m.CreateAccount(account_id="acme", account_name="Acme", occurred_at=MONDAY_9),
    )
    return Drill(memory_service, tmp_path / "sla-monitor.sqlite")


def ok(service: CommandService, command: m.Command) -> Any:
    reply = service.execute(command)
    assert reply.ok, reply.as_dict()
    return reply


def publish(service: CommandService, definition: dict[str, Any]) -> None:
    ok(
        service,
        m.PublishSlaPolicy(policy_id="default", definition=definition, occurred_at=MONDAY_9),
    )


def open_ticket(service: CommandService, at: datetime = MONDAY_9) -> str:
    reply = ok(
        service,
        m.OpenTicket(
            account_id="acme", requester="bob@acme.example", subject="VPN", occurred_at=at
        ),
    )
    return str(reply.ticket_id)


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(e["type"], e["metric"], e["cycle"]) for e in events]


def test_a_warning_then_one_breach_then_nothing(drill: Drill) -> None:
    # Given a 60-minute first-reply target, warning at 75 %
    publish(drill.service, {"default": {"first_reply": 60}, "warning_at": 0.75})
    ticket = open_ticket(drill.service)
    # When time passes 44 min, 45 min, 60 min and 3 h
    assert drill.at(MONDAY_9 + timedelta(minutes=44)) == []
    warned = drill.at(MONDAY_9 + timedelta(minutes=45))
    breached = drill.at(MONDAY_9 + timedelta(minutes=60))
    later = drill.at(MONDAY_9 + timedelta(hours=3))
    # Then one warning, one breach dated at the due instant, and nothing more
    assert kinds(warned) == [("SlaWarningIssued", "first_reply", 0)]
    assert kinds(breached) == [("SlaBreached", "first_reply", 0)]
    assert breached[0]["due_at"] == (MONDAY_9 + timedelta(minutes=60)).isoformat()
    assert breached[0]["aggregate_id"] == ticket
    assert breached[0]["actor"] == {"kind": "system", "id": "sla-monitor"}
    assert later == []


def test_a_reply_in_time_records_nothing(drill: Drill) -> None:
    publish(drill.service, {"default": {"first_reply": 60}})
    ticket = open_ticket(drill.service)
    ok(
        drill.service,
        m.AddComment(
            ticket_id=ticket,
            body="On it",
            actor=AGENT,
            occurred_at=MONDAY_9 + timedelta(minutes=30),
        ),
    )
    assert drill.at(MONDAY_9 + timedelta(hours=5)) == []


def test_downtime_judges_the_whole_history_once(drill: Drill) -> None:
    # Given two tickets whose first replies came after the monitor went down:
    # one late (after its 60-min target), one in time
    publish(drill.service, {"default": {"first_reply": 60}})
    late, in_time = open_ticket(drill.service), open_ticket(drill.service)
    assert drill.at(MONDAY_9 + timedelta(minutes=10)) == []
    drill.store.close()  # the monitor is down from minute 10
    for ticket, minutes in ((late, 90), (in_time, 50)):
        ok(
            drill.service,
            m.AddComment(
                ticket_id=ticket,
                body="Here",
                actor=AGENT,
                occurred_at=MONDAY_9 + timedelta(minutes=minutes),
            ),
        )
    # When it comes back at 4 h and ticks twice
    drill.restart()
    first = drill.at(MONDAY_9 + timedelta(hours=4))
    second = drill.at(MONDAY_9 + timedelta(hours=4, minutes=1))
    # Then the late one has exactly one breach at its due instant, the other none, no warnings
    assert kinds(first) == [("SlaBreached", "first_reply", 0)]
    assert first[0]["aggregate_id"] == late
    assert first[0]["due_at"] == (MONDAY_9 + timedelta(minutes=60)).isoformat()
    assert second == []


def test_a_restart_with_lost_state_still_records_one_breach(drill: Drill) -> None:
    # Given a breach recorded, then the monitor's state file is lost and rebuilt from scratch
    publish(drill.service, {"default": {"first_reply": 60}})
    open_ticket(drill.service)
    assert kinds(drill.at(MONDAY_9 + timedelta(minutes=61))) == [("SlaBreached", "first_reply", 0)]
    drill.store.close()
    drill.path.unlink()
    drill.restart()
    # When the new monitor replays everything and ticks
    again = drill.at(MONDAY_9 + timedelta(minutes=62))
    # Then the ticket's own record stops a second breach
    assert again == []


def test_pending_pauses_resolution_and_moves_the_breach(drill: Drill) -> None:
    # Given a 120-minute resolution target that pauses in pending
    publish(drill.service, {"default": {"resolution": 120}, "warning_at": 0.9})
    ticket = open_ticket(drill.service)
    ok(
        drill.service,
        m.ChangeStatus(
            ticket_id=ticket,
            status="pending",
            actor=AGENT,
            occurred_at=MONDAY_9 + timedelta(minutes=60),
        ),
    )
    ok(
        drill.service,
        m.AddComment(
            ticket_id=ticket,
            body="Details",
            actor=CUSTOMER,
            occurred_at=MONDAY_9 + timedelta(minutes=90),
        ),
    )
    # When time reaches 2 h (would be due without the pause) and 2.5 h (due with it)
    before = drill.at(MONDAY_9 + timedelta(minutes=149))
    after = drill.at(MONDAY_9 + timedelta(minutes=150))
    # Then the 30 paused minutes moved the breach from 11:00 to 11:30
    assert kinds(before) == [("SlaWarningIssued", "resolution", 0)]
    assert kinds(after) == [("SlaBreached", "resolution", 0)]
    assert after[0]["due_at"] == (MONDAY_9 + timedelta(minutes=150)).isoformat()


def test_business_hours_carry_a_friday_target_over_the_weekend(drill: Drill) -> None:
    # Given a calendar of 09:00-17:00 on weekdays (UTC) and a 4-hour first-reply target
    hours = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    ok(
        drill.service,
        m.PublishCalendar(
            calendar_id="office",
            definition={"time_zone": "UTC", "weekly_hours": hours},
            occurred_at=MONDAY_9,
        ),
    )
    publish(drill.service, {"calendar": "office", "default": {"first_reply": 240}})
    friday_3pm = MONDAY_9 + timedelta(days=4, hours=6)
    open_ticket(drill.service, friday_3pm)
    # When the weekend passes
    assert drill.at(friday_3pm + timedelta(days=2, hours=18)) == []  # Monday 09:00
    breached = drill.at(friday_3pm + timedelta(days=2, hours=20))  # Monday 11:00
    # Then 2 business hours on Friday + 2 on Monday: due Monday 11:00
    assert kinds(breached) == [("SlaBreached", "first_reply", 0)]
    assert breached[0]["due_at"] == (friday_3pm + timedelta(days=2, hours=20)).isoformat()


def test_tickets_opened_before_a_policy_change_keep_their_version(drill: Drill) -> None:
    publish(drill.service, {"default": {"first_reply": 60}})
    old = open_ticket(drill.service)
    publish(drill.service, {"default": {"first_reply": 600}})
    new = open_ticket(drill.service)
    breached = drill.at(MONDAY_9 + timedelta(minutes=61))
    assert [(e["aggregate_id"], e["type"]) for e in breached] == [(old, "SlaBreached")]
    assert new != old


def test_a_judgement_that_raced_a_late_reply_is_refused_and_judged_again(drill: Drill) -> None:
    # Given a breach judged at 61 minutes and queued, but not yet delivered…
    publish(drill.service, {"default": {"first_reply": 60}})
    ticket = open_ticket(drill.service)
    drill.catch_up()
    drill.store.tick(MONDAY_9 + timedelta(minutes=61))
    # …when a reply dated at 30 minutes lands first (a backfill, a slow client)
    ok(
        drill.service,
        m.AddComment(
            ticket_id=ticket,
            body="Answered on the phone",
            actor=AGENT,
            occurred_at=MONDAY_9 + timedelta(minutes=30),
        ),
    )
    stale = drill.deliver(MONDAY_9 + timedelta(minutes=61))
    again = drill.at(MONDAY_9 + timedelta(minutes=62))
    # Then the stale breach is refused and the new judgement finds the target met in time
    assert stale == [] and again == []
    assert [body["name"] for body in drill.sent] == ["record_sla_breach"]


def test_a_late_sla_record_never_blocks_backfilled_history(drill: Drill) -> None:
    # Given a breach recorded "now" for a ticket whose history is still being backfilled
    publish(drill.service, {"default": {"first_reply": 60}})
    ticket = open_ticket(drill.service)
    breached = drill.at(MONDAY_9 + timedelta(days=2))
    assert kinds(breached) == [("SlaBreached", "first_reply", 0)]
    # When older history arrives after it, it is accepted (a record is not a change)
    ok(
        drill.service,
        m.ChangeStatus(
            ticket_id=ticket,
            status="pending",
            actor=AGENT,
            occurred_at=MONDAY_9 + timedelta(hours=3),
        ),
    )


def test_only_measurable_tickets_are_kept(drill: Drill) -> None:
    # Given a ticket opened before any policy and one after
    before = open_ticket(drill.service)
    publish(drill.service, {"default": {"first_reply": 60}})
    pinned = open_ticket(drill.service)
    for ticket in (before, pinned):
        ok(drill.service, m.CategorizeTicket(ticket_id=ticket, category="usage", actor=AGENT))
    # When the monitor folds everything
    drill.catch_up()
    # Then it follows only the pinned one
    kept = {row[0] for row in drill.store.db.execute("SELECT ticket_id FROM sla_tickets")}
    assert kept == {pinned}
