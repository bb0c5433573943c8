"""Principals: who a request comes from, proven by credentials, and the actors each may speak for.

Every NATS user is a principal. The command service learns a request's principal from its
subject (`ticketing.cmd.<principal>.<command>`), which the server lets only that user publish;
the payload's `actor` is then checked against the principal's `act_as` grants. In-process
callers (the CLI on a home it can read and write) are the `local` principal."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from ticketing.domain.values import Actor, ActorKind

PRINCIPAL_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
"""Principal names are NATS users and one subject token."""

GRANTS = ("admin", "auditor", "import")
"""Principal-wide grants: `admin` and `auditor` for policies, tiers and redaction; `import` to
date commands into the past (historical imports)."""

RESERVED_ACTORS = frozenset({"system:sla-monitor", "automation:router", "automation:notifier"})
"""Actors that a wildcard never matches: only a principal naming them exactly may be them."""


class PrincipalError(ValueError):
    """The principals file is malformed; the message names the file and field."""


@dataclass(frozen=True)
class Principal:
    """A proven sender: the NATS permission template it gets (`role`), the actors it may act as
    (`kind:id`, `kind:*` or `*`), the accounts whose customers it serves, and its grants."""

    name: str
    role: str
    act_as: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    grants: frozenset[str] = field(default_factory=frozenset)
    description: str = ""

    @property
    def default_actor(self) -> Actor:
        """The actor of a command that names none: the principal itself, as an API caller."""
        return Actor(ActorKind.API, "api" if self.name == LOCAL.name else self.name)

    def may_act_as(self, actor: Actor) -> bool:
        if actor == self.default_actor:
            return True
        text = f"{actor.kind}:{actor.id}"
        for pattern in self.act_as:
            if pattern == text:
                return True
            if text in RESERVED_ACTORS and "all" not in self.grants:
                continue
            if pattern in ("*", f"{actor.kind}:*"):
                return True
        return False

    def serves_account(self, account_id: str) -> bool:
        """Whether this principal may speak for customers of `account_id`."""
        return "*" in self.accounts or account_id in self.accounts

    def has_grant(self, *names: str) -> bool:
        return "all" in self.grants or any(name in self.grants for name in names)


LOCAL = Principal(
    "local",
    role="none",
    act_as=("*",),
    accounts=("*",),
    grants=frozenset({"all"}),
    description="in-process callers (the CLI): whoever may write the home may do anything",
)

BUILT_IN: tuple[Principal, ...] = (
    Principal(
        "admin",
        role="admin",
        act_as=("*",),
        accounts=("*",),
        grants=frozenset({"all"}),
        description="operators: every subject, every actor, every grant",
    ),
    Principal(
        "caller",
        role="service",
        act_as=("agent:*", "customer:*", "api:*"),
        accounts=("*",),
        description="the default backend service: agents and customers of every account",
    ),
    Principal(
        "importer",
        role="service",
        act_as=("agent:*", "customer:*", "system:*", "api:*"),
        accounts=("*",),
        grants=frozenset({"import"}),
        description="historical imports: may date commands into the past",
    ),
    Principal("command_service", role="command_service", description="answers commands"),
    Principal("relay", role="relay", description="the only writer of ticketing.events.*"),
    Principal("queue-projector", role="projector", description="the queue projection"),
    Principal("analytics-projector", role="projector", description="the DuckDB projection"),
    Principal(
        "sla-monitor",
        role="worker",
        act_as=("system:sla-monitor",),
        grants=frozenset({"import"}),  # records are dated when judged, delivered maybe later
        description="records SLA warnings and breaches, only as itself",
    ),
    Principal(
        "triggers",
        role="worker",
        act_as=("automation:*",),
        grants=frozenset({"import"}),  # its commands are dated at the event they react to
        description="trigger rules, each acting as automation:<rule id>",
    ),
    Principal("router", role="worker", act_as=("automation:router",), description="assigns agents"),
    Principal(
        "notifier",
        role="worker",
        act_as=("automation:notifier",),
        description="customer e-mails and webhooks",
    ),
    Principal("analyst", role="analyst", description="reads projections and stream metadata"),
    Principal(
        "auditor",
        role="auditor",
        grants=frozenset({"auditor"}),
        description="reads the whole stream, writes nothing",
    ),
)


class _PrincipalEntry(BaseModel):
    """One `[[principal]]` table of a principals file: an operator's backend service."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=PRINCIPAL_PATTERN.pattern)
    act_as: list[str] = []
    accounts: list[str] = []
    grants: list[str] = []
    description: str = ""


class _PrincipalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    principal: list[_PrincipalEntry] = []


@dataclass(frozen=True)
class Principals:
    """Every principal by name: the built-in ones and those of the operator's file."""

    by_name: Mapping[str, Principal]

    def get(self, name: str) -> Principal | None:
        return self.by_name.get(name)

    def __iter__(self) -> Iterator[Principal]:
        return iter(self.by_name.values())

    @classmethod
    def built_in(cls) -> Principals:
        return cls({p.name: p for p in BUILT_IN})

    @classmethod
    def load(cls, path: Path | None) -> Principals:
        """Built-in principals plus the file's (a missing file adds none)."""
        extra = read_principals_file(path) if path is not None and path.exists() else ()
        return cls.with_extra(extra)

    @classmethod
    def with_extra(cls, extra: Iterable[Principal]) -> Principals:
        found = {p.name: p for p in BUILT_IN}
        for principal in extra:
            if principal.name in found or principal.name == LOCAL.name:
                raise PrincipalError(f"principal {principal.name!r} is built in; pick another name")
            found[principal.name] = principal
        return cls(found)


def read_principals_file(path: Path) -> tuple[Principal, ...]:
    """Service principals from TOML (`[[principal]] name, act_as, accounts, grants`)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = _PrincipalsFile.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PrincipalError(f"{path}: {error}") from None
    except PydanticValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PrincipalError(f"{path}: {where}: {first['msg']}") from None
    principals = []
    for index, entry in enumerate(parsed.principal):
        for grant in entry.grants:
            if grant not in GRANTS:
                raise PrincipalError(
                    f"{path}: principal.{index}.grants: unknown grant {grant!r}; "
                    f"known: {', '.join(GRANTS)}"
                )
        for pattern in entry.act_as:
            _check_pattern(path, index, pattern)
        principals.append(
            Principal(
                entry.name,
                role="service",
                act_as=tuple(entry.act_as),
                accounts=tuple(entry.accounts),
                grants=frozenset(entry.grants),
                description=entry.description,
            )
        )
    return tuple(principals)


def _check_pattern(path: Path, index: int, pattern: str) -> None:
    kind, _, ident = pattern.partition(":")
    if pattern == "*" or (kind in set(ActorKind) and ident):
        return
    raise PrincipalError(
        f"{path}: principal.{index}.act_as: {pattern!r} is not KIND:ID, KIND:* or *; "
        f"kinds: {', '.join(ActorKind)}"
    )


def principals_markdown() -> str:
    """The built-in principals as the README shows them (a test keeps the two equal)."""
    lines = [
        "| principal | NATS role | may act as | customers of | grants | what |",
        "|---|---|---|---|---|---|",
    ]
    for p in (LOCAL, *BUILT_IN):
        act_as = ", ".join(f"`{a}`" for a in p.act_as) or "-"
        accounts = ", ".join("every account" if a == "*" else a for a in p.accounts) or "-"
        grants = ", ".join(sorted(p.grants)) or "-"
        lines.append(
            f"| `{p.name}` | {p.role} | {act_as} | {accounts} | {grants} | {p.description} |"
        )
    return "\n".join(lines)
