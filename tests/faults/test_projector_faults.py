"""Fault tests for the projector processes: SIGKILLed mid-run by PID, restarted, and then equal,
row for row, to projections rebuilt from scratch; and `ticketing serve` restarting a killed
projector and stopping everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands import models as m
from commands.service import CommandService
from tests.faults.stream_checks import stream_position, wait_for_relay
from tests.processes import kill, process_running, start_ticketing, stop, ticketing_env, wait_until
from tests.projection_checks import (
    analytics_process_position,
    build_from_scratch,
    differences,
    dump_analytics_file,
    dump_queue_file,
    last_sequence,
    queue_file_position,
)
from ticketing.nats.server import EmbeddedNats
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings, analytics_path, queue_path

pytestmark = [pytest.mark.integration, pytest.mark.nats, pytest.mark.slow]

TICKETS = 800  # about 8,000 events (some 9 commands per ticket, a few make two events)
SEED = 3
EXPECTED_EVENTS = 8_000
MIN_EVENTS = 7_500


def alive(process: subprocess.Popen[bytes], name: str, home: Path) -> None:
    assert process.poll() is None, f"the {name} process died; see its log in {home}"


def start_writer(home: Path) -> subprocess.Popen[bytes]:
    """A separate process issuing a seeded support day through the Python API."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ticketing.runtime.bootstrap import build_command_service\n"
        "from ticketing.cli.demo_day import support_day\n"
        "from ticketing.settings import Settings\n"
        "service = build_command_service(Settings(home=Path(sys.argv[1])))\n"
        "print(support_day(service.execute, tickets=int(sys.argv[2]), seed=int(sys.argv[3])))\n"
        "service.app.close()\n"
    )
    log = (home / "writer.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(home), str(TICKETS), str(SEED)],
        env=ticketing_env(home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process


@pytest.fixture
def service(nats_home: Path) -> Iterator[CommandService]:
    """The Python API on the home's SQLite store (used to read the store)."""
    service = build_command_service(Settings(home=nats_home))
    yield service
    service.app.close()


def test_projectors_killed_mid_run_and_restarted_equal_a_rebuild_from_scratch(
    nats_home: Path, service: CommandService, tmp_path: Path
) -> None:
    home = nats_home
    settings = Settings(home=home)
    relay = start_ticketing(home, "run", "relay")
    queue = start_ticketing(home, "run", "queue-projector")
    analytics = start_ticketing(home, "run", "analytics-projector")
    writer = start_writer(home)
    try:
        # When the queue projector is SIGKILLed once it has committed about 30% of the day
        wait_until(
            lambda: queue_file_position(queue_path(settings)) >= 0.3 * EXPECTED_EVENTS,
            timeout=60,
            what="the queue projector to reach 30% of the day",
        )
        alive(queue, "queue projector", home)
        kill(queue)
        queue_killed_at = queue_file_position(queue_path(settings))
        queue = start_ticketing(home, "run", "queue-projector", log_name="queue-2")

        # And the analytics projector once it has committed about 45%
        analytics_seen = wait_until(
            lambda: _at_least(analytics_process_position(home), 0.45 * EXPECTED_EVENTS),
            timeout=60,
            what="the analytics projector to reach 45% of the day",
        )
        alive(analytics, "analytics projector", home)
        kill(analytics)
        analytics = start_ticketing(home, "run", "analytics-projector", log_name="analytics-2")

        # And both are restarted and catch up with everything the writer wrote
        assert writer.wait(120) == 0, (home / "writer.log").read_text()
        wait_for_relay(home, service.app)
        last = last_sequence(home)
        assert last >= MIN_EVENTS
        wait_until(
            lambda: queue_file_position(queue_path(settings)) == last,
            timeout=60,
            what=f"the restarted queue projector to reach {last}",
        )
        wait_until(
            lambda: analytics_process_position(home) == last,
            timeout=60,
            what=f"the restarted analytics projector to reach {last}",
        )
        alive(queue, "restarted queue projector", home)
        alive(analytics, "restarted analytics projector", home)
    finally:
        kill(writer)
        codes = {"queue": stop(queue), "analytics": stop(analytics), "relay": stop(relay)}
    assert codes == {"queue": 0, "analytics": 0, "relay": 0}, f"see the logs in {home}"

    # Then each was killed mid-run
    assert 0.2 * last <= queue_killed_at <= 0.8 * last, (queue_killed_at, last)
    assert 0.2 * last <= analytics_seen <= 0.8 * last, (analytics_seen, last)

    # And the live projections equal fresh ones fed from seq 1 through new durables
    queue_problems = differences(
        dump_queue_file(queue_path(settings)),
        build_from_scratch(home, "queue", tmp_path, "rebuild-queue", last),
    )
    analytics_problems = differences(
        dump_analytics_file(analytics_path(settings)),
        build_from_scratch(home, "analytics", tmp_path, "rebuild-analytics", last),
    )
    assert not queue_problems, "queue:\n" + "\n".join(queue_problems)
    assert not analytics_problems, "analytics:\n" + "\n".join(analytics_problems)


def _at_least(position: int | None, threshold: float) -> int:
    return position if position is not None and position >= threshold else 0


# --- the supervisor -------------------------------------------------------------------------------

CHILD = re.compile(
    r"^(command-service|relay|queue-projector|analytics-projector)\s+pid (\d+),", re.M
)


def child_pids(log: Path) -> list[tuple[str, int]]:
    """Every `<name> pid <pid>` line `ticketing serve` printed, in order."""
    return [(name, int(pid)) for name, pid in CHILD.findall(log.read_text())]


def latest_pids(log: Path) -> dict[str, int]:
    return dict(child_pids(log))


def open_tickets(service: CommandService, prefix: str, count: int) -> list[str]:
    ids: list[str] = []
    for number in range(count):
        reply = service.execute(
            m.OpenTicket(
                command_id=f"{prefix}-{number}",
                account_id="acme",
                requester="bob@acme.example",
                subject=f"{prefix} {number}",
                actor=m.ActorModel(kind="customer", id="bob@acme.example"),
            )
        )
        assert reply.ok and reply.ticket_id, reply.as_dict()
        ids.append(reply.ticket_id)
    return ids


def queue_ticket_ids(path: Path) -> set[str]:
    tables = dump_queue_file(path)
    return {row[0] for row in tables["queue_tickets"]}


def caught_up(home: Path, service: CommandService) -> int:
    """Wait for the relay and then the queue projector; the stream's last sequence."""
    wait_for_relay(home, service.app)
    last = last_sequence(home)
    wait_until(
        lambda: queue_file_position(queue_path(Settings(home=home))) == last,
        timeout=60,
        what=f"the queue projection to reach {last}",
    )
    return last


def test_serve_restarts_a_killed_projector_and_sigterm_stops_every_process(
    tmp_path: Path,
) -> None:
    # Given `ticketing serve` with its own embedded nats-server (no `nats_home` server here)
    home = tmp_path / "home"
    serve = start_ticketing(home, "serve")
    log = home / "serve.log"
    service: CommandService | None = None
    try:
        wait_until(
            lambda: "serving;" in log.read_text() if log.exists() else False,
            timeout=60,
            what="`ticketing serve` to start",
        )
        nats_pid = EmbeddedNats(home).pid()
        assert nats_pid is not None, log.read_text()
        first = latest_pids(log)
        assert set(first) == {"command-service", "relay", "queue-projector", "analytics-projector"}
        service = build_command_service(Settings(home=home))
        reply = service.execute(
            m.CreateAccount(command_id="acme", account_id="acme", account_name="Acme")
        )
        assert reply.ok, reply.as_dict()
        before = open_tickets(service, "before", 20)
        caught_up(home, service)

        # When its queue-projector child is SIGKILLed
        os.kill(first["queue-projector"], signal.SIGKILL)

        # Then serve starts a new one, which projects what comes next
        wait_until(
            lambda: latest_pids(log)["queue-projector"] != first["queue-projector"],
            timeout=30,
            what="serve to restart the queue projector",
        )
        assert re.search(
            r"^queue-projector\s+exited with -9\b.*; restarting", log.read_text(), re.M
        )
        after = open_tickets(service, "after", 20)
        caught_up(home, service)
        assert queue_ticket_ids(queue_path(Settings(home=home))) == set(before) | set(after)
        second = latest_pids(log)
        assert not process_running(first["queue-projector"])
        assert {k: v for k, v in second.items() if k != "queue-projector"} == {
            k: v for k, v in first.items() if k != "queue-projector"
        }, "only the killed child is restarted"
        assert all(process_running(pid) for pid in [*second.values(), nats_pid])
    finally:
        if service is not None:
            service.app.close()
        # When serve gets SIGTERM
        code = stop(serve, timeout=45)

    # Then it stops every child and the nats-server, and exits cleanly
    text = log.read_text()
    assert code == 0, text
    assert re.search(r"^stopped$", text, re.M), text
    assert "did not stop" not in text
    left = {f"{name} {pid}": pid for name, pid in [*child_pids(log), ("nats-server", nats_pid)]}
    assert not [name for name, pid in left.items() if process_running(pid)], text
    assert not (home / "nats" / "server.json").exists()
    assert stream_position(home) is None  # nothing answers for this home any more
    assert json.loads((home / "nats" / "credentials.json").read_text())  # the store is kept
