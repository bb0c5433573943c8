"""`ticketing serve`: the embedded nats-server and every process as supervised children.

A child that dies is restarted with a growing delay; Ctrl-C or SIGTERM stops them all in
reverse order (producers first, so projectors drain what was published)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticketing.home import create_home, serve_lock, serving_pid
from ticketing.nats.health import store_watch
from ticketing.nats.server import EmbeddedNats
from ticketing.settings import Settings

PROCESSES = (
    "command-service",
    "relay",
    "queue-projector",
    "analytics-projector",
    "sla-monitor",
    "triggers",
    "router",
    "notifier",
)
MAX_BACKOFF_S = 30.0
CHECKPOINT_INTERVAL_S = 60.0
STEADY_AFTER_S = 10.0
"""A child that failed counts as failing until a new start of it has run this long."""
STATE_FILE = "supervisor.json"
"""In `<home>/logs/`: every child's PID, restarts and failure, for `ticketing status`."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: float = 0.5
    next_start: float = 0.0
    started_at: float = 0.0
    failing: bool = False
    last_exit: int | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.process.pid if self.process is not None else None,
            "restarts": self.restarts,
            "failing": self.failing,
            "last_exit": self.last_exit,
            "last_error": self.last_error,
        }


@dataclass
class Supervisor:
    settings: Settings
    say: Callable[[str], None] = print
    processes: tuple[str, ...] = PROCESSES
    children: dict[str, Child] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.settings.home / "logs"

    def start(self) -> None:
        create_home(self.settings.home)
        self.logs.mkdir(mode=0o700, exist_ok=True)
        if not self.settings.nats_url:
            url = EmbeddedNats(self.settings.home, self.settings.principals_path).start()
            self.say(f"nats-server     {url} (embedded, store in {self.settings.home / 'nats'})")
        for name in self.processes:
            child = Child(name)
            self.children[name] = child
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        log = (self.logs / f"{child.name}.log").open("ab")
        env = {**os.environ, "TICKETING_HOME": str(self.settings.home), "PYTHONUNBUFFERED": "1"}
        child.process = subprocess.Popen(
            [sys.executable, "-m", "ticketing.cli", "run", child.name],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        child.started_at = time.monotonic()
        self.say(
            f"{child.name:<15} pid {child.process.pid}, log {self.logs / (child.name + '.log')}"
        )
        self._write_state()

    def _write_state(self) -> None:
        """Publish the children's state for `ticketing status` (atomically: never half a file)."""
        state = {"pid": os.getpid(), "children": [c.as_dict() for c in self.children.values()]}
        path = self.logs / STATE_FILE
        partial = path.with_name(path.name + ".partial")
        try:
            partial.write_text(json.dumps(state))
            os.replace(partial, path)
        except OSError as error:  # status is the poorer for it; supervising goes on
            self.say(f"cannot write {path}: {error.strerror}")

    def check(self) -> None:
        """Restart whatever has died (the embedded server too), backing off on crash loops."""
        if not self.settings.nats_url:
            server = EmbeddedNats(self.settings.home, self.settings.principals_path)
            if server.running_url() is None:
                self.say("nats-server     not running; restarting it")
                server.start()
            elif store_watch(server).needs_restart():  # a full disk left its store failing
                self.say("nats-server     store writes failed and there is room again; restarting")
                server.stop()
                server.start()
        now = time.monotonic()
        for child in self.children.values():
            if child.process is None or child.process.poll() is None:
                if child.process is not None and now - child.started_at > 60:
                    child.backoff = 0.5
                if child.failing and now - child.started_at > STEADY_AFTER_S:
                    child.failing = False
                    self._write_state()
                continue
            if child.next_start == 0.0:
                code = child.process.returncode
                child.failing, child.last_exit = True, code
                child.last_error = last_line(self.logs / f"{child.name}.log")
                why = f": {child.last_error}" if child.last_error else ""
                self.say(
                    f"{child.name:<15} exited with {code}{why}; restarting in {child.backoff:.1f} s"
                )
                self._write_state()
                child.next_start = now + child.backoff
                child.backoff = min(child.backoff * 2, MAX_BACKOFF_S)
            elif now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                self._spawn(child)

    def run_until(self, stopping: Callable[[], bool], interval: float = 0.5) -> None:
        next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
        while not stopping():
            self.check()
            if time.monotonic() >= next_checkpoint:
                self.checkpoint()
                next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
            time.sleep(interval)

    def checkpoint(self) -> None:
        """Sign the store's current state (see replay/checkpoint.py); failures are reported,
        never fatal: the next interval tries again."""
        from replay.checkpoint import CheckpointLog, write_checkpoint
        from ticketing.runtime.bootstrap import build_application

        try:
            app = build_application(self.settings)
            try:
                write_checkpoint(app, CheckpointLog(self.settings.home / "audit"))
            finally:
                app.close()
        except Exception as error:
            self.say(f"checkpoint failed: {type(error).__name__}: {error}")

    def stop(self, timeout: float = 15.0) -> None:
        for child in self.children.values():
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name:<15} did not stop; killing it")
                child.process.kill()
                child.process.wait(5)
        if not self.settings.nats_url:
            EmbeddedNats(self.settings.home).stop()
        self.say("stopped")


def last_line(log: Path, tail: int = 4096) -> str | None:
    """The last line a child wrote (its `error: <code>: <message>`, or a traceback's last)."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - tail))
            lines = handle.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    return next((line.strip() for line in reversed(lines) if line.strip()), None)


def supervised_children(home: Path) -> list[dict[str, Any]] | None:
    """The children of the `ticketing serve` running on this home (None when none runs):
    name, pid, restarts, and whether it is failing, with its last exit and last line."""
    if serving_pid(home) is None:
        return None
    try:
        state = json.loads((home / "logs" / STATE_FILE).read_text())
    except (OSError, ValueError):
        return []
    children: list[dict[str, Any]] = state.get("children", [])
    return children


def serve(settings: Settings, say: Callable[[str], None]) -> None:
    """Run the whole stack in the foreground until Ctrl-C or SIGTERM."""
    stop_requested = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve_lock(settings.home):  # a second serve is refused here, touching nothing
            supervisor = Supervisor(settings, say)
            try:
                supervisor.start()
                say("serving; Ctrl-C stops everything")
                supervisor.run_until(lambda: stop_requested)
            finally:
                supervisor.stop()
                supervisor.checkpoint()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
