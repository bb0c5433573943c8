"""Properties of importing: a log has one outcome, however often and however it is imported.

Small random snapshot logs (a few cases; states, priorities, agents and categories drawn from
the mapping's values, times from a few minutes so that ties are common; in time or in file
order) are imported, then imported again: a second run, a `--restart` that repeats every
command, a run without progress files, and an import interrupted anywhere and resumed. None
may add or change an event, and the reports must count the same rows the same way, refused
ones included: a move refused the first time stays refused on every repeat, even where the
case's later rows have made it possible."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from tests.unit.test_importing import (
    HEADER,
    SNAPSHOT_MAPPING,
    history,
    outcome,
    run_import,
    write,
)
from ticketing.importing.mapping import ImportMapping, load_mapping
from ticketing.importing.runner import ProgressFile
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

CASES = ["C1", "C2", "C3"]

rows = st.tuples(
    st.sampled_from(CASES),
    st.sampled_from(["New", "Active", "Waiting", "Resolved", "Closed", "?"]),
    st.sampled_from(["P1", "P2", "P3", "?"]),
    st.sampled_from(["?", "Ann", "Bob"]),
    st.integers(min_value=0, max_value=3),  # minutes past ten: ties are common
    st.sampled_from(["Cat A", "Cat B"]),
)
logs = st.lists(rows, min_size=1, max_size=14)
orders = st.sampled_from(["time", "file"])


def write_log(root: Path, log: Sequence[tuple[str, str, str, str, int, str]], order: str) -> Path:
    lines = [
        f"{case},{state},{priority},Desk,{agent},01-03-2024 10:0{minute},?,Phone,{category},"
        f"User 1,Caller 7"
        for case, state, priority, agent, minute, category in log
    ]
    return write(root / f"desk-{order}.csv", "\n".join([HEADER, *lines]) + "\n")


def mapping_for(root: Path, order: str) -> ImportMapping:
    text = SNAPSHOT_MAPPING.replace('kind = "snapshot"', f'kind = "snapshot"\norder = "{order}"')
    return load_mapping(write(root / f"desk-{order}.toml", text))


def stored(service: CommandService) -> list[tuple[Any, ...]]:
    """Every stored record, byte for byte: equal lists mean nothing was added or changed."""
    return [
        (n.id, n.originator_id, n.originator_version, n.topic, n.state)
        for n in service.app.recorder.select_notifications(start=1, limit=100_000)
    ]


def refused_rows(report: Any) -> int:
    return sum(report.unmappable.values())


class SimulatedInterruptError(Exception):
    """Stands for Ctrl-C or a crash in the middle of an import."""


@given(log=logs, order=orders)
def test_running_an_import_again_or_restarting_it_changes_nothing(
    log: list[tuple[str, str, str, str, int, str]], order: str
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        mapping, path = mapping_for(root, order), write_log(root, log, order)
        service = build_command_service(Settings(event_store="memory"))
        progress = ProgressFile(root / "imports" / "desk.json")
        first = run_import(service, mapping, path, progress=progress)
        before = stored(service)
        again = run_import(service, mapping, path, progress=progress)
        restarted = run_import(service, mapping, path, progress=progress, restart=True)
        assert stored(service) == before
        assert again.cases_this_run == 0
        assert restarted.cases_this_run == first.cases
        assert outcome(again) == outcome(restarted) == outcome(first)
        # Without the refusals' reasons a row refused before is still refused (its stale
        # version is the reason then); nothing else changes.
        bare = run_import(service, mapping, path)
        assert stored(service) == before
        assert outcome(bare)[:6] == outcome(first)[:6]
        assert refused_rows(bare) == refused_rows(first)


@given(
    log=logs,
    order=orders,
    window=st.integers(min_value=1, max_value=3),
    stop_at=st.integers(min_value=1, max_value=30),
)
def test_an_import_interrupted_anywhere_resumes_to_the_same_outcome(
    log: list[tuple[str, str, str, str, int, str]], order: str, window: int, stop_at: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        mapping, path = mapping_for(root, order), write_log(root, log, order)
        whole = build_command_service(Settings(event_store="memory"))
        expected = run_import(whole, mapping, path, window=window)
        resumed = build_command_service(Settings(event_store="memory"))
        progress = ProgressFile(root / "imports" / "desk.json")
        sends = 0

        def failing(commands: Sequence[m.Command]) -> list[Reply]:
            nonlocal sends
            sends += 1
            if sends == stop_at:
                raise SimulatedInterruptError
            return resumed.execute_many(commands)

        with contextlib.suppress(SimulatedInterruptError):
            run_import(resumed, mapping, path, failing, progress=progress, window=window)
        final = run_import(resumed, mapping, path, progress=progress, window=window)
        assert final.finished
        for case in CASES:
            assert history(resumed, "desk", case) == history(whole, "desk", case)
        assert outcome(final) == outcome(expected)
