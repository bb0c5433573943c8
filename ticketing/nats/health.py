"""Whether the embedded nats-server must be restarted after its disk filled up.

When a write to the JetStream file store fails (no space left on device), nats-server marks the
stream with a critical write error and fails every later write to it, even once space is back;
neither a config reload (SIGHUP) nor time clears it, a restart does (measured with
nats-server 2.15.1 on a full tmpfs). The server says so in its log, each line prefixed with its
PID: the watch reads the running server's lines and, once there is room again, asks for one
restart (at most one per `RESTART_INTERVAL_S`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

WRITE_FAILURES = ("Critical write error", "failed to store a msg")
ROOM_BYTES = 4 * 1024 * 1024
"""Free space that counts as "space is back" for the JetStream store."""
RESTART_INTERVAL_S = 10.0
LOG_TAIL_BYTES = 64 * 1024


class _Server(Protocol):
    @property
    def directory(self) -> Path: ...

    @property
    def log_path(self) -> Path: ...

    def pid(self) -> int | None: ...


def store_write_failed(server: _Server) -> bool:
    """The running server (by PID) has logged a failed JetStream store write."""
    pid = server.pid()
    if pid is None or not server.log_path.exists():
        return False
    with server.log_path.open("rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
        tail = log.read().decode(errors="replace")
    mine = f"[{pid}] "
    return any(
        line.startswith(mine) and any(failure in line for failure in WRITE_FAILURES)
        for line in tail.splitlines()
    )


def room_for(path: Path, needed: int = ROOM_BYTES) -> bool:
    """At least `needed` bytes are free on the filesystem holding `path`."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    stats = os.statvfs(existing)
    return stats.f_bavail * stats.f_frsize >= needed


@dataclass
class StoreWriteWatch:
    """Says when to restart the embedded server: it failed to write its store and there is
    room again; never more often than every `interval` seconds."""

    server: _Server
    interval: float = RESTART_INTERVAL_S
    _last_restart: float = field(default=-1e9)

    def needs_restart(self) -> bool:
        now = time.monotonic()
        if now - self._last_restart < self.interval:
            return False
        if not store_write_failed(self.server) or not room_for(self.server.directory):
            return False
        self._last_restart = now
        return True


_WATCHES: dict[Path, StoreWriteWatch] = {}


def store_watch(server: _Server) -> StoreWriteWatch:
    """The one watch of this server's home (kept across calls, for its restart interval)."""
    return _WATCHES.setdefault(server.log_path, StoreWriteWatch(server))
