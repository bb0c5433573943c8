"""Benchmark: importing the real logs through the command path, grouped vs one commit each.

Run as a file, never imported (`import` is a keyword, so it could not be):

    .venv/bin/python scripts/bench/import.py                # both shared logs on SQLite
    .venv/bin/python scripts/bench/import.py --smoke        # 100 cases of each, for CI
    .venv/bin/python scripts/bench/import.py --chunk 50 --window 512

What is measured, in one process and one run, on the SQLite default store (`synchronous=FULL`):

- **grouped**: `ImportRunner` exactly as `ticketing import` runs it: the next command of up to
  `--window` cases goes to one `CommandService.execute_many` call (one store transaction per
  batch).
- **one_commit_per_command**: the same runner and the same commands, but its `send` calls
  `CommandService.execute` once per command (one transaction each): the core's plain rate, as
  `scripts/bench/command_path.py` measures it.

`commands_per_s` and `events_per_s` are the commands sent and the domain events they appended
(the replies' events) divided by the time spent inside `send`, that is in the command path;
reading and planning the file are left out there and reported once, for an uninterrupted
grouped import, as `end_to_end` (wall time of the whole run, file to last commit).

Why chunks: the rate of one-commit-per-command on our shared machines swings 3-4x within
seconds with the disk's fsync queue (the same 1,942 commands once took 5.0 s and then 1.35 s).
So each way imports into its own fresh store, `--chunk` cases at a time (resuming through its
progress file, as an interrupted import does), and the two alternate chunk by chunk, flipping
who goes first, so a slow spell costs both alike. One JSON object goes to stdout, progress to
stderr. SQLite files go under the system temporary directory (set TMPDIR to measure another
disk).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from commands import models as m
from commands.replies import Reply
from ticketing.importing.mapping import load_mapping
from ticketing.importing.runner import (
    DEFAULT_WINDOW,
    ImportReport,
    ImportRunner,
    ProgressFile,
    progress_path,
)
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EVENTLOGS = ROOT.parent / "shared" / "data" / "eventlogs"
LOGS = {
    "uci498": (
        EVENTLOGS / "uci498_sample" / "incident_event_log.csv",
        ROOT / "mappings" / "uci498_servicenow.toml",
    ),
    "helpdesk": (
        EVENTLOGS / "helpdesk_tax2017" / "data" / "helpdesk.csv",
        ROOT / "mappings" / "helpdesk_tax2017.toml",
    ),
}

Send = Callable[[Sequence[m.Command]], list[Reply]]
WAYS = ("grouped", "one_commit_per_command")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class TimedSend:
    """Wraps a `send`: counts commands and appended events and the time spent inside."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.commands = 0
        self.events = 0
        self.seconds = 0.0

    def __call__(self, commands: Sequence[m.Command]) -> list[Reply]:
        started = time.perf_counter()
        replies = self.send(commands)
        self.seconds += time.perf_counter() - started
        self.commands += len(commands)
        self.events += sum(len(r.events) for r in replies if r.ok)
        return replies


class Way:
    """One way of sending, on its own fresh store, importing a chunk of cases at a time."""

    def __init__(self, name: str, path: Path, mapping_path: Path, window: int) -> None:
        self.name = name
        self.home = Path(tempfile.mkdtemp(prefix=f"bench-import-{name}-"))
        self.service = build_command_service(Settings(home=self.home))
        plain = self.service.execute_many if name == "grouped" else self._one_at_a_time
        self.send = TimedSend(plain)
        self.path, self.mapping, self.window = path, load_mapping(mapping_path), window
        self.progress = ProgressFile(progress_path(self.home, self.mapping.source.name))
        self.report: ImportReport | None = None

    def _one_at_a_time(self, commands: Sequence[m.Command]) -> list[Reply]:
        return [self.service.execute(command) for command in commands]

    @property
    def cases_done(self) -> int:
        return 0 if self.report is None else self.report.cases_done

    def chunk(self, cases: int) -> None:
        runner = ImportRunner(
            self.mapping,
            self.path,
            self.send,
            progress=self.progress,
            window=self.window,
            max_cases=cases,
        )
        self.report = runner.run()

    def close(self) -> None:
        self.service.app.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def rates(self) -> dict[str, float]:
        send = self.send
        return {
            "send_seconds": round(send.seconds, 3),
            "commands_per_s": round(send.commands / send.seconds, 1),
            "events_per_s": round(send.events / send.seconds, 1),
        }


def end_to_end(path: Path, mapping_path: Path, cases: int | None, window: int) -> dict[str, Any]:
    """One uninterrupted grouped import, file to last commit (also warms the caches)."""
    home = Path(tempfile.mkdtemp(prefix="bench-import-e2e-"))
    service = build_command_service(Settings(home=home))
    try:
        runner = ImportRunner(
            load_mapping(mapping_path), path, service.execute_many, window=window, max_cases=cases
        )
        started = time.perf_counter()
        report = runner.run()
        seconds = time.perf_counter() - started
    finally:
        service.app.close()
        shutil.rmtree(home, ignore_errors=True)
    return {
        "seconds": round(seconds, 3),
        "rows_per_s": round(report.rows / seconds, 1) if cases is None else None,
        "commands_per_s": round(report.commands_this_run / seconds, 1),
        "events_per_s": round(report.events_this_run / seconds, 1),
    }


def bench_log(
    name: str, path: Path, mapping_path: Path, cases: int | None, window: int, chunk: int
) -> dict[str, Any]:
    whole = end_to_end(path, mapping_path, cases, window)
    log(f"{name} end to end (grouped): {whole['seconds']:.2f} s")
    ways = [Way(way, path, mapping_path, window) for way in WAYS]
    try:
        number = 0
        while True:
            target = min(ways[0].cases_done + chunk, cases if cases is not None else math.inf)
            pending = [w for w in ways if w.report is None or not w.report.finished]
            pending = [w for w in pending if w.cases_done < target]
            if not pending:
                break
            for way in pending if number % 2 == 0 else pending[::-1]:
                way.chunk(int(target) - way.cases_done)
            number += 1
            if number % 10 == 0 or not any(w.report and not w.report.finished for w in ways):
                log(
                    f"{name}: {ways[0].cases_done} cases; "
                    + ", ".join(f"{w.name} {w.rates()['commands_per_s']:.0f}/s" for w in ways)
                )
        grouped, plain = ways
        assert grouped.report is not None and plain.report is not None
        if (grouped.send.commands, grouped.send.events) != (plain.send.commands, plain.send.events):
            raise RuntimeError("the two ways sent different commands")
        report = grouped.report
        return {
            "cases": report.cases_done,
            "rows": report.rows if cases is None else None,
            "commands": grouped.send.commands,
            "events": grouped.send.events,
            "unmappable": report.unmappable,
            "end_to_end": whole,
            "grouped": grouped.rates(),
            "one_commit_per_command": plain.rates(),
            "speedup": round(
                grouped.rates()["commands_per_s"] / plain.rates()["commands_per_s"], 2
            ),
        }
    finally:
        for way in ways:
            way.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, help="only the first N cases of each log (all)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="cases per batch")
    parser.add_argument(
        "--chunk", type=int, default=100, help="cases per turn before the other way goes (100)"
    )
    parser.add_argument("--smoke", action="store_true", help="100 cases of each log")
    parser.add_argument("--logs", nargs="+", choices=sorted(LOGS), default=list(LOGS))
    args = parser.parse_args(argv)
    if args.smoke:
        args.cases, args.chunk = 100, 50
    if args.chunk < 1 or args.window < 1 or (args.cases is not None and args.cases < 1):
        parser.error("--chunk, --window and --cases must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(LOGS[name][0]) for name in args.logs if not LOGS[name][0].is_file()]
    if missing:
        log(f"missing shared data (see ../shared/data/eventlogs/*/SOURCE.txt): {missing}")
        return 2
    log(
        f"bench import: {', '.join(args.logs)} on sqlite, window {args.window}, chunks of "
        f"{args.chunk} cases, {'all' if args.cases is None else args.cases} cases each"
    )
    result = {
        "benchmark": "import",
        "store": "sqlite",
        "window": args.window,
        "chunk": args.chunk,
        "logs": {
            name: bench_log(name, *LOGS[name], args.cases, args.window, args.chunk)
            for name in args.logs
        },
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
