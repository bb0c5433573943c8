"""Properties of team routing: fairness of both policies, and nobody ineligible ever chosen.

Fairness is checked by feeding each choice back as the next `last_assigned` and, for
least-loaded, as one more open ticket for the chosen agent (no completions). A state machine
then mixes membership, availability, capacity changes, assignments and solved tickets, and
checks every choice against a model of the rules written from the routing module's docstring.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.builders import T0
from ticketing.domain.routing import (
    AgentAvailabilityChanged,
    AgentCapacityChanged,
    AgentJoinedTeam,
    AgentLeftTeam,
    Availability,
    Member,
    RosterFact,
    RoutingPolicy,
    TeamRoster,
    choose_agent,
    roster_from,
    route,
)

TEAM = "support"
NAMES = ["ana", "ben", "cy", "dee", "eli", "fay", "gus", "hal"]

agent_lists = st.lists(st.sampled_from(NAMES), min_size=1, max_size=len(NAMES), unique=True)
policies = st.sampled_from(list(RoutingPolicy))
capacities = st.none() | st.integers(min_value=1, max_value=4)


@st.composite
def rosters(draw: st.DrawFn) -> TeamRoster:
    """Any roster: random order, availability and capacity; possibly empty."""
    agents = draw(st.lists(st.sampled_from(NAMES), max_size=len(NAMES), unique=True))
    return TeamRoster(
        TEAM,
        tuple(
            Member(a, draw(st.sampled_from(list(Availability))), draw(capacities)) for a in agents
        ),
    )


def eligible(member: Member, loads: dict[str, int]) -> bool:
    load = loads.get(member.agent, 0)
    return member.availability is Availability.AVAILABLE and (
        member.capacity is None or load < member.capacity
    )


def expected_rotation(roster: TeamRoster, last: str | None) -> list[Member]:
    """Round-robin order as documented: after `last`, wrapping, `last` itself at the end."""
    members = list(roster.members)
    agents = [m.agent for m in members]
    if last not in agents:
        return members
    i = agents.index(last)
    return members[i + 1 :] + members[: i + 1]


# --- fairness -------------------------------------------------------------------------------


@given(
    agents=agent_lists,
    away=st.sets(st.sampled_from(NAMES)),
    assignments=st.integers(min_value=0, max_value=60),
    data=st.data(),
)
def test_round_robin_shares_tickets_evenly_among_available_agents(
    agents: list[str], away: set[str], assignments: int, data: st.DataObject
) -> None:
    # Given: a team with a random start, some of it away throughout
    roster = TeamRoster(
        TEAM,
        tuple(
            Member(a, Availability.AWAY if a in away else Availability.AVAILABLE) for a in agents
        ),
    )
    last = data.draw(st.none() | st.sampled_from(agents), label="last_assigned")
    present = [a for a in agents if a not in away]
    # When
    counts: Counter[str] = Counter()
    for _ in range(assignments):
        last = choose_agent(RoutingPolicy.ROUND_ROBIN, roster, {}, last)
        if last is None:
            break
        counts[last] += 1
    # Then
    if not present:
        assert not counts
        return
    share = assignments // len(present)
    assert set(counts) <= set(present)
    assert all(counts[a] in (share, -(-assignments // len(present))) for a in present)


@given(
    agents=agent_lists,
    assignments=st.integers(min_value=0, max_value=60),
    start=st.integers(min_value=0, max_value=5),
    data=st.data(),
)
def test_least_loaded_keeps_loads_within_one_when_only_it_adds_work(
    agents: list[str], assignments: int, start: int, data: st.DataObject
) -> None:
    # Given: everyone available with the same load, and a random last assigned
    roster = TeamRoster(TEAM, tuple(Member(a) for a in agents))
    loads = dict.fromkeys(agents, start)
    last = data.draw(st.none() | st.sampled_from(agents), label="last_assigned")
    for _ in range(assignments):
        # When
        last = choose_agent(RoutingPolicy.LEAST_LOADED, roster, loads, last)
        assert last is not None
        loads[last] += 1
        # Then
        assert max(loads.values()) - min(loads.values()) <= 1
    assert sum(loads.values()) == start * len(agents) + assignments


@given(agents=agent_lists, rounds=st.integers(min_value=1, max_value=4), data=st.data())
def test_least_loaded_rotates_ties_like_round_robin(
    agents: list[str], rounds: int, data: st.DataObject
) -> None:
    # Given: equal loads that stay equal (every ticket is solved before the next arrives)
    roster = TeamRoster(TEAM, tuple(Member(a) for a in agents))
    last = data.draw(st.none() | st.sampled_from(agents), label="last_assigned")
    ll_last = rr_last = last
    # When / Then
    for _ in range(rounds * len(agents)):
        ll_last = choose_agent(RoutingPolicy.LEAST_LOADED, roster, {}, ll_last)
        rr_last = choose_agent(RoutingPolicy.ROUND_ROBIN, roster, {}, rr_last)
        assert ll_last == rr_last


# --- safety ---------------------------------------------------------------------------------


@given(
    roster=rosters(),
    loads=st.dictionaries(st.sampled_from(NAMES), st.integers(min_value=0, max_value=6)),
    policy=policies,
    data=st.data(),
)
def test_nobody_away_or_at_capacity_is_ever_chosen(
    roster: TeamRoster, loads: dict[str, int], policy: RoutingPolicy, data: st.DataObject
) -> None:
    # Given
    last = data.draw(st.none() | st.sampled_from(NAMES), label="last_assigned")
    candidates = [m for m in expected_rotation(roster, last) if eligible(m, loads)]
    # When
    decision = route(policy, roster, loads, last)
    # Then: someone eligible is chosen exactly when someone is eligible, by the policy's rule
    if not candidates:
        assert decision.agent is None
        return
    chosen = roster.member(decision.agent or "")
    assert chosen is not None and eligible(chosen, loads)
    if policy is RoutingPolicy.ROUND_ROBIN:
        assert chosen == candidates[0]
    else:
        fewest = min(loads.get(m.agent, 0) for m in candidates)
        assert chosen == next(m for m in candidates if loads.get(m.agent, 0) == fewest)
    skipped = {agent for agent, _ in decision.skipped}
    assert not skipped & {m.agent for m in candidates}
    assert f"chose {chosen.agent}" in decision.explanation


class RoutingMachine(RuleBasedStateMachine):
    """Membership, availability and capacity change while tickets are routed and solved.

    The model keeps the roster as plain values (join order, away set, capacities) and every
    open ticket's agent; the roster under test is always folded from the facts so far.
    """

    def __init__(self) -> None:
        super().__init__()
        self.facts: list[RosterFact] = []
        self.order: list[str] = []
        self.away: set[str] = set()
        self.capacity: dict[str, int | None] = {}
        self.open_tickets: list[str] = []
        self.last: str | None = None

    def _at(self) -> timedelta:
        return timedelta(minutes=len(self.facts))

    def _loads(self) -> dict[str, int]:
        return dict(Counter(self.open_tickets))

    @rule(agent=st.sampled_from(NAMES), capacity=capacities)
    def join(self, agent: str, capacity: int | None) -> None:
        self.facts.append(AgentJoinedTeam(TEAM, agent, T0 + self._at(), capacity))
        if agent not in self.order:
            self.order.append(agent)
        self.capacity[agent] = capacity

    @rule(agent=st.sampled_from(NAMES))
    def leave(self, agent: str) -> None:
        self.facts.append(AgentLeftTeam(TEAM, agent, T0 + self._at()))
        if agent in self.order:
            self.order.remove(agent)
            del self.capacity[agent]

    @rule(agent=st.sampled_from(NAMES))
    def join_and_leave_another_team(self, agent: str) -> None:
        """Memberships of another team never touch this roster."""
        self.facts.append(AgentJoinedTeam("billing", agent, T0 + self._at()))
        self.facts.append(AgentLeftTeam("billing", agent, T0 + self._at()))

    @rule(agent=st.sampled_from(NAMES), available=st.booleans())
    def change_availability(self, agent: str, available: bool) -> None:
        self.facts.append(AgentAvailabilityChanged(agent, available, T0 + self._at()))
        (self.away.discard if available else self.away.add)(agent)

    @rule(agent=st.sampled_from(NAMES), capacity=capacities)
    def change_capacity(self, agent: str, capacity: int | None) -> None:
        self.facts.append(AgentCapacityChanged(TEAM, agent, capacity, T0 + self._at()))
        if agent in self.order:
            self.capacity[agent] = capacity

    @rule(policy=policies)
    def route_a_ticket(self, policy: RoutingPolicy) -> None:
        roster = roster_from(self.facts, team=TEAM)
        loads = self._loads()
        chosen = choose_agent(policy, roster, loads, self.last)
        limit = {a: c for a, c in self.capacity.items() if c is not None}
        can_take = [
            a
            for a in self.order
            if a not in self.away and (a not in limit or loads.get(a, 0) < limit[a])
        ]
        assert (chosen is None) == (not can_take)
        if chosen is not None:
            assert chosen in can_take
            self.open_tickets.append(chosen)
            self.last = chosen

    @precondition(lambda self: bool(self.open_tickets))
    @rule(data=st.data())
    def solve_a_ticket(self, data: st.DataObject) -> None:
        self.open_tickets.remove(data.draw(st.sampled_from(self.open_tickets)))

    @invariant()
    def roster_matches_the_model(self) -> None:
        roster = roster_from(self.facts, team=TEAM)
        assert roster.agents == tuple(self.order)
        for member in roster.members:
            assert (member.availability is Availability.AWAY) == (member.agent in self.away)
            assert member.capacity == self.capacity[member.agent]


TestRoutingMachine = RoutingMachine.TestCase
