"""The router process (`ticketing run router`): tickets in a routed team without an agent are
given to a member by the team's policy (TICKETING_ROUTING, see `routing_config.py`).

State, all in the router's automation store and committed with its stream position:
- the roster, folded from the agent events: members in join order, each agent's availability
  and capacity (an agent's capacity holds in every team; capacity 0 takes no new tickets);
- every ticket's team, agent, status and version, until it is closed (the router's own fold);
- each team's last assigned agent, the round-robin position: set when the router queues an
  assignment, and by every assignment of an agent in the team that the router did not make
  (a person's or a trigger's). The router's own `TicketAssigned` events do not move it again,
  since it was moved when the decision was made (decisions run ahead of their events);
- the router's assignments in flight, and every decision with its reason (`router_decisions`).

When a ticket is routable — its team is routed, it has no agent, it is neither solved nor
closed, and no router assignment for it is in flight — the router decides with
`ticketing.domain.routing.route` and queues `AssignTicket(agent=…)` as actor
`automation:router` with command id `route:<ticket id>:<ticket version>` (deterministic: a
redelivery or a rebuilt store asks again under the same id and the service appends nothing).
Only the agent is sent, never the team, so a person who moves the ticket to another team at the
same moment keeps that move. The command carries no `expected_version`: the command deliverer
retries a `version_conflict` as transient, so a stale routed assignment would be retried
forever; the price is that a person's assignment made in the few milliseconds between a
decision and its delivery is replaced by the router's.

Load, per agent: unsolved tickets (new, open, pending, on_hold) assigned to them in the live
queue projection (`<home>/queue.sqlite`, read-only), plus the router's assignments that the
queue does not show yet (so two tickets in quick succession do not both go to the same
least-loaded agent). An in-flight assignment counts until the queue's row for its ticket has
reached the version at which the assignment landed (or, before the router has seen it land,
until the queue shows that agent on the ticket). Without a readable queue file the router
counts from its own fold (its tickets plus assignments not landed yet), says so, and records
`load_source = "router"` on its decisions.

Unrouted tickets. When no member can take the ticket (everyone away or at capacity, or the
team has no members) no command is queued; the decision is recorded as "unrouted" and the
ticket waits. Waiting tickets are retried, oldest first: (1) after every roster event that
concerns their team (a member joining or leaving, changing availability or capacity), (2) on
each of the ticket's own later events, and (3) on every timer tick of the runner while the
router is caught up with the stream, which catches capacity freed by tickets being solved.
An unrouted decision is recorded when it first happens and again only when its explanation
changes, so retries do not flood the audit table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from commands import models as m
from projections.queue.queries import QueueNotReadyError, open_reader
from projections.stream_event import StreamEvent
from projections.where_in import fetch_where_in
from ticketing.domain.events import AGENT_EVENT_TYPES, TICKET_EVENT_TYPES
from ticketing.domain.routing import (
    Availability,
    Member,
    RoutingDecision,
    SkipReason,
    TeamRoster,
    route,
)
from ticketing.domain.status_rules import WORKING_STATUSES
from ticketing.domain.values import ActorKind, Status
from ticketing.settings import Settings
from ticketing.workers.command_delivery import command_action_body, command_deliverers
from ticketing.workers.outbox import Action, iso
from ticketing.workers.routing_config import RoutingConfig, RoutingConfigError, load_routing
from ticketing.workers.runner import configured_or_idle, run_automation

log = logging.getLogger(__name__)

NAME = "router"
ACTOR = m.ActorModel(kind=ActorKind.AUTOMATION, id="router")
COMMAND_ID_PREFIX = "route"
DONE = frozenset({Status.SOLVED, Status.CLOSED})

SCHEMA = """
CREATE TABLE IF NOT EXISTS router_agents (
    agent_uuid TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    availability TEXT NOT NULL,
    capacity INTEGER
);
CREATE TABLE IF NOT EXISTS router_members (
    team TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    joined_sequence INTEGER NOT NULL,
    PRIMARY KEY (team, agent_id)
);
CREATE TABLE IF NOT EXISTS router_tickets (
    ticket_id TEXT PRIMARY KEY,
    team TEXT,
    agent TEXT,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    waiting_since INTEGER
);
CREATE INDEX IF NOT EXISTS router_tickets_waiting ON router_tickets (waiting_since)
    WHERE waiting_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS router_tickets_agent ON router_tickets (agent, status);
CREATE TABLE IF NOT EXISTS router_last_assigned (
    team TEXT PRIMARY KEY,
    agent TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS router_in_flight (
    ticket_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    command_id TEXT NOT NULL,
    landed_version INTEGER
);
CREATE TABLE IF NOT EXISTS router_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id TEXT NOT NULL,
    ticket_version INTEGER NOT NULL,
    team TEXT NOT NULL,
    policy TEXT NOT NULL,
    outcome TEXT NOT NULL,
    agent TEXT,
    command_id TEXT,
    last_assigned TEXT,
    skipped TEXT NOT NULL,
    loads TEXT NOT NULL,
    load_source TEXT NOT NULL,
    explanation TEXT NOT NULL,
    cause TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS router_decisions_ticket ON router_decisions (ticket_id, seq);
"""
"""`router_decisions.outcome` is "routed" or "unrouted"; `skipped` is JSON [[agent, reason]];
`loads` JSON {agent: open tickets}; `cause` the event type that prompted it, or "retry"."""

_TICKET_EVENTS = frozenset(cls.__name__ for cls in TICKET_EVENT_TYPES)
_AGENT_EVENTS = frozenset(cls.__name__ for cls in AGENT_EVENT_TYPES)


@dataclass(frozen=True)
class TicketState:
    ticket_id: str
    team: str | None
    agent: str | None
    status: str
    version: int
    waiting_since: int | None


class RouterWorker:
    """Folds the roster and tickets; routes tickets that become routable."""

    name = NAME
    schema = SCHEMA

    def __init__(
        self,
        config: RoutingConfig,
        queue_file: Path | None,
        say: Callable[[str], None] = log.info,
    ) -> None:
        self.config = config
        self.queue_file = queue_file
        self.say = say
        self.load_source: str | None = None

    # --- the fold --------------------------------------------------------------------------

    def fold(self, events: Sequence[StreamEvent], db: sqlite3.Connection) -> list[Action]:
        actions: list[Action] = []
        for event in events:
            payload = event.payload
            kind = payload["type"]
            if kind in _AGENT_EVENTS:
                for team in _fold_agent(db, event):
                    actions.extend(self._retry(db, team, cause=kind, at=payload["recorded_at"]))
            elif kind in _TICKET_EVENTS:
                ticket = _fold_ticket(db, payload)
                if ticket is not None:
                    actions.extend(self._consider(db, ticket, kind, payload["recorded_at"]))
        return actions

    def tick(self, db: sqlite3.Connection, now: datetime) -> list[Action]:
        """Retry every waiting ticket (capacity may have been freed since)."""
        return self._retry(db, None, cause="retry", at=iso(now))

    def _retry(
        self, db: sqlite3.Connection, team: str | None, *, cause: str, at: str
    ) -> list[Action]:
        if team is not None and self.config.policy_of(team) is None:
            return []
        rows = db.execute(
            "SELECT ticket_id, team, agent, status, version, waiting_since FROM router_tickets "
            "WHERE waiting_since IS NOT NULL AND (?1 IS NULL OR team = ?1) "
            "ORDER BY waiting_since",
            (team,),
        ).fetchall()
        actions: list[Action] = []
        for row in rows:
            actions.extend(self._consider(db, TicketState(*row), cause, at))
        return actions

    def _consider(
        self, db: sqlite3.Connection, ticket: TicketState, cause: str, at: str
    ) -> list[Action]:
        """Route `ticket` if it is routable; otherwise make sure it is not left waiting."""
        policy = self.config.policy_of(ticket.team)
        if policy is None or ticket.agent is not None or ticket.status in DONE:
            if ticket.waiting_since is not None:
                db.execute(
                    "UPDATE router_tickets SET waiting_since = NULL WHERE ticket_id = ?",
                    (ticket.ticket_id,),
                )
            return []
        if _in_flight(db, ticket.ticket_id):
            return []
        assert ticket.team is not None
        roster, no_capacity = _roster(db, ticket.team)
        last = _last_assigned(db, ticket.team)
        loads, source = self._loads(db, roster.agents)
        decision = route(policy, roster, loads, last)
        decision = _with_no_capacity(decision, no_capacity)
        if decision.agent is None:
            self._unrouted(db, ticket, decision, loads, source, cause, at)
            return []
        command = m.AssignTicket(
            ticket_id=UUID(ticket.ticket_id),
            agent=decision.agent,
            actor=ACTOR,
            command_id=f"{COMMAND_ID_PREFIX}:{ticket.ticket_id}:{ticket.version}",
        )
        _record(db, ticket, decision, loads, source, cause, at, command.command_id)
        db.execute(
            "INSERT OR REPLACE INTO router_in_flight VALUES (?, ?, ?, NULL)",
            (ticket.ticket_id, decision.agent, command.command_id),
        )
        db.execute(
            "INSERT OR REPLACE INTO router_last_assigned VALUES (?, ?)",
            (ticket.team, decision.agent),
        )
        db.execute(
            "UPDATE router_tickets SET waiting_since = NULL WHERE ticket_id = ?",
            (ticket.ticket_id,),
        )
        payload = command.model_dump(mode="json", exclude_unset=True)
        payload["command_id"] = command.command_id
        return [Action(command.command_id, "command", command_action_body(command.name, payload))]

    def _unrouted(
        self,
        db: sqlite3.Connection,
        ticket: TicketState,
        decision: RoutingDecision,
        loads: Mapping[str, int],
        source: str,
        cause: str,
        at: str,
    ) -> None:
        previous = db.execute(
            "SELECT outcome, explanation FROM router_decisions WHERE ticket_id = ? "
            "ORDER BY seq DESC LIMIT 1",
            (ticket.ticket_id,),
        ).fetchone()
        if ticket.waiting_since is None or previous != ("unrouted", decision.explanation):
            seq = _record(db, ticket, decision, loads, source, cause, at, None)
            if ticket.waiting_since is None:
                db.execute(
                    "UPDATE router_tickets SET waiting_since = ? WHERE ticket_id = ?",
                    (seq, ticket.ticket_id),
                )

    # --- load ------------------------------------------------------------------------------

    def _loads(self, db: sqlite3.Connection, agents: Sequence[str]) -> tuple[dict[str, int], str]:
        """Open tickets per agent, and where the count came from ("queue" or "router")."""
        counted: dict[str, int] | None = None
        if self.queue_file is not None and self.queue_file.exists():
            # Opened per decision (cheap): a rebuilt queue file is a new file.
            try:
                reader = open_reader(self.queue_file)
                try:
                    counted = _queue_loads(db, reader, agents)
                finally:
                    reader.close()
            except (sqlite3.Error, QueueNotReadyError) as error:
                log.warning("router: cannot read the queue projection: %s", error)
        source = "queue" if counted is not None else "router"
        if counted is None:
            counted = _own_loads(db, agents)
        if source != self.load_source:
            if source == "router":
                self.say(
                    f"router: no readable queue projection at {self.queue_file}; "
                    "counting load from the router's own fold"
                )
            elif self.load_source is not None:
                self.say(f"router: counting load from the queue projection at {self.queue_file}")
            self.load_source = source
        return counted, source


# --- folding ---------------------------------------------------------------------------------


def _fold_agent(db: sqlite3.Connection, event: StreamEvent) -> list[str]:
    """Apply an agent event to the roster; returns the teams whose roster it changed."""
    payload = event.payload
    kind = payload["type"]
    key = payload["aggregate_id"]
    if kind == "AgentRegistered":
        db.execute(
            "INSERT OR IGNORE INTO router_agents VALUES (?, ?, ?, NULL)",
            (key, payload["agent_id"], str(Availability.AVAILABLE)),
        )
        return []
    found = db.execute("SELECT agent_id FROM router_agents WHERE agent_uuid = ?", (key,)).fetchone()
    if found is None:
        log.warning("router: %s for an agent never registered (%s); ignored", kind, key)
        return []
    agent = found[0]
    if kind == "AgentJoinedTeam":
        db.execute(
            "INSERT OR IGNORE INTO router_members VALUES (?, ?, ?)",
            (payload["team"], agent, event.sequence),
        )
        return [payload["team"]]
    if kind == "AgentLeftTeam":
        db.execute(
            "DELETE FROM router_members WHERE team = ? AND agent_id = ?", (payload["team"], agent)
        )
        return [payload["team"]]
    if kind == "AgentAvailabilityChanged":
        db.execute(
            "UPDATE router_agents SET availability = ? WHERE agent_uuid = ?",
            (payload["availability"], key),
        )
    elif kind == "AgentCapacityChanged":
        db.execute(
            "UPDATE router_agents SET capacity = ? WHERE agent_uuid = ?",
            (payload["capacity"], key),
        )
    teams = db.execute(
        "SELECT team FROM router_members WHERE agent_id = ? ORDER BY team", (agent,)
    ).fetchall()
    return [team for (team,) in teams]


def _fold_ticket(db: sqlite3.Connection, payload: Mapping[str, Any]) -> TicketState | None:
    """Apply a ticket event; returns the ticket after it, or `None` if it was seen already."""
    ticket_id = payload["aggregate_id"]
    version = payload["version"]
    if payload["type"] == "TicketOpened":
        inserted = db.execute(
            "INSERT OR IGNORE INTO router_tickets VALUES (?, NULL, NULL, ?, ?, NULL)",
            (ticket_id, str(Status.NEW), version),
        ).rowcount
        return TicketState(ticket_id, None, None, Status.NEW, version, None) if inserted else None
    row = db.execute(
        "SELECT ticket_id, team, agent, status, version, waiting_since FROM router_tickets "
        "WHERE ticket_id = ?",
        (ticket_id,),
    ).fetchone()
    if row is None or version <= row[4]:
        return None
    ticket = TicketState(*row)
    team, agent, status = ticket.team, ticket.agent, ticket.status
    if payload["type"] == "TicketAssigned":
        team, agent = payload["team"], payload["agent"]
        _assignment_seen(db, ticket_id, payload)
    elif "to_status" in payload:
        status = payload["to_status"]
        if status in DONE:  # a routed assignment still in flight no longer matters
            db.execute(
                "DELETE FROM router_in_flight WHERE ticket_id = ? AND landed_version IS NULL",
                (ticket_id,),
            )
    if status == Status.CLOSED:  # read-only forever: nothing left to route or count
        db.execute("DELETE FROM router_tickets WHERE ticket_id = ?", (ticket_id,))
    else:
        db.execute(
            "UPDATE router_tickets SET team = ?, agent = ?, status = ?, version = ? "
            "WHERE ticket_id = ?",
            (team, agent, status, version, ticket_id),
        )
    return TicketState(ticket_id, team, agent, status, version, ticket.waiting_since)


def _assignment_seen(db: sqlite3.Connection, ticket_id: str, payload: Mapping[str, Any]) -> None:
    """Our own assignment landed, or someone else's replaced it (and moves the rotation)."""
    command_id = payload.get("command_id") or ""
    if command_id.startswith(f"{COMMAND_ID_PREFIX}:"):
        db.execute(
            "UPDATE router_in_flight SET landed_version = ? WHERE ticket_id = ? AND command_id = ?",
            (payload["version"], ticket_id, command_id),
        )
        return
    db.execute(
        "DELETE FROM router_in_flight WHERE ticket_id = ? AND landed_version IS NULL",
        (ticket_id,),
    )
    if payload["team"] is not None and payload["agent"] is not None:
        db.execute(
            "INSERT OR REPLACE INTO router_last_assigned VALUES (?, ?)",
            (payload["team"], payload["agent"]),
        )


def _in_flight(db: sqlite3.Connection, ticket_id: str) -> bool:
    found = db.execute(
        "SELECT 1 FROM router_in_flight WHERE ticket_id = ? AND landed_version IS NULL",
        (ticket_id,),
    ).fetchone()
    return found is not None


def _roster(db: sqlite3.Connection, team: str) -> tuple[TeamRoster, list[str]]:
    """The team's roster in join order, and the members with capacity 0 (left out of the
    roster, which only knows positive capacities; they take no new tickets)."""
    rows = db.execute(
        "SELECT m.agent_id, a.availability, a.capacity FROM router_members m "
        "JOIN router_agents a ON a.agent_id = m.agent_id "
        "WHERE m.team = ? ORDER BY m.joined_sequence",
        (team,),
    ).fetchall()
    members = [Member(agent, Availability(avail), cap) for agent, avail, cap in rows if cap != 0]
    return TeamRoster(team, tuple(members)), [agent for agent, _, cap in rows if cap == 0]


def _with_no_capacity(decision: RoutingDecision, no_capacity: list[str]) -> RoutingDecision:
    if not no_capacity:
        return decision
    names = ", ".join(no_capacity)
    return RoutingDecision(
        decision.team,
        decision.policy,
        decision.agent,
        decision.last_assigned,
        decision.skipped + tuple((agent, SkipReason.AT_CAPACITY) for agent in no_capacity),
        f"{decision.explanation}; left out {names} (capacity 0)",
    )


def _last_assigned(db: sqlite3.Connection, team: str) -> str | None:
    found = db.execute("SELECT agent FROM router_last_assigned WHERE team = ?", (team,)).fetchone()
    return None if found is None else str(found[0])


def _record(
    db: sqlite3.Connection,
    ticket: TicketState,
    decision: RoutingDecision,
    loads: Mapping[str, int],
    source: str,
    cause: str,
    at: str,
    command_id: str | None,
) -> int:
    cursor = db.execute(
        "INSERT INTO router_decisions (ticket_id, ticket_version, team, policy, outcome, agent, "
        "command_id, last_assigned, skipped, loads, load_source, explanation, cause, decided_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ticket.ticket_id,
            ticket.version,
            decision.team,
            str(decision.policy),
            "routed" if decision.agent else "unrouted",
            decision.agent,
            command_id,
            decision.last_assigned,
            json.dumps([[agent, str(reason)] for agent, reason in decision.skipped]),
            json.dumps(dict(loads), sort_keys=True),
            source,
            decision.explanation,
            cause,
            at,
        ),
    )
    return int(cursor.lastrowid or 0)


# --- load ------------------------------------------------------------------------------------


def _queue_loads(
    db: sqlite3.Connection, reader: sqlite3.Connection, agents: Sequence[str]
) -> dict[str, int]:
    """Unsolved tickets per agent in the queue, plus in-flight assignments it does not show."""
    loads = dict.fromkeys(agents, 0)
    if not agents:
        return loads
    statuses = ",".join("?" for _ in WORKING_STATUSES)
    for agent, count in reader.execute(
        f"SELECT agent, count(*) FROM queue_tickets WHERE status IN ({statuses}) "
        f"AND agent IN ({','.join('?' for _ in agents)}) GROUP BY agent",
        [*WORKING_STATUSES, *agents],
    ):
        loads[agent] = int(count)
    flights = db.execute("SELECT ticket_id, agent, landed_version FROM router_in_flight").fetchall()
    if not flights:
        return loads
    shown: dict[str, tuple[str | None, int]] = {}
    ids = [ticket_id for ticket_id, _, _ in flights]
    for ticket_id, agent, version in fetch_where_in(
        reader,
        "SELECT ticket_id, agent, version FROM queue_tickets WHERE ticket_id IN ({marks})",
        ids,
    ):
        shown[ticket_id] = (agent, int(version))
    for ticket_id, agent, landed in flights:
        queue_agent, queue_version = shown.get(ticket_id, (None, 0))
        if landed is not None and queue_version >= landed:
            db.execute("DELETE FROM router_in_flight WHERE ticket_id = ?", (ticket_id,))
        elif (landed is not None or queue_agent != agent) and agent in loads:
            loads[agent] += 1
    return loads


def _own_loads(db: sqlite3.Connection, agents: Sequence[str]) -> dict[str, int]:
    """The same count from the router's own fold (which already holds what has landed)."""
    loads = dict.fromkeys(agents, 0)
    statuses = ",".join("?" for _ in WORKING_STATUSES)
    for agent, count in db.execute(
        f"SELECT agent, count(*) FROM router_tickets WHERE status IN ({statuses}) "
        "AND agent IS NOT NULL GROUP BY agent",
        WORKING_STATUSES,
    ):
        if agent in loads:
            loads[agent] = int(count)
    # What has landed is in the fold already; only what has not counts on top.
    db.execute("DELETE FROM router_in_flight WHERE landed_version IS NOT NULL")
    for (agent,) in db.execute(
        "SELECT agent FROM router_in_flight WHERE landed_version IS NULL"
    ).fetchall():
        if agent in loads:
            loads[agent] += 1
    return loads


# --- the process -----------------------------------------------------------------------------


async def run(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    """`ticketing run router`: idle without a routing file; a bad file ends the process with
    one error line."""
    from ticketing.settings import queue_path

    config = await configured_or_idle(
        settings.routing_file,
        load_routing,
        RoutingConfigError,
        code="invalid_routing",
        stop=stop,
        say=say,
        missing="router: no routing file (set TICKETING_ROUTING to a TOML routing file); idle",
    )
    if config is None:
        return
    worker = RouterWorker(config, queue_path(settings), say)

    teams = ", ".join(f"{team} ({routing.policy})" for team, routing in config.teams.items())
    await run_automation(
        settings,
        stop,
        say,
        worker=worker,
        deliverers=command_deliverers,
        description=f"routing {teams}",
    )
