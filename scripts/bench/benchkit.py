"""Helpers shared by the benchmarks: machine load, aims, and child processes of the project.

Scripts put this folder at the END of sys.path (never first: its commands.py would shadow the
project's `commands` package) and import from here."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any


def log(message: str) -> None:
    """Progress to stderr: stdout carries only the JSON result."""
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def temporary_root(name: str, *, keep: bool) -> Iterator[Path]:
    """One run's fresh temporary directory, removed afterwards unless `keep`. SIGTERM unwinds
    like Ctrl-C, so every `finally` inside (stores, processes, servers) runs first."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield root
    finally:
        if keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def machine_load() -> dict[str, float | None]:
    """Load average and CPU pressure (Linux PSI: share of time runnable tasks waited for a
    CPU): our neighbours on a shared machine move the absolute numbers a lot."""
    pressure = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        pressure = float(dict(f.split("=") for f in line.split()[1:])["avg60"])
    return {"load_1m": round(os.getloadavg()[0], 2), "cpu_pressure_some_avg60_pct": pressure}


def run_context(
    load_before: dict[str, float | None],
    load_after: dict[str, float | None],
    *packages: str,
    sqlite: bool = False,
) -> dict[str, Any]:
    """What a result was measured on: the machine's load around the run, Python and the
    `packages`' versions (keys with `_` for `-`), SQLite's when it matters, and the cores."""
    return {
        "machine": {"before": load_before, "after": load_after},
        "python": platform.python_version(),
        **{name.replace("-", "_"): version(name) for name in packages},
        **({"sqlite": sqlite3.sqlite_version} if sqlite else {}),
        "cpus": os.cpu_count(),
    }


def aim(target: float, value: float, higher_is_better: bool = True) -> dict[str, Any]:
    met = value >= target if higher_is_better else value <= target
    return {"aim": target, "value": round(value, 3), "met": met}


def ticketing_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("NATS_URL", "TICKETING_NATS_CREDENTIALS")
    }
    env.update(TICKETING_HOME=str(home), TICKETING_EVENT_STORE="sqlite", PYTHONUNBUFFERED="1")
    return env


def start_process(home: Path, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
    """Start a child in its own session, output to a log file under `home`."""
    log_file = (home / f"{log_name}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            env=ticketing_env(home),
            cwd=home,  # never this folder: its commands.py would shadow the package
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log_file.close()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM by PID and wait; SIGKILL if it hangs."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(5)


def log_tail(home: Path, log_name: str, size: int | None = 2000) -> str:
    path = home / f"{log_name}.log"
    if not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace")
    return text if size is None else text[-size:]
