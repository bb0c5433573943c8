"""The SLA monitor: keeps every ticket's SLA clocks and records SlaWarning and SlaBreached
events, through commands, when they pass.

It folds the stream into per-ticket SLA state (`ticketing.sla.timeline.TicketSla`) and the
policy catalog, and keeps for each ticket the next instant at which something could fall due
(`check_at`). The timer, which only runs while the consumer is caught up, judges every ticket
whose `check_at` has passed against its whole history as of now. So after a restart or any
downtime the backlog is folded first and each missed deadline is then judged exactly once: a
breach whose metric was achieved late is still a breach (with `due_at` the instant it
happened), one achieved in time is none, and a warning is only sent while its clock still
runs unbreached.

Exactly one breach per target: the command id is `sla:<ticket>:<kind>:<metric>:<cycle>` and
the ticket records a metric cycle's breach once, so neither a redelivered event, a repeated
timer nor a restarted monitor can record it twice. Never a judgement on half a history: a
ticket is judged only once its events have settled (`SETTLE_SECONDS` without news), and each
record carries the ticket version it was judged at (`expected_version`), so one that raced a
new event is refused as stale and judged again."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from projections.stream_event import StreamEvent
from ticketing.domain.events import AGGREGATE_KIND_OF
from ticketing.settings import Settings
from ticketing.sla.catalog import SlaCatalog
from ticketing.sla.timeline import DueAction, TicketSla
from ticketing.workers.command_delivery import command_action_body, command_deliverers
from ticketing.workers.outbox import Action, iso
from ticketing.workers.runner import run_automation

ACTOR = {"kind": "system", "id": "sla-monitor"}
CHECK_NOW = ""
"""A `check_at` that sorts before every instant: judge at the next timer tick."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sla_catalog (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT);
CREATE TABLE IF NOT EXISTS sla_tickets (
    ticket_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    folded_at REAL NOT NULL,
    check_at TEXT
);
CREATE INDEX IF NOT EXISTS sla_tickets_check ON sla_tickets (check_at)
    WHERE check_at IS NOT NULL;
"""

SETTLE_SECONDS = 1.0
"""A ticket is judged only once nothing has arrived for it for this long (real time), so a
history written in one go (an import, a backfill, a demo) is judged whole, not half-way."""


class SlaMonitor:
    """The monitor's fold and timer (see the module docstring)."""

    name = "sla-monitor"
    schema = _SCHEMA

    def __init__(
        self, *, settle_seconds: float = SETTLE_SECONDS, wall: Callable[[], float] = time.time
    ) -> None:
        self.settle_seconds = settle_seconds
        self.wall = wall

    def fold(self, events: Sequence[StreamEvent], db: sqlite3.Connection) -> list[Action]:
        catalog = load_catalog(db)
        catalog_changed = False
        touched: dict[str, tuple[TicketSla, int]] = {}
        for event in events:
            payload = event.payload
            if catalog.add(payload):
                catalog_changed = True
                continue
            if not catalog.policies or AGGREGATE_KIND_OF.get(payload.get("type", "")) != "ticket":
                continue  # before any policy exists no ticket can be pinned
            ticket_id = str(payload["aggregate_id"])
            state, version = touched.get(ticket_id) or _load_ticket(db, ticket_id)
            state.add(payload)
            # Any change, even one the clocks ignore, makes a judgement in flight stale.
            touched[ticket_id] = (state, max(version, int(payload.get("version") or 0)))
        if catalog_changed:
            db.execute("INSERT OR REPLACE INTO sla_catalog VALUES (1, ?)", (catalog.to_json(),))
        # Pins are recorded at opening (version 2): past version 1 without one, never measured.
        unmeasured = [t for t, (state, v) in touched.items() if state.pin is None and v > 1]
        db.executemany("DELETE FROM sla_tickets WHERE ticket_id = ?", [(t,) for t in unmeasured])
        folded_at = self.wall()
        db.executemany(
            "INSERT OR REPLACE INTO sla_tickets VALUES (?, ?, ?, ?, ?)",
            [
                (tid, state.to_json(), version, folded_at, CHECK_NOW)
                for tid, (state, version) in touched.items()
                if tid not in unmeasured
            ],
        )
        return []

    def tick(self, db: sqlite3.Connection, now: datetime) -> list[Action]:
        catalog = load_catalog(db)
        rows = db.execute(
            "SELECT ticket_id, state, version FROM sla_tickets WHERE check_at IS NOT NULL "
            "AND check_at <= ? AND folded_at <= ? ORDER BY check_at LIMIT 5000",
            (iso(now), self.wall() - self.settle_seconds),
        ).fetchall()
        actions: list[Action] = []
        updates: list[tuple[str | None, str]] = []
        for ticket_id, text, version in rows:
            judgement = TicketSla.from_json(text).judge(catalog, now)
            # Each record appends one event, delivered in order: the next expects the one after.
            due_now = enumerate(judgement.due)
            actions.extend(sla_command(ticket_id, version + n, due, now) for n, due in due_now)
            wakeup = judgement.next_look
            updates.append((iso(wakeup) if wakeup else None, ticket_id))
        db.executemany("UPDATE sla_tickets SET check_at = ? WHERE ticket_id = ?", updates)
        return actions


def load_catalog(db: sqlite3.Connection) -> SlaCatalog:
    row = db.execute("SELECT body FROM sla_catalog").fetchone()
    return SlaCatalog.from_json(row[0]) if row else SlaCatalog()


def _load_ticket(db: sqlite3.Connection, ticket_id: str) -> tuple[TicketSla, int]:
    row = db.execute(
        "SELECT state, version FROM sla_tickets WHERE ticket_id = ?", (ticket_id,)
    ).fetchone()
    return (TicketSla.from_json(row[0]), int(row[1])) if row else (TicketSla(), 0)


def sla_command(ticket_id: str, version: int, due: DueAction, now: datetime) -> Action:
    """The command recording one due warning or breach, judged at ticket `version`.

    Its id makes it happen once. It carries `expected_version`, so if the ticket changed after
    the judgement (a reply arriving just then) the service refuses it as stale and the monitor
    judges again with the news; the outbox key names the version for that second judgement."""
    command_id = f"sla:{ticket_id}:{due.kind}:{due.metric}:{due.cycle}"
    payload: dict[str, Any] = {
        "command_id": command_id,
        "actor": ACTOR,
        "occurred_at": now.isoformat(),
        "expected_version": version,
        "ticket_id": ticket_id,
        "metric": due.metric,
        "cycle": due.cycle,
        "due_at": due.due_at.isoformat(),
    }
    if due.kind == "warning":
        name = "record_sla_warning"
        payload["threshold"] = due.threshold
    else:
        name = "record_sla_breach"
    return Action(f"{command_id}@{version}", "command", command_action_body(name, payload))


async def run(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:

    await run_automation(
        settings,
        stop,
        say,
        worker=SlaMonitor(),
        deliverers=command_deliverers,
        description="records SLA warnings and breaches as they pass",
    )
