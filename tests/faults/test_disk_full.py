"""The whole stack under `ticketing serve` on a disk that fills up: commands are refused with
`store_unavailable` while it is full, and once space comes back everything resumes by itself
(nats-server's file store, the relay, both projectors, the SLA monitor and the notifier), with
nothing lost or doubled. Needs root to mount a size-limited tmpfs; skipped elsewhere."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commands import models as m
from commands.service import CommandService
from tests.faults.stream_checks import check_invariant, stream_position
from tests.processes import run_cli, stop, ticketing_env, wait_until
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.nats, pytest.mark.slow]

DISK_MB = 48
LEFT_FREE = 600 * 1024  # what the ballast leaves: a few commands' worth
CONSUMERS = ("queue-projector", "analytics-projector", "sla-monitor", "notifier")
DESCRIPTION = "y" * 8000  # large events fill the disk in a few dozen commands


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs mounted for this test, unmounted afterwards (lazily if still busy)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (os.geteuid() != 0)")
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {DISK_MB} MB tmpfs at {mount}: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def ticketing(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args, timeout=60)


def status(home: Path) -> tuple[int, dict[str, Any]]:
    result = ticketing(home, "status", "--json")
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        return result.returncode, {}


def positions(report: dict[str, Any]) -> dict[str, Any]:
    return {
        str(p["name"]).removeprefix("ticketing-"): p["stats"].get("position")
        for p in report.get("processes", [])
    }


def fill(disk: Path) -> Path:
    """A ballast file leaving `LEFT_FREE` bytes on the disk."""
    ballast = disk / "ballast"
    stats = os.statvfs(disk)
    size = max(0, stats.f_bavail * stats.f_frsize - LEFT_FREE)
    with ballast.open("wb") as out:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            size -= out.write(chunk[: min(len(chunk), size)])
    return ballast


def open_ticket(service: CommandService, subject: str) -> str:
    reply = service.execute(
        m.OpenTicket(
            account_id="acme", requester="b@acme.example", subject=subject, description=DESCRIPTION
        )
    )
    return "ok" if reply.ok else str(reply.error.code if reply.error else "?")


def queue_tickets(home: Path) -> int:
    db = sqlite3.connect(f"file:{home / 'queue.sqlite'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM queue_tickets").fetchone()[0])
    finally:
        db.close()


def something_failed(home: Path) -> bool:
    """A process reports it is failing, or nats-server logged a failed store write."""
    code, report = status(home)
    server_log = home / "nats" / "server.log"
    logged = server_log.exists() and "failed to store" in server_log.read_text(errors="replace")
    return bool(report.get("failing")) or code != 0 or logged


def test_the_whole_stack_resumes_by_itself_after_the_disk_was_full(
    small_disk: Path, tmp_path: Path
) -> None:
    home = small_disk / "home"
    serve_log = (tmp_path / "serve.log").open("ab")  # off the small disk: it must stay writable
    serve = subprocess.Popen(
        [sys.executable, "-m", "ticketing.cli", "serve"],
        env=ticketing_env(home),
        stdout=serve_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    serve_log.close()
    service: CommandService | None = None
    ballast: Path | None = None
    try:
        # Given the whole stack on a 48 MB disk, caught up with an account and a few tickets
        wait_until(
            lambda: set(CONSUMERS) <= set(positions(status(home)[1])),
            timeout=60,
            what="every consumer to answer `ticketing status`",
        )
        service = build_command_service(Settings(home=home))
        assert service.execute(m.CreateAccount(account_id="acme", account_name="Acme")).ok
        outcomes = Counter(open_ticket(service, f"before {i}") for i in range(5))
        assert outcomes == {"ok": 5}

        # When the disk fills up while commands keep coming
        ballast = fill(small_disk)
        for index in range(400):
            outcomes[open_ticket(service, f"during {index}")] += 1
            if outcomes["store_unavailable"] >= 20:
                break
        # Then commands are refused with store_unavailable, and something downstream fails
        assert outcomes["store_unavailable"] >= 20, outcomes
        wait_until(lambda: something_failed(home), timeout=30, what="a failure downstream")

        # When space comes back (nobody kills or restarts anything)
        ballast.unlink()
        ballast = None
        after = Counter(open_ticket(service, f"after {i}") for i in range(5))
        assert after == {"ok": 5}, after
        accepted = outcomes["ok"] + after["ok"]

        # Then the stream catches up with the store, nothing lost or doubled…
        check_invariant(home, service.app, timeout=120)
        seen = stream_position(home)
        assert seen is not None
        last = seen[1]

        # …and every consumer reaches its end, healthy again, within a deadline
        def healthy() -> bool:
            code, report = status(home)
            reached = positions(report)
            return code == 0 and all(reached.get(c) == last for c in CONSUMERS)

        wait_until(healthy, timeout=120, interval=0.5, what=f"every consumer healthy at {last}")
        assert queue_tickets(home) == accepted
    finally:
        if ballast is not None:
            ballast.unlink(missing_ok=True)
        if service is not None:
            service.app.close()
        stop(serve, timeout=30)
