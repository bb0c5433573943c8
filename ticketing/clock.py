"""What time it is: the wall clock, or for drills and tests the instant in a clock file."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from ticketing.domain.clock import utc_now

Clock = Callable[[], datetime]


def clock_from(extra_env: Mapping[str, str]) -> Clock:
    """The wall clock, or the instant written in `TICKETING_CLOCK_FILE` (re-read on every call,
    so a test moves time by rewriting the file, never by sleeping)."""
    path = extra_env.get("TICKETING_CLOCK_FILE") or os.environ.get("TICKETING_CLOCK_FILE")
    if not path:
        return utc_now
    clock_file = Path(path)

    def file_clock() -> datetime:
        return datetime.fromisoformat(clock_file.read_text().strip())

    return file_clock
