"""NATS users per role and what each may publish and subscribe (least privilege).

Callers may only ask (commands, queries); only the relay may write events; projectors may only
consume; analysts and auditors may only read."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STREAM = "TICKETING"
EVENT_SUBJECTS = "ticketing.events.>"
COMMAND_SUBJECTS = "ticketing.cmd.>"
QUERY_SUBJECTS = "ticketing.query.>"
SERVICE_DISCOVERY = "$SRV.>"
INBOX = "_INBOX.>"


@dataclass(frozen=True)
class Role:
    name: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False
    description: str = ""


_STREAM_READ = (
    "$JS.API.INFO",
    f"$JS.API.STREAM.INFO.{STREAM}",
    "$JS.API.STREAM.NAMES",
    f"$JS.API.STREAM.MSG.GET.{STREAM}",
    f"$JS.API.DIRECT.GET.{STREAM}",
    f"$JS.API.DIRECT.GET.{STREAM}.>",
)
_CONSUME = (
    f"$JS.API.CONSUMER.CREATE.{STREAM}",
    f"$JS.API.CONSUMER.CREATE.{STREAM}.>",
    f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.>",
    f"$JS.API.CONSUMER.INFO.{STREAM}.>",
    f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.>",
    f"$JS.API.CONSUMER.DELETE.{STREAM}.>",
    f"$JS.ACK.{STREAM}.>",
)

ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            "admin",
            publish=(">",),
            subscribe=(">",),
            description="operators and `ticketing status`: everything",
        ),
        Role(
            "caller",
            publish=(COMMAND_SUBJECTS, QUERY_SUBJECTS, SERVICE_DISCOVERY),
            subscribe=(INBOX,),
            description="backend services issuing commands and queries",
        ),
        Role(
            "command_service",
            publish=(SERVICE_DISCOVERY,),
            subscribe=(COMMAND_SUBJECTS, SERVICE_DISCOVERY, INBOX),
            allow_responses=True,
            description="answers ticketing.cmd.* in a queue group",
        ),
        Role(
            "relay",
            publish=(
                EVENT_SUBJECTS,
                *_STREAM_READ,
                f"$JS.API.STREAM.CREATE.{STREAM}",
                f"$JS.API.STREAM.UPDATE.{STREAM}",
                SERVICE_DISCOVERY,
            ),
            subscribe=(INBOX, SERVICE_DISCOVERY),
            allow_responses=True,
            description="the only writer of ticketing.events.*",
        ),
        Role(
            "projector",
            publish=(*_STREAM_READ, *_CONSUME, SERVICE_DISCOVERY),
            subscribe=(INBOX, QUERY_SUBJECTS, SERVICE_DISCOVERY),
            allow_responses=True,
            description="consumes the stream and answers queries on its projection",
        ),
        Role(
            "automation",
            publish=(*_STREAM_READ, *_CONSUME, COMMAND_SUBJECTS, QUERY_SUBJECTS, SERVICE_DISCOVERY),
            subscribe=(INBOX, SERVICE_DISCOVERY),
            allow_responses=True,
            description="SLA monitor, triggers, router, notifier: consume events, send commands",
        ),
        Role(
            "analyst",
            publish=(QUERY_SUBJECTS, *_STREAM_READ, SERVICE_DISCOVERY),
            subscribe=(INBOX,),
            description="reads projections and stream metadata",
        ),
        Role(
            "auditor",
            publish=(QUERY_SUBJECTS, *_STREAM_READ, *_CONSUME, SERVICE_DISCOVERY),
            subscribe=(INBOX,),
            description="reads the whole event stream, writes nothing",
        ),
    )
}


def new_credentials() -> dict[str, dict[str, str]]:
    return {name: {"user": name, "password": secrets.token_urlsafe(24)} for name in ROLES}


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


def authorization_block(credentials: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The `authorization` section of a nats-server config for these credentials."""
    users = []
    for name, role in ROLES.items():
        permissions: dict[str, Any] = {
            "publish": {"allow": list(role.publish)},
            "subscribe": {"allow": list(role.subscribe)},
        }
        if role.allow_responses:
            permissions["allow_responses"] = True
        users.append(
            {
                "user": credentials[name]["user"],
                "password": credentials[name]["password"],
                "permissions": permissions,
            }
        )
    return {"users": users}
