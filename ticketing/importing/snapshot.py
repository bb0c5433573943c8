"""State-snapshot logs (ServiceNow audit exports and the like): each row is the record's whole
state after one update, so consecutive rows are diffed into commands.

The shared diff (`plan.py`) turns changed priority, category and assignment into commands; this
module adds the status: a row whose mapped state differs from the previous row's becomes one
`ChangeStatus` at the row's time, which the ticket turns into the telling event (solved ->
`TicketResolved`, solved -> open -> `TicketReopened`, solved -> closed -> `TicketClosed`). A
state the status model cannot reach from where the ticket is (backwards into `new`, anything
after `closed`) is refused by the domain and counted, never forced."""

from __future__ import annotations

from commands import models as m
from ticketing.domain.values import Status
from ticketing.importing.mapping import lookup
from ticketing.importing.plan import Attributes, CasePlanner, CaseState, RowFacts, reason_text


class SnapshotPlanner(CasePlanner):
    """Plans snapshot-log cases: attribute diffs plus state moves."""

    def read_status(self, facts: RowFacts) -> Status | None:
        spec = self.mapping.status
        assert spec is not None  # the mapping model requires [status] for snapshot logs
        status = lookup("status", spec, facts.row.values.get(spec.column))
        return Status(status) if status is not None else None

    def opening_commands(
        self, case: CaseState, facts: RowFacts, attributes: Attributes
    ) -> list[m.Command]:
        if attributes.status in (None, Status.NEW):
            return []
        return [self._move(case, facts, attributes.status)]

    def row_commands(
        self, case: CaseState, facts: RowFacts, attributes: Attributes, previous: Attributes
    ) -> list[m.Command]:
        if attributes.status is None or attributes.status == previous.status:
            return []
        return [self._move(case, facts, attributes.status)]

    def _move(self, case: CaseState, facts: RowFacts, status: Status | None) -> m.Command:
        spec = self.mapping.status
        assert spec is not None and status is not None
        raw = facts.row.values.get(spec.column) or str(status)
        return case.command(m.ChangeStatus, facts, status=status, reason=reason_text(raw))
