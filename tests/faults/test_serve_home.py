"""`ticketing serve` and its home, with real processes: every file it and its children create
is private, a second serve on the same home is refused without touching the first, and a
damaged queue file is a failing process in `ticketing status` until it is rebuilt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_home import not_private
from tests.processes import process_running, stop, ticketing_env, wait_until
from tests.unit.test_cli import run_main
from ticketing.nats.server import EmbeddedNats

pytestmark = [pytest.mark.integration, pytest.mark.nats, pytest.mark.slow]


def start_serve(home: Path, log: Path) -> subprocess.Popen[bytes]:
    """`ticketing serve` on `home`, its output to `log` outside the home (so that every file
    in the home is one the stack made)."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "ticketing.cli", "serve"],
            env=ticketing_env(home),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def serving(log: Path) -> bool:
    return log.exists() and "serving;" in log.read_text()


def ok(home: Path, *args: str) -> str:
    result = run_main(home, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def children(home: Path) -> dict[str, int]:
    """Each child of the serve on `home` and its PID, from the supervisor's state file."""
    state = json.loads((home / "logs" / "supervisor.json").read_text())
    return {c["name"]: c["pid"] for c in state["children"]}


def status(home: Path) -> tuple[int, dict[str, Any], str]:
    result = run_main(home, "status", "--json")
    return result.returncode, json.loads(result.stdout or "{}"), result.stderr


def open_ticket(home: Path) -> str:
    ok(home, "account", "create", "acme", "--name", "Acme")
    return ok(
        home,
        "open",
        "--account",
        "acme",
        "--requester",
        "bob@acme.example",
        "--subject",
        "VPN drops",
        "--as",
        "customer:bob",
    ).strip()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """A home served by `ticketing serve`, holding a ticket that both projections have."""
    root = tmp_path_factory.mktemp("served")
    home, log = root / "home", root / "serve.log"
    serve = start_serve(home, log)
    try:
        wait_until(lambda: serving(log), timeout=90, what="`ticketing serve` to start")
        tid = open_ticket(home)
        wait_until(
            lambda: tid in run_main(home, "queue", "--json").stdout,
            timeout=60,
            what="the queue projector to project the ticket",
        )
        wait_until(
            (home / "analytics-snapshot.duckdb").exists,
            timeout=60,
            what="the analytics snapshot",
        )
        ok(home, "checkpoint")
        yield home, log, tid
    finally:
        assert stop(serve, timeout=45) == 0, log.read_text()


def test_every_file_serve_and_its_processes_make_is_the_owners_alone(
    served: tuple[Path, Path, str],
) -> None:
    # Given a served home with events, both projections, a checkpoint, NATS and logs
    home, _log, _tid = served
    made = {str(p.relative_to(home)) for p in home.rglob("*")}
    assert {
        "events.sqlite",
        "queue.sqlite",
        "analytics.duckdb",
        "analytics-snapshot.duckdb",
    } <= made
    assert {"audit/checkpoints.jsonl", "logs/relay.log", "serve.lock", "nats/server.conf"} <= made
    assert any(name.startswith("nats/jetstream/") for name in made)
    assert any(name.endswith("-wal") for name in made), sorted(made)
    # Then the home and every directory in it are 0700 and every file 0600 or tighter
    assert not_private(home) == {}
    assert (home.stat().st_mode & 0o777) == 0o700


def test_a_second_serve_on_a_served_home_is_refused_and_the_first_runs_on(
    served: tuple[Path, Path, str],
) -> None:
    # Given a running serve, its nats-server and its children
    home, log, tid = served
    first_pid = int((home / "serve.lock").read_text())
    nats_pid = EmbeddedNats(home).pid()
    assert nats_pid is not None
    before = children(home)
    # When a second serve starts on the same home, and then is stopped as a user would
    second = subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "serve"],
        env=ticketing_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then it is refused in one line naming the first one's PID
    assert second.returncode == 1
    assert second.stderr == (
        f"error: already_running: ticketing serve is already running on {home} "
        f"(pid {first_pid}); stop it first, or use another --home\n"
    )
    assert "nats-server" not in second.stdout
    # And the first one's server and children run on, untouched, and still project
    assert process_running(nats_pid) and EmbeddedNats(home).pid() == nats_pid
    assert children(home) == before
    assert all(process_running(pid) for pid in before.values())
    ok(home, "tag", tid, "still-served", "--as", "agent:ana")
    wait_until(
        lambda: "still-served" in run_main(home, "queue", "--json").stdout,
        timeout=30,
        what="the first serve's queue projector to take the new event",
    )
    assert "serving;" in log.read_text()


def test_a_damaged_queue_file_under_serve_is_a_failing_process_until_rebuilt(
    tmp_path: Path,
) -> None:
    # Given a home whose queue file is damaged
    home, log = tmp_path / "home", tmp_path / "serve.log"
    tid = open_ticket(home)
    ok(home, "rebuild", "queue")
    (home / "queue.sqlite").write_bytes(os.urandom(4096))
    serve = start_serve(home, log)
    try:
        wait_until(lambda: serving(log), timeout=90, what="`ticketing serve` to start")

        # When status is asked while the queue projector keeps exiting
        def queue_projector_failing() -> tuple[int, dict[str, Any], str] | None:
            code, report, stderr = status(home)
            names = [f["name"] for f in report.get("failing", [])]
            return (code, report, stderr) if "queue-projector" in names else None

        code, report, stderr = wait_until(
            queue_projector_failing, timeout=60, what="status to name the failing projector"
        )
        # Then it names the process, the damaged file and the fix, and exits non-zero
        failing = next(f for f in report["failing"] if f["name"] == "queue-projector")
        assert failing["error"] == (
            f"error: projection_corrupt: {home / 'queue.sqlite'} is not a valid queue projection "
            "(file is not a database); run: ticketing rebuild queue"
        )
        assert code == 1
        assert stderr.startswith("error: process_failing: queue-projector ")
        # When the queue is rebuilt as the error says
        ok(home, "rebuild", "queue")
        # Then serve's next start of the projector stays up, and status clears
        wait_until(
            lambda: status(home)[0] == 0, timeout=90, what="status to stop reporting a failure"
        )
        assert tid in ok(home, "queue", "--json")
    finally:
        assert stop(serve, timeout=45) == 0, log.read_text()
