"""Helpers shared by the benchmarks: machine load, aims, percentiles, and child processes of
the project.

Every benchmark prints one JSON object to stdout and its progress to stderr; `run_context`
adds the machine's load before and after (neighbours on the shared 2-core machine stretch
every wall-clock number). Files go under the system temporary directory (set TMPDIR to
measure another disk).

Run as a file, a script has this folder first on sys.path, so no file here is named after a
package of the project (`commands`, `projections`, `replay`, `ticketing`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commands import models as m
    from commands.replies import Reply
    from commands.service import CommandService


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
            cwd=home,
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


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def distribution_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def execute_checked(service: CommandService, group: Sequence[m.Command]) -> list[Reply]:
    """Run a setup group through the command service; a refused command ends the bench."""
    replies = service.execute_many(group)
    for reply in replies:
        if not reply.ok:
            raise RuntimeError(f"setup command failed: {reply.to_json()}")
    return replies


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser, described by its docstring's first line, with the two
    options every one has: `--smoke` (tiny sizes for CI) and `--keep` (its temporary root)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (< 60 s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


def bench_main(
    name: str,
    args: argparse.Namespace,
    headline: str,
    run: Callable[[argparse.Namespace, Path], dict[str, Any]],
) -> int:
    """Say what runs, run it in a fresh temporary root, log each aim, print the JSON result."""
    log(headline)
    with temporary_root(name, keep=args.keep) as root:
        result = run(args, root)
    for aim_name, entry in result["aims"].items():
        met = "met" if entry["met"] else "MISSED"
        log(f"{aim_name}: {entry['value']} (aim {entry['aim']}) {met}")
    print(json.dumps(result))
    return 0
