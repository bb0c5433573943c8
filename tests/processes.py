"""Real processes for integration and fault tests: start `ticketing run …`, wait, kill by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


def ticketing_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NATS_URL"}
    env.update({"TICKETING_HOME": str(home), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def start_ticketing(
    home: Path, *args: str, log_name: str | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run `ticketing <args>` as a separate process, output to a log file under `home`;
    `env` adds variables (TICKETING_CLOCK_FILE, TICKETING_TRIGGERS, …)."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"{log_name or '-'.join(args)}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "ticketing.cli", *args],
        env=ticketing_env(home, **(env or {})),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process


def run_cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `ticketing …` command on `home` in a child process, as an operator's shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ticketing.cli", *args],
        env=ticketing_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def process_running(pid: int) -> bool:
    """Alive and not a zombie (a test is often not the parent, so it cannot reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM and wait (SIGKILL after `timeout`)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL by PID: no cleanup, no flush, as in a crash."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
