"""Drives an import: read, plan, send commands in batches, count every row's outcome, resume.

Commands go through a `send` callable (`CommandService.execute_many` in process, or the NATS
client), so every change passes the same handlers and domain rules as any other command. Each
batch holds the next command of up to `window` cases, so no batch touches a ticket twice and a
ticket's commands keep their order, while the store commits a whole batch at once.

Idempotency comes from the command ids (`import:<source>:<case>[:<row>:<n>]`): a repeated
command returns its first reply and appends nothing. Resuming is faster than repeating: after
each batch, `<home>/imports/<source>.json` records how many cases (in file order) are wholly
imported, and a later run of the same file and mapping starts after them.

A refused command is not recorded, so repeating it asks the domain again. Against the ticket's
final state a refused move could then pass (solved, then pending and a reopen at the same
minute: pending is refused on the solved ticket, accepted on the reopened one). So every
command after the opening carries `expected_version`: the version the case's accepted commands
brought the ticket to, taken from their replies, which a repeat gets back unchanged. A command
therefore meets exactly the state it met the first time, or, when later rows have moved the
ticket on since it was refused, a `version_conflict`; it is the same command on every run. The
reasons of refused commands are kept in `<home>/imports/<source>.refused.jsonl`, so a repeat
reports such a row with the reason it was refused for.

Every case is planned before anything is sent, so rows that cannot become commands (a wrong
time format, an unmapped value) are known first: when more of them than the failure limit
allows (`FailureLimit`, by default none in the API and 5% on the command line) the import
stops before its first command, and when the domain's refusals bring the failures over the
limit it stops after the batch in flight, resumable. A dry run plans and reports and sends
nothing."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commands import models as m
from commands.replies import Reply
from ticketing.domain.values import DEFAULT_CATEGORIES, ActorKind
from ticketing.importing.activity import ActivityPlanner
from ticketing.importing.mapping import ImportMapping, Unmappable
from ticketing.importing.plan import (
    CasePlanner,
    PlannedCase,
    PlannedRow,
    account_names,
    group_cases,
    parse_time,
)
from ticketing.importing.readers import Input, SourceRow, locate, open_source
from ticketing.importing.snapshot import SnapshotPlanner

Send = Callable[[Sequence[m.Command]], list[Reply]]
ProgressCallback = Callable[["ImportReport"], None]

DEFAULT_WINDOW = 256
SAVE_INTERVAL_S = 0.5
EXAMPLES_PER_REASON = 3


class ImportFailedError(Exception):
    """The import cannot go on (an account could not be created, or --strict met a row that
    cannot be imported); `code` is the reason and the message names the row."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FailureLimit:
    """How many rows may fail before an import stops: a share of the file's rows
    (`fraction`) or a number of rows (`count`). Skipped rows (duplicates) are no failures."""

    fraction: float | None = None
    count: int | None = None

    @classmethod
    def parse(cls, text: str) -> FailureLimit:
        """`"5%"` (a share of the rows, 0-100) or `"20"` (rows); ValueError otherwise."""
        text = text.strip()
        percent = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
        if percent is not None:
            value = float(percent.group(1))
            if value > 100:
                raise ValueError(f"{text!r}: a share of the rows is at most 100%")
            return cls(fraction=value / 100)
        if text.isdigit():
            return cls(count=int(text))
        raise ValueError(f"{text!r} is neither a share of the rows (5%) nor a number of rows (20)")

    def allowed(self, rows: int) -> int:
        """The most failed rows out of `rows` that do not stop the import."""
        if self.count is not None:
            return self.count
        return math.floor((self.fraction or 0.0) * rows + 1e-9)

    def __str__(self) -> str:
        if self.count is not None:
            return f"{self.count} rows"
        return f"{(self.fraction or 0.0) * 100:g}%"


def planner_for(mapping: ImportMapping) -> CasePlanner:
    if mapping.source.kind == "snapshot":
        return SnapshotPlanner(mapping)
    return ActivityPlanner(mapping)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_digest(where: Input) -> str:
    """Identifies the input for the progress file: the file's digest, and the zip member."""
    digest = file_digest(where.path)
    return f"{digest}:{where.member}" if where.member is not None else digest


@dataclass
class ImportReport:
    """What an import did, for the whole file (resumed runs add up)."""

    source: str
    file: str
    rows: int = 0
    cases: int = 0
    cases_done: int = 0
    cases_this_run: int = 0
    resumed_at: int = 0
    tickets: int = 0
    commands: int = 0
    events: int = 0
    rows_imported: int = 0
    rows_unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    unmappable: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    commands_this_run: int = 0
    events_this_run: int = 0
    seconds: float = 0.0
    finished: bool = False
    dry_run: bool = False
    stopped: str | None = None
    """Why the failure limit stopped the import (None when it did not)."""

    @property
    def unmappable_rows(self) -> int:
        return sum(self.unmappable.values())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["unmappable_rows"] = self.unmappable_rows
        data["commands_per_s"] = (
            round(self.commands_this_run / self.seconds, 1) if self.seconds else None
        )
        data["events_per_s"] = (
            round(self.events_this_run / self.seconds, 1) if self.seconds else None
        )
        return data


@dataclass
class _Tally:
    """Counts of the cases wholly imported: kept in the progress file, so runs add up."""

    tickets: int = 0
    commands: int = 0
    events: int = 0
    rows_imported: int = 0
    rows_unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unmappable: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, other: _Tally) -> None:
        self.tickets += other.tickets
        self.commands += other.commands
        self.events += other.events
        self.rows_imported += other.rows_imported
        self.rows_unchanged += other.rows_unchanged
        self.skipped.update(other.skipped)
        self.unmappable.update(other.unmappable)
        for reason, lines in other.examples.items():
            kept = self.examples.setdefault(reason, [])
            kept.extend(lines[: EXAMPLES_PER_REASON - len(kept)])

    def note(self, reason: str, text: str) -> None:
        self.unmappable[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(text)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "skipped": dict(self.skipped), "unmappable": dict(self.unmappable)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Tally:
        return cls(
            tickets=int(data.get("tickets", 0)),
            commands=int(data.get("commands", 0)),
            events=int(data.get("events", 0)),
            rows_imported=int(data.get("rows_imported", 0)),
            rows_unchanged=int(data.get("rows_unchanged", 0)),
            skipped=Counter(data.get("skipped", {})),
            unmappable=Counter(data.get("unmappable", {})),
            examples={k: list(v) for k, v in data.get("examples", {}).items()},
        )


class ProgressFile:
    """`<home>/imports/<source>.json`: how far an import of one file with one mapping got."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.refusals = RefusalLog(self.path.with_name(f"{self.path.stem}.refused.jsonl"))

    def load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, self.path)

    def clear(self) -> None:
        """Forget the import: its position and the reasons of its refused commands."""
        self.path.unlink(missing_ok=True)
        self.refusals.path.unlink(missing_ok=True)


Refusal = tuple[str, str]
"""A refused command's reply: error code and message."""


class RefusalLog:
    """`<home>/imports/<source>.refused.jsonl`: why each refused command of an import was
    refused, by command id, for one file with one mapping (its first line names both digests).

    A repeated command that was refused before the case's later rows moved the ticket on is
    answered `version_conflict` (see the module docstring); this log gives the row its first
    reason back. Append-only, so keeping it costs one short write per refused command."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._header: dict[str, str] = {}
        self._current = False

    def load(self, sha256: str, mapping: str) -> dict[str, Refusal]:
        """The refusals recorded for this file and mapping (none for another)."""
        self._header = {"sha256": sha256, "mapping": mapping}
        try:
            lines = self.path.read_text().splitlines()
        except (OSError, ValueError):
            lines = []
        self._current = bool(lines) and _json_line(lines[0]) == self._header
        if not self._current:
            return {}
        known: dict[str, Refusal] = {}
        for line in lines[1:]:
            entry = _json_line(line)  # a line cut off by a crash is left out
            if entry is not None and {"id", "code", "message"} <= entry.keys():
                known[str(entry["id"])] = (str(entry["code"]), str(entry["message"]))
        return known

    def append(self, refusals: dict[str, Refusal]) -> None:
        if not refusals:
            return
        lines = [
            json.dumps({"id": command_id, "code": code, "message": message}) + "\n"
            for command_id, (code, message) in refusals.items()
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._current:  # another file or mapping before: start over
            lines.insert(0, json.dumps(self._header) + "\n")
        with self.path.open("w" if not self._current else "a") as log:
            log.writelines(lines)
        self._current = True


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def progress_path(home: Path, source: str) -> Path:
    return Path(home) / "imports" / f"{source}.json"


class _Cursor:
    """One case being imported: its commands in order, where the sending got to, and the
    ticket's version after the case's last accepted command (None before the opening)."""

    def __init__(self, case: PlannedCase, refusals: _Refusals) -> None:
        self.case = case
        self.items: list[tuple[PlannedRow, m.Command]] = list(case.items())
        self.next = 0
        self.version: int | None = None
        self.tally = _Tally()
        self.refusals = refusals
        self.failures: list[tuple[str, str]] = []  # rows refused since the last take

    @property
    def done(self) -> bool:
        return self.next >= len(self.items)

    def current(self) -> tuple[PlannedRow, m.Command]:
        """The next command, expecting the version the case's accepted commands reached."""
        row, command = self.items[self.next]
        if self.version is not None and not isinstance(command, m.OpenTicket):
            command = command.model_copy(update={"expected_version": self.version})
        return row, command

    def record(self, row: PlannedRow, command: m.Command, reply: Reply) -> None:
        self.next += 1
        if reply.ok:
            self.tally.commands += 1
            self.tally.events += len(reply.events)
            if reply.version is not None:
                self.version = reply.version
            if isinstance(command, m.OpenTicket):
                self.tally.tickets += 1
            return
        code, message = self.refusals.reason(command, reply)
        if row.outcome is None:
            row.outcome, row.message = code, f"{command.name}: {message}"
            self.failures.append((code, describe_row(self.case.case_id, row)))
        if isinstance(command, m.OpenTicket):
            # Nothing else of this case can apply without its ticket.
            self.next = len(self.items)
            for other in self.case.rows:
                if other.outcome is None:
                    other.outcome, other.message = "ticket_not_opened", f"opening failed: {code}"
                    self.failures.append((other.outcome, describe_row(self.case.case_id, other)))

    def take_failures(self) -> list[tuple[str, str]]:
        """(reason, description) of each row refused since the last call."""
        failures, self.failures = self.failures, []
        return failures

    def finish(self) -> _Tally:
        """Every row counted exactly once: imported, unchanged, skipped or unmappable."""
        for row in self.case.rows:
            if row.outcome is None:
                if row.commands:
                    self.tally.rows_imported += 1
                else:
                    self.tally.rows_unchanged += 1
            elif row.skipped:
                self.tally.skipped[row.outcome] += 1
            else:
                self.tally.note(row.outcome, describe_row(self.case.case_id, row))
        return self.tally


class _Refusals:
    """The reasons of refused commands: those recorded by earlier runs of this import, and
    those of this run, to be appended to the log."""

    def __init__(self, known: dict[str, Refusal]) -> None:
        self.known = known
        self.new: dict[str, Refusal] = {}

    def reason(self, command: m.Command, reply: Reply) -> Refusal:
        """The reply's code and message; for a command refused before that now meets a ticket
        its later rows moved on (`version_conflict`), the reason it was refused for then."""
        error = reply.error
        refusal = (
            (error.code, error.message) if error is not None else ("internal_error", "no reply")
        )
        earlier = self.known.get(command.command_id)
        if earlier is not None and refusal[0] == "version_conflict":
            return earlier
        if earlier != refusal:
            self.known[command.command_id] = self.new[command.command_id] = refusal
        return refusal

    def take_new(self) -> dict[str, Refusal]:
        new, self.new = self.new, {}
        return new


def describe_row(case_id: str, row: PlannedRow) -> str:
    return f"line {row.line} (case {case_id}): {row.message or row.outcome}"


def first_unmappable(case: PlannedCase) -> PlannedRow | None:
    return next((r for r in case.rows if r.outcome is not None and not r.skipped), None)


def planned_tally(case: PlannedCase) -> _Tally:
    """A planned case's rows counted as if the domain accepted every command: what a dry run
    reports, and the failures known before anything is sent."""
    tally = _Tally()
    for row in case.rows:
        if row.outcome is None:
            if row.commands:
                tally.rows_imported += 1
            else:
                tally.rows_unchanged += 1
        elif row.skipped:
            tally.skipped[row.outcome] += 1
        else:
            tally.note(row.outcome, describe_row(case.case_id, row))
    tally.commands = sum(len(row.commands) for row in case.rows)
    tally.tickets = 1 if case.ticket_id is not None else 0
    return tally


def too_many_failures(tally: _Tally, failed: int, rows: int, limit: FailureLimit) -> str:
    """Says how many rows failed against the limit, naming the top reasons with an example."""
    share = f" ({failed / rows:.0%})" if rows else ""
    reasons = sorted(tally.unmappable.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    named = "; ".join(
        f"{reason} {count:,}"
        + (f" (e.g. {tally.examples[reason][0]})" if tally.examples.get(reason) else "")
        for reason, count in reasons
    )
    return (
        f"{failed:,} of {rows:,} rows{share} cannot be imported, more than the limit of "
        f"{limit} (--max-failures): {named}"
    )


@dataclass
class _RunState:
    """Where a run is: cases in file order, the wholly imported prefix and its counts."""

    order: list[tuple[str, list[SourceRow]]]
    prefix: int
    done: _Tally
    file_tally: _Tally
    report: ImportReport
    started: float
    finished: dict[int, _Tally] = field(default_factory=dict)
    planned: dict[int, PlannedCase] = field(default_factory=dict)
    failed: int = 0
    """Rows known to fail: those planned unmappable, and those the domain refused so far."""
    known: _Tally = field(default_factory=_Tally)
    """The failures known before sending (reasons and examples for the limit's message)."""

    def complete(self, cursor: _Cursor) -> None:
        self.finished[cursor.case.index] = cursor.finish()

    def advance(self) -> bool:
        """Move the prefix over cases finished in order; True when it moved."""
        moved = False
        while self.prefix in self.finished:
            self.done.add(self.finished.pop(self.prefix))
            self.prefix += 1
            self.report.cases_this_run += 1
            moved = True
        return moved


class ImportRunner:
    """One import of one file with one mapping; `run()` returns the report.

    `strict` stops at the first row that cannot be imported (`ImportFailedError`);
    `max_failures` stops when more rows fail than it allows (the report's `stopped` says why);
    `max_cases` stops after that many cases (a later run resumes); `window` is how many cases
    share a batch; `restart` repeats every case, ignoring where the saved progress got to (the
    reasons of refused commands are kept). `dry_run` reads, maps and plans, sends nothing and
    writes no progress: the report counts rows as if the domain accepted every command."""

    def __init__(
        self,
        mapping: ImportMapping,
        path: Path,
        send: Send,
        *,
        progress: ProgressFile | None = None,
        strict: bool = False,
        window: int = DEFAULT_WINDOW,
        max_cases: int | None = None,
        categories: Iterable[str] = DEFAULT_CATEGORIES,
        on_progress: ProgressCallback | None = None,
        restart: bool = False,
        max_failures: FailureLimit | None = None,
        dry_run: bool = False,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.mapping = mapping
        self.path = Path(path)
        self.send = send
        self.progress = progress
        self.strict = strict
        self.window = window
        self.max_cases = max_cases
        self.categories = tuple(categories)
        self.on_progress = on_progress
        self.restart = restart
        self.max_failures = max_failures
        self.dry_run = dry_run
        self.planner = planner_for(mapping)
        self._digest = ""
        self._refusals = _Refusals({})

    def run(self) -> ImportReport:
        state = self._prepare()
        if self.dry_run:
            return self._dry_report(state)
        if self._over_limit(state):
            return self._stop(state)  # before the first command: nothing to save
        if state.prefix == 0:  # a resumed import made its accounts before its first case
            self._create_accounts(dict(state.order))
        try:
            self._import(state)
        finally:
            self._publish(state)
        return state.report

    def _prepare(self) -> _RunState:
        started = time.monotonic()
        where = locate(self.path)
        with open_source(where, self.mapping.source) as source:
            if source.columns is not None:
                self.mapping.check_columns(source.columns)
            self.mapping.check_categories(self.categories)
            rows = list(source.rows)
        if self.progress is not None and not self.dry_run:
            self._digest = input_digest(where)
            known = self.progress.refusals.load(self._digest, self.mapping.digest())
            self._refusals = _Refusals(known)
        cases, orphans = group_cases(rows, self.mapping)
        report = ImportReport(self.mapping.source.name, str(self.path), rows=len(rows))
        report.cases = len(cases)
        file_tally = self._orphans(orphans)
        stored = self._stored_progress()
        state = _RunState(
            order=list(cases.items()),
            prefix=int(stored.get("cases_done", 0)),
            done=_Tally.from_json(stored.get("counts", {})),
            file_tally=file_tally,
            report=report,
            started=started,
        )
        report.resumed_at = state.prefix
        report.dry_run = self.dry_run
        end = len(state.order)
        if self.max_cases is not None:
            end = min(end, state.prefix + self.max_cases)
        state.known.add(file_tally)
        state.known.add(state.done)
        for index in range(state.prefix, end):
            case = self.planner.plan(index, *state.order[index])
            state.planned[index] = case
            state.known.add(planned_tally(case))
        state.failed = sum(state.known.unmappable.values())
        return state

    def _over_limit(self, state: _RunState) -> bool:
        limit = self.max_failures
        return limit is not None and state.failed > limit.allowed(state.report.rows)

    def _stop(self, state: _RunState) -> ImportReport:
        """Stop before sending anything: the report says why and counts the known failures."""
        assert self.max_failures is not None
        state.report.stopped = too_many_failures(
            state.known, state.failed, state.report.rows, self.max_failures
        )
        total = _Tally()
        total.add(state.file_tally)
        total.add(state.done)
        _fill(state.report, total, state.prefix, state.started, finished=False)
        state.report.unmappable = dict(state.known.unmappable)
        state.report.examples = {k: list(v) for k, v in state.known.examples.items()}
        return state.report

    def _dry_report(self, state: _RunState) -> ImportReport:
        """What a run would do, as far as it is known without the store."""
        finished = state.prefix + len(state.planned) >= len(state.order)
        _fill(state.report, state.known, state.prefix + len(state.planned), state.started, finished)
        state.report.cases_this_run = len(state.planned)
        state.report.commands_this_run = state.report.commands
        if self._over_limit(state):
            assert self.max_failures is not None
            state.report.stopped = too_many_failures(
                state.known, state.failed, state.report.rows, self.max_failures
            )
        return state.report

    def _import(self, state: _RunState) -> None:
        active: list[_Cursor] = []
        next_case = state.prefix
        budget = len(state.order) if self.max_cases is None else self.max_cases
        last_save = time.monotonic()
        while True:
            while len(active) < self.window and next_case < len(state.order) and budget > 0:
                cursor = self._start(state.planned.pop(next_case))
                next_case += 1
                budget -= 1
                if cursor.done:
                    state.complete(cursor)
                else:
                    active.append(cursor)
            if not active:
                state.advance()
                return
            self._send_round(active, state.report)
            for cursor in active:
                for reason, text in cursor.take_failures():
                    state.failed += 1
                    state.known.note(reason, text)
                if cursor.done:
                    state.complete(cursor)
            active = [c for c in active if not c.done]
            moved = state.advance()
            if self._over_limit(state):
                # Finish no case halfway: stop sending, count what was done, keep the place.
                state.report.stopped = too_many_failures(
                    state.known,
                    state.failed,
                    state.report.rows,
                    self.max_failures or FailureLimit(),
                )
                return
            if moved and time.monotonic() - last_save >= SAVE_INTERVAL_S:
                self._publish(state)
                last_save = time.monotonic()

    def _publish(self, state: _RunState) -> None:
        """Bring the report up to date, save the progress file, tell the caller."""
        finished = state.prefix >= len(state.order)
        total = _Tally()
        total.add(state.file_tally)
        total.add(state.done)
        _fill(state.report, total, state.prefix, state.started, finished)
        if self.progress is not None:
            self.progress.refusals.append(self._refusals.take_new())
            self.progress.save(self._progress_data(state, finished))
        if self.on_progress is not None:
            self.on_progress(state.report)

    # --- steps -------------------------------------------------------------------------------

    def _start(self, case: PlannedCase) -> _Cursor:
        if self.strict:
            problem = first_unmappable(case)
            if problem is not None:
                code = problem.outcome or "unmappable_row"
                raise ImportFailedError(code, describe_row(case.case_id, problem))
        return _Cursor(case, self._refusals)

    def _send_round(self, active: list[_Cursor], report: ImportReport) -> None:
        batch = [cursor.current() for cursor in active]
        replies = self.send([command for _, command in batch])
        if len(replies) != len(batch):
            raise RuntimeError(f"sent {len(batch)} commands, got {len(replies)} replies")
        failure: ImportFailedError | None = None
        for cursor, (row, command), reply in zip(active, batch, replies, strict=True):
            cursor.record(row, command, reply)
            report.commands_this_run += 1
            report.events_this_run += len(reply.events) if reply.ok else 0
            if not reply.ok and failure is None:
                code = row.outcome or "unmappable_row"
                failure = ImportFailedError(code, describe_row(cursor.case.case_id, row))
        if self.strict and failure is not None:
            raise failure

    def _orphans(self, orphans: list[SourceRow]) -> _Tally:
        tally = _Tally()
        for row in orphans:
            text = f"line {row.line}: {self.mapping.case.column} is empty"
            if self.strict:
                raise ImportFailedError("missing_case", text)
            tally.note("missing_case", text)
        return tally

    def _create_accounts(self, cases: dict[str, list[SourceRow]]) -> None:
        """The accounts the mapping names, dated at the log's earliest time."""
        earliest: datetime | None = None
        for rows in cases.values():
            for row in rows:
                try:
                    moment = parse_time(
                        self.mapping.time, self.mapping, row.values.get(self.mapping.time.column)
                    )
                except Unmappable:
                    continue
                earliest = moment if earliest is None else min(earliest, moment)
        actor = m.ActorModel(kind=ActorKind.SYSTEM, id=self.mapping.actor_id)
        commands = [
            m.CreateAccount(
                command_id=f"import:{self.mapping.source.name}:account:{account_id}",
                account_id=account_id,
                account_name=name,
                tier=self.mapping.account.tier,
                actor=actor,
                occurred_at=earliest,
            )
            for account_id, name in account_names(self.mapping, cases).items()
        ]
        if not commands:
            return
        for command, reply in zip(commands, self.send(commands), strict=True):
            if not reply.ok and (reply.error is None or reply.error.code != "already_exists"):
                message = reply.error.message if reply.error else "no reply"
                raise ImportFailedError(
                    "account_failed", f"account {command.account_id!r}: {message}"
                )

    def _stored_progress(self) -> dict[str, Any]:
        if self.progress is None or self.restart:
            return {}
        stored = self.progress.load()
        if stored.get("sha256") != self._digest or stored.get("mapping") != self.mapping.digest():
            return {}
        return stored

    def _progress_data(self, state: _RunState, finished: bool) -> dict[str, Any]:
        prefix = state.prefix
        return {
            "source": self.mapping.source.name,
            "file": str(self.path.resolve()),
            "sha256": self._digest,
            "mapping": self.mapping.digest(),
            "cases_total": len(state.order),
            "cases_done": prefix,
            "last_case": state.order[prefix - 1][0] if prefix else None,
            "finished": finished,
            "counts": state.done.as_json(),
            "updated_at": datetime.now(UTC).isoformat(),
        }


def _fill(report: ImportReport, total: _Tally, prefix: int, started: float, finished: bool) -> None:
    report.cases_done = prefix
    report.tickets = total.tickets
    report.commands = total.commands
    report.events = total.events
    report.rows_imported = total.rows_imported
    report.rows_unchanged = total.rows_unchanged
    report.skipped = dict(total.skipped)
    report.unmappable = dict(total.unmappable)
    report.examples = {k: list(v) for k, v in total.examples.items()}
    report.seconds = round(time.monotonic() - started, 3)
    report.finished = finished
