"""SLA state kept inside a projection's own database (SQLite queue, DuckDB analytics).

Each projection that shows SLA figures folds the same inputs the SLA monitor does (the policy
catalog and each pinned ticket's clock timeline, `ticketing.sla`) into two tables of its own, in
the transaction that applies the batch. Clocks are evaluated as of the ticket's latest event,
never the wall clock, so a projection rebuilt from the store equals the live one row for row;
a deadline passing in silence shows up when the monitor's SlaBreached event arrives."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.where_in import delete_where_in, fetch_where_in
from ticketing.domain.events import AGGREGATE_KIND_OF
from ticketing.sla.catalog import CATALOG_EVENT_TYPES, SlaCatalog
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


Insert = Callable[[str, list[tuple[Any, ...]]], None]
"""Appends rows to a table: executemany for SQLite, an Arrow batch for DuckDB."""


def executemany_insert(db: Any) -> Insert:
    def insert(table: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            marks = ",".join("?" for _ in rows[0])
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    return insert


class SlaFold:
    """Folds a batch into the catalog and per-ticket SLA state of one database connection."""

    def __init__(self, db: Any, insert: Insert | None = None) -> None:
        self.db = db
        self.insert = insert or executemany_insert(db)

    def catalog(self) -> SlaCatalog:
        row = self.db.execute("SELECT body FROM sla_catalog WHERE id = 1").fetchone()
        return SlaCatalog.from_json(row[0]) if row else SlaCatalog()

    def apply(self, payloads: Iterable[dict[str, Any]]) -> tuple[SlaCatalog, list[TouchedTicket]]:
        """Fold and save; returns the catalog and every touched ticket that has a pinned policy.

        Only measurable tickets are kept: a ticket is pinned in the command that opens it
        (`SlaPolicyApplied` is its version 2), so one seen past version 1 without a pin never
        will be, and before any policy exists no ticket is followed at all."""
        batch = list(payloads)
        catalog = self.catalog()
        folded = [catalog.add(p) for p in batch if p.get("type") in CATALOG_EVENT_TYPES]
        if folded:
            self.db.execute("DELETE FROM sla_catalog WHERE id = 1")
            self.db.execute("INSERT INTO sla_catalog VALUES (1, ?)", [catalog.to_json()])
        if not catalog.policies:
            return catalog, []
        tickets = {
            str(p["aggregate_id"])
            for p in batch
            if AGGREGATE_KIND_OF.get(p.get("type", "")) == "ticket"
        }
        loaded = self._load(tickets)
        opened_here = {str(p["aggregate_id"]) for p in batch if p.get("type") == "TicketOpened"}
        states = {t: loaded[t][0] if t in loaded else TicketSla() for t in {*loaded, *opened_here}}
        as_of = {t: loaded[t][1] for t in loaded}
        latest: dict[str, int] = {}
        changed: set[str] = set()
        for payload in batch:
            ticket_id = str(payload.get("aggregate_id"))
            if ticket_id not in states:
                continue
            latest[ticket_id] = max(latest.get(ticket_id, 0), int(payload.get("version") or 0))
            if states[ticket_id].add(payload):
                # As of the latest event the clocks read, so batch boundaries never matter.
                changed.add(ticket_id)
                moment = datetime.fromisoformat(payload["occurred_at"])
                as_of[ticket_id] = max(moment, as_of.get(ticket_id, moment))
        unmeasured = {t for t in states if states[t].pin is None and latest.get(t, 1) > 1}
        kept = sorted(changed - unmeasured)
        touched = [TouchedTicket(t, states[t], as_of[t]) for t in kept]
        delete_where_in(self.db, "sla_state", [*kept, *(unmeasured & set(loaded))])
        self.insert(
            "sla_state", [(t.ticket_id, t.sla.to_json(), t.as_of.isoformat()) for t in touched]
        )
        return catalog, [t for t in touched if t.sla.pin is not None]

    def _load(self, ticket_ids: Iterable[str]) -> dict[str, tuple[TicketSla, datetime]]:
        rows = fetch_where_in(
            self.db,
            "SELECT ticket_id, state, as_of FROM sla_state WHERE ticket_id IN ({marks})",
            sorted(ticket_ids),
        )
        return {
            ticket_id: (TicketSla.from_json(state), datetime.fromisoformat(as_of))
            for ticket_id, state, as_of in rows
        }
