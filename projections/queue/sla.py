"""SLA columns of the queue: each ticket's next due time and its breach and warning flags.

Kept in `queue_sla` beside `queue_tickets` (joined by the queries), from the shared SLA fold:
the next due time is that of the running clock that falls due first as of the ticket's latest
event (a running clock's due time does not move until something happens to the ticket);
`breached` lists the metrics that breached, whether the monitor has recorded it yet or not."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from projections.sla_fold import SCHEMA as FOLD_SCHEMA
from projections.sla_fold import SlaFold
from ticketing.domain.sla_policy import ClockState
from ticketing.sla.timeline import all_clocks, next_due

SCHEMA = (
    FOLD_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS queue_sla (
    ticket_id TEXT PRIMARY KEY,
    sla_policy TEXT NOT NULL,
    sla_next_metric TEXT,
    sla_due_at TEXT,
    sla_breached TEXT NOT NULL,
    sla_warned TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_sla_due ON queue_sla (sla_due_at);
"""
)

SLA_COLUMNS = ("sla_policy", "sla_next_metric", "sla_due_at", "sla_breached", "sla_warned")


def fold_queue_sla(db: sqlite3.Connection, payloads: Iterable[dict[str, Any]]) -> None:
    """Inside the queue's batch transaction: refresh `queue_sla` for every touched ticket."""
    catalog, touched = SlaFold(db).apply(payloads)
    rows = []
    for ticket in touched:
        report = ticket.sla.report(catalog, ticket.as_of)
        if report is None or ticket.sla.pin is None:
            continue
        clocks = all_clocks(report)
        breached = {str(c.metric) for c in clocks if c.state is ClockState.BREACHED}
        breached |= {metric for metric, _ in ticket.sla.breached}
        due = next_due(report)
        rows.append(
            (
                ticket.ticket_id,
                f"{ticket.sla.pin.policy_id}@{ticket.sla.pin.policy_version}",
                str(due.metric) if due else None,
                due.due_at.isoformat() if due and due.due_at else None,
                json.dumps(sorted(breached)),
                json.dumps(sorted({metric for metric, _ in ticket.sla.warned})),
            )
        )
    db.executemany("INSERT OR REPLACE INTO queue_sla VALUES (?, ?, ?, ?, ?, ?)", rows)
