"""A message in the TICKETING stream that no process can apply (published straight to JetStream,
past the relay) never silently stops a process: each projector and automation worker applies
everything before it, names it at once (log line, `last_error`, `ticketing status` failing with
a non-zero exit, `verify projections` not ok), retries it with backoff, never skips it, and
after a SIGKILL and restart is held at the same event again."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands import models as m
from commands.service import CommandService
from projections.relay import NOTIFICATION_HEADER, TYPE_HEADER
from tests.faults.stream_checks import last_store_notification_id, stream_position, wait_for_relay
from tests.processes import kill, run_cli, start_ticketing, stop, wait_until
from ticketing.nats.connect import connect, resolve_endpoint
from ticketing.nats.roles import STREAM
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.nats, pytest.mark.slow]

WORKERS = ("queue-projector", "analytics-projector", "sla-monitor", "notifier")
POISON = b'{"type": "TicketOpened", "aggregate_id": '  # cut short: not JSON


@pytest.fixture
def service(nats_home: Path) -> Iterator[CommandService]:
    service = build_command_service(Settings(home=nats_home))
    yield service
    service.app.close()


def ticketing(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args, timeout=120)


def status(home: Path) -> tuple[int, dict[str, Any]]:
    """`ticketing status --json`: exit code and report."""
    result = ticketing(home, "status", "--json")
    return result.returncode, json.loads(result.stdout)


def by_worker(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(p["name"]).removeprefix("ticketing-"): p for p in report.get("processes", [])}


def all_at(home: Path, sequence: int) -> bool:
    seen = by_worker(status(home)[1])
    return all(seen.get(w, {}).get("stats", {}).get("position") == sequence for w in WORKERS)


def all_stuck_at(home: Path, sequence: int) -> dict[str, Any] | None:
    code, report = status(home)
    seen = by_worker(report)
    stuck = all(seen.get(w, {}).get("stats", {}).get("stuck_sequence") == sequence for w in WORKERS)
    return report | {"exit_code": code} if stuck else None


async def _publish_poison(home: Path, after_notification: int) -> int:
    """Publish a message that is not an event, as the relay would place it (so the relay goes
    on after it); returns its stream sequence."""
    nc = await connect(
        resolve_endpoint(Settings(home=home)), "admin", name="poisoner", reconnect_forever=False
    )
    try:
        ack = await nc.jetstream(timeout=5).publish(
            "ticketing.events.ticket.00000000-0000-0000-0000-00000000dead",
            POISON,
            stream=STREAM,
            headers={
                "Nats-Msg-Id": "poison-1",
                TYPE_HEADER: "TicketOpened",
                NOTIFICATION_HEADER: str(after_notification),
            },
        )
        return int(ack.seq)
    finally:
        await nc.close()


def open_tickets(service: CommandService, count: int, prefix: str) -> None:
    for index in range(count):
        reply = service.execute(
            m.OpenTicket(account_id="acme", requester="b@acme.example", subject=f"{prefix} {index}")
        )
        assert reply.ok, reply.as_dict()


def test_a_message_no_process_can_apply_is_reported_retried_and_never_skipped(
    nats_home: Path, service: CommandService
) -> None:
    home = nats_home
    # Given a relay, both projectors and two automation workers, caught up with a few events
    assert service.execute(m.CreateAccount(account_id="acme", account_name="Acme")).ok
    open_tickets(service, 3, "before")
    relay = start_ticketing(home, "run", "relay")
    workers = {w: start_ticketing(home, "run", w) for w in WORKERS}
    try:
        wait_for_relay(home, service.app)
        position = stream_position(home)
        assert position is not None
        before = position[1]
        wait_until(lambda: all_at(home, before), timeout=60, what=f"every worker at {before}")

        # When a message that is not an event lands in the stream, and events follow it
        poison = asyncio.run(_publish_poison(home, last_store_notification_id(service.app)))
        assert poison == before + 1
        open_tickets(service, 2, "after")
        wait_for_relay(home, service.app)

        # Then every worker applies everything before it and is held there, saying why
        report = wait_until(
            lambda: all_stuck_at(home, poison), timeout=60, what=f"every worker stuck at {poison}"
        )
        assert report["exit_code"] == 1
        for worker, process in by_worker(report).items():
            if worker not in WORKERS:
                continue
            stats = process["stats"]
            assert process["state"] == "failing", process
            assert stats["position"] == before, process
            assert stats["failing_since"] is not None
            assert stats["last_error"].startswith(
                f"cannot apply stream sequence {poison} (TicketOpened): JSONDecodeError"
            ), stats
        assert {f["name"].removeprefix("ticketing-") for f in report["failing"]} >= set(WORKERS)
        # …in one log line each, at once
        for worker in WORKERS:
            log = (home / f"run-{worker}.log").read_text()
            assert f"cannot apply stream sequence {poison} (TicketOpened)" in log, log

        # And the people's table marks them FAILING, exiting non-zero with one error line
        readable = ticketing(home, "status")
        assert readable.returncode == 1
        assert readable.stdout.count("FAILING") == len(WORKERS), readable.stdout
        assert readable.stderr.startswith("error: process_failing: "), readable.stderr
        assert len(readable.stderr.splitlines()) == 1

        # And verify projections reports both projections stuck
        verified = ticketing(home, "verify", "projections", "--json")
        assert verified.returncode == 1, verified.stdout + verified.stderr
        assert verified.stderr.startswith("error: projection_stuck: "), verified.stderr
        checks = {c["projection"]: c for c in json.loads(verified.stdout)}
        for projection in ("queue", "analytics"):
            assert checks[projection]["ok"] is False
            assert f"cannot apply stream sequence {poison}" in checks[projection]["stuck"]

        # And retries back off: a few attempts, not a busy loop
        attempts = by_worker(status(home)[1])["queue-projector"]["stats"]["failed_attempts"]
        assert 1 <= attempts <= 12

        # When the queue projector and the SLA monitor are SIGKILLed and restarted
        for worker in ("queue-projector", "sla-monitor"):
            kill(workers[worker])
            workers[worker] = start_ticketing(home, "run", worker, log_name=f"{worker}-2")

        # Then they are held at the same event again: nothing after it was applied or acked
        report = wait_until(
            lambda: all_stuck_at(home, poison), timeout=60, what="restarted workers stuck again"
        )
        for worker in WORKERS:
            assert by_worker(report)[worker]["stats"]["position"] == before
    finally:
        for process in [relay, *workers.values()]:
            stop(process)
