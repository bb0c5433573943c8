"""SLA achievement in the analytics projection: one row per ticket, metric and cycle.

From the shared SLA fold, each measured clock of a pinned ticket is evaluated as of the
ticket's latest clock event, twice: in the policy's own calendar (business hours, or calendar
time for a 24x7 policy) and, for comparison, with the same targets in plain calendar time.
`kpi_sla_achievement` reports achievement = achieved / (achieved + breached) by metric, tier,
priority and team; clocks still running or paused count in neither."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from projections.sla_fold import SCHEMA as FOLD_SCHEMA
from projections.sla_fold import Insert, SlaFold, TouchedTicket
from projections.where_in import delete_where_in
from ticketing.domain.business_hours import CALENDAR_TIME
from ticketing.domain.sla_policy import SlaClock
from ticketing.sla.catalog import SlaCatalog
from ticketing.sla.timeline import all_clocks

SCHEMA = (
    FOLD_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS ticket_sla (
    ticket_id VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    cycle INTEGER NOT NULL,
    sla_policy VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    priority VARCHAR NOT NULL,
    target_minutes INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    business_state VARCHAR NOT NULL,
    business_due_at TIMESTAMPTZ,
    business_elapsed_minutes DOUBLE NOT NULL,
    calendar_state VARCHAR NOT NULL,
    calendar_elapsed_minutes DOUBLE NOT NULL,
    achieved_at TIMESTAMPTZ,
    breached_at TIMESTAMPTZ,
    PRIMARY KEY (ticket_id, metric, cycle)
);
"""
)

VIEW = """
CREATE OR REPLACE VIEW kpi_sla_achievement AS
WITH clocks AS (
    SELECT s.*, f.team, f.account_id
    FROM ticket_sla s LEFT JOIN ticket_facts f USING (ticket_id)
)
SELECT
    metric, tier, priority, team,
    count(*) FILTER (WHERE business_state = 'achieved') AS business_achieved,
    count(*) FILTER (WHERE business_state = 'breached') AS business_breached,
    count(*) FILTER (WHERE business_state = 'achieved')
        / nullif(count(*) FILTER (WHERE business_state IN ('achieved', 'breached')), 0)
        AS business_achievement,
    count(*) FILTER (WHERE calendar_state = 'achieved') AS calendar_achieved,
    count(*) FILTER (WHERE calendar_state = 'breached') AS calendar_breached,
    count(*) FILTER (WHERE calendar_state = 'achieved')
        / nullif(count(*) FILTER (WHERE calendar_state IN ('achieved', 'breached')), 0)
        AS calendar_achievement,
    count(*) FILTER (WHERE business_state IN ('running', 'paused')) AS in_progress
FROM clocks
GROUP BY ALL
"""


def fold_ticket_sla(db: Any, payloads: Iterable[dict[str, Any]]) -> None:
    """Inside the analytics batch transaction: refresh `ticket_sla` for touched tickets."""
    insert = arrow_insert(db)
    catalog, touched = SlaFold(db, insert).apply(payloads)
    delete_where_in(db, "ticket_sla", [t.ticket_id for t in touched])
    insert("ticket_sla", [row for ticket in touched for row in _rows(catalog, ticket)])


def arrow_insert(con: Any) -> Insert:
    """DuckDB appends an Arrow batch far faster than row-by-row `executemany`."""

    def insert(table: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
        batch = pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})
        con.register("_sla_rows", batch)
        try:
            con.execute(f"INSERT INTO {table} SELECT * FROM _sla_rows")
        finally:
            con.unregister("_sla_rows")

    return insert


def _rows(catalog: SlaCatalog, ticket: TouchedTicket) -> list[tuple[Any, ...]]:
    policy = ticket.sla.policy(catalog)
    if policy is None or ticket.sla.pin is None:
        return []
    entries, now = ticket.sla.entries, ticket.as_of
    business = SlaClock(policy).evaluate(entries, now=now)
    calendar = SlaClock(dataclasses.replace(policy, calendar=CALENDAR_TIME)).evaluate(
        entries, now=now
    )
    calendar_clocks = {(c.metric, c.cycle): c for c in all_clocks(calendar)}
    opened = entries[0]
    priority = _priority(entries)
    label = f"{ticket.sla.pin.policy_id}@{ticket.sla.pin.policy_version}"
    rows = []
    for clock in all_clocks(business):
        twin = calendar_clocks.get((clock.metric, clock.cycle))
        rows.append(
            (
                ticket.ticket_id,
                str(clock.metric),
                clock.cycle,
                label,
                str(getattr(opened, "tier", "")),
                priority,
                clock.target_minutes,
                clock.started_at,
                str(clock.state),
                clock.due_at,
                clock.elapsed_seconds / 60,
                str(twin.state) if twin else str(clock.state),
                (twin.elapsed_seconds if twin else clock.elapsed_seconds) / 60,
                clock.achieved_at,
                clock.breached_at,
            )
        )
    return rows


def _priority(entries: list[Any]) -> str:
    """The ticket's priority after its latest priority change (or at opening)."""
    for entry in reversed(entries):
        if hasattr(entry, "priority"):
            return str(entry.priority)
    return "normal"


SLA_GROUPS = ("tier", "priority", "team")


def sla_achievement(con: Any, by: str | None = None) -> list[dict[str, Any]]:
    """Achievement per metric (and per tier, priority or team), business and calendar time."""
    if by is not None and by not in SLA_GROUPS:
        raise ValueError(f"by must be one of {', '.join(SLA_GROUPS)}")
    group = by or "NULL"
    rows = con.execute(
        f"SELECT metric, {group} AS grp, sum(business_achieved), sum(business_breached), "
        "sum(calendar_achieved), sum(calendar_breached), sum(in_progress) "
        "FROM kpi_sla_achievement GROUP BY ALL ORDER BY metric, grp NULLS LAST"
    ).fetchall()
    report = []
    for metric, grp, b_ok, b_late, c_ok, c_late, running in rows:
        entry: dict[str, Any] = {"metric": metric}
        if by:
            entry[by] = grp
        entry.update(
            business_achieved=int(b_ok),
            business_breached=int(b_late),
            business_achievement=_rate(b_ok, b_late),
            calendar_achieved=int(c_ok),
            calendar_breached=int(c_late),
            calendar_achievement=_rate(c_ok, c_late),
            in_progress=int(running),
        )
        report.append(entry)
    return report


def _rate(achieved: int, breached: int) -> float | None:
    finished = int(achieved) + int(breached)
    return round(int(achieved) / finished, 4) if finished else None
