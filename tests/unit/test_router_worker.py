"""The router worker folded through a real `AutomationStore` file with synthetic payloads:
round-robin over available members, least-loaded from the queue projection plus assignments
in flight, unrouted tickets retried on roster events and ticks, and the routing file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import pytest

from projections.queue.store import QueueStore
from projections.stream_event import StreamEvent
from ticketing.domain.agent import agent_uuid
from ticketing.workers.outbox import AutomationStore
from ticketing.workers.router import RouterWorker
from ticketing.workers.routing_config import (
    RoutingConfig,
    RoutingConfigError,
    load_routing,
    parse_routing,
)

EXAMPLE = Path(__file__).parents[2] / "mappings" / "routing.example.toml"
AT = "2026-03-02T09:00:00+00:00"
PERSON = {"kind": "agent", "id": "lead"}
CONFIG = parse_routing(
    {"teams": {"tier1": {"policy": "round_robin"}, "tier2": {"policy": "least_loaded"}}}
)


# --- a stream of synthetic events ------------------------------------------------------------


@dataclass
class Stream:
    """Builds wire-shaped payloads with consistent sequences and aggregate versions."""

    sequence: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    tickets: int = 0

    def _event(self, kind: str, aggregate: str, **fields: Any) -> StreamEvent:
        self.sequence += 1
        self.versions[aggregate] = self.versions.get(aggregate, 0) + 1
        version = self.versions[aggregate]
        payload = {
            "type": kind,
            "aggregate_id": aggregate,
            "version": version,
            "occurred_at": AT,
            "recorded_at": AT,
            "actor": PERSON,
            "command_id": f"cmd-{aggregate}-{version}",
            **fields,
        }
        return StreamEvent(self.sequence, payload)

    def agent(self, agent: str, kind: str, **fields: Any) -> list[StreamEvent]:
        key = str(agent_uuid(agent))
        events = []
        if key not in self.versions:
            events.append(self._event("AgentRegistered", key, agent_id=agent))
        events.append(self._event(kind, key, **fields))
        return events

    def join(self, agent: str, team: str) -> list[StreamEvent]:
        return self.agent(agent, "AgentJoinedTeam", team=team)

    def away(self, agent: str) -> list[StreamEvent]:
        return self.agent(
            agent, "AgentAvailabilityChanged", availability="away", previous_availability="x"
        )

    def back(self, agent: str) -> list[StreamEvent]:
        return self.agent(
            agent, "AgentAvailabilityChanged", availability="available", previous_availability="x"
        )

    def capacity(self, agent: str, capacity: int | None) -> list[StreamEvent]:
        return self.agent(agent, "AgentCapacityChanged", capacity=capacity, previous_capacity=None)

    def open(self) -> tuple[str, list[StreamEvent]]:
        self.tickets += 1
        ticket = str(uuid5(NAMESPACE_URL, f"ticket-{self.tickets}"))
        event = self._event(
            "TicketOpened",
            ticket,
            account_id="acme",
            account_tier="business",
            requester="bob@acme.example",
            subject=f"Ticket {self.tickets}",
            description="",
            channel="web",
            priority="normal",
            category=None,
            tags=[],
            follow_up_of=None,
        )
        return ticket, [event]

    def assign(
        self, ticket: str, team: str | None, agent: str | None = None, command_id: str = ""
    ) -> list[StreamEvent]:
        event = self._event(
            "TicketAssigned",
            ticket,
            team=team,
            agent=agent,
            previous_team=None,
            previous_agent=None,
        )
        if command_id:
            event.payload["command_id"] = command_id
        events = [event]
        if agent is not None:
            events.append(self.status(ticket, "new", "open")[0])
        return events

    def status(self, ticket: str, before: str, after: str) -> list[StreamEvent]:
        kind = "TicketResolved" if after == "solved" else "StatusChanged"
        extra = {"resolution": None} if after == "solved" else {"reason": None}
        return [self._event(kind, ticket, from_status=before, to_status=after, **extra)]

    def comment(self, ticket: str) -> list[StreamEvent]:
        return [
            self._event(
                "CommentAdded", ticket, comment_id="c1", body="hello", visibility="internal"
            )
        ]

    def landed(self, store: AutomationStore) -> list[StreamEvent]:
        """The TicketAssigned events of every routed command not yet on the stream."""
        events: list[StreamEvent] = []
        for command_id, payload in commands(store):
            ticket = payload["ticket_id"]
            if command_id not in self._seen_commands:
                self._seen_commands.add(command_id)
                team = store.db.execute(
                    "SELECT team FROM router_tickets WHERE ticket_id = ?", (ticket,)
                ).fetchone()[0]
                events += self.assign(ticket, team, payload["agent"], command_id)
        return events

    _seen_commands: set[str] = field(default_factory=set)


def commands(store: AutomationStore) -> list[tuple[str, dict[str, Any]]]:
    rows = store.db.execute("SELECT key, body FROM outbox ORDER BY seq").fetchall()
    return [(key, json.loads(body)["payload"]) for key, body in rows]


def routed_agents(store: AutomationStore) -> list[str]:
    return [payload["agent"] for _, payload in commands(store)]


def decisions(store: AutomationStore) -> list[dict[str, Any]]:
    store.db.row_factory = lambda cursor, row: {
        column[0]: value for column, value in zip(cursor.description, row, strict=True)
    }
    try:
        return list(store.db.execute("SELECT * FROM router_decisions ORDER BY seq"))
    finally:
        store.db.row_factory = None


@pytest.fixture
def router(tmp_path: Path) -> Iterator[AutomationStore]:
    """A router with no queue file: loads come from its own fold."""
    store = AutomationStore(tmp_path / "router.sqlite", RouterWorker(CONFIG, None, lambda _: None))
    yield store
    store.close()


def team_with(stream: Stream, team: str, *agents: str) -> list[StreamEvent]:
    return [event for agent in agents for event in stream.join(agent, team)]


def new_tickets(stream: Stream, count: int, team: str) -> tuple[list[str], list[StreamEvent]]:
    ids, events = [], []
    for _ in range(count):
        ticket, opened = stream.open()
        ids.append(ticket)
        events += opened + stream.assign(ticket, team)
    return ids, events


# --- round robin -------------------------------------------------------------------------------


def test_round_robin_spreads_tickets_over_available_members_in_join_order(
    router: AutomationStore,
) -> None:
    # Given: three members, bob away
    s = Stream()
    router.apply(team_with(s, "tier1", "ana", "bob", "cy") + s.away("bob"))
    # When: six tickets reach the team in one batch
    _, events = new_tickets(s, 6, "tier1")
    router.apply(events)
    # Then
    assert routed_agents(router) == ["ana", "cy"] * 3
    first, second = decisions(router)[:2]
    assert first["outcome"] == "routed" and first["cause"] == "TicketAssigned"
    assert json.loads(second["skipped"]) == [["bob", "away"]]
    assert "skipped bob (away)" in second["explanation"]
    key, payload = commands(router)[0]
    assert key == f"route:{payload['ticket_id']}:2"
    assert payload["actor"] == {"kind": "automation", "id": "router"}
    assert "team" not in payload  # only the agent: a concurrent team move is kept


def test_an_agent_coming_back_joins_the_rotation_and_manual_assignments_move_it(
    router: AutomationStore,
) -> None:
    # Given: two tickets routed while bob was away, their assignments landed
    s = Stream()
    router.apply(team_with(s, "tier1", "ana", "bob", "cy") + s.away("bob"))
    router.apply(new_tickets(s, 2, "tier1")[1])
    router.apply(s.landed(router))
    # When: bob is back, three more tickets arrive, then a person assigns one to ana
    router.apply(s.back("bob"))
    router.apply(new_tickets(s, 3, "tier1")[1])
    ticket, opened = s.open()
    router.apply(opened + s.assign(ticket, "tier1", "ana"))
    router.apply(new_tickets(s, 1, "tier1")[1])
    # Then: after cy comes ana, bob, cy; after the manual ana, bob
    assert routed_agents(router) == ["ana", "cy", "ana", "bob", "cy", "bob"]


def test_a_ticket_with_an_assignment_in_flight_is_not_routed_twice(
    router: AutomationStore,
) -> None:
    # Given
    s = Stream()
    router.apply(team_with(s, "tier1", "ana", "bob"))
    [ticket], events = new_tickets(s, 1, "tier1")
    router.apply(events)
    # When: the ticket changes again before the router's assignment lands
    router.apply(s.comment(ticket))
    # Then
    assert routed_agents(router) == ["ana"]


def test_tickets_outside_routed_teams_or_with_an_agent_are_left_alone(
    router: AutomationStore,
) -> None:
    # Given
    s = Stream()
    router.apply(team_with(s, "billing", "ana") + team_with(s, "tier1", "bob"))
    ticket, opened = s.open()
    other, opened_other = s.open()
    # When
    router.apply(opened + s.assign(ticket, "billing") + opened_other)
    router.apply(s.assign(other, "tier1", "bob"))
    # Then
    assert commands(router) == []
    assert decisions(router) == []


# --- least loaded --------------------------------------------------------------------------------


def test_least_loaded_counts_assignments_in_flight_so_a_burst_is_spread(
    router: AutomationStore,
) -> None:
    # Given: no queue file, so the router counts from its own fold
    s = Stream()
    router.apply(team_with(s, "tier2", "ana", "bob", "cy"))
    # When: three tickets in one batch, none of the assignments landed yet
    router.apply(new_tickets(s, 3, "tier2")[1])
    # Then
    assert routed_agents(router) == ["ana", "bob", "cy"]
    assert {d["load_source"] for d in decisions(router)} == {"router"}
    assert json.loads(decisions(router)[2]["loads"]) == {"ana": 1, "bob": 1, "cy": 0}


def test_least_loaded_reads_the_queue_projection(tmp_path: Path) -> None:
    # Given: a queue where ana holds two open tickets and bob one
    s = Stream()
    queue = QueueStore(tmp_path / "queue.sqlite")
    said: list[str] = []
    router = AutomationStore(
        tmp_path / "router.sqlite", RouterWorker(CONFIG, queue.path, said.append)
    )
    roster = team_with(s, "tier2", "ana", "bob", "cy")
    held: list[StreamEvent] = []
    for agent in ("ana", "ana", "bob"):
        ticket, opened = s.open()
        held += opened + s.assign(ticket, "tier2", agent)
    queue.apply(roster + held)
    router.apply(roster + held)
    # When: two tickets reach the team; the queue has seen neither assignment
    burst = new_tickets(s, 2, "tier2")[1]
    router.apply(burst)
    queue.apply(burst)
    # Then: cy (0), then bob and cy tie at 1 and bob comes first after cy
    assert routed_agents(router) == ["cy", "bob"]
    assert json.loads(decisions(router)[1]["loads"]) == {"ana": 2, "bob": 1, "cy": 1}
    assert {d["load_source"] for d in decisions(router)} == {"queue"}
    assert said == []
    # And once the queue shows the landed assignments they are counted once, not twice
    landed = s.landed(router)
    router.apply(landed)
    queue.apply(landed)
    router.apply(new_tickets(s, 1, "tier2")[1])
    assert json.loads(decisions(router)[2]["loads"]) == {"ana": 2, "bob": 2, "cy": 1}
    assert routed_agents(router)[-1] == "cy"
    in_flight = router.db.execute("SELECT ticket_id FROM router_in_flight").fetchall()
    assert in_flight == [(commands(router)[-1][1]["ticket_id"],)]
    router.close()
    queue.close()


def test_without_a_queue_file_the_router_says_it_counts_its_own_fold(tmp_path: Path) -> None:
    # Given
    said: list[str] = []
    store = AutomationStore(
        tmp_path / "router.sqlite",
        RouterWorker(CONFIG, tmp_path / "missing.sqlite", said.append),
    )
    s = Stream()
    # When
    store.apply(team_with(s, "tier2", "ana") + new_tickets(s, 2, "tier2")[1])
    # Then
    assert len(said) == 1 and "own fold" in said[0]
    assert routed_agents(store) == ["ana", "ana"]
    store.close()


# --- nobody available ----------------------------------------------------------------------------


def test_a_ticket_nobody_can_take_waits_until_an_agent_is_back(router: AutomationStore) -> None:
    # Given: the only member is away
    s = Stream()
    router.apply(team_with(s, "tier1", "ana") + s.away("ana"))
    [ticket], events = new_tickets(s, 1, "tier1")
    # When
    router.apply(events)
    router.apply(s.comment(ticket))  # retried on its own event: same reason, not re-recorded
    router.tick(datetime.now(UTC))
    # Then
    assert commands(router) == []
    [unrouted] = decisions(router)
    assert unrouted["outcome"] == "unrouted" and unrouted["agent"] is None
    assert json.loads(unrouted["skipped"]) == [["ana", "away"]]
    # When ana is back
    router.apply(s.back("ana"))
    # Then
    assert routed_agents(router) == ["ana"]
    assert decisions(router)[-1]["cause"] == "AgentAvailabilityChanged"
    assert commands(router)[0][0] == f"route:{ticket}:3"


def test_capacity_freed_by_a_solved_ticket_is_used_on_the_next_tick(
    router: AutomationStore,
) -> None:
    # Given: ana takes one ticket at a time and holds one
    s = Stream()
    router.apply(team_with(s, "tier1", "ana") + s.capacity("ana", 1))
    [first], events = new_tickets(s, 1, "tier1")
    router.apply(events)
    router.apply(s.landed(router))
    [second], events = new_tickets(s, 1, "tier1")
    router.apply(events)
    assert decisions(router)[-1]["outcome"] == "unrouted"
    assert "at capacity, 1/1" in decisions(router)[-1]["explanation"]
    # When: the first is solved and the timer ticks
    router.apply(s.status(first, "open", "solved"))
    router.tick(datetime.now(UTC))
    # Then
    assert routed_agents(router) == ["ana", "ana"]
    assert decisions(router)[-1]["cause"] == "retry"
    assert commands(router)[-1][1]["ticket_id"] == second


def test_a_member_with_capacity_zero_takes_nothing(router: AutomationStore) -> None:
    # Given
    s = Stream()
    router.apply(team_with(s, "tier1", "ana", "bob") + s.capacity("ana", 0))
    # When
    router.apply(new_tickets(s, 2, "tier1")[1])
    # Then
    assert routed_agents(router) == ["bob", "bob"]
    assert ["ana", "at_capacity"] in json.loads(decisions(router)[0]["skipped"])


def test_a_member_who_leaves_is_no_longer_chosen(router: AutomationStore) -> None:
    # Given
    s = Stream()
    router.apply(team_with(s, "tier1", "ana", "bob"))
    router.apply(s.agent("ana", "AgentLeftTeam", team="tier1"))
    # When
    router.apply(new_tickets(s, 2, "tier1")[1])
    # Then
    assert routed_agents(router) == ["bob", "bob"]


def test_a_redelivered_batch_queues_nothing_and_a_rebuilt_store_the_same_ids(
    router: AutomationStore, tmp_path: Path
) -> None:
    # Given
    s = Stream()
    events = team_with(s, "tier1", "ana", "bob") + new_tickets(s, 3, "tier1")[1]
    router.apply(events)
    first = commands(router)
    # When
    router.apply(events)
    rebuilt = AutomationStore(tmp_path / "again.sqlite", RouterWorker(CONFIG, None))
    rebuilt.apply(events)
    # Then
    assert commands(router) == first
    assert commands(rebuilt) == first
    rebuilt.close()


# --- the routing file ------------------------------------------------------------------------


def test_the_example_routing_file_loads() -> None:
    config = load_routing(EXAMPLE)
    assert isinstance(config, RoutingConfig)
    assert config.policy_of("tier1") == "round_robin"
    assert config.policy_of("nobody") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[teams.tier1]\npolicy = "random"\n', "teams.tier1.policy: Input should be"),
        ('[teams.tier1]\npolicy = "round_robin"\nweight = 2\n', "teams.tier1.weight"),
        ('[team.tier1]\npolicy = "round_robin"\n', "unknown top-level key(s) team"),
        ("", "at least one [teams.<name>]"),
        ('[teams."a b"]\npolicy = "round_robin"\n', "'a b' is not a team id"),
        ("[teams.tier1\n", "not valid TOML"),
    ],
)
def test_a_bad_routing_file_names_the_file_team_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    # Given
    path = tmp_path / "routing.toml"
    path.write_text(text)
    # When
    with pytest.raises(RoutingConfigError) as raised:
        load_routing(path)
    # Then
    assert str(path) in str(raised.value)
    assert message in str(raised.value)
