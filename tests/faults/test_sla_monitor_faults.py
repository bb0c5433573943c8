"""The SLA monitor as a real process on a real stack, its clock moved by rewriting a file (no
sleeping), SIGKILLed and restarted: every passed target is recorded exactly once."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from commands import models as m
from commands.service import CommandService
from replay.stream import stream_batches
from tests.processes import kill, start_ticketing, stop, wait_until
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.nats]

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TICKETS = 30


@pytest.fixture
def service(nats_home: Path) -> Iterator[CommandService]:
    service = build_command_service(Settings(home=nats_home))
    yield service
    service.app.close()


def sla_records(service: CommandService) -> Counter[tuple[str, str, str]]:
    """(type, ticket, metric) of every SLA record in the store."""
    return Counter(
        (e.payload["type"], e.payload["aggregate_id"], e.payload["metric"])
        for batch in stream_batches(service.app)
        for e in batch
        if e.payload["type"] in {"SlaWarningIssued", "SlaBreached"}
    )


def outbox_waiting(home: Path) -> int:
    path = home / "automation" / "sla-monitor.sqlite"
    if not path.exists():
        return -1
    db = sqlite3.connect(path)
    try:
        return int(
            db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
        )
    except sqlite3.OperationalError:
        return -1
    finally:
        db.close()


def count(records: Counter[tuple[str, str, str]], kind: str, metric: str) -> int:
    return sum(n for (k, _, mm), n in records.items() if k == kind and mm == metric)


def test_a_killed_and_restarted_monitor_records_each_warning_and_breach_once(
    nats_home: Path, service: CommandService
) -> None:
    # Given 60-min first-reply and 120-min resolution targets and 30 tickets opened at T0
    def ok(command: m.Command) -> Any:
        reply = service.execute(command)
        assert reply.ok, reply.as_dict()
        return reply

    ok(m.CreateAccount(account_id="acme", account_name="Acme", occurred_at=T0))
    ok(
        m.PublishSlaPolicy(
            policy_id="default",
            definition={"default": {"first_reply": 60, "resolution": 120}},
            occurred_at=T0,
        )
    )
    for _ in range(TICKETS):
        ok(m.OpenTicket(account_id="acme", requester="b@acme.example", subject="x", occurred_at=T0))
    clock = nats_home / "clock.txt"
    clock.write_text((T0 + timedelta(minutes=50)).isoformat())
    env = {"TICKETING_CLOCK_FILE": str(clock)}
    processes = [  # a drill: the command service's "now" is the drill clock too
        start_ticketing(nats_home, "run", "command-service", env=env),
        start_ticketing(nats_home, "run", "relay"),
    ]
    monitor = start_ticketing(nats_home, "run", "sla-monitor", env=env)
    try:
        # When the clock reads T0+50 min: every first reply is past its 75 % warning
        wait_until(
            lambda: count(sla_records(service), "SlaWarningIssued", "first_reply") == TICKETS,
            timeout=60,
            what="30 first-reply warnings",
        )
        # And the monitor is SIGKILLed, the clock jumps past every target, and it restarts…
        kill(monitor)
        clock.write_text((T0 + timedelta(hours=3)).isoformat())
        monitor = start_ticketing(nats_home, "run", "sla-monitor", env=env)
        wait_until(
            lambda: count(sla_records(service), "SlaBreached", "first_reply") >= TICKETS // 3,
            timeout=60,
            what="breaches start to be recorded",
        )
        # …is killed again mid-delivery and restarted once more
        kill(monitor)
        monitor = start_ticketing(nats_home, "run", "sla-monitor", env=env)
        wait_until(
            lambda: (
                count(sla_records(service), "SlaBreached", "resolution") == TICKETS
                and count(sla_records(service), "SlaBreached", "first_reply") == TICKETS
                and outbox_waiting(nats_home) == 0
            ),
            timeout=60,
            what="every breach recorded and the outbox drained",
        )
    finally:
        stop(monitor)
        for process in reversed(processes):
            stop(process)
    # Then each ticket has exactly one first-reply warning, one breach per metric, and no
    # resolution warning (its clock was already breached when the monitor looked)
    records = sla_records(service)
    assert set(records.values()) == {1}, [r for r, n in records.items() if n > 1]
    assert count(records, "SlaWarningIssued", "first_reply") == TICKETS
    assert count(records, "SlaWarningIssued", "resolution") == 0
    assert count(records, "SlaBreached", "first_reply") == TICKETS
    assert count(records, "SlaBreached", "resolution") == TICKETS
