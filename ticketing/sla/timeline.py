"""One ticket's SLA inputs folded from its stream events, and what its clocks owe next.

`TicketSla.add(payload)` turns event payloads into the pure clock's timeline
(`ticketing.domain.sla_policy`); `report` evaluates it against the ticket's pinned policy as of
any instant; `judge` lists the warnings and breaches that instant has reached and not yet
been recorded, and when the next one can fall due. The same fold serves the SLA
monitor, the queue (next due time), analytics (achievement) and what-if."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ticketing.domain.sla_policy import (
    ClockState,
    Closed,
    MetricClock,
    Opened,
    PriorityChanged,
    PublicReply,
    Reopened,
    SlaClock,
    SlaPolicy,
    SlaReport,
    Solved,
    StatusChanged,
    TimelineEntry,
)
from ticketing.domain.status_rules import ENTERABLE_WORKING_STATUSES
from ticketing.sla.catalog import Pin, SlaCatalog

_STATUS_EVENTS = {"StatusChanged", "TicketResolved", "TicketReopened", "TicketClosed"}


def timeline_entry(payload: dict[str, Any]) -> TimelineEntry | None:
    """The clock's view of one ticket event, or None when clocks do not care about it."""
    kind = payload.get("type")
    at = datetime.fromisoformat(payload["occurred_at"]) if "occurred_at" in payload else None
    if at is None:
        return None
    if kind == "TicketOpened":
        return Opened(at, payload["priority"], payload["account_tier"])
    if kind == "TicketPrioritized":
        return PriorityChanged(at, payload["priority"])
    if kind == "CommentAdded" and payload.get("visibility") == "public":
        return PublicReply(at, (payload.get("actor") or {}).get("kind", "api"))
    if kind in _STATUS_EVENTS:
        target, source = payload.get("to_status"), payload.get("from_status")
        if target == "solved":
            return Solved(at)
        if target == "closed":
            return Closed(at)
        if source == "solved" and target == "open":
            return Reopened(at)
        if target in ENTERABLE_WORKING_STATUSES:
            return StatusChanged(at, target)
    return None


@dataclass(frozen=True)
class DueAction:
    """A warning or breach the monitor should record now."""

    kind: str  # "warning" | "breach"
    metric: str
    cycle: int
    due_at: datetime
    threshold: float = 0.0
    """For a warning: the fraction of the target that had been used."""


@dataclass(frozen=True)
class Judgement:
    due: list[DueAction]
    next_look: datetime | None


@dataclass
class TicketSla:
    """A ticket's pinned policy, clock timeline and the SLA records already made."""

    pin: Pin | None = None
    entries: list[TimelineEntry] = field(default_factory=list)
    warned: set[tuple[str, int]] = field(default_factory=set)
    breached: set[tuple[str, int]] = field(default_factory=set)

    def add(self, payload: dict[str, Any]) -> bool:
        """Fold one of the ticket's events; True when it changed anything the clocks read."""
        kind = payload.get("type")
        if kind == "SlaPolicyApplied":
            self.pin = Pin.from_payload(payload)
            return True
        if kind in {"SlaWarningIssued", "SlaBreached"}:
            records = self.warned if kind == "SlaWarningIssued" else self.breached
            records.add((payload["metric"], int(payload["cycle"])))
            return True
        entry = timeline_entry(payload)
        if entry is None:
            return False
        if isinstance(entry, Opened):
            self.entries = [entry]
        elif self.entries:
            self.entries.append(entry)
        return True

    @property
    def opened_at(self) -> datetime | None:
        return self.entries[0].at if self.entries else None

    def policy(self, catalog: SlaCatalog) -> SlaPolicy | None:
        if self.pin is None or not self.entries or not catalog.knows(self.pin):
            return None
        return catalog.policy(self.pin)

    def report(self, catalog: SlaCatalog, now: datetime) -> SlaReport | None:
        """Every clock as of `now`; None without a pinned (and known) policy."""
        policy = self.policy(catalog)
        if policy is None or self.opened_at is None or now < self.opened_at:
            return None
        return SlaClock(policy).evaluate(self.entries, now=now)

    def judge(self, catalog: SlaCatalog, now: datetime) -> Judgement:
        """What is due at `now` and when to look again, from one evaluation of the clocks.

        Due: breaches reached and warnings passed by `now` that are not recorded yet (a warning
        is only worth sending while its clock still runs unbreached). Next look: the earliest
        instant after `now` at which that could change if nothing else happens to the ticket
        (None when no clock runs)."""
        policy = self.policy(catalog)
        report = self.report(catalog, now)
        if policy is None or report is None or self.pin is None:
            return Judgement([], None)
        fraction = catalog.warning_at(self.pin)
        due: list[DueAction] = []
        instants: list[datetime] = []
        for clock in all_clocks(report):
            key = (str(clock.metric), clock.cycle)
            if clock.state is ClockState.BREACHED and key not in self.breached:
                assert clock.breached_at is not None
                due.append(DueAction("breach", key[0], key[1], clock.breached_at))
            if clock.state is not ClockState.RUNNING or clock.due_at is None:
                continue
            instants.append(clock.due_at)
            if key in self.warned:
                continue
            left = fraction * clock.target_minutes * 60 - clock.elapsed_seconds
            if left <= 0:
                due.append(DueAction("warning", key[0], key[1], clock.due_at, fraction))
            else:
                instants.append(policy.calendar.add_business_seconds(now, left))
        return Judgement(due, min(instants, default=None))

    def to_json(self) -> str:
        return json.dumps(
            {
                "pin": vars(self.pin) if self.pin else None,
                "entries": [_entry_json(e) for e in self.entries],
                "warned": sorted(self.warned),
                "breached": sorted(self.breached),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> TicketSla:
        data = json.loads(text)
        return cls(
            Pin(**data["pin"]) if data["pin"] else None,
            [_entry_from_json(e) for e in data["entries"]],
            {(m, int(c)) for m, c in data["warned"]},
            {(m, int(c)) for m, c in data["breached"]},
        )


def next_due(report: SlaReport | None) -> MetricClock | None:
    """The running clock that falls due first (what a queue sorts by)."""
    if report is None:
        return None
    running = [c for c in all_clocks(report) if c.state is ClockState.RUNNING and c.due_at]
    return min(running, key=lambda c: c.due_at or c.started_at, default=None)


def all_clocks(report: SlaReport) -> list[MetricClock]:
    """First reply, resolution and every next-reply cycle."""
    singles = [c for c in (report.first_reply, report.resolution) if c is not None]
    return [*singles, *report.next_reply_cycles]


_ENTRY_KINDS: dict[str, type] = {
    "opened": Opened,
    "status": StatusChanged,
    "reply": PublicReply,
    "priority": PriorityChanged,
    "solved": Solved,
    "reopened": Reopened,
    "closed": Closed,
}
_KIND_OF_ENTRY = {cls: name for name, cls in _ENTRY_KINDS.items()}


def _entry_json(entry: TimelineEntry) -> list[str]:
    name = _KIND_OF_ENTRY[type(entry)]
    extra = [str(v) for k, v in vars(entry).items() if k != "at"]
    return [name, entry.at.isoformat(), *extra]


def _entry_from_json(data: list[str]) -> TimelineEntry:
    name, at, *extra = data
    entry: TimelineEntry = _ENTRY_KINDS[name](datetime.fromisoformat(at), *extra)
    return entry
