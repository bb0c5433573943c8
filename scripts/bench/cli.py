"""Benchmark: CLI start-up — what a person waits for at each `ticketing` call, next to the
interpreter's own start (`python -c pass`), the floor no CLI can go below.

Run as a file, never imported:

    .venv/bin/python scripts/bench/cli.py            # 15 runs of each call
    .venv/bin/python scripts/bench/cli.py --smoke    # 3 runs, for CI

In a fresh temporary data directory (SQLite), one account and one ticket are made, untimed,
through the CLI itself. Then, in `--runs` rounds (the calls in a different order each round,
so drift of the shared machine lands on all of them), each of these runs as a new process
and its wall time is taken (`time.perf_counter` around `subprocess.run`):

- `python -c pass`: the floor (the interpreter and site, nothing of ours);
- `ticketing --version` (aim: under 0.3 s);
- `ticketing show <8-digit prefix>`: a ticket read as text, prefix lookup included (aim: under
  0.3 s);
- `ticketing show <id> --json` and `ticketing --help` (information).

For each: the median, the fastest and the slowest run in seconds, and `over_floor_s`, the
median minus the floor's (what our imports and work cost). The aims are judged on the median.
One JSON object goes to stdout, progress to stderr, with the machine's load around the run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import aim, log, machine_load, run_context, temporary_root, ticketing_env

AIM_S = 0.3


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    ticketing = str(Path(sys.executable).parent / "ticketing")
    env = ticketing_env(root / "home")
    subprocess.run(
        [ticketing, "account", "create", "acme", "--name", "Acme"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ticket = subprocess.run(
        [ticketing, "open", "--account", "acme", "--requester", "b@acme.example", "--subject", "S"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    calls = {
        "floor_python_c_pass": [sys.executable, "-c", "pass"],
        "version": [ticketing, "--version"],
        "show_prefix_text": [ticketing, "show", ticket[:8]],
        "show_json": [ticketing, "show", ticket, "--json"],
        "help": [ticketing, "--help"],
    }
    for argv in calls.values():  # warm the file cache and .pyc files, untimed
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    shuffle = random.Random(7)
    for _ in range(args.runs):
        shuffle.shuffle(order)
        for name in order:
            times[name].append(timed(calls[name], env))
    floor = statistics.median(times["floor_python_c_pass"])
    results: dict[str, Any] = {}
    for name, samples in times.items():
        median = statistics.median(samples)
        results[name] = {
            "median_s": round(median, 3),
            "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3),
            "over_floor_s": round(median - floor, 3),
        }
    results["version"]["aim_under_s"] = aim(AIM_S, results["version"]["median_s"], False)
    results["show_prefix_text"]["aim_under_s"] = aim(
        AIM_S, results["show_prefix_text"]["median_s"], False
    )
    return {"bench": "cli", "runs": args.runs, "smoke": args.smoke, "calls": results}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="runs of each call (15)")
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI: 3 runs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs = 3
    if args.runs < 1:
        parser.error("--runs must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"bench cli: {args.runs} runs of each call")
    before = machine_load()
    with temporary_root("cli", keep=args.keep) as root:
        result = run(args, root)
    result["context"] = run_context(before, machine_load(), "click", "eventsourcing")
    calls = result["calls"]
    log(
        f"median: python -c pass {calls['floor_python_c_pass']['median_s']} s, --version "
        f"{calls['version']['median_s']} s, show {calls['show_prefix_text']['median_s']} s"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
