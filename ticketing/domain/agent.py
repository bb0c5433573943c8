"""The Agent aggregate: team membership, availability and capacity, the facts routing reads.

Availability changes are events so that who was skipped, and why, can be replayed exactly."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ticketing.domain import errors
from ticketing.domain.chain import GENESIS_HASH, chained
from ticketing.domain.clock import as_utc, utc_now
from ticketing.domain.events import (
    AgentAvailabilityChanged,
    AgentCapacityChanged,
    AgentJoinedTeam,
    AgentLeftTeam,
    AgentRegistered,
)
from ticketing.domain.recording import ChainedAggregate
from ticketing.domain.routing import Availability
from ticketing.domain.values import IDENTIFIER_PATTERN, Actor

_AGENT_NAMESPACE = uuid5(NAMESPACE_URL, "ticketing:agent")
MAX_CAPACITY = 1000


def agent_uuid(agent_id: str) -> UUID:
    return uuid5(_AGENT_NAMESPACE, agent_id)


class Agent(ChainedAggregate):
    """Someone tickets can be routed to; a new agent starts available, in no team."""

    def __init__(self) -> None:
        self.agent_id = ""
        self.teams: list[str] = []
        self.availability = Availability.AVAILABLE
        self.capacity: int | None = None
        self.last_occurred_at = utc_now()
        self.chain_head = GENESIS_HASH

    @classmethod
    def register(
        cls, agent_id: str, *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> Agent:
        new_id = agent_uuid(agent_id)
        fields = {
            "agent_id": agent_id,
            "actor": actor.as_dict(),
            "occurred_at": as_utc(at) if at else utc_now(),
            "command_id": command_id,
        }
        return cls._create(
            AgentRegistered, id=new_id, **chained(AgentRegistered, new_id, 1, GENESIS_HASH, fields)
        )

    def join_team(
        self, team: str, *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        _check_team(team)
        if team not in self.teams:
            self._record(AgentJoinedTeam, actor, at, command_id, team=team)

    def leave_team(
        self, team: str, *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        _check_team(team)
        if team in self.teams:
            self._record(AgentLeftTeam, actor, at, command_id, team=team)

    def set_availability(
        self,
        availability: Availability | str,
        *,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        target = Availability(availability)
        if target is not self.availability:
            self._record(
                AgentAvailabilityChanged,
                actor,
                at,
                command_id,
                availability=str(target),
                previous_availability=str(self.availability),
            )

    def set_capacity(
        self,
        capacity: int | None,
        *,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> None:
        if capacity is not None and not 0 <= capacity <= MAX_CAPACITY:
            raise errors.ValidationError(
                f"capacity is 0..{MAX_CAPACITY} open tickets, or none", field="capacity"
            )
        if capacity != self.capacity:
            self._record(
                AgentCapacityChanged,
                actor,
                at,
                command_id,
                capacity=capacity,
                previous_capacity=self.capacity,
            )

    def evolve(self, event: Any) -> None:
        match event:
            case AgentRegistered():
                self.agent_id = event.agent_id
            case AgentJoinedTeam():
                self.teams = sorted({*self.teams, event.team})
            case AgentLeftTeam():
                self.teams = [t for t in self.teams if t != event.team]
            case AgentAvailabilityChanged():
                self.availability = Availability(event.availability)
            case AgentCapacityChanged():
                self.capacity = event.capacity
        self.last_occurred_at = event.occurred_at
        self.chain_head = event.event_hash

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "version": self.version,
            "teams": list(self.teams),
            "availability": str(self.availability),
            "capacity": self.capacity,
        }

    def _moment(self, at: datetime | None) -> datetime:
        return as_utc(at) if at else max(utc_now(), self.last_occurred_at)


def _check_team(team: str) -> None:
    if not IDENTIFIER_PATTERN.match(team):
        raise errors.ValidationError(f"invalid team {team!r}", field="team")
