"""SLA what-if: replay every ticket's history under another policy and compare the outcome with
what the tickets actually had.

`what_if(batches, policy, now=...)` reads stream payloads (the shape the projectors see, in
stream order), folds the policy catalog and each ticket's clock timeline, and evaluates every
ticket opened in the window twice as of `now`: under `policy` (the what-if) and under the pinned
policy version the ticket was really measured against (the actual). A ticket without a pin (or
whose pinned version is unknown) counts as `unmeasured` in the actual column.

Counting, per metric: one measurement per clock with a target (first reply and resolution once
per ticket, next reply once per cycle); `achieved` and `breached` are final states (a late
reply is breached), `running` are clocks still open as of `now`, running or paused;
breach rate = breached / (achieved + breached), `None` when nothing has finished. Segments are
the account tier at opening x the ticket's priority as of `now`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ticketing.domain.sla_policy import (
    ClockState,
    MetricClock,
    Opened,
    PriorityChanged,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    SlaReport,
)
from ticketing.sla.catalog import SlaCatalog
from ticketing.sla.timeline import TicketSla, all_clocks

Progress = Callable[[int], None]
"""Called with the number of events read since the last call."""

METRICS = tuple(SlaMetric)


@dataclass
class MetricTally:
    """One metric's outcomes in one column."""

    measured: int = 0
    achieved: int = 0
    breached: int = 0
    running: int = 0

    @property
    def breach_rate(self) -> float | None:
        finished = self.achieved + self.breached
        return None if finished == 0 else self.breached / finished

    def count(self, clock: MetricClock) -> None:
        self.measured += 1
        if clock.state is ClockState.BREACHED:
            self.breached += 1
        elif clock.state is ClockState.ACHIEVED:
            self.achieved += 1
        else:
            self.running += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "measured": self.measured,
            "achieved": self.achieved,
            "breached": self.breached,
            "running": self.running,
            "breach_rate": self.breach_rate,
        }


@dataclass
class Tally:
    """Every metric's outcomes under one policy (the actual ones or the what-if)."""

    tickets: int = 0
    unmeasured: int = 0
    metrics: dict[SlaMetric, MetricTally] = field(
        default_factory=lambda: {metric: MetricTally() for metric in METRICS}
    )

    def count(self, report: SlaReport | None) -> None:
        self.tickets += 1
        if report is None:
            self.unmeasured += 1
            return
        for clock in all_clocks(report):
            self.metrics[clock.metric].count(clock)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tickets": self.tickets,
            "unmeasured": self.unmeasured,
            "metrics": {str(m): t.as_dict() for m, t in self.metrics.items()},
        }


@dataclass
class Comparison:
    """The actual outcome beside the what-if outcome for one set of tickets."""

    actual: Tally = field(default_factory=Tally)
    what_if: Tally = field(default_factory=Tally)

    def as_dict(self) -> dict[str, Any]:
        return {"actual": self.actual.as_dict(), "what_if": self.what_if.as_dict()}


@dataclass
class WhatIfResult:
    """The comparison overall and per (tier, priority) segment."""

    policy_name: str
    policy_version: int
    evaluated_at: datetime
    since: datetime | None
    overall: Comparison = field(default_factory=Comparison)
    segments: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    events_read: int = 0

    @property
    def tickets(self) -> int:
        return self.overall.what_if.tickets

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": {"policy_id": self.policy_name, "version": self.policy_version},
            "evaluated_at": self.evaluated_at.isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "tickets": self.tickets,
            "events_read": self.events_read,
            "overall": self.overall.as_dict(),
            "by_segment": [
                {"tier": tier, "priority": priority, **comparison.as_dict()}
                for (tier, priority), comparison in sorted(self.segments.items())
            ],
        }


def what_if(
    batches: Iterable[Iterable[Mapping[str, Any]]],
    policy: SlaPolicy,
    *,
    now: datetime,
    since: datetime | None = None,
    progress: Progress | None = None,
) -> WhatIfResult:
    """Compare `policy` with the actual pinned policies for tickets opened in [since, now)."""
    catalog = SlaCatalog()
    tickets: dict[str, TicketSla] = {}
    events_read = 0
    for batch in batches:
        read = 0
        for payload in batch:
            read += 1
            _fold(dict(payload), catalog, tickets, since, now)
        events_read += read
        if progress is not None:
            progress(read)
    result = WhatIfResult(policy.name, policy.version, now, since, events_read=events_read)
    clock = SlaClock(policy)
    for ticket in tickets.values():
        opened = ticket.entries[0]
        assert isinstance(opened, Opened)
        segment = result.segments.setdefault(
            (str(opened.tier), _priority_as_of(ticket, now)), Comparison()
        )
        actual = ticket.report(catalog, now)
        alternative = clock.evaluate(ticket.entries, now=now)
        for comparison in (result.overall, segment):
            comparison.actual.count(actual)
            comparison.what_if.count(alternative)
    return result


def _fold(
    payload: dict[str, Any],
    catalog: SlaCatalog,
    tickets: dict[str, TicketSla],
    since: datetime | None,
    now: datetime,
) -> None:
    if catalog.add(payload):
        return
    kind = payload.get("type")
    aggregate_id = str(payload.get("aggregate_id"))
    if kind == "TicketOpened":
        opened_at = datetime.fromisoformat(payload["occurred_at"])
        if opened_at >= now or (since is not None and opened_at < since):
            return  # outside the window: never held in memory
        tickets[aggregate_id] = TicketSla()
    ticket = tickets.get(aggregate_id)
    if ticket is not None:
        ticket.add(payload)


def _priority_as_of(ticket: TicketSla, now: datetime) -> str:
    priority = ""
    for entry in ticket.entries:
        if entry.at > now:
            break
        if isinstance(entry, Opened | PriorityChanged):
            priority = str(entry.priority)
    return priority
