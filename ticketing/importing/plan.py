"""One case's rows as commands: what activity and snapshot logs share.

A case's rows are put in time order (ties keep file order), exact duplicates are dropped, the
first usable row opens the ticket, and each later row becomes the commands for what changed
since the row before it: priority, category, assignment (here), then the status move that the
log's shape decides (`snapshot.py`, `activity.py`). Planning is a pure function of the file
and the mapping, so command ids are the same on every run."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from commands import models as m
from commands.command_log import ticket_id_for
from ticketing.domain.values import ActorKind, Channel, Priority, Status
from ticketing.importing.mapping import (
    ImportMapping,
    TimeSpec,
    Unmappable,
    lookup,
    render,
    slugify,
)
from ticketing.importing.readers import SourceRow
from ticketing.toml_files import describe_validation

_PLAIN_CASE = re.compile(r"^[A-Za-z0-9_.@\-]{1,64}$")
MAX_REASON_CHARS = 500


@dataclass
class PlannedRow:
    """A source row and the commands it became; `outcome` is a reason code when it became
    none because it was skipped (`skipped`: a duplicate or an ignored activity) or is
    unmappable."""

    line: int
    position: int
    commands: list[m.Command] = field(default_factory=list)
    outcome: str | None = None
    message: str = ""
    skipped: bool = False


@dataclass
class PlannedCase:
    """A case in the file and its ticket (None when no row of it could open one)."""

    index: int
    case_id: str
    ticket_id: UUID | None
    rows: list[PlannedRow]

    def items(self) -> Iterator[tuple[PlannedRow, m.Command]]:
        for row in self.rows:
            for command in row.commands:
                yield row, command


@dataclass
class Attributes:
    """The mapped values a row carries; compared row to row to find what changed."""

    priority: Priority | None = None
    category: str | None = None
    category_tag: str | None = None
    team: str | None = None
    agent: str | None = None
    status: Status | None = None


def case_token(case_id: str) -> str:
    """The case id as it appears in command ids (hashed when it is not a plain token)."""
    if _PLAIN_CASE.match(case_id):
        return case_id
    return "h" + hashlib.sha256(case_id.encode()).hexdigest()[:24]


def open_command_id(source: str, case_id: str) -> str:
    """The id of the command that opens a case's ticket; the ticket id follows from it."""
    return f"import:{source}:{case_token(case_id)}"


def external_id(source: str, case_id: str) -> str | None:
    """The ticket's id where it came from, `<source>:<case id>`: kept on the ticket, shown in
    the queue and in `ticket_facts` (None for a case id too long to keep whole)."""
    text = f"{source}:{case_id}"
    return text if len(text) <= m.MAX_SUBJECT_CHARS else None


def case_ticket_id(source: str, case_id: str) -> UUID:
    return ticket_id_for(open_command_id(source, case_id))


def parse_time(spec: TimeSpec, mapping: ImportMapping, raw: str | None) -> datetime:
    if raw is None:
        raise Unmappable("bad_time", f"{spec.column} is empty")
    for pattern in spec.formats:
        try:
            moment = (
                datetime.fromisoformat(raw) if pattern == "iso" else datetime.strptime(raw, pattern)
            )
        except ValueError:
            continue
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=mapping.source.zone)
    raise Unmappable(
        "bad_time", f"{spec.column}: {raw!r} matches none of {', '.join(spec.formats)}"
    )


def group_cases(
    rows: Iterable[SourceRow], mapping: ImportMapping
) -> tuple[dict[str, list[SourceRow]], list[SourceRow]]:
    """Rows by case, cases in order of first appearance; rows without a case id apart."""
    cases: dict[str, list[SourceRow]] = {}
    orphans: list[SourceRow] = []
    column = mapping.case.column
    for row in rows:
        case_id = row.values.get(column)
        if case_id is None:
            orphans.append(row)
        else:
            cases.setdefault(case_id, []).append(row)
    return cases, orphans


def account_names(mapping: ImportMapping, cases: dict[str, list[SourceRow]]) -> dict[str, str]:
    """Every account the tickets may belong to: account id -> name."""
    spec = mapping.account
    accounts: dict[str, str] = {}
    if spec.id is not None:
        accounts[spec.id] = spec.name or spec.id
    if spec.column is not None:
        for rows in cases.values():
            for row in rows:
                raw = row.values.get(spec.column)
                if raw is not None and slugify(raw):
                    accounts.setdefault(slugify(raw), raw[:200])
    return accounts


class CasePlanner:
    """Plans cases for one mapping; subclasses add the status moves of their log shape."""

    def __init__(self, mapping: ImportMapping) -> None:
        self.mapping = mapping
        self.source = mapping.source.name
        self.import_actor = m.ActorModel(kind=ActorKind.SYSTEM, id=mapping.actor_id)

    # --- hooks for the log shapes -----------------------------------------------------------

    def opening_commands(
        self, case: CaseState, facts: RowFacts, attributes: Attributes
    ) -> list[m.Command]:
        """Status commands of the row that opened the ticket."""
        raise NotImplementedError

    def row_commands(
        self, case: CaseState, facts: RowFacts, attributes: Attributes, previous: Attributes
    ) -> list[m.Command]:
        """Status commands of a later row, given the previous row's values."""
        raise NotImplementedError

    def read_status(self, facts: RowFacts) -> Status | None:
        """The status a row states, if the log shape has a state column."""
        return None

    # --- planning -----------------------------------------------------------------------------

    def plan(self, index: int, case_id: str, rows: list[SourceRow]) -> PlannedCase:
        timed: list[tuple[datetime, SourceRow]] = []
        untimed: list[tuple[SourceRow, Unmappable]] = []
        for row in rows:
            try:
                raw = row.values.get(self.mapping.time.column)
                timed.append((parse_time(self.mapping.time, self.mapping, raw), row))
            except Unmappable as problem:
                untimed.append((row, problem))
        if self.mapping.source.order == "time":
            timed.sort(key=lambda pair: pair[0])  # stable: ties keep file order
        planned: list[PlannedRow] = []
        state = CaseState(case_id, self)
        seen: set[tuple[tuple[str, str | None], ...]] = set()
        for position, (at, row) in enumerate(timed, start=1):
            result = PlannedRow(row.line, position)
            planned.append(result)
            key = tuple(sorted(row.values.items()))
            if key in seen:
                result.outcome, result.skipped = "duplicate_row", True
                result.message = "the same values as an earlier row of this case"
                continue
            seen.add(key)
            try:
                result.commands = state.plan_row(RowFacts(row, at, self.actor_of(row)), position)
            except Unmappable as problem:
                result.outcome, result.message = problem.code, problem.message
            except ValidationError as error:
                result.outcome, result.message = "validation_error", describe_validation(error)
        for position, (row, bad_time) in enumerate(untimed, start=len(timed) + 1):
            planned.append(PlannedRow(row.line, position, [], bad_time.code, bad_time.message))
        ticket_id = case_ticket_id(self.source, case_id) if state.opened else None
        return PlannedCase(index, case_id, ticket_id, planned)

    def actor_of(self, row: SourceRow) -> m.ActorModel:
        spec = self.mapping.actor
        if spec is None:
            return self.import_actor
        raw = row.values.get(spec.column)
        slug = slugify(raw) if raw is not None else ""
        return m.ActorModel(kind=spec.kind, id=slug) if slug else self.import_actor

    def attributes(self, facts: RowFacts) -> Attributes:
        """The row's mapped values (None where the log says nothing)."""
        mapping, values = self.mapping, facts.row.values
        found = Attributes(status=self.read_status(facts))
        if mapping.priority is not None:
            priority = lookup("priority", mapping.priority, values.get(mapping.priority.column))
            found.priority = Priority(priority) if priority is not None else None
        if mapping.category is not None:
            spec = mapping.category
            raw = values.get(spec.column)
            category = lookup("category", spec, raw)
            found.category = str(category) if category is not None else None
            if spec.tag_prefix is not None and raw is not None and slugify(raw):
                found.category_tag = (spec.tag_prefix + slugify(raw))[:50]
        if mapping.team is not None:
            team = lookup("team", mapping.team, values.get(mapping.team.column))
            found.team = str(team) if team is not None else None
        if mapping.agent is not None:
            agent = lookup("agent", mapping.agent, values.get(mapping.agent.column))
            found.agent = str(agent) if agent is not None else None
        return found

    def channel(self, values: dict[str, str | None]) -> Channel:
        spec = self.mapping.channel
        if spec is None:
            return Channel.WEB
        channel = lookup("channel", spec, values.get(spec.column))
        return Channel(channel) if channel is not None else Channel.WEB

    def account_id(self, values: dict[str, str | None]) -> str:
        spec = self.mapping.account
        if spec.column is not None:
            raw = values.get(spec.column)
            if raw is not None and slugify(raw):
                return slugify(raw)
        if spec.id is None:
            raise Unmappable("missing_value", f"account.column {spec.column!r} is empty")
        return spec.id

    def template_values(self, case_id: str, values: dict[str, str | None]) -> dict[str, Any]:
        return {**values, "case": case_id, "source": self.source}


@dataclass(frozen=True)
class RowFacts:
    """A row with its parsed time and the actor its changes are recorded under."""

    row: SourceRow
    at: datetime
    actor: m.ActorModel


class CaseState:
    """Walks one case's rows in order, remembering what the previous usable row said."""

    def __init__(self, case_id: str, planner: CasePlanner) -> None:
        self.case_id = case_id
        self.planner = planner
        self.base = open_command_id(planner.source, case_id)
        self.ticket_id = ticket_id_for(self.base)
        self.opened = False
        self.requester = ""
        self.previous = Attributes()

    def plan_row(self, facts: RowFacts, position: int) -> list[m.Command]:
        attributes = self.planner.attributes(facts)
        if not self.opened:
            commands = self._opening(facts, attributes)
        else:
            commands = self._changes(facts, attributes)
            commands += self.planner.row_commands(self, facts, attributes, self.previous)
        self.previous = _carry(self.previous, attributes)
        self.opened = True
        return self._numbered(commands, position)

    def _numbered(self, commands: list[m.Command], position: int) -> list[m.Command]:
        """The opening keeps the case's id; the n-th other command of the row-th row gets
        `<case id>:<row>:<n>`."""
        numbered: list[m.Command] = []
        n = 0
        for command in commands:
            if isinstance(command, m.OpenTicket):
                numbered.append(command)
                continue
            n += 1
            numbered.append(
                command.model_copy(update={"command_id": f"{self.base}:{position}:{n}"})
            )
        return numbered

    def _opening(self, facts: RowFacts, attributes: Attributes) -> list[m.Command]:
        planner, mapping = self.planner, self.planner.mapping
        values = facts.row.values
        if attributes.status is None:
            attributes.status = Status.NEW
        opened_at = facts.at
        if mapping.opened is not None:
            # Without a usable opening time the ticket opens at its first row.
            with contextlib.suppress(Unmappable):
                raw = values.get(mapping.opened.column)
                opened_at = min(facts.at, parse_time(mapping.opened, mapping, raw))
        template = planner.template_values(self.case_id, values)
        ticket = mapping.ticket
        opening = m.OpenTicket(
            command_id=self.base,
            account_id=planner.account_id(values),
            requester=render(ticket.requester, template),
            subject=render(ticket.subject, template)[: m.MAX_SUBJECT_CHARS],
            description=render(ticket.description, template),
            channel=planner.channel(values),
            priority=attributes.priority or Priority.NORMAL,
            category=attributes.category,
            tags=[attributes.category_tag] if attributes.category_tag else [],
            external_id=external_id(planner.source, self.case_id),
            actor=facts.actor,
            occurred_at=opened_at,
        )
        self.requester = opening.requester
        commands: list[m.Command] = [opening]
        if attributes.team is not None or attributes.agent is not None:
            commands.append(self._assign(facts, attributes, Attributes()))
        return commands + planner.opening_commands(self, facts, attributes)

    def _changes(self, facts: RowFacts, now: Attributes) -> list[m.Command]:
        before = self.previous
        commands: list[m.Command] = []
        if now.priority is not None and now.priority != before.priority:
            commands.append(self.command(m.PrioritizeTicket, facts, priority=now.priority))
        if now.category is not None and now.category != before.category:
            commands.append(self.command(m.CategorizeTicket, facts, category=now.category))
        if now.category_tag is not None and now.category_tag != before.category_tag:
            commands.append(self.command(m.TagTicket, facts, tags=[now.category_tag]))
            if before.category_tag is not None:
                commands.append(self.command(m.UntagTicket, facts, tags=[before.category_tag]))
        mapping = self.planner.mapping
        team_changed = mapping.team is not None and now.team != before.team
        agent_changed = mapping.agent is not None and now.agent != before.agent
        if team_changed or agent_changed:
            commands.append(self._assign(facts, now, before))
        return commands

    def _assign(self, facts: RowFacts, now: Attributes, before: Attributes) -> m.Command:
        """Only the changed fields: a field left out keeps its value, None unassigns."""
        fields: dict[str, str | None] = {}
        if self.planner.mapping.team is not None and now.team != before.team:
            fields["team"] = now.team
        if self.planner.mapping.agent is not None and now.agent != before.agent:
            fields["agent"] = now.agent
        return self.command(m.AssignTicket, facts, **fields)

    def command(self, model: type[m.TicketCommand], facts: RowFacts, **fields: Any) -> m.Command:
        """A command on this case's ticket at the row's time (its id is set by `plan_row`)."""
        return model(
            ticket_id=self.ticket_id,
            actor=facts.actor,
            occurred_at=facts.at,
            command_id=self.base,
            **fields,
        )


def _carry(before: Attributes, now: Attributes) -> Attributes:
    """What the ticket holds after a row: nulls keep the earlier value, except assignment,
    where a null means unassigned."""
    return Attributes(
        priority=now.priority if now.priority is not None else before.priority,
        category=now.category if now.category is not None else before.category,
        category_tag=now.category_tag if now.category_tag is not None else before.category_tag,
        team=now.team,
        agent=now.agent,
        status=now.status if now.status is not None else before.status,
    )


def reason_text(text: str) -> str:
    return text[:MAX_REASON_CHARS]
