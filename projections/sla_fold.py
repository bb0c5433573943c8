"""SLA state kept inside a projection's own database (SQLite queue, DuckDB analytics).

Each projection that shows SLA figures folds the same inputs the SLA monitor does (the policy
catalog and each pinned ticket's clock timeline, `ticketing.sla`) into two tables of its own, in
the transaction that applies the batch. Clocks are evaluated as of the ticket's latest event,
never the wall clock, so a projection rebuilt from the store equals the live one row for row;
a deadline passing in silence shows up when the monitor's SlaBreached event arrives."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ticketing.domain.events import AGGREGATE_KIND_OF
from ticketing.sla.catalog import SlaCatalog
from ticketing.sla.timeline import TicketSla

SCHEMA = """
CREATE TABLE IF NOT EXISTS sla_catalog (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sla_state (
    ticket_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    as_of TEXT NOT NULL
);
"""


@dataclass
class TouchedTicket:
    """A pinned ticket whose SLA inputs changed in the batch, as of its latest event."""

    ticket_id: str
    sla: TicketSla
    as_of: datetime


class SlaFold:
    """Folds a batch into the catalog and per-ticket SLA state of one database connection."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def catalog(self) -> SlaCatalog:
        row = self.db.execute("SELECT body FROM sla_catalog WHERE id = 1").fetchone()
        return SlaCatalog.from_json(row[0]) if row else SlaCatalog()

    def apply(self, payloads: Iterable[dict[str, Any]]) -> tuple[SlaCatalog, list[TouchedTicket]]:
        """Fold and save; returns the catalog and every touched ticket that has a pinned policy."""
        catalog = self.catalog()
        catalog_changed = False
        states: dict[str, TicketSla] = {}
        as_of: dict[str, datetime] = {}
        changed: set[str] = set()
        for payload in payloads:
            if catalog.add(payload):
                catalog_changed = True
                continue
            if AGGREGATE_KIND_OF.get(payload.get("type", "")) != "ticket":
                continue
            ticket_id = str(payload["aggregate_id"])
            if ticket_id not in states:
                loaded = self._load(ticket_id)
                states[ticket_id] = loaded[0] if loaded else TicketSla()
                if loaded:
                    as_of[ticket_id] = loaded[1]
            if states[ticket_id].add(payload):
                # As of the latest event the clocks read, so batch boundaries never matter.
                changed.add(ticket_id)
                moment = datetime.fromisoformat(payload["occurred_at"])
                as_of[ticket_id] = max(moment, as_of.get(ticket_id, moment))
        if catalog_changed:
            self.db.execute("DELETE FROM sla_catalog WHERE id = 1")
            self.db.execute("INSERT INTO sla_catalog VALUES (1, ?)", [catalog.to_json()])
        touched = [TouchedTicket(t, states[t], as_of[t]) for t in sorted(changed)]
        if touched:
            ids = [t.ticket_id for t in touched]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" for _ in chunk)
                self.db.execute(f"DELETE FROM sla_state WHERE ticket_id IN ({marks})", chunk)
            self.db.executemany(
                "INSERT INTO sla_state VALUES (?, ?, ?)",
                [(t.ticket_id, t.sla.to_json(), t.as_of.isoformat()) for t in touched],
            )
        return catalog, [t for t in touched if t.sla.pin is not None]

    def _load(self, ticket_id: str) -> tuple[TicketSla, datetime] | None:
        row = self.db.execute(
            "SELECT state, as_of FROM sla_state WHERE ticket_id = ?", [ticket_id]
        ).fetchone()
        if row is None:
            return None
        return TicketSla.from_json(row[0]), datetime.fromisoformat(row[1])
