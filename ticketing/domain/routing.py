"""Routing within a team: round-robin and least-loaded choice of the agent for a new ticket.

A `TeamRoster` is the team's members in join order, each `available` or `away` and with an
optional capacity (the most unsolved tickets they should hold). It is folded by `roster_from`
from small membership and availability facts (`AgentJoinedTeam`, `AgentLeftTeam`,
`AgentAvailabilityChanged`, `AgentCapacityChanged`), written as plain frozen dataclasses so a
later change can record them as stored events without touching the rules here.

A policy chooses among the *eligible* members: available, and below capacity given their load.
Loads (agent -> unsolved tickets, from the queue projection) are passed in; an agent missing
from them has no open tickets. Nothing here reads a store or a clock.

- `RoundRobin`: the first eligible member after the last agent assigned in the team, wrapping
  around (the last agent themselves comes last, so a lone eligible agent is chosen again).
- `LeastLoaded`: the eligible member with the fewest open tickets; ties go to whoever comes
  first in round-robin order after the last agent assigned, so ties rotate instead of always
  favouring the first member.

The only state is the last agent assigned in the team, which the team's assignment history
gives (`last_assigned_in`). When that agent is no longer a member (or nobody was assigned yet),
the rotation starts from the first member. `route` returns a `RoutingDecision` with an
explanation for audits; `choose_agent` returns just the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol

from ticketing.domain.errors import ValidationError
from ticketing.domain.values import IDENTIFIER_PATTERN


class Availability(StrEnum):
    """Whether a member takes new tickets now; away agents keep the tickets they hold."""

    AVAILABLE = "available"
    AWAY = "away"


class RoutingPolicy(StrEnum):
    """The names a team's configuration uses for its routing policy."""

    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"


class SkipReason(StrEnum):
    """Why a member was passed over."""

    AWAY = "away"
    AT_CAPACITY = "at_capacity"


# --- facts ---------------------------------------------------------------------------------


def _check_id(value: str, name: str) -> None:
    if not isinstance(value, str) or not IDENTIFIER_PATTERN.match(value):
        raise ValidationError(f"{name} must be a readable id, got {value!r}", field=name)


def _check_at(value: datetime) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError("at must be a time with a time zone", field="at")


def _check_capacity(value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(
            f"capacity must be a positive number of tickets or None, got {value!r}",
            field="capacity",
        )


@dataclass(frozen=True)
class AgentJoinedTeam:
    """An agent became a member of a team, last in its rotation, with an optional capacity."""

    team: str
    agent: str
    at: datetime
    capacity: int | None = None

    def __post_init__(self) -> None:
        _check_id(self.team, "team")
        _check_id(self.agent, "agent")
        _check_at(self.at)
        _check_capacity(self.capacity)


@dataclass(frozen=True)
class AgentLeftTeam:
    """An agent stopped being a member of a team; rejoining puts them last in the rotation."""

    team: str
    agent: str
    at: datetime

    def __post_init__(self) -> None:
        _check_id(self.team, "team")
        _check_id(self.agent, "agent")
        _check_at(self.at)


@dataclass(frozen=True)
class AgentAvailabilityChanged:
    """An agent became available or went away; it holds in every team they belong to."""

    agent: str
    available: bool
    at: datetime

    def __post_init__(self) -> None:
        _check_id(self.agent, "agent")
        if not isinstance(self.available, bool):
            raise ValidationError("available must be true or false", field="available")
        _check_at(self.at)


@dataclass(frozen=True)
class AgentCapacityChanged:
    """A member's capacity in one team was set (`None` removes the limit)."""

    team: str
    agent: str
    capacity: int | None
    at: datetime

    def __post_init__(self) -> None:
        _check_id(self.team, "team")
        _check_id(self.agent, "agent")
        _check_capacity(self.capacity)
        _check_at(self.at)


RosterFact = AgentJoinedTeam | AgentLeftTeam | AgentAvailabilityChanged | AgentCapacityChanged


# --- the roster ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One agent's place in a team: availability and the most open tickets they should hold."""

    agent: str
    availability: Availability = Availability.AVAILABLE
    capacity: int | None = None

    def __post_init__(self) -> None:
        _check_id(self.agent, "agent")
        object.__setattr__(self, "availability", Availability(self.availability))
        _check_capacity(self.capacity)

    def skip_reason(self, load: int) -> SkipReason | None:
        """Why this member cannot take one more ticket now, or `None` if they can."""
        if self.availability is Availability.AWAY:
            return SkipReason.AWAY
        if self.capacity is not None and load >= self.capacity:
            return SkipReason.AT_CAPACITY
        return None


@dataclass(frozen=True)
class TeamRoster:
    """A team's members in rotation (join) order."""

    team: str
    members: tuple[Member, ...] = ()

    def __post_init__(self) -> None:
        _check_id(self.team, "team")
        object.__setattr__(self, "members", tuple(self.members))
        if len(set(self.agents)) != len(self.members):
            raise ValidationError(f"team {self.team} lists an agent twice", field="members")

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(m.agent for m in self.members)

    def __contains__(self, agent: object) -> bool:
        return agent in self.agents

    def member(self, agent: str) -> Member | None:
        return next((m for m in self.members if m.agent == agent), None)

    def rotation(self, last_assigned: str | None) -> tuple[Member, ...]:
        """Members in the order round-robin considers them: those after `last_assigned`, then
        the ones before, then `last_assigned`; from the first member when they are not one."""
        agents = self.agents
        if last_assigned not in agents:
            return self.members
        start = agents.index(last_assigned) + 1
        return self.members[start:] + self.members[:start]


def roster_from(facts: Iterable[RosterFact], *, team: str) -> TeamRoster:
    """Fold facts, in the order they happened, into `team`'s roster.

    Availability is a fact about the agent, so it is kept across teams and memberships: an
    agent who went away and then joins the team joins away. A join while already a member keeps
    their place and restates the capacity; leaving or changing the capacity of someone who is
    not a member changes nothing (the facts are history, not commands, so they are not refused).
    Everyone is available until a fact says otherwise.
    """
    _check_id(team, "team")
    order: list[str] = []
    capacity: dict[str, int | None] = {}
    available: dict[str, bool] = {}
    for fact in facts:
        if isinstance(fact, AgentAvailabilityChanged):
            available[fact.agent] = fact.available
        elif fact.team != team:
            continue
        elif isinstance(fact, AgentJoinedTeam):
            if fact.agent not in capacity:
                order.append(fact.agent)
            capacity[fact.agent] = fact.capacity
        elif isinstance(fact, AgentLeftTeam):
            if fact.agent in capacity:
                order.remove(fact.agent)
                del capacity[fact.agent]
        elif fact.agent in capacity:
            capacity[fact.agent] = fact.capacity
    return TeamRoster(
        team,
        tuple(
            Member(
                agent,
                Availability.AVAILABLE if available.get(agent, True) else Availability.AWAY,
                capacity[agent],
            )
            for agent in order
        ),
    )


def last_assigned_in(team: str, assignments: Iterable[tuple[str | None, str | None]]) -> str | None:
    """The round-robin state: the agent of the latest `(team, agent)` assignment in `team`.

    `assignments` is the team's assignment history in order (every `TicketAssigned`, manual or
    routed, as its new team and agent); moves to another team and unassignments are ignored.
    """
    last: str | None = None
    for assigned_team, agent in assignments:
        if assigned_team == team and agent is not None:
            last = agent
    return last


# --- policies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingDecision:
    """Who a policy chose (or `None`: nobody eligible) and why, for the audit trail.

    `skipped` lists the members the policy passed over, in rotation order: for round-robin
    those before the chosen agent, for least-loaded every member who could not take a ticket.
    """

    team: str
    policy: RoutingPolicy
    agent: str | None
    last_assigned: str | None
    skipped: tuple[tuple[str, SkipReason], ...]
    explanation: str


class Router(Protocol):
    """A routing policy positioned after the last agent assigned in the team."""

    policy: ClassVar[RoutingPolicy]

    @property
    def last_assigned(self) -> str | None: ...

    def decide(self, roster: TeamRoster, loads: Mapping[str, int]) -> RoutingDecision: ...


def _checked_loads(loads: Mapping[str, int]) -> Mapping[str, int]:
    for agent, load in loads.items():
        if isinstance(load, bool) or not isinstance(load, int) or load < 0:
            raise ValidationError(
                f"the load of {agent} must be a count of open tickets, got {load!r}",
                field="loads",
            )
    return loads


def _eligible(
    roster: TeamRoster, loads: Mapping[str, int], last_assigned: str | None
) -> tuple[list[Member], list[tuple[Member, SkipReason]]]:
    """Eligible members in rotation order, and the skipped ones with their reasons."""
    eligible: list[Member] = []
    skipped: list[tuple[Member, SkipReason]] = []
    for member in roster.rotation(last_assigned):
        reason = member.skip_reason(loads.get(member.agent, 0))
        if reason is None:
            eligible.append(member)
        else:
            skipped.append((member, reason))
    return eligible, skipped


def _describe_skip(member: Member, reason: SkipReason, loads: Mapping[str, int]) -> str:
    if reason is SkipReason.AT_CAPACITY:
        return f"{member.agent} (at capacity, {loads.get(member.agent, 0)}/{member.capacity})"
    return f"{member.agent} (away)"


def _start(roster: TeamRoster, last_assigned: str | None) -> str:
    if last_assigned is None:
        return "from the first member"
    if last_assigned not in roster:
        return f"from the first member ({last_assigned}, assigned last, is not a member)"
    return f"after {last_assigned}"


def _decision(
    policy: RoutingPolicy,
    roster: TeamRoster,
    loads: Mapping[str, int],
    last_assigned: str | None,
    chosen: str | None,
    skipped: list[tuple[Member, SkipReason]],
    why: str,
) -> RoutingDecision:
    """The decision with its explanation; `why` adds detail to the chosen agent's name."""
    skips = [_describe_skip(member, reason, loads) for member, reason in skipped]
    if chosen is None:
        text = (
            f"{policy} in team {roster.team}: nobody chosen, the team has no members"
            if not roster.members
            else f"{policy} in team {roster.team}: nobody chosen, no member can take a ticket: "
            f"{', '.join(skips)}"
        )
    else:
        text = (
            f"{policy} in team {roster.team} {_start(roster, last_assigned)}: chose {chosen}{why}"
        )
        if skips:
            text += f"; skipped {', '.join(skips)}"
    reasons = tuple((member.agent, reason) for member, reason in skipped)
    return RoutingDecision(roster.team, policy, chosen, last_assigned, reasons, text)


@dataclass(frozen=True)
class RoundRobin:
    """Take turns: the next eligible member after the last agent assigned in the team."""

    policy: ClassVar[RoutingPolicy] = RoutingPolicy.ROUND_ROBIN
    last_assigned: str | None = None

    @classmethod
    def after(cls, last_agent: str | None) -> RoundRobin:
        return cls(last_agent)

    def decide(self, roster: TeamRoster, loads: Mapping[str, int]) -> RoutingDecision:
        _checked_loads(loads)
        skipped: list[tuple[Member, SkipReason]] = []
        for member in roster.rotation(self.last_assigned):
            reason = member.skip_reason(loads.get(member.agent, 0))
            if reason is None:
                return _decision(
                    self.policy, roster, loads, self.last_assigned, member.agent, skipped, ""
                )
            skipped.append((member, reason))
        return _decision(self.policy, roster, loads, self.last_assigned, None, skipped, "")


@dataclass(frozen=True)
class LeastLoaded:
    """Even out the work: the eligible member with the fewest open tickets; ties go to the
    first in round-robin order after the last agent assigned, so they rotate fairly."""

    policy: ClassVar[RoutingPolicy] = RoutingPolicy.LEAST_LOADED
    last_assigned: str | None = None

    @classmethod
    def after(cls, last_agent: str | None) -> LeastLoaded:
        return cls(last_agent)

    def decide(self, roster: TeamRoster, loads: Mapping[str, int]) -> RoutingDecision:
        eligible, skipped = _eligible(roster, _checked_loads(loads), self.last_assigned)
        if not eligible:
            return _decision(self.policy, roster, loads, self.last_assigned, None, skipped, "")
        # `min` keeps the first of equal loads, and `eligible` is in round-robin order.
        best = min(eligible, key=lambda m: loads.get(m.agent, 0))
        fewest = loads.get(best.agent, 0)
        tied = [m.agent for m in eligible if loads.get(m.agent, 0) == fewest]
        why = f" with {fewest} open ticket{'' if fewest == 1 else 's'}"
        if len(tied) > 1:
            why += f", tied with {', '.join(tied[1:])} (first in round-robin order)"
        others = [f"{m.agent} {loads.get(m.agent, 0)}" for m in eligible if m.agent not in tied]
        if others:
            why += f"; others: {', '.join(others)}"
        return _decision(self.policy, roster, loads, self.last_assigned, best.agent, skipped, why)


ROUTERS: Mapping[RoutingPolicy, Callable[[str | None], Router]] = {
    RoutingPolicy.ROUND_ROBIN: RoundRobin.after,
    RoutingPolicy.LEAST_LOADED: LeastLoaded.after,
}
"""Builds each policy positioned after the last agent assigned."""


def route(
    policy: RoutingPolicy | str,
    roster: TeamRoster,
    loads: Mapping[str, int],
    last_assigned: str | None,
) -> RoutingDecision:
    """Choose an agent in `roster` by the named policy, with the reason for the audit trail."""
    try:
        name = RoutingPolicy(policy)
    except ValueError:
        raise ValidationError(
            f"unknown routing policy {policy!r}",
            field="policy",
            allowed=[str(p) for p in RoutingPolicy],
        ) from None
    return ROUTERS[name](last_assigned).decide(roster, loads)


def choose_agent(
    policy: RoutingPolicy | str,
    roster: TeamRoster,
    loads: Mapping[str, int],
    last_assigned: str | None,
) -> str | None:
    """The agent `route` chooses, or `None` when nobody in the team can take a ticket now."""
    return route(policy, roster, loads, last_assigned).agent
