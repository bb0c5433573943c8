"""Routing within a team: rosters folded from facts, round-robin and least-loaded choices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from tests.builders import T0, at
from ticketing.domain.errors import ValidationError
from ticketing.domain.routing import (
    AgentAvailabilityChanged,
    AgentCapacityChanged,
    AgentJoinedTeam,
    AgentLeftTeam,
    Availability,
    LeastLoaded,
    Member,
    RosterFact,
    RoundRobin,
    RoutingPolicy,
    SkipReason,
    TeamRoster,
    choose_agent,
    last_assigned_in,
    roster_from,
    route,
)

TEAM = "support"
AWAY = Availability.AWAY


def team_of(*agents: str, away: tuple[str, ...] = (), capacity: int | None = None) -> TeamRoster:
    """A roster in the given order; `away` agents are away, everyone shares `capacity`."""
    return TeamRoster(
        TEAM,
        tuple(Member(a, AWAY if a in away else Availability.AVAILABLE, capacity) for a in agents),
    )


def joined(*agents: str, team: str = TEAM) -> list[RosterFact]:
    return [AgentJoinedTeam(team, agent, at(i)) for i, agent in enumerate(agents)]


# --- the roster ---------------------------------------------------------------------------


def test_members_rotate_in_the_order_they_joined_and_start_available() -> None:
    # Given / When
    roster = roster_from(joined("ana", "ben", "cy"), team=TEAM)
    # Then
    assert roster.agents == ("ana", "ben", "cy")
    assert all(m.availability is Availability.AVAILABLE for m in roster.members)
    assert all(m.capacity is None for m in roster.members)


def test_other_teams_memberships_are_not_part_of_the_roster() -> None:
    # Given
    facts = [*joined("ana"), *joined("ben", team="billing"), *joined("cy")]
    # When
    roster = roster_from(facts, team=TEAM)
    # Then
    assert roster.agents == ("ana", "cy")


def test_an_agent_who_leaves_is_no_longer_in_the_rotation() -> None:
    # Given
    facts = [*joined("ana", "ben", "cy"), AgentLeftTeam(TEAM, "ben", at(10))]
    # When
    roster = roster_from(facts, team=TEAM)
    # Then
    assert roster.agents == ("ana", "cy")
    assert "ben" not in roster


def test_an_agent_who_rejoins_goes_to_the_end_of_the_rotation() -> None:
    # Given
    facts = [
        *joined("ana", "ben", "cy"),
        AgentLeftTeam(TEAM, "ana", at(10)),
        AgentJoinedTeam(TEAM, "ana", at(11)),
    ]
    # When / Then
    assert roster_from(facts, team=TEAM).agents == ("ben", "cy", "ana")


def test_joining_again_while_a_member_keeps_the_place_and_restates_capacity() -> None:
    # Given
    facts = [*joined("ana", "ben"), AgentJoinedTeam(TEAM, "ana", at(5), capacity=4)]
    # When
    roster = roster_from(facts, team=TEAM)
    # Then
    assert roster.agents == ("ana", "ben")
    assert roster.member("ana") == Member("ana", capacity=4)


def test_availability_follows_the_agent_across_teams_and_memberships() -> None:
    # Given: ana goes away before joining, ben goes away while a member of another team
    facts: list[RosterFact] = [
        AgentAvailabilityChanged("ana", available=False, at=at(0)),
        *joined("ben", team="billing"),
        AgentAvailabilityChanged("ben", available=False, at=at(2)),
        *joined("ana", "ben", "cy"),
    ]
    # When
    roster = roster_from(facts, team=TEAM)
    # Then
    assert [m.availability for m in roster.members] == [AWAY, AWAY, Availability.AVAILABLE]


def test_an_agent_coming_back_is_available_again() -> None:
    # Given
    facts = [
        *joined("ana"),
        AgentAvailabilityChanged("ana", available=False, at=at(5)),
        AgentAvailabilityChanged("ana", available=True, at=at(6)),
    ]
    # When / Then
    assert roster_from(facts, team=TEAM).member("ana") == Member("ana")


def test_capacity_is_set_on_joining_and_changed_per_team() -> None:
    # Given
    facts: list[RosterFact] = [
        AgentJoinedTeam(TEAM, "ana", at(0), capacity=3),
        AgentJoinedTeam(TEAM, "ben", at(1), capacity=2),
        AgentJoinedTeam("billing", "ana", at(2), capacity=9),
        AgentCapacityChanged(TEAM, "ana", 5, at(3)),
        AgentCapacityChanged(TEAM, "ben", None, at(4)),
    ]
    # When
    roster = roster_from(facts, team=TEAM)
    # Then
    assert [m.capacity for m in roster.members] == [5, None]


def test_facts_about_non_members_change_nothing() -> None:
    # Given: history, not commands, so nothing is refused
    facts = [
        *joined("ana"),
        AgentLeftTeam(TEAM, "ben", at(1)),
        AgentCapacityChanged(TEAM, "cy", 2, at(2)),
    ]
    # When / Then
    assert roster_from(facts, team=TEAM) == TeamRoster(TEAM, (Member("ana"),))


def test_a_team_without_facts_has_an_empty_roster() -> None:
    assert roster_from([], team=TEAM) == TeamRoster(TEAM)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: AgentJoinedTeam(TEAM, "ana", datetime(2026, 3, 2, 9)), "at"),
        (lambda: AgentJoinedTeam(TEAM, "ana", T0, capacity=0), "capacity"),
        (lambda: AgentJoinedTeam(TEAM, "ana", T0, capacity=True), "capacity"),
        (lambda: AgentJoinedTeam("no spaces", "ana", T0), "team"),
        (lambda: AgentLeftTeam(TEAM, "", T0), "agent"),
        (lambda: AgentCapacityChanged(TEAM, "ana", -1, T0), "capacity"),
        (lambda: AgentAvailabilityChanged("ana", 1, T0), "available"),  # type: ignore[arg-type]
        (lambda: TeamRoster(TEAM, (Member("ana"), Member("ana"))), "members"),
    ],
)
def test_malformed_facts_and_rosters_are_refused(build: Callable[[], object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        build()
    assert refused.value.code == "validation_error"
    assert refused.value.details["field"] == field


# --- round robin --------------------------------------------------------------------------


def test_round_robin_gives_the_ticket_to_the_member_after_the_last_one_assigned() -> None:
    # Given
    roster = team_of("ana", "ben", "cy")
    # When / Then
    assert choose_agent(RoutingPolicy.ROUND_ROBIN, roster, {}, "ana") == "ben"
    assert choose_agent(RoutingPolicy.ROUND_ROBIN, roster, {}, "ben") == "cy"
    assert choose_agent(RoutingPolicy.ROUND_ROBIN, roster, {}, "cy") == "ana"


def test_round_robin_starts_with_the_first_member_when_nobody_was_assigned() -> None:
    assert choose_agent("round_robin", team_of("ana", "ben"), {}, None) == "ana"


def test_round_robin_skips_agents_who_are_away() -> None:
    # Given
    roster = team_of("ana", "ben", "cy", away=("ben",))
    # When
    decision = RoundRobin.after("ana").decide(roster, {})
    # Then
    assert decision.agent == "cy"
    assert decision.skipped == (("ben", SkipReason.AWAY),)
    assert decision.explanation == (
        "round_robin in team support after ana: chose cy; skipped ben (away)"
    )


def test_round_robin_skips_agents_at_capacity() -> None:
    # Given
    roster = team_of("ana", "ben", "cy", capacity=2)
    # When
    decision = RoundRobin.after("ana").decide(roster, {"ben": 2, "cy": 1})
    # Then
    assert decision.agent == "cy"
    assert decision.skipped == (("ben", SkipReason.AT_CAPACITY),)
    assert "ben (at capacity, 2/2)" in decision.explanation


def test_round_robin_gives_the_lone_available_agent_every_ticket() -> None:
    # Given
    roster = team_of("ana", "ben", away=("ben",))
    # When / Then
    assert choose_agent("round_robin", roster, {}, "ana") == "ana"


def test_round_robin_restarts_from_the_first_member_when_the_last_assigned_left() -> None:
    # Given: ben was assigned last, then left the team
    facts = [*joined("ana", "ben", "cy"), AgentLeftTeam(TEAM, "ben", at(10))]
    roster = roster_from(facts, team=TEAM)
    # When
    decision = route("round_robin", roster, {}, "ben")
    # Then
    assert decision.agent == "ana"
    assert "ben, assigned last, is not a member" in decision.explanation


def test_a_newly_joined_agent_takes_their_turn_at_the_end_of_the_rotation() -> None:
    # Given
    facts = [*joined("ana", "ben"), AgentJoinedTeam(TEAM, "dee", at(10))]
    roster = roster_from(facts, team=TEAM)
    # When / Then
    assert choose_agent("round_robin", roster, {}, "ana") == "ben"
    assert choose_agent("round_robin", roster, {}, "ben") == "dee"
    assert choose_agent("round_robin", roster, {}, "dee") == "ana"


def test_an_agent_coming_back_from_away_rejoins_the_rotation_in_place() -> None:
    # Given
    away = [*joined("ana", "ben", "cy"), AgentAvailabilityChanged("ben", False, at(5))]
    back = [*away, AgentAvailabilityChanged("ben", True, at(6))]
    # When / Then
    assert choose_agent("round_robin", roster_from(away, team=TEAM), {}, "ana") == "cy"
    assert choose_agent("round_robin", roster_from(back, team=TEAM), {}, "ana") == "ben"


# --- least loaded -------------------------------------------------------------------------


def test_least_loaded_gives_the_ticket_to_the_agent_with_fewest_open_tickets() -> None:
    # Given
    roster = team_of("ana", "ben", "cy")
    # When
    decision = LeastLoaded.after("cy").decide(roster, {"ana": 4, "ben": 1, "cy": 2})
    # Then
    assert decision.agent == "ben"
    assert decision.explanation == (
        "least_loaded in team support after cy: chose ben with 1 open ticket; others: ana 4, cy 2"
    )


def test_least_loaded_counts_an_agent_missing_from_the_loads_as_having_none() -> None:
    assert choose_agent("least_loaded", team_of("ana", "ben"), {"ana": 1}, None) == "ben"


def test_least_loaded_breaks_ties_by_round_robin_order_after_the_last_assigned() -> None:
    # Given
    roster = team_of("ana", "ben", "cy")
    loads = {"ana": 1, "ben": 1, "cy": 1}
    # When
    decision = route("least_loaded", roster, loads, "ben")
    # Then
    assert decision.agent == "cy"
    assert "tied with ana, ben (first in round-robin order)" in decision.explanation


def test_least_loaded_ties_rotate_over_successive_assignments() -> None:
    # Given: equal loads, and tickets solved as fast as they come in
    roster = team_of("ana", "ben", "cy")
    last: str | None = None
    chosen = []
    # When
    for _ in range(6):
        last = choose_agent("least_loaded", roster, {}, last)
        chosen.append(last)
    # Then
    assert chosen == ["ana", "ben", "cy", "ana", "ben", "cy"]


def test_least_loaded_skips_an_idle_agent_who_is_away() -> None:
    # Given
    roster = team_of("ana", "ben", away=("ana",))
    # When
    decision = LeastLoaded().decide(roster, {"ana": 0, "ben": 7})
    # Then
    assert decision.agent == "ben"
    assert decision.skipped == (("ana", SkipReason.AWAY),)


def test_least_loaded_skips_agents_at_capacity() -> None:
    # Given: ana has a limit of 2 and holds 2; ben has no limit
    roster = TeamRoster(TEAM, (Member("ana", capacity=2), Member("ben")))
    # When / Then
    assert choose_agent("least_loaded", roster, {"ana": 2, "ben": 9}, None) == "ben"


# --- nobody to choose ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(RoutingPolicy))
def test_an_empty_team_routes_to_nobody(policy: RoutingPolicy) -> None:
    # When
    decision = route(policy, TeamRoster(TEAM), {}, None)
    # Then
    assert decision.agent is None
    assert (
        decision.explanation == f"{policy} in team support: nobody chosen, the team has no members"
    )


@pytest.mark.parametrize("policy", list(RoutingPolicy))
def test_a_team_with_everyone_away_or_full_routes_to_nobody(policy: RoutingPolicy) -> None:
    # Given
    roster = TeamRoster(TEAM, (Member("ana", AWAY), Member("ben", capacity=1)))
    # When
    decision = route(policy, roster, {"ben": 1}, "ana")
    # Then
    assert decision.agent is None
    assert decision.skipped == (("ben", SkipReason.AT_CAPACITY), ("ana", SkipReason.AWAY))
    assert decision.explanation.endswith(
        "nobody chosen, no member can take a ticket: ben (at capacity, 1/1), ana (away)"
    )


# --- inputs and state ---------------------------------------------------------------------


def test_an_unknown_policy_name_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        choose_agent("random", team_of("ana"), {}, None)
    assert refused.value.details["allowed"] == ["round_robin", "least_loaded"]


@pytest.mark.parametrize("load", [-1, True, 1.5])
def test_a_load_that_is_not_a_count_is_refused(load: object) -> None:
    with pytest.raises(ValidationError):
        choose_agent("least_loaded", team_of("ana"), {"ana": load}, None)  # type: ignore[dict-item]


def test_the_same_inputs_always_give_the_same_decision() -> None:
    roster = team_of("ana", "ben", "cy", away=("cy",))
    loads = {"ana": 2, "ben": 2}
    for policy in RoutingPolicy:
        assert len({route(policy, roster, loads, "ana") for _ in range(5)}) == 1


def test_the_last_assigned_agent_comes_from_the_teams_assignment_history() -> None:
    # Given: (team, agent) of each assignment, in order
    history = [(TEAM, "ana"), ("billing", "ben"), (TEAM, "cy"), (TEAM, None), (None, None)]
    # When / Then
    assert last_assigned_in(TEAM, history) == "cy"
    assert last_assigned_in("billing", history) == "ben"
    assert last_assigned_in("sales", history) is None
