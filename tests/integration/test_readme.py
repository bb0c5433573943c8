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


def test_quick_start_demo_walks_a_ticket_to_closed(tmp_path: Path) -> None:
    assert "make demo" in _block_after("## Quick start")
    result = subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "--home", str(tmp_path / "home"), "demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "TicketClosed" in result.stdout
    assert re.search(r"status\s+closed", result.stdout)
