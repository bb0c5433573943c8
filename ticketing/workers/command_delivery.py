"""Delivers outbox commands to the command service over NATS request/reply.

A refused command (the ticket was closed, …) is delivered: the refusal is its outcome and
retrying cannot change it; so is a stale one (it named an `expected_version` the aggregate
has moved past: its sender decides again from the newer state). Only an unavailable service,
a timeout or another write conflict is retried; the command id is part of the action, so a
retry has at most one effect."""

from __future__ import annotations

import json
from typing import Any

from commands.client import CommandTimeoutError, ServiceUnavailableError, TicketingClient
from ticketing.workers.outbox import OutboxItem
from ticketing.workers.runner import Deliver, RetryLater

_RETRIED_CODES = frozenset({"version_conflict", "internal_error"})


def command_deliverer(client: TicketingClient) -> Deliver:
    async def deliver(item: OutboxItem) -> str:
        name, payload = item.body["name"], item.body["payload"]
        try:
            reply = await client.request(name, json.dumps(payload).encode())
        except (ServiceUnavailableError, CommandTimeoutError) as error:
            raise RetryLater(str(error)) from error
        if reply.ok:
            return f"ok: {name} v{reply.version}"
        code = reply.error.code if reply.error else "unknown"
        if code == "version_conflict" and payload.get("expected_version") is not None:
            return f"stale: {name}: the aggregate moved on since the decision"
        if code in _RETRIED_CODES:
            raise RetryLater(f"{name}: {code}")
        return f"refused: {name}: {code}"

    return deliver


def command_action_body(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What a command action stores: the command name and its JSON (with its command id)."""
    return {"name": name, "payload": payload}


def command_deliverers(nc: Any) -> dict[str, Deliver]:
    """Deliverers for a worker that only sends commands, on its own NATS connection."""
    from ticketing.nats.connect import ConnectionEvents

    return {"command": command_deliverer(TicketingClient(nc, ConnectionEvents()))}
