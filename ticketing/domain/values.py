"""Value types of the ticket model: statuses, priorities, channels, actors and their rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    SLACK = "slack"
    TEAMS = "teams"
    DISCORD = "discord"
    WEB = "web"
    PHONE = "phone"
    API = "api"


class Visibility(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


class ActorKind(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"
    AUTOMATION = "automation"
    AI = "ai"
    API = "api"


class SlaTier(StrEnum):
    STANDARD = "standard"
    BUSINESS = "business"
    ENTERPRISE = "enterprise"


DEFAULT_CATEGORIES = ("incident", "usage", "account", "technical", "feedback")

TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-:.]{0,49}$")
"""Tags are short lowercase tokens so that they filter and group reliably."""

IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}$")
"""Account, team, agent and actor ids: readable slugs safe in NATS subjects and URLs."""


@dataclass(frozen=True)
class Actor:
    """Who caused a change: every event records it."""

    kind: ActorKind
    id: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "id": self.id}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Actor:
        return cls(ActorKind(data["kind"]), data["id"])

    @classmethod
    def parse(cls, text: str) -> Actor:
        """Parse the `KIND:ID` form used by the CLI."""
        kind, sep, ident = text.partition(":")
        if not sep or not ident:
            raise ValueError(f"actor must look like KIND:ID, got {text!r}")
        return cls(ActorKind(kind), ident)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def is_agent(self) -> bool:
        return self.kind is ActorKind.AGENT


SYSTEM_ACTOR = Actor(ActorKind.SYSTEM, "ticketing")
