"""The importer on small logs written here: mapping validation, the traps of real data,
idempotency, resuming, --strict, gzip and XES."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from projections.queue.store import fold_ticket
from ticketing.domain.events import event_payload
from ticketing.importing.mapping import ImportMapping, MappingError, load_mapping
from ticketing.importing.plan import case_ticket_id
from ticketing.importing.readers import SourceError
from ticketing.importing.runner import (
    FailureLimit,
    ImportFailedError,
    ImportReport,
    ImportRunner,
    ProgressFile,
    progress_path,
)
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

SNAPSHOT_MAPPING = """
[source]
name = "desk"
kind = "snapshot"
null_values = ["?", ""]

[case]
column = "number"

[time]
column = "updated"
formats = ["%d-%m-%Y %H:%M"]

[opened]
column = "opened"
formats = ["%d-%m-%Y %H:%M"]

[actor]
column = "updated_by"

[account]
id = "desk"
name = "Desk export"

[ticket]
requester = "{caller|slug}@callers.invalid"
subject = "{number}: {category}"

[status]
column = "state"
[status.map]
"New" = "new"
"Active" = "open"
"Waiting" = "pending"
"Resolved" = "solved"
"Closed" = "closed"

[priority]
column = "priority"
[priority.map]
"P1" = "urgent"
"P2" = "normal"
"P3" = "low"

[channel]
column = "channel"
default = "web"
map = { "Phone" = "phone" }

[category]
column = "category"
default = "incident"
tag_prefix = "category:"

[team]
column = "group"
slug = true

[agent]
column = "agent"
slug = true
"""

HEADER = "number,state,priority,group,agent,updated,opened,channel,category,updated_by,caller"

# Every trap of real exports, in a few rows: a duplicated row, '?' as null, a tie in time, a
# change after closing, a state going backwards, an unknown value, a bad date, a row without
# a case, and a ticket that never closes.
SNAPSHOT_ROWS = [
    "T1,New,P2,Desk,?,01-03-2024 09:00,01-03-2024 08:55,Phone,Cat A,User 1,Caller 7",
    "T1,New,P2,Desk,?,01-03-2024 09:00,01-03-2024 08:55,Phone,Cat A,User 1,Caller 7",
    "T1,Active,P2,Desk,Ann Lee,01-03-2024 09:30,01-03-2024 08:55,Phone,Cat A,User 2,Caller 7",
    "T1,Resolved,P2,Desk,Ann Lee,01-03-2024 10:00,01-03-2024 08:55,Phone,Cat A,User 2,Caller 7",
    "T1,Active,P2,Desk,Ann Lee,01-03-2024 10:00,01-03-2024 08:55,Phone,Cat B,User 2,Caller 7",
    "T1,Resolved,P1,Desk,Bob,01-03-2024 11:00,01-03-2024 08:55,Phone,Cat B,User 3,Caller 7",
    "T1,Closed,P1,Desk,Bob,02-03-2024 11:00,01-03-2024 08:55,Phone,Cat B,?,Caller 7",
    "T1,Closed,P3,Desk,Bob,03-03-2024 11:00,01-03-2024 08:55,Phone,Cat B,?,Caller 7",
    "T2,Active,?,Net,?,01-03-2024 12:00,?,Email,?,User 4,Caller 8",
    "T2,New,?,Net,?,01-03-2024 13:00,?,Email,?,User 4,Caller 8",
    "T2,Active,P9,Net,?,01-03-2024 14:00,?,Email,?,User 4,Caller 8",
    "T2,Waiting,P2,Net,?,someday,?,Email,?,User 4,Caller 8",
    "?,Active,P2,Net,?,01-03-2024 15:00,?,Email,?,User 4,Caller 9",
    "T3,New,P3,?,?,04-03-2024 08:00,04-03-2024 08:00,Phone,Cat A,User 5,Caller 9",
]

ACTIVITY_MAPPING = """
[source]
name = "flow"
kind = "activity"

[case]
column = "case"

[time]
column = "time"

[actor]
column = "resource"

[account]
column = "org"
id = "no-org"

[activity]
column = "activity"
[activity.map.register]
action = "open"
label = "registered"
[activity.map.take]
action = "status"
status = "open"
[activity.map.ask]
action = "status"
status = "pending"
[activity.map.answer]
action = "reply"
label = "Here is what we found"
[activity.map.customer]
action = "customer_reply"
body = "Customer wrote about {case}"
[activity.map.solve]
action = "status"
status = "solved"
[activity.map.noise]
action = "ignore"
"""

ACTIVITY_ROWS = [
    "case,activity,time,resource,org",
    "A1,register,2024-03-01T09:00:00,Alice,Acme Corp",
    "A1,take,2024-03-01T09:05:00,Alice,Acme Corp",
    "A1,answer,2024-03-01T09:07:00,Alice,Acme Corp",
    "A1,ask,2024-03-01T09:10:00,Alice,Acme Corp",
    "A1,customer,2024-03-01T10:00:00,,Acme Corp",
    "A1,solve,2024-03-01T11:00:00,Alice,Acme Corp",
    "A1,customer,2024-03-01T12:00:00,,Acme Corp",
    "A1,register,2024-03-01T12:30:00,Alice,Acme Corp",
    "A1,noise,2024-03-01T12:40:00,Alice,Acme Corp",
    "A1,mystery,2024-03-01T13:00:00,Alice,Acme Corp",
    "A2,take,2024-03-02T09:00:00+01:00,Bob,",
    "A2,solve,2024-03-02T09:30:00+01:00,Bob,",
]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def snapshot_log(tmp_path: Path, rows: Sequence[str] = SNAPSHOT_ROWS) -> Path:
    return write(tmp_path / "desk.csv", "\n".join([HEADER, *rows]) + "\n")


def snapshot_mapping(tmp_path: Path, text: str = SNAPSHOT_MAPPING) -> ImportMapping:
    return load_mapping(write(tmp_path / "desk.toml", text))


def run_import(
    service: CommandService,
    mapping: ImportMapping,
    path: Path,
    send: Callable[[Sequence[m.Command]], list[Reply]] | None = None,
    **options: Any,
) -> ImportReport:
    return ImportRunner(mapping, path, send or service.execute_many, **options).run()


def history(service: CommandService, source: str, case: str) -> list[dict[str, Any]]:
    """A ticket's events without what differs between two runs (record times, salts)."""
    volatile = {"recorded_at", "previous_hash", "event_hash", "body_commitment", "body_salt"}
    events = service.app.events.get(case_ticket_id(source, case))
    return [{k: v for k, v in event_payload(e).items() if k not in volatile} for e in events]


def notification_count(service: CommandService) -> int:
    return int(service.app.recorder.max_notification_id() or 0)


# --- the mapping file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (('"P1" = "urgent"', '"P1" = "critical"'), "priority.map.P1: Input should be"),
        (('kind = "snapshot"', 'kind = "snapshot"\nnmae = "x"'), "source.nmae: Extra inputs"),
        (('name = "desk"', 'name = "Desk Export"'), "source.name: String should match"),
        (('null_values = ["?", ""]', 'time_zone = "Mars/Olympus"'), "source.time_zone: unknown"),
        (
            ('formats = ["%d-%m-%Y %H:%M"]\n\n[opened]', 'formats = ["dd-mm"]\n\n[opened]'),
            "time.formats",
        ),
        (('kind = "snapshot"', 'kind = "activity"'), "activity: an activity log needs"),
        (('subject = "{number}: {category}"', 'subject = "{number"'), "ticket.subject: "),
        (('[team]\ncolumn = "group"', '[team]\ncolum = "group"'), "team.column: Field required"),
        (('"Active" = "open"', '"Active" = "working"'), "status.map.Active: Input should be"),
    ],
)
def test_a_bad_mapping_is_a_validation_error_naming_the_field(
    tmp_path: Path, change: tuple[str, str], names: str
) -> None:
    old, new = change
    assert old in SNAPSHOT_MAPPING
    with pytest.raises(MappingError) as raised:
        snapshot_mapping(tmp_path, SNAPSHOT_MAPPING.replace(old, new, 1))
    assert names in str(raised.value)
    assert str(tmp_path / "desk.toml") in str(raised.value)


def test_an_activity_rule_without_its_status_names_the_activity(tmp_path: Path) -> None:
    text = ACTIVITY_MAPPING.replace('action = "status"\nstatus = "open"', 'action = "status"')
    with pytest.raises(MappingError, match=r"activity\.map\.take: action 'status' needs"):
        load_mapping(write(tmp_path / "flow.toml", text))


def test_a_mapping_that_is_not_toml_says_so(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="not valid TOML"):
        load_mapping(write(tmp_path / "bad.toml", "[source\nname = 1"))


def test_a_column_the_file_lacks_is_named_before_anything_is_sent(
    tmp_path: Path, memory_service: CommandService
) -> None:
    mapping = snapshot_mapping(
        tmp_path, SNAPSHOT_MAPPING.replace('column = "group"', 'column = "grp"')
    )
    sent: list[m.Command] = []

    def send(commands: Sequence[m.Command]) -> list[Reply]:
        sent.extend(commands)
        return memory_service.execute_many(commands)

    with pytest.raises(MappingError, match=r"team\.column: the file has no column 'grp'"):
        run_import(memory_service, mapping, snapshot_log(tmp_path), send)
    assert sent == []


def test_a_category_outside_the_taxonomy_is_named(
    tmp_path: Path, memory_service: CommandService
) -> None:
    mapping = snapshot_mapping(tmp_path, SNAPSHOT_MAPPING.replace('"incident"', '"incidents"'))
    with pytest.raises(MappingError, match=r"category\.default: 'incidents' is not in the"):
        run_import(memory_service, mapping, snapshot_log(tmp_path))


# --- snapshot logs and their traps ---------------------------------------------------------


def test_unmappable_rows_are_counted_by_reason_and_every_row_once(
    tmp_path: Path, memory_service: CommandService
) -> None:
    report = run_import(memory_service, snapshot_mapping(tmp_path), snapshot_log(tmp_path))
    assert report.finished
    assert report.rows == len(SNAPSHOT_ROWS)
    assert (report.cases, report.tickets) == (3, 3)
    assert report.skipped == {"duplicate_row": 1}
    assert report.unmappable == {
        "ticket_closed": 1,  # T1 changes priority after it was closed
        "invalid_transition": 1,  # T2 goes back from open to new
        "unmapped_value": 1,  # P9 is in no map
        "bad_time": 1,  # 'someday'
        "missing_case": 1,  # '?' as the case id
    }
    counted = report.rows_imported + report.rows_unchanged + 1 + report.unmappable_rows
    assert counted == report.rows
    assert any("P9" in example for example in report.examples["unmapped_value"])


def test_consecutive_rows_become_commands_with_their_historical_times(
    tmp_path: Path, memory_service: CommandService
) -> None:
    run_import(memory_service, snapshot_mapping(tmp_path), snapshot_log(tmp_path))
    ticket = memory_service.load_ticket(case_ticket_id("desk", "T1"))
    assert (ticket.status, ticket.priority, ticket.team, ticket.agent) == (
        "closed",
        "urgent",  # the P3 after closing was refused
        "desk",
        "bob",
    )
    assert ticket.reopen_count == 1
    assert ticket.tags == ["category:cat-b"]
    assert ticket.category == "incident"
    assert ticket.channel == "phone"
    assert ticket.requester == "caller-7@callers.invalid"
    events = history(memory_service, "desk", "T1")
    moments = [(e["type"], e["occurred_at"][11:16]) for e in events]
    assert moments[:4] == [
        ("TicketOpened", "08:55"),  # opened_at, earlier than the first update
        ("TicketAssigned", "09:00"),
        ("TicketAssigned", "09:30"),
        ("StatusChanged", "09:30"),
    ]
    # Two rows at 10:00, in file order: solved; then the category changes and it reopens
    # (a row's field changes come before its status move).
    assert [t for t, at in moments if at == "10:00"] == [
        "TicketResolved",
        "TicketTagged",
        "TicketUntagged",
        "TicketReopened",
    ]
    actors = {e["actor"]["id"] for e in events}
    assert {"user-1", "user-2", "user-3", "import-desk"} <= actors
    assert all(e["command_id"].startswith("import:desk:T1") for e in events)


def test_a_tie_in_time_keeps_file_order(tmp_path: Path, memory_service: CommandService) -> None:
    run_import(memory_service, snapshot_mapping(tmp_path), snapshot_log(tmp_path))
    at_ten = [
        e["type"]
        for e in history(memory_service, "desk", "T1")
        if e["occurred_at"].startswith("2024-03-01T10:00")
    ]
    assert at_ten.index("TicketResolved") < at_ten.index("TicketReopened")


def test_a_ticket_that_never_closes_stays_where_its_log_left_it(
    tmp_path: Path, memory_service: CommandService
) -> None:
    run_import(memory_service, snapshot_mapping(tmp_path), snapshot_log(tmp_path))
    assert memory_service.load_ticket(case_ticket_id("desk", "T3")).status == "new"
    two = memory_service.load_ticket(case_ticket_id("desk", "T2"))
    assert (two.status, two.priority, two.tags) == ("open", "normal", [])


# --- idempotency, resuming, strictness -----------------------------------------------------


def test_a_second_import_appends_nothing(tmp_path: Path) -> None:
    service = build_command_service(Settings(home=tmp_path / "home"))
    mapping, log = snapshot_mapping(tmp_path), snapshot_log(tmp_path)
    progress = ProgressFile(progress_path(tmp_path / "home", "desk"))
    try:
        first = run_import(service, mapping, log, progress=progress)
        stored = notification_count(service)
        again = run_import(service, mapping, log, progress=progress)
        assert again.cases_this_run == 0
        assert notification_count(service) == stored
        progress.clear()  # without it, every command is repeated and answered from its record
        repeated = run_import(service, mapping, log, progress=progress)
        assert repeated.cases_this_run == 3
        assert notification_count(service) == stored
        for report in (again, repeated):
            assert (report.tickets, report.events, report.unmappable) == (
                first.tickets,
                first.events,
                first.unmappable,
            )
    finally:
        service.app.close()


class SimulatedInterruptError(Exception):
    """Stands for Ctrl-C or a crash in the middle of an import."""


def test_an_interrupted_import_resumes_to_the_same_end_state(tmp_path: Path) -> None:
    mapping, log = snapshot_mapping(tmp_path), snapshot_log(tmp_path)
    whole = build_command_service(Settings(event_store="memory"))
    run_import(whole, mapping, log)
    resumed = build_command_service(Settings(home=tmp_path / "resumed"))
    progress = ProgressFile(tmp_path / "resumed" / "imports" / "desk.json")
    sends = 0

    def failing(commands: Sequence[m.Command]) -> list[Reply]:
        nonlocal sends
        sends += 1
        if sends == 3:  # the third command of case T2
            raise SimulatedInterruptError
        return resumed.execute_many(commands)

    try:
        stopped = run_import(resumed, mapping, log, progress=progress, max_cases=1, window=1)
        assert not stopped.finished
        assert (stopped.cases_done, progress.load()["cases_done"]) == (1, 1)
        with pytest.raises(SimulatedInterruptError):
            run_import(resumed, mapping, log, failing, progress=progress, window=1)
        assert progress.load()["cases_done"] == 1  # case 2 was cut off halfway
        final = run_import(resumed, mapping, log, progress=progress, window=1)
        assert final.finished and final.resumed_at == 1
        for case in ("T1", "T2", "T3"):
            assert history(resumed, "desk", case) == history(whole, "desk", case)
        assert final.unmappable == run_import(whole, mapping, log).unmappable
    finally:
        resumed.app.close()


# A tie in time: solved at 10:00, then put to waiting at 10:00 (refused: solved -> pending),
# then active at 10:00 (a reopen). Against the reopened ticket the waiting row would pass.
TIED_REFUSAL_ROWS = [
    "T9,New,P2,Desk,?,01-03-2024 09:00,01-03-2024 08:55,Phone,Cat A,User 1,Caller 7",
    "T9,Resolved,P2,Desk,?,01-03-2024 10:00,01-03-2024 08:55,Phone,Cat A,User 1,Caller 7",
    "T9,Waiting,P2,Desk,?,01-03-2024 10:00,01-03-2024 08:55,Phone,Cat A,User 1,Caller 7",
    "T9,Active,P2,Desk,?,01-03-2024 10:00,01-03-2024 08:55,Phone,Cat A,User 1,Caller 7",
]
TIED_REFUSAL_EVENTS = ["TicketOpened", "TicketAssigned", "TicketResolved", "TicketReopened"]


def outcome(report: ImportReport) -> tuple[Any, ...]:
    """What a report says about the rows and the store, leaving out this run's own figures."""
    return (
        report.tickets,
        report.commands,
        report.events,
        report.rows_imported,
        report.rows_unchanged,
        report.skipped,
        report.unmappable,
        report.examples,
    )


def test_a_restart_keeps_a_refused_row_refused_when_later_rows_moved_the_ticket(
    tmp_path: Path,
) -> None:
    service = build_command_service(Settings(home=tmp_path / "home"))
    mapping, log = snapshot_mapping(tmp_path), snapshot_log(tmp_path, TIED_REFUSAL_ROWS)
    progress = ProgressFile(progress_path(tmp_path / "home", "desk"))
    try:
        first = run_import(service, mapping, log, progress=progress)
        events = history(service, "desk", "T9")
        assert [e["type"] for e in events] == TIED_REFUSAL_EVENTS
        assert first.unmappable == {"invalid_transition": 1}
        assert first.examples["invalid_transition"] == [
            "line 4 (case T9): change_status: a ticket cannot go from solved to pending"
        ]
        restarted = run_import(service, mapping, log, progress=progress, restart=True)
        assert restarted.cases_this_run == 1
        assert history(service, "desk", "T9") == events
        assert outcome(restarted) == outcome(first)
        # Without the progress files the row is still refused, as the stale version it had.
        progress.clear()
        bare = run_import(service, mapping, log, progress=progress)
        assert history(service, "desk", "T9") == events
        assert (bare.events, bare.rows_imported, bare.unmappable) == (
            first.events,
            first.rows_imported,
            {"version_conflict": 1},
        )
    finally:
        service.app.close()


def test_restart_on_the_command_line_reproduces_the_first_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log = str(snapshot_log(tmp_path, TIED_REFUSAL_ROWS))
    mapping = str(write(tmp_path / "desk.toml", SNAPSHOT_MAPPING))
    # One refused row of four is over the default limit of 5%: allow it.
    allow = ("--max-failures", "1")
    first = _ticketing(home, "import", log, "--mapping", mapping, "--json", *allow)
    assert first.returncode == 0, first.stderr
    service = build_command_service(Settings(home=home))
    try:
        stored = notification_count(service)
        events = history(service, "desk", "T9")
    finally:
        service.app.close()
    again = _ticketing(home, "import", log, "--mapping", mapping, "--restart", "--json", *allow)
    assert again.returncode == 0, again.stderr
    service = build_command_service(Settings(home=home))
    try:
        assert (notification_count(service), history(service, "desk", "T9")) == (stored, events)
    finally:
        service.app.close()
    keys = ("events", "commands", "rows_imported", "unmappable", "examples")
    reports = [json.loads(result.stdout) for result in (first, again)]
    assert [{k: r[k] for k in keys} for r in reports] == [
        {
            "events": len(TIED_REFUSAL_EVENTS),
            "commands": 4,
            "rows_imported": 3,
            "unmappable": {"invalid_transition": 1},
            "examples": {
                "invalid_transition": [
                    "line 4 (case T9): change_status: a ticket cannot go from solved to pending"
                ]
            },
        }
    ] * 2
    assert reports[1]["cases_this_run"] == 1


def test_strict_stops_at_the_first_row_that_cannot_be_imported(
    tmp_path: Path, memory_service: CommandService
) -> None:
    rows = [r for r in SNAPSHOT_ROWS if r.startswith(("T1", "T3"))]
    with pytest.raises(ImportFailedError) as raised:
        run_import(
            memory_service,
            snapshot_mapping(tmp_path),
            snapshot_log(tmp_path, rows),
            strict=True,
        )
    assert raised.value.code == "ticket_closed"
    assert "line 9 (case T1)" in raised.value.message


def test_strict_on_the_command_line_fails_with_one_line(tmp_path: Path) -> None:
    rows = [r for r in SNAPSHOT_ROWS if r.startswith("T2")][:2]
    result = _ticketing(
        tmp_path / "home",
        "import",
        str(snapshot_log(tmp_path, rows)),
        "--mapping",
        str(write(tmp_path / "desk.toml", SNAPSHOT_MAPPING)),
        "--strict",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: invalid_transition: line 3 (case T2): change_status: "
        "a ticket cannot go from open to new"
    ]


def test_a_bad_mapping_on_the_command_line_names_the_field(tmp_path: Path) -> None:
    bad = write(tmp_path / "desk.toml", SNAPSHOT_MAPPING.replace('"P3" = "low"', '"P3" = "lo"'))
    result = _ticketing(
        tmp_path / "home", "import", str(snapshot_log(tmp_path)), "--mapping", str(bad)
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: mapping_error: ")
    assert "priority.map.P3: Input should be" in result.stderr


def _ticketing(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    return subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


# --- other inputs and log shapes -----------------------------------------------------------


def test_gzip_input_imports_like_plain_csv_whatever_its_name(tmp_path: Path) -> None:
    plain = snapshot_log(tmp_path)
    reports = []
    for name in ("desk.csv.gz", "desk-gzipped.csv"):
        packed = tmp_path / name
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        service = build_command_service(Settings(event_store="memory"))
        reports.append(run_import(service, snapshot_mapping(tmp_path), packed))
    service = build_command_service(Settings(event_store="memory"))
    reports.append(run_import(service, snapshot_mapping(tmp_path), plain))
    summaries = [
        (r.rows, r.tickets, r.events, r.skipped, r.unmappable, r.rows_imported) for r in reports
    ]
    assert summaries[0] == summaries[1] == summaries[2]


def test_activity_rules_open_move_comment_and_reopen(
    tmp_path: Path, memory_service: CommandService
) -> None:
    mapping = load_mapping(write(tmp_path / "flow.toml", ACTIVITY_MAPPING))
    log = write(tmp_path / "flow.csv", "\n".join(ACTIVITY_ROWS) + "\n")
    report = run_import(memory_service, mapping, log)
    assert report.unmappable == {"unknown_activity": 1}
    assert memory_service.load_account("acme-corp").name == "Acme Corp"
    one = memory_service.load_ticket(case_ticket_id("flow", "A1"))
    assert (one.account_id, one.status, one.reopen_count) == ("acme-corp", "open", 1)
    assert [(c["visibility"], c["author"]["kind"], c["body"]) for c in one.comments] == [
        ("public", "agent", "Here is what we found"),
        ("public", "customer", "Customer wrote about A1"),
        ("public", "customer", "Customer wrote about A1"),
        ("internal", "agent", "registered"),  # `open` repeated later is a note
    ]
    types = [e["type"] for e in history(memory_service, "flow", "A1")]
    assert types.count("TicketReopened") == 1  # the customer's reply on a solved ticket
    two = memory_service.load_ticket(case_ticket_id("flow", "A2"))
    assert (two.account_id, two.status) == ("no-org", "solved")  # opened by a `take` row
    assert two.opened_at == datetime(2024, 3, 2, 8, 0, tzinfo=UTC)  # +01:00 read as such


def test_accounts_exist_before_the_first_ticket(
    tmp_path: Path, memory_service: CommandService
) -> None:
    mapping = load_mapping(write(tmp_path / "flow.toml", ACTIVITY_MAPPING))
    run_import(memory_service, mapping, write(tmp_path / "flow.csv", "\n".join(ACTIVITY_ROWS)))
    topics = [
        n.topic.rsplit(":", 1)[-1]
        for n in memory_service.app.recorder.select_notifications(start=1, limit=1000)
    ]
    domain = [t for t in topics if t in ("AccountRegistered", "TicketOpened")]
    assert domain == ["AccountRegistered"] * 2 + ["TicketOpened"] * 2


XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <global scope="event"><string key="concept:name" value="__INVALID__"/></global>
  <trace>
    <event>
      <string key="concept:name" value="register"/>
      <date key="time:timestamp" value="2024-03-01T09:00:00.000+01:00"/>
      <string key="org:resource" value="Alice"/>
      <list key="tags"><string key="tag" value="ignored"/></list>
    </event>
    <event>
      <string key="concept:name" value="take"/>
      <date key="time:timestamp" value="2024-03-01T09:05:00.000+01:00"/>
      <string key="org:resource" value="Alice"/>
    </event>
    <string key="concept:name" value="case-1"/>
    <string key="org" value="Acme Corp"/>
  </trace>
  <trace>
    <string key="concept:name" value="case-2"/>
    <event>
      <string key="concept:name" value="take"/>
      <date key="time:timestamp" value="2024-03-02T10:00:00Z"/>
    </event>
    <event>
      <string key="concept:name" value="solve"/>
      <date key="time:timestamp" value="2024-03-02T11:00:00Z"/>
      <string key="org:resource" value="Bob"/>
    </event>
  </trace>
</log>
"""

XES_MAPPING = (
    ACTIVITY_MAPPING.replace('column = "case"', 'column = "case:concept:name"')
    .replace('column = "time"', 'column = "time:timestamp"')
    .replace('column = "resource"', 'column = "org:resource"')
    .replace('column = "org"', 'column = "case:org"')
    .replace('[activity]\ncolumn = "activity"', '[activity]\ncolumn = "concept:name"')
)


def test_xes_input_imports_its_traces(tmp_path: Path, memory_service: CommandService) -> None:
    mapping = load_mapping(write(tmp_path / "flow.toml", XES_MAPPING))
    report = run_import(memory_service, mapping, write(tmp_path / "flow.xes", XES))
    assert (report.rows, report.cases, report.tickets, report.unmappable) == (4, 2, 2, {})
    one = memory_service.load_ticket(case_ticket_id("flow", "case-1"))
    assert (one.account_id, one.status) == ("acme-corp", "open")
    assert one.opened_at == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert {e["actor"]["id"] for e in history(memory_service, "flow", "case-1")} == {"alice"}
    two = memory_service.load_ticket(case_ticket_id("flow", "case-2"))
    assert (two.account_id, two.status) == ("no-org", "solved")
    actors = [e["actor"] for e in history(memory_service, "flow", "case-2")]
    assert actors[0] == {"kind": "system", "id": "import-flow"}  # no resource on that row
    assert actors[-1] == {"kind": "agent", "id": "bob"}


def test_gzipped_xes_is_read_too(tmp_path: Path, memory_service: CommandService) -> None:
    mapping = load_mapping(write(tmp_path / "flow.toml", XES_MAPPING))
    packed = tmp_path / "flow.xes.gz"
    packed.write_bytes(gzip.compress(XES.encode()))
    assert run_import(memory_service, mapping, packed).tickets == 2


def test_the_readme_mapping_examples_are_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### The mapping file", 1)[1]
    snapshot, activity = re.findall(r"```toml\n(.*?)```", section, re.S)[:2]
    mapping = load_mapping(write(tmp_path / "snapshot.toml", snapshot))
    assert (mapping.source.kind, mapping.source.time_zone) == ("snapshot", "Europe/Rome")
    header = snapshot.split("[status]", 1)[0].replace('kind = "snapshot"', 'kind = "activity"')
    rules = load_mapping(write(tmp_path / "activity.toml", header + activity)).activity
    assert rules is not None
    assert rules.map["Customer reply"].action == "customer_reply"


# --- the failure limit and dry runs -----------------------------------------------------------


def test_a_wrong_time_format_stops_the_import_before_anything_is_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    wrong = SNAPSHOT_MAPPING.replace(
        'formats = ["%d-%m-%Y %H:%M"]\n\n[opened]', 'formats = ["iso"]\n\n[opened]'
    )
    result = _ticketing(
        home,
        "import",
        str(snapshot_log(tmp_path)),
        "--mapping",
        str(write(tmp_path / "desk.toml", wrong)),
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: too_many_failures: 14 of 14 rows (100%) cannot be imported, more than the limit "
        "of 5% (--max-failures): bad_time 13 (e.g. line 2 (case T1): updated: '01-03-2024 09:00' "
        "matches none of iso); missing_case 1"
    )
    assert "stopped before the first command: nothing was written" in result.stdout
    assert not home.exists()  # no store (not even the account), no progress file


@pytest.mark.parametrize(
    ("limit", "stops"),
    [("5", False), ("4", True), ("40%", False), ("35%", True), ("100%", False)],
)
def test_the_failure_limit_is_a_share_of_the_rows_or_a_count(
    tmp_path: Path, memory_service: CommandService, limit: str, stops: bool
) -> None:
    # SNAPSHOT_ROWS: 5 of 14 rows fail (36%): 3 known when planning, 2 refused by the domain.
    report = run_import(
        memory_service,
        snapshot_mapping(tmp_path),
        snapshot_log(tmp_path),
        max_failures=FailureLimit.parse(limit),
        window=1,
    )
    assert (report.stopped is not None) == stops
    assert report.finished != stops
    if stops:
        assert (report.stopped or "").startswith(
            f"5 of 14 rows (36%) cannot be imported, more than the limit of {limit}"
        )


def test_refusals_by_the_domain_stop_the_import_after_the_batch_in_flight(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    service = build_command_service(Settings(home=home))
    progress = ProgressFile(progress_path(home, "desk"))
    mapping = snapshot_mapping(tmp_path)
    rows = [r for r in SNAPSHOT_ROWS if r.startswith("T2")][:2] + SNAPSHOT_ROWS[-1:]
    log = snapshot_log(tmp_path, rows)
    try:
        # T2 goes back from open to new: refused, 1 of 3 rows; T3 is never sent.
        report = run_import(
            service,
            mapping,
            log,
            progress=progress,
            max_failures=FailureLimit(count=0),
            window=1,
        )
        assert report.stopped is not None
        assert report.stopped.startswith("1 of 3 rows (33%) cannot be imported")
        assert "invalid_transition 1 (e.g. line 3 (case T2): change_status:" in report.stopped
        assert (report.finished, report.cases_done, progress.load()["cases_done"]) == (False, 1, 1)
        assert service.load_ticket(case_ticket_id("desk", "T2")).status == "open"
        assert list(service.app.events.get(case_ticket_id("desk", "T3"))) == []
    finally:
        service.app.close()


@pytest.mark.parametrize("text", ["5 %x", "-1", "101%", "some"])
def test_a_failure_limit_that_is_neither_a_share_nor_a_count_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rows"):
        FailureLimit.parse(text)


def test_a_dry_run_reports_every_row_it_can_judge_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = [
        "import",
        str(snapshot_log(tmp_path)),
        "--mapping",
        str(write(tmp_path / "desk.toml", SNAPSHOT_MAPPING)),
    ]
    result = _ticketing(home, *args, "--dry-run", "--max-failures", "100%", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert (report["rows"], report["cases"], report["tickets"]) == (14, 3, 3)
    # What the store would refuse (a change to a closed ticket, a move back to new) is not
    # known: those rows count as imported here.
    assert report["unmappable"] == {"unmapped_value": 1, "bad_time": 1, "missing_case": 1}
    assert report["skipped"] == {"duplicate_row": 1}
    assert report["rows_imported"] + report["rows_unchanged"] == 14 - 1 - 3
    assert report["events"] == 0 and report["commands"] > 0
    assert not home.exists()  # no store, no progress file
    text = _ticketing(home, *args, "--dry-run", "--max-failures", "100%")
    assert text.stdout.startswith("dry run of desk: nothing was written\n")
    assert "known only when importing" in text.stdout
    over = _ticketing(home, *args, "--dry-run")
    assert over.returncode == 1
    assert over.stderr.startswith("error: too_many_failures: 3 of 14 rows (21%)")
    assert not home.exists()


# --- headers, renames, archives ----------------------------------------------------------------


def test_a_repeated_header_name_is_named(tmp_path: Path, memory_service: CommandService) -> None:
    header = HEADER.replace("channel", "agent")
    log = write(tmp_path / "desk.csv", "\n".join([header, *SNAPSHOT_ROWS]) + "\n")
    with pytest.raises(SourceError, match=r"repeats the column name 'agent' \(columns 5 and 8\)"):
        run_import(memory_service, snapshot_mapping(tmp_path), log)


def test_renamed_columns_are_read_under_their_new_names(
    tmp_path: Path, memory_service: CommandService
) -> None:
    header = HEADER.replace("group", "assignment_group").replace("number", "case_no")
    log = write(tmp_path / "desk.csv", "\n".join([header, *SNAPSHOT_ROWS]) + "\n")
    renamed = SNAPSHOT_MAPPING.replace(
        'null_values = ["?", ""]',
        'null_values = ["?", ""]\nrename = { "assignment_group" = "group", "case_no" = "number" }',
    )
    report = run_import(memory_service, snapshot_mapping(tmp_path, renamed), log)
    plain = run_import(
        build_command_service(Settings(event_store="memory")),
        snapshot_mapping(tmp_path),
        snapshot_log(tmp_path),
    )
    assert (report.tickets, report.events, report.unmappable) == (
        plain.tickets,
        plain.events,
        plain.unmappable,
    )
    assert memory_service.load_ticket(case_ticket_id("desk", "T1")).team == "desk"


@pytest.mark.parametrize(
    ("rename", "message"),
    [
        (
            '{ "agent" = "channel" }',
            r"source\.rename\.agent: cannot rename 'agent' to 'channel', "
            r"the file already has a column 'channel'",
        ),
        ('{ "grp" = "x" }', r"source\.rename\.grp: the file has no column 'grp'"),
        (
            '{ "agent" = "x", "group" = "x" }',
            r"source\.rename: 'agent' and 'group' are both renamed to 'x'",
        ),
    ],
)
def test_a_bad_rename_is_an_error_naming_both_names(
    tmp_path: Path, memory_service: CommandService, rename: str, message: str
) -> None:
    text = SNAPSHOT_MAPPING.replace('null_values = ["?", ""]', f"rename = {rename}")
    with pytest.raises(MappingError, match=message):
        run_import(memory_service, snapshot_mapping(tmp_path, text), snapshot_log(tmp_path))


def test_zip_input_imports_like_plain_csv(tmp_path: Path) -> None:
    plain = snapshot_log(tmp_path)
    single = tmp_path / "single.zip"
    with zipfile.ZipFile(single, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/desk.csv", plain.read_bytes())
    several = tmp_path / "several.zip"
    with zipfile.ZipFile(several, "w") as archive:
        archive.writestr("README.txt", "not a log")
        archive.writestr("desk.csv.gz", gzip.compress(plain.read_bytes()))
    summaries = []
    for path in (plain, single, Path(f"{several}:desk.csv.gz")):
        service = build_command_service(Settings(event_store="memory"))
        r = run_import(service, snapshot_mapping(tmp_path), path)
        summaries.append((r.rows, r.tickets, r.events, r.skipped, r.unmappable))
    assert summaries[0] == summaries[1] == summaries[2]


def test_zip_input_of_xes_is_told_by_its_member_name(
    tmp_path: Path, memory_service: CommandService
) -> None:
    packed = tmp_path / "flow.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("flow.xes", XES)
    mapping = load_mapping(write(tmp_path / "flow.toml", XES_MAPPING))
    assert run_import(memory_service, mapping, packed).tickets == 2


def test_an_empty_or_ambiguous_zip_is_a_clear_error(tmp_path: Path) -> None:
    empty, several = tmp_path / "empty.zip", tmp_path / "several.zip"
    zipfile.ZipFile(empty, "w").close()
    with zipfile.ZipFile(several, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    mapping = write(tmp_path / "desk.toml", SNAPSHOT_MAPPING)
    expected = {
        str(empty): f"error: source_error: {empty}: the zip archive is empty (no file to import)",
        str(several): f"error: source_error: {several}: the zip archive holds 2 files "
        f"(a.csv, b.csv); name one as {several}:MEMBER",
        f"{several}:c.csv": f"error: source_error: {several}: the zip archive has no file "
        "'c.csv' (it has: a.csv, b.csv)",
    }
    for path, message in expected.items():
        result = _ticketing(tmp_path / "home", "import", path, "--mapping", str(mapping))
        assert (result.returncode, result.stderr.strip()) == (2, message)


# --- a multi-column activity --------------------------------------------------------------------

LIFECYCLE_XES = XES.replace(
    '<string key="concept:name" value="take"/>',
    '<string key="concept:name" value="take"/><string key="lifecycle:transition" value="start"/>',
)


def test_an_activity_can_join_two_columns(tmp_path: Path, memory_service: CommandService) -> None:
    text = XES_MAPPING.replace(
        '[activity]\ncolumn = "concept:name"',
        '[activity]\ncolumns = ["concept:name", "lifecycle:transition"]\nseparator = "/"',
    ).replace("[activity.map.take]", '[activity.map."take/start"]')
    mapping = load_mapping(write(tmp_path / "flow.toml", text))
    report = run_import(memory_service, mapping, write(tmp_path / "flow.xes", LIFECYCLE_XES))
    # `register` and `solve` have no transition: a null part is left out with its separator.
    assert (report.tickets, report.unmappable) == (2, {})
    assert memory_service.load_ticket(case_ticket_id("flow", "case-1")).status == "open"
    unjoined = text.replace('[activity.map."take/start"]', "[activity.map.take]")
    report = run_import(
        build_command_service(Settings(event_store="memory")),
        load_mapping(write(tmp_path / "flow2.toml", unjoined)),
        write(tmp_path / "flow.xes", LIFECYCLE_XES),
    )
    assert report.unmappable == {"unknown_activity": 2}
    assert (
        "concept:name/lifecycle:transition: 'take/start' is not in activity.map"
        in (report.examples["unknown_activity"][0])
    )


def test_an_activity_names_one_column_or_several_not_both(tmp_path: Path) -> None:
    text = ACTIVITY_MAPPING.replace(
        '[activity]\ncolumn = "activity"', '[activity]\ncolumn = "activity"\ncolumns = ["a", "b"]'
    )
    with pytest.raises(MappingError, match=r"activity: .*give `column` .* or `columns`"):
        load_mapping(write(tmp_path / "flow.toml", text))


def test_the_columns_of_a_joined_activity_must_be_in_the_file(
    tmp_path: Path, memory_service: CommandService
) -> None:
    text = ACTIVITY_MAPPING.replace(
        '[activity]\ncolumn = "activity"', '[activity]\ncolumns = ["activity", "phase"]'
    )
    mapping = load_mapping(write(tmp_path / "flow.toml", text))
    with pytest.raises(MappingError, match=r"activity\.columns\.1: the file has no column 'phase'"):
        run_import(memory_service, mapping, write(tmp_path / "flow.csv", "\n".join(ACTIVITY_ROWS)))


# --- the external id -----------------------------------------------------------------------------


def test_an_imported_ticket_keeps_its_case_id_as_its_external_id(
    tmp_path: Path, memory_service: CommandService
) -> None:
    run_import(memory_service, snapshot_mapping(tmp_path), snapshot_log(tmp_path))
    ticket_id = case_ticket_id("desk", "T1")
    assert memory_service.load_ticket(ticket_id).external_id == "desk:T1"
    events = [event_payload(e) for e in memory_service.app.events.get(ticket_id)]
    assert events[0]["external_id"] == "desk:T1"
    rows: dict[str, dict[str, Any]] = {}
    for payload in events:
        fold_ticket(rows, payload)
    assert rows[str(ticket_id)]["external_id"] == "desk:T1"


def test_a_command_without_an_external_id_reads_as_before_the_field_existed() -> None:
    # The idempotency fingerprint of an OpenTicket recorded before `external_id` existed is
    # made of these fields: a repeat must still be the same command.
    command = m.OpenTicket(account_id="acme", requester="a@acme.example", subject="Help")
    assert "external_id" not in command.model_dump(mode="json")
    assert "external_id" not in json.loads(command.model_dump_json())
    named = command.model_copy(update={"external_id": "crm:42"})
    assert named.model_dump(mode="json")["external_id"] == "crm:42"
