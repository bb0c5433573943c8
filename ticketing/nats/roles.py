"""NATS users, one per principal, and what each may publish and subscribe (least privilege).

Callers may only ask (commands under their own name, queries); only the relay may write events;
projectors and workers consume only their own durable consumer; analysts and auditors only read;
every principal reads replies only under its own inbox prefix."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ticketing.principals import Principal, Principals

STREAM = "TICKETING"
EVENT_SUBJECTS = "ticketing.events.>"
ALL_COMMANDS = "ticketing.cmd.*.*"
QUERY_SUBJECTS = "ticketing.query.>"
SERVICE_DISCOVERY = "$SRV.>"


def command_subject(principal: str, command: str) -> str:
    """Where `principal` sends `command`: the server lets only that principal publish here, so
    the command service reads the sender from the subject, never from the payload."""
    return f"ticketing.cmd.{principal}.{command}"


def inbox_prefix(principal: str) -> str:
    """Each principal's replies arrive under its own prefix, which only it may subscribe to."""
    return f"_INBOX.{principal}"


@dataclass(frozen=True)
class Permissions:
    """What one NATS user may publish and subscribe."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False


_STREAM_READ = (
    "$JS.API.INFO",
    f"$JS.API.STREAM.INFO.{STREAM}",
    "$JS.API.STREAM.NAMES",
    f"$JS.API.STREAM.MSG.GET.{STREAM}",
    f"$JS.API.DIRECT.GET.{STREAM}",
    f"$JS.API.DIRECT.GET.{STREAM}.>",
)


def _own_consumer(durable: str) -> tuple[str, ...]:
    """Create, read, pull, ack and delete one durable consumer: a worker's own, nobody else's."""
    return (
        f"$JS.API.CONSUMER.CREATE.{STREAM}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{STREAM}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{durable}",
        f"$JS.API.CONSUMER.INFO.{STREAM}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{durable}",
        f"$JS.API.CONSUMER.DELETE.{STREAM}.{durable}",
        f"$JS.ACK.{STREAM}.{durable}.>",
    )


_READ_WHOLE_STREAM = (
    f"$JS.API.CONSUMER.CREATE.{STREAM}",  # ephemeral consumers only: no durable, no delete
    f"$JS.API.CONSUMER.INFO.{STREAM}.*",
    f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.*",
    f"$JS.ACK.{STREAM}.>",
)
_ANSWERS: dict[str, tuple[str, ...]] = {"queue-projector": ("ticketing.query.queue",)}
"""Query subjects a projector answers besides its own `ticketing.query.<name>.>`."""


def permissions_for(principal: Principal) -> Permissions:
    """The NATS permissions of a principal, from its role template and its own name."""
    name = principal.name
    inbox = f"{inbox_prefix(name)}.>"
    own_queries = f"ticketing.query.{name}.>"
    commands = f"ticketing.cmd.{name}.>"
    match principal.role:
        case "admin":
            return Permissions(publish=(">",), subscribe=(">",))
        case "service":
            return Permissions(
                publish=(commands, QUERY_SUBJECTS, SERVICE_DISCOVERY), subscribe=(inbox,)
            )
        case "command_service":
            return Permissions(
                publish=(SERVICE_DISCOVERY,),
                subscribe=(ALL_COMMANDS, SERVICE_DISCOVERY, inbox),
                allow_responses=True,
            )
        case "relay":
            return Permissions(
                publish=(
                    EVENT_SUBJECTS,
                    *_STREAM_READ,
                    f"$JS.API.STREAM.CREATE.{STREAM}",
                    f"$JS.API.STREAM.UPDATE.{STREAM}",
                    f"$JS.API.STREAM.DELETE.{STREAM}",  # to publish a damaged stream again
                    SERVICE_DISCOVERY,
                ),
                subscribe=(inbox, SERVICE_DISCOVERY),
                allow_responses=True,
            )
        case "projector":
            return Permissions(
                publish=(*_STREAM_READ, *_own_consumer(name), SERVICE_DISCOVERY),
                subscribe=(inbox, own_queries, *_ANSWERS.get(name, ()), SERVICE_DISCOVERY),
                allow_responses=True,
            )
        case "worker":
            return Permissions(
                publish=(
                    *_STREAM_READ,
                    *_own_consumer(name),
                    commands,
                    QUERY_SUBJECTS,
                    SERVICE_DISCOVERY,
                ),
                subscribe=(inbox, own_queries, SERVICE_DISCOVERY),
                allow_responses=True,
            )
        case "analyst":
            return Permissions(
                publish=(QUERY_SUBJECTS, *_STREAM_READ, SERVICE_DISCOVERY), subscribe=(inbox,)
            )
        case "auditor":
            return Permissions(
                publish=(QUERY_SUBJECTS, *_STREAM_READ, *_READ_WHOLE_STREAM, SERVICE_DISCOVERY),
                subscribe=(inbox,),
            )
    raise ValueError(f"principal {name!r} has no NATS role ({principal.role!r})")


def new_credentials(principals: Principals) -> dict[str, dict[str, str]]:
    return {p.name: {"user": p.name, "password": secrets.token_urlsafe(24)} for p in principals}


def write_credentials(path: Path, credentials: dict[str, dict[str, str]]) -> None:
    """Write role passwords readable by the owner only (created with 0600, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle, indent=2)
    os.chmod(path, 0o600)


def read_credentials(path: Path) -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(path.read_text())
    return data


def authorization_block(
    principals: Principals, credentials: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The `authorization` section of a nats-server config: one user per principal."""
    users = []
    for principal in principals:
        if principal.name not in credentials:
            continue
        allowed = permissions_for(principal)
        permissions: dict[str, Any] = {
            "publish": {"allow": list(allowed.publish)},
            "subscribe": {"allow": list(allowed.subscribe)},
        }
        if allowed.allow_responses:
            permissions["allow_responses"] = True
        users.append(
            {
                "user": credentials[principal.name]["user"],
                "password": credentials[principal.name]["password"],
                "permissions": permissions,
            }
        )
    return {"users": users}
