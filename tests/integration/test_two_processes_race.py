"""Two OS processes write to one SQLite event store at the same time; nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.service import CommandService
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = pytest.mark.integration

# Each writer announces it is ready, waits for the go signal (so both really overlap), then
# runs its commands and prints one JSON reply per line.
WRITER = """
import json, sys, time
from pathlib import Path
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

spec = json.loads(sys.argv[1])
service = build_command_service(Settings(home=Path(spec["home"]), event_store="sqlite"))
try:
    service.app.recorder.max_notification_id()
    Path(spec["ready"]).touch()
    deadline = time.monotonic() + 30
    while not Path(spec["go"]).exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal within 30 s")
        time.sleep(0.005)
    for name, payload in spec["commands"]:
        print(service.execute_raw(name, payload).to_json(), flush=True)
finally:
    service.app.close()
"""


@pytest.fixture
def service(sqlite_settings: Settings) -> Iterator[CommandService]:
    service = build_command_service(sqlite_settings)
    yield service
    service.app.close()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def run_writers(
    home: Path, tmp_path: Path, commands_per_writer: list[list[tuple[str, dict[str, Any]]]]
) -> list[list[dict[str, Any]]]:
    """Start one process per command list, release them together, return their replies."""
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    processes = []
    readies = []
    for index, commands in enumerate(commands_per_writer):
        ready = tmp_path / f"ready-{index}"
        readies.append(ready)
        spec = {"home": str(home), "ready": str(ready), "go": str(go), "commands": commands}
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, json.dumps(spec)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    try:
        wait_for(lambda: all(r.exists() for r in readies), 30, "both writers to be ready")
        go.touch()
        outputs = [p.communicate(timeout=60) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert stderr == ""
    return [[json.loads(line) for line in out.splitlines()] for out, _ in outputs]


def test_two_processes_tagging_one_ticket_lose_nothing(
    service: CommandService, sqlite_settings: Settings, tmp_path: Path
) -> None:
    # Given
    assert service.execute(m.CreateAccount(account_id="acme", account_name="Acme")).ok
    opened = service.execute(
        m.OpenTicket(account_id="acme", requester="bob@acme.example", subject="VPN drops")
    )
    assert opened.ticket_id is not None
    tid = opened.ticket_id
    per_writer = 30
    plans = [
        [("tag_ticket", {"ticket_id": tid, "tags": [f"p{w}-t{n}"]}) for n in range(per_writer)]
        for w in range(2)
    ]
    # When
    replies = run_writers(sqlite_settings.home, tmp_path, plans)
    # Then: every acknowledged change is stored, each at its own version
    ticket = service.load_ticket(UUID(tid))
    acknowledged = [r for rs in replies for r in rs if r["ok"]]
    assert set(ticket.tags) == {e["tags"][0] for r in acknowledged for e in r["events"]}
    assert sorted(r["version"] for r in acknowledged) == list(range(2, ticket.version + 1))
    # and, conflicts being retried, every change was acknowledged
    assert [r for rs in replies for r in rs if not r["ok"]] == []
    assert set(ticket.tags) == {f"p{w}-t{n}" for w in range(2) for n in range(per_writer)}
    assert ticket.version == 1 + 2 * per_writer


def test_two_processes_repeating_the_same_open_commands_open_each_ticket_once(
    service: CommandService, sqlite_settings: Settings, tmp_path: Path
) -> None:
    # Given
    assert service.execute(m.CreateAccount(account_id="acme", account_name="Acme")).ok
    before = service.app.recorder.max_notification_id() or 0
    count = 20
    plan = [
        (
            "open_ticket",
            {
                "command_id": f"open-{n}",
                "account_id": "acme",
                "requester": "bob@acme.example",
                "subject": f"problem {n}",
            },
        )
        for n in range(count)
    ]
    # When
    first, second = run_writers(sqlite_settings.home, tmp_path, [plan, plan])
    # Then: both processes got the same reply for each command
    assert all(r["ok"] for r in first + second), first + second
    assert first == second
    # and each ticket was opened once: one event plus one command record per command
    assert len({r["ticket_id"] for r in first}) == count
    assert service.app.recorder.max_notification_id() == before + 2 * count
    for reply in first:
        assert service.load_ticket(UUID(reply["ticket_id"])).version == 1
