"""`ticketing run router` with real processes: round-robin over the available members of a
team (an away agent skipped, then back in the rotation), least-loaded by the queue projection,
every assignment by automation:router with its decision recorded."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.client import SyncTicketingClient
from projections.queue.queries import QueueQuery, list_queue, open_reader
from tests.processes import start_ticketing, stop, wait_until
from ticketing.nats.connect import resolve_endpoint
from ticketing.settings import Settings, queue_path

pytestmark = [pytest.mark.integration, pytest.mark.nats]

ROUTING = """
[teams.tier1]
policy = "round_robin"

[teams.tier2]
policy = "least_loaded"
"""
LEAD = m.ActorModel(kind="agent", id="lead")


@pytest.fixture
def client(nats_home: Path, tmp_path: Path) -> Iterator[SyncTicketingClient]:
    """The command service, relay, queue projector and router running on `nats_home`."""
    routing = tmp_path / "routing.toml"
    routing.write_text(ROUTING)
    processes = [
        start_ticketing(nats_home, "run", "command-service"),
        start_ticketing(nats_home, "run", "relay"),
        start_ticketing(nats_home, "run", "queue-projector"),
        start_ticketing(nats_home, "run", "router", env={"TICKETING_ROUTING": str(routing)}),
    ]
    try:
        with SyncTicketingClient(
            resolve_endpoint(Settings(home=nats_home)), principal="admin"
        ) as client:
            client.execute(
                m.CreateAccount(account_id="acme", account_name="Acme", tier="business"),
                retry_for=30,
            )
            yield client
    finally:
        for process in processes:
            stop(process)


def queue_rows(home: Path, team: str) -> dict[str, dict[str, Any]]:
    path = queue_path(Settings(home=home))
    if not path.exists():
        return {}
    reader = open_reader(path)
    try:
        return {row["ticket_id"]: row for row in list_queue(reader, QueueQuery(team=team))}
    except sqlite3.OperationalError:  # the projector has not created its schema yet
        return {}
    finally:
        reader.close()


def agents_of(home: Path, team: str, tickets: list[str]) -> list[str | None] | None:
    """The agents of `tickets` in the queue, once every one of them has an agent."""
    rows = queue_rows(home, team)
    agents = [rows[t]["agent"] if t in rows else None for t in tickets]
    return agents if all(agents) else None


def open_tickets(client: SyncTicketingClient, count: int, team: str) -> list[str]:
    """Open `count` tickets and put each in `team` without an agent, one after the other."""
    tickets = []
    for n in range(count):
        reply = client.execute(
            m.OpenTicket(account_id="acme", requester="bob@acme.example", subject=f"Ticket {n}")
        )
        assert reply.ticket_id is not None
        client.execute(m.AssignTicket(ticket_id=UUID(reply.ticket_id), team=team, actor=LEAD))
        tickets.append(reply.ticket_id)
    return tickets


def decisions(home: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{home / 'automation' / 'router.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM router_decisions ORDER BY seq")]
    finally:
        db.close()


def join(client: SyncTicketingClient, team: str, *agents: str) -> None:
    for agent in agents:
        client.execute(m.JoinTeam(agent_id=agent, team=team, actor=LEAD))


def test_round_robin_skips_an_away_agent_and_takes_them_back_when_available(
    nats_home: Path, client: SyncTicketingClient
) -> None:
    home = nats_home
    # Given: three agents in tier1, bob away
    join(client, "tier1", "ana", "bob", "cy")
    client.execute(m.SetAgentAvailability(agent_id="bob", availability="away", actor=LEAD))
    # When: six tickets reach tier1
    first = open_tickets(client, 6, "tier1")
    # Then: ana and cy take turns, three each, in order
    assigned = wait_until(lambda: agents_of(home, "tier1", first), what="six routed tickets")
    assert assigned == ["ana", "cy"] * 3
    # When bob is back and three more tickets arrive
    client.execute(m.SetAgentAvailability(agent_id="bob", availability="available", actor=LEAD))
    more = open_tickets(client, 3, "tier1")
    # Then: the rotation goes on after cy and includes bob
    assert wait_until(lambda: agents_of(home, "tier1", more), what="three more") == [
        "ana",
        "bob",
        "cy",
    ]
    # And every decision is on record, with bob skipped while away
    routed = decisions(home)
    assert [d["outcome"] for d in routed] == ["routed"] * 9
    assert [d["ticket_id"] for d in routed] == first + more
    assert json.loads(routed[1]["skipped"]) == [["bob", "away"]]
    assert {d["load_source"] for d in routed} == {"queue"}


def test_least_loaded_picks_the_agent_with_the_fewest_open_tickets_in_the_queue(
    nats_home: Path, client: SyncTicketingClient
) -> None:
    home = nats_home
    # Given: dan holds two open tickets and eve one, fay none
    join(client, "tier2", "dan", "eve", "fay")
    held = []
    for agent in ("dan", "dan", "eve"):
        reply = client.execute(
            m.OpenTicket(account_id="acme", requester="bob@acme.example", subject="held")
        )
        assert reply.ticket_id is not None
        client.execute(
            m.AssignTicket(ticket_id=UUID(reply.ticket_id), team="tier2", agent=agent, actor=LEAD)
        )
        held.append(reply.ticket_id)
    wait_until(lambda: agents_of(home, "tier2", held), what="the queue to show the loads")
    # When: two tickets reach tier2 in quick succession
    tickets = open_tickets(client, 2, "tier2")
    # Then: fay (0), then eve (tied with fay at 1, and next after fay)
    assert wait_until(lambda: agents_of(home, "tier2", tickets), what="routing") == ["fay", "eve"]
    first, second = decisions(home)
    assert json.loads(first["loads"]) == {"dan": 2, "eve": 1, "fay": 0}
    assert json.loads(second["loads"]) == {"dan": 2, "eve": 1, "fay": 1}
    assert first["command_id"] == f"route:{tickets[0]}:2"
    # And the assignments were made by the router
    rows = queue_rows(home, "tier2")
    assert all(rows[t]["status"] == "open" for t in tickets)


def test_a_bad_routing_file_stops_the_process_with_one_error_line(tmp_path: Path) -> None:
    # Given
    home = tmp_path / "home"
    routing = tmp_path / "routing.toml"
    routing.write_text('[teams.tier1]\npolicy = "random"\n')
    # When
    process: subprocess.Popen[bytes] = start_ticketing(
        home, "run", "router", env={"TICKETING_ROUTING": str(routing)}, log_name="bad-routing"
    )
    code = process.wait(30)
    # Then
    log = (home / "bad-routing.log").read_text().strip()
    assert code != 0
    assert "Traceback" not in log
    [line] = log.splitlines()
    assert line.startswith("error: invalid_routing: ")
    assert "teams.tier1.policy" in line
