"""The data directory ("home"): private to its owner, never made up by a typo, readable when it
is read-only, and served by one `ticketing serve` at a time.

The rules, in one place (the README's "The data directory" says the same):

- everything a process of ours creates is private: `private_files()` sets the umask 077 at
  process start (files 0600, directories 0700), `create_home` makes the home 0700, and a home
  made before this rule is tightened once, the first time it is opened;
- only commands that legitimately start a home create one (a write, `import`, `sla publish`,
  `serve`, `run`, `demo`); every other command on a home that does not exist is refused with
  `not_found` instead of reporting on a freshly created, empty store;
- a home that cannot be written (a read-only mount, an immutable copy, another user's files)
  is opened read-only for reading, and a write is refused with `store_read_only`;
- `serve_lock` lets one `ticketing serve` (or `demo`) run per home; another is refused with
  `already_running`, naming the PID, before it touches anything."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from ticketing.domain.errors import NotFoundError, TicketingError

PRIVATE_UMASK = 0o077
LOCK_NAME = "serve.lock"


class HomeNotFoundError(NotFoundError):
    """A reading command was pointed at a data directory that does not exist."""


class StoreReadOnlyError(TicketingError):
    """The home can be read but not written: a write is refused before it starts."""

    code = "store_read_only"


class AlreadyRunningError(TicketingError):
    """Another `ticketing serve` holds this home."""

    code = "already_running"


def private_files() -> None:
    """Files 0600 and directories 0700 for everything this process (and the nats-server it
    spawns) creates: SQLite with its -wal and -shm, DuckDB, logs, audit, JetStream."""
    os.umask(PRIVATE_UMASK)


def create_home(home: Path, *files: Path) -> None:
    """Make the home (0700) if it is missing, tighten it if it is not private, and refuse it
    (`store_read_only`) when it, or one of `files` in it, cannot be written."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        message = f"cannot create the ticketing home {home}: {error.strerror}"
        raise StoreReadOnlyError(message, home=str(home)) from None
    secure_home(home)
    require_writable(home, *files)


def require_home(home: Path, store: Path | None = None) -> None:
    """Refuse a home that does not exist (or, for the SQLite store, has no `store` file):
    reading it would report on nothing, or create an empty store where a typo pointed."""
    if not home.is_dir():
        raise HomeNotFoundError(
            f"no ticketing home at {home}: check --home or TICKETING_HOME (a home is created by "
            "its first write, e.g. `ticketing account create`, or by `ticketing serve`)",
            home=str(home),
        )
    if store is not None and not store.exists():
        raise HomeNotFoundError(
            f"no ticketing home at {home}: it has no event store {store.name}; check --home or "
            "TICKETING_HOME (a home is created by its first write, e.g. `ticketing account "
            "create`, or by `ticketing serve`)",
            home=str(home),
        )
    secure_home(home)


def writable(home: Path, *files: Path) -> bool:
    """Whether this process may write the home and the given files in it (a read-only mount,
    an immutable file or another user's home say no; root's permission bits never do)."""
    return all(os.access(p, os.W_OK) for p in (home, *files) if p == home or p.exists())


def require_writable(home: Path, *files: Path) -> None:
    if not writable(home, *files):
        names = ", ".join(str(p) for p in (home, *files) if p == home or p.exists())
        raise StoreReadOnlyError(
            f"the ticketing home is read-only ({names} cannot be written by this user): "
            "reading commands work, writes need a writable home",
            home=str(home),
        )


def secure_home(home: Path) -> None:
    """Tighten a home made before homes were private (0755 with 0644 files) to 0700/0600,
    once: a private home is left alone. Only our own files; errors (a read-only home) are
    ignored, as the home stays as it was."""
    try:
        info = home.stat()
    except OSError:
        return
    if not stat.S_IMODE(info.st_mode) & 0o077 or info.st_uid != os.geteuid():
        return
    with contextlib.suppress(OSError):
        for directory, subdirectories, files in os.walk(home):
            for name in [*subdirectories, *files]:
                _owner_only(Path(directory, name))
        _owner_only(home)  # last: an interrupted walk is tried again next time


def _owner_only(path: Path) -> None:
    """0755 -> 0700, 0644 -> 0600: group and others lose every bit, the owner keeps his."""
    with contextlib.suppress(OSError):
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and info.st_uid == os.geteuid():
            path.chmod(stat.S_IMODE(info.st_mode) & 0o700)


def sqlite_read_uri(path: Path) -> str:
    """A read-only SQLite URI for `path`. `mode=ro` needs the WAL index (`-shm`) or the right
    to create it beside the file; in a read-only home without one the file cannot have changed
    since its writer closed it cleanly, so it is opened `immutable` (nothing to lock)."""
    uri = f"file:{quote(str(path))}?mode=ro"
    shm = Path(f"{path}-shm")
    if not os.access(path.parent, os.W_OK) and not shm.exists():
        uri += "&immutable=1"
    return uri


@contextlib.contextmanager
def serve_lock(home: Path) -> Iterator[None]:
    """Hold `<home>/serve.lock` (an flock, with our PID in it) for the duration: a second
    `serve` on the same home is refused with `already_running` before it touches anything.
    The kernel drops the lock when the process dies, so a crash never leaves it stale."""
    create_home(home)
    fd = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
    deadline = time.monotonic() + 1.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            if holder or time.monotonic() > deadline:
                os.close(fd)
                raise AlreadyRunningError(
                    f"ticketing serve is already running on {home} (pid {holder or 'unknown'}); "
                    "stop it first, or use another --home",
                    pid=holder,
                ) from None
            time.sleep(0.05)  # no PID yet: a serve writing it, or `serving_pid` looking
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def serving_pid(home: Path) -> int | None:
    """The PID of the `ticketing serve` holding this home, or None when none does."""
    try:
        fd = os.open(home / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
