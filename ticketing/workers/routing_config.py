"""The router's configuration file: which teams are routed, and by which policy.

```toml
[teams.tier1]
policy = "round_robin"    # or "least_loaded"
```

A team that is not listed is never routed: its tickets wait for a person to pick them up."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ticketing.domain.routing import RoutingPolicy
from ticketing.domain.values import IDENTIFIER_PATTERN
from ticketing.toml_files import describe_validation, read_toml


class RoutingConfigError(ValueError):
    """The routing file is unreadable or invalid; the message names the file, team and field."""


class TeamRouting(BaseModel):
    """How one team's tickets are given to its members."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: RoutingPolicy


class RoutingConfig(BaseModel):
    """Every routed team by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teams: dict[str, TeamRouting]

    def policy_of(self, team: str | None) -> RoutingPolicy | None:
        """The team's policy, or `None` when the team is not routed."""
        routing = self.teams.get(team) if team is not None else None
        return routing.policy if routing else None


def parse_routing(data: Mapping[str, Any]) -> RoutingConfig:
    """Validate a parsed routing document (`{"teams": {name: {"policy": ...}}}`)."""
    unknown = sorted(set(data) - {"teams"})
    if unknown:
        raise RoutingConfigError(
            f"unknown top-level key(s) {', '.join(unknown)}; use [teams.<name>] tables"
        )
    teams = data.get("teams")
    if not isinstance(teams, Mapping) or not teams:
        raise RoutingConfigError("teams: give at least one [teams.<name>] table with a policy")
    bad = [name for name in teams if not IDENTIFIER_PATTERN.match(name)]
    if bad:
        raise RoutingConfigError(f"teams: {', '.join(map(repr, bad))} is not a team id")
    try:
        return RoutingConfig.model_validate(data)
    except ValidationError as error:
        raise RoutingConfigError(describe_validation(error)) from error


def load_routing(path: Path | str) -> RoutingConfig:
    """Read and validate a routing file; any problem is one `RoutingConfigError`."""
    path = Path(path)
    data = read_toml(path, RoutingConfigError, "routing file")
    try:
        return parse_routing(data)
    except RoutingConfigError as error:
        raise RoutingConfigError(f"{path}: {error}") from error
