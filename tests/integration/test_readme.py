"""The README's synopsis and quick start are executed, so they stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.integration


def _block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"no sh block after {heading!r}"
    return match.group(1)


def _env(tmp_path: Path) -> dict[str, str]:
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{scripts}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}


def test_readme_synopsis_runs_and_ends_with_a_closed_rated_ticket(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + _block_after("## Synopsis")
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert '"TicketClosed"' in result.stdout
    assert "rating        5/5 'Fast and clear'" in result.stdout
    assert "TicketReopened" not in result.stdout
    assert "pending -> open (customer_replied)" in result.stdout


def test_quick_start_demo_runs_the_whole_stack_and_stops_it(tmp_path: Path) -> None:
    assert "make demo" in _block_after("## Quick start")
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "--home", str(home), "demo", "--tickets", "25"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for process in ("command-service", "relay", "queue-projector", "analytics-projector"):
        assert re.search(rf"^{process}\s+pid \d+", out, re.M), process
    assert "projections caught up with stream sequence" in out
    assert re.search(r"^TICKET\s+PRIORITY\s+STATUS", out, re.M)
    assert re.search(r"^all\s+first_reply\s+\d+", out, re.M)
    assert "published the SLA policy in sla.example.toml" in out
    assert "no SLA clocks yet" not in out
    assert "did not stop" not in out
    assert re.search(r"^stopped$", out, re.M)
    assert not (home / "nats" / "server.json").exists()  # the embedded server was stopped
