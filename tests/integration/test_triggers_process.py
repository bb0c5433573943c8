"""`ticketing run triggers` with real processes: contradicting rules that opt into automation
stop after the cascade budget, every automated event names its rule, and a SIGKILLed (and a
wiped) triggers process re-sends the same command ids so nothing is applied twice."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.client import SyncTicketingClient
from tests.faults.stream_checks import wait_for_relay
from tests.processes import kill, start_ticketing, stop, wait_until
from tests.projection_checks import last_sequence
from ticketing.domain.events import event_payload
from ticketing.nats.connect import resolve_endpoint
from ticketing.runtime.bootstrap import build_application
from ticketing.settings import Settings
from ticketing.store.application import TicketingApplication
from ticketing.workers import MAX_CASCADE_DEPTH

pytestmark = [pytest.mark.integration, pytest.mark.nats]

# The conditions are on the event (the priority it set), not on the ticket: rules in one pass
# see each other's proposals, so with `if.priority` both rules would answer the person's change
# (urgent, then back to high) and each cascade would make four changes at depths 1, 1, 2, 3.
RULES = """
[[rules]]
id = "high-to-urgent"
on = "TicketPrioritized"
allow_automation = true
if."event.priority" = "high"
then.set_priority = "urgent"
then.notify = { channel = "oncall", template = "{subject} is urgent now" }

[[rules]]
id = "urgent-to-high"
on = "TicketPrioritized"
allow_automation = true
if."event.priority" = "urgent"
then.set_priority = "high"
"""
RULE_IDS = {"high-to-urgent", "urgent-to-high"}
LEAD = m.ActorModel(kind="agent", id="lead")
TICKETS = 3


@pytest.fixture
def app(nats_home: Path) -> Iterator[TicketingApplication]:
    """The home's event store, read directly (the source of truth)."""
    app = build_application(Settings(home=nats_home))
    yield app
    app.close()


def automation_state(home: Path, worker: str) -> tuple[int, int] | None:
    """(stream position, outbox items not yet delivered) of an automation store, one snapshot."""
    path = home / "automation" / f"{worker}.sqlite"
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT (SELECT stream_sequence FROM automation_position), "
            "(SELECT count(*) FROM outbox WHERE delivered_at IS NULL)"
        ).fetchone()
    except sqlite3.OperationalError:  # created, schema not committed yet
        return None
    finally:
        db.close()
    return (int(row[0] or 0), int(row[1]))


def outbox_outcomes(home: Path, worker: str) -> dict[str, tuple[str, str | None]]:
    db = sqlite3.connect(f"file:{home / 'automation' / f'{worker}.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT key, kind, outcome FROM outbox").fetchall()
    finally:
        db.close()
    return {key: (kind, outcome) for key, kind, outcome in rows}


def quiet(home: Path, app: TicketingApplication, worker: str) -> bool:
    """The worker has folded the whole stream and delivered its whole outbox, and the relay
    has published every stored event: nothing more can happen without a new command."""
    state = automation_state(home, worker)  # read first: later deliveries show in the store
    wait_for_relay(home, app)
    return state is not None and state == (last_sequence(home), 0)


def ticket_events(app: TicketingApplication, ticket_id: UUID) -> list[dict[str, Any]]:
    return [event_payload(e) for e in app.events.get(ticket_id)]


def automated(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["actor"]["kind"] == "automation"]


def cascade_done(app: TicketingApplication, tickets: list[UUID]) -> bool:
    return all(len(automated(ticket_events(app, t))) >= MAX_CASCADE_DEPTH for t in tickets)


def start_stack(home: Path) -> list[subprocess.Popen[bytes]]:
    return [
        start_ticketing(home, "run", "command-service"),
        start_ticketing(home, "run", "relay"),
        start_ticketing(home, "run", "queue-projector"),
    ]


def start_triggers(home: Path, rules: Path, log_name: str) -> subprocess.Popen[bytes]:
    return start_ticketing(
        home, "run", "triggers", env={"TICKETING_TRIGGERS": str(rules)}, log_name=log_name
    )


def raise_tickets(client: SyncTicketingClient, count: int) -> list[UUID]:
    """Open `count` tickets and have a person raise each to high."""
    client.execute(
        m.CreateAccount(account_id="acme", account_name="Acme", tier="business"), retry_for=30
    )
    tickets = []
    for n in range(count):
        reply = client.execute(
            m.OpenTicket(account_id="acme", requester="bob@acme.example", subject=f"Ticket {n}")
        )
        assert reply.ticket_id is not None
        ticket = UUID(str(reply.ticket_id))
        client.execute(m.PrioritizeTicket(ticket_id=ticket, priority="high", actor=LEAD))
        tickets.append(ticket)
    return tickets


def test_contradicting_rules_stop_after_the_cascade_budget_and_a_restart_doubles_nothing(
    nats_home: Path, app: TicketingApplication, tmp_path: Path
) -> None:
    home = nats_home
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    stack = start_stack(home)
    triggers = start_triggers(home, rules, "triggers-1")
    try:
        with SyncTicketingClient(
            resolve_endpoint(Settings(home=home)), principal="admin"
        ) as client:
            # Given: tickets a person raised to high, with rules bouncing high <-> urgent
            tickets = raise_tickets(client, TICKETS)

        # When: the triggers process is SIGKILLed once it has queued something, and restarted
        wait_until(
            lambda: (automation_state(home, "triggers") or (0, 0))[0] > 0,
            what="the triggers process to fold the first events",
        )
        kill(triggers)
        triggers = start_triggers(home, rules, "triggers-2")
        wait_until(lambda: cascade_done(app, tickets), what="the cascades")
        wait_until(lambda: quiet(home, app, "triggers"), what="the triggers to settle")

        # Then: each cascade stopped after MAX_CASCADE_DEPTH automated changes
        for ticket in tickets:
            events = ticket_events(app, ticket)
            changes = automated(events)
            assert [e["type"] for e in changes] == ["TicketPrioritized"] * MAX_CASCADE_DEPTH
            assert [e["priority"] for e in changes] == ["urgent", "high", "urgent"]
            # every automated event names its rule, as actor and in its command id
            for depth, event in enumerate(changes, start=1):
                rule = event["actor"]["id"]
                assert rule in RULE_IDS
                assert event["command_id"].startswith(f"trigger:{depth}:{rule}:{ticket}:")
        before = {t: len(ticket_events(app, t)) for t in tickets}
        stream_before = last_sequence(home)
        outcomes = outbox_outcomes(home, "triggers")
        commands = {k: o for k, (kind, o) in outcomes.items() if kind == "command"}
        assert len(commands) == TICKETS * MAX_CASCADE_DEPTH
        assert all(outcome and outcome.startswith("ok:") for outcome in commands.values())
        notifications = [o for kind, o in outcomes.values() if kind == "channel"]
        assert len(notifications) == TICKETS * 2  # on the human's change and at depth 2
        assert all(o and o.startswith("dropped:") for o in notifications)

        # When: the process dies and loses its store, so it folds the whole stream again
        kill(triggers)
        shutil.rmtree(home / "automation")
        triggers = start_triggers(home, rules, "triggers-3")
        wait_until(lambda: quiet(home, app, "triggers"), what="the rebuilt triggers to settle")

        # Then: the same command ids went out again and the service appended nothing
        assert outbox_outcomes(home, "triggers").keys() == outcomes.keys()
        assert {t: len(ticket_events(app, t)) for t in tickets} == before
        assert last_sequence(home) == stream_before
    finally:
        for process in (triggers, *stack):
            stop(process)


def test_a_bad_rules_file_stops_the_process_with_one_error_line(tmp_path: Path) -> None:
    # Given
    home = tmp_path / "home"
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nid = "loud"\non = "TicketOpened"\nthen.set_priority = "max"\n')
    # When
    process = start_triggers(home, rules, "bad-rules")
    code = process.wait(30)
    # Then
    log = (home / "bad-rules.log").read_text().strip()
    assert code != 0
    assert "Traceback" not in log
    [line] = log.splitlines()
    assert line.startswith("error: invalid_rules: ")
    assert "rule 'loud'" in line and "then.set_priority" in line
