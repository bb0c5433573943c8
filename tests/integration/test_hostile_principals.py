"""Arbitrary payloads from every principal, against one real `ticketing run command-service`.

Each example sends one hostile command (any command name, fields mutated into anything, any
actor, any time) as one principal, and at the same moment a good neighbour as another, so that
both usually share a group commit. Whatever comes back:
- the service answers within a deadline and never dies;
- a refusal carries one of the stable codes;
- a refused command appends nothing to the store (the store grows by exactly what the accepted
  replies say: their events plus one idempotency record each);
- the neighbour is never refused because of it;
- principals without command rights are stopped by the server (the client's ForbiddenError)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from commands import models as m
from commands.client import REJECTIONS, ForbiddenError, TicketingClient
from commands.replies import Reply
from tests.processes import start_ticketing, stop, wait_until
from ticketing.nats.connect import LoopThread, resolve_endpoint
from ticketing.principals import BUILT_IN
from ticketing.runtime.bootstrap import build_application
from ticketing.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.nats, pytest.mark.slow]

STABLE_CODES = frozenset(REJECTIONS)
SENDERS = tuple(p.name for p in BUILT_IN if p.role in ("admin", "service", "worker"))
SILENCED = tuple(p.name for p in BUILT_IN if p.role not in ("admin", "service", "worker"))
ACTORS = st.sampled_from(
    [
        {"kind": "customer", "id": "bob@acme.example"},
        {"kind": "customer", "id": "eve@globex.example"},
        {"kind": "agent", "id": "ana"},
        {"kind": "system", "id": "sla-monitor"},
        {"kind": "system", "id": "importer"},
        {"kind": "automation", "id": "router"},
        {"kind": "automation", "id": "rule-1"},
        {"kind": "ai", "id": "triage"},
        {"kind": "api", "id": "caller"},
    ]
) | st.dictionaries(st.text(max_size=6), st.text(max_size=12), max_size=3)
TIMES = st.sampled_from(
    [
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "1970-01-01T00:00:00Z",
        "2099-01-01T00:00:00Z",
        "2020-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "now",
    ]
) | st.datetimes().map(lambda d: d.isoformat())
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


class Stack:
    """One home with a command service, an account and a ticket to aim at."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.endpoint = resolve_endpoint(Settings(home=home))
        self.loop = LoopThread("hostile")
        self.clients = {
            name: self.loop.run(TicketingClient.connect(self.endpoint, principal=name, timeout=5))
            for name in (*SENDERS, *SILENCED)
        }
        self.app = build_application(Settings(home=home))

    def send(self, principal: str, name: str, payload: bytes) -> Reply | Exception:
        async def one() -> Reply | Exception:
            try:
                return await self.clients[principal].request(name, payload, timeout=5)
            except Exception as error:
                return error

        return self.loop.run(one(), 15)

    def send_pair(
        self, first: tuple[str, str, bytes], second: tuple[str, str, bytes]
    ) -> tuple[Reply | Exception, Reply | Exception]:
        async def both() -> tuple[Reply | Exception, Reply | Exception]:
            async def one(principal: str, name: str, payload: bytes) -> Reply | Exception:
                # The server drops a denied publish silently: the client learns it at timeout.
                timeout = 0.5 if principal in SILENCED else 5.0
                try:
                    return await self.clients[principal].request(name, payload, timeout=timeout)
                except Exception as error:
                    return error

            a, b = await asyncio.gather(one(*first), one(*second))
            return a, b

        return self.loop.run(both(), 20)

    def position(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def close(self) -> None:
        for client in self.clients.values():
            self.loop.run(client.close(), 5)
        self.loop.stop()
        self.app.close()


def ok(reply: Reply | Exception) -> Reply:
    assert isinstance(reply, Reply) and reply.ok, reply
    return reply


def written(reply: Reply) -> int:
    """What an accepted reply appended: its events and its idempotency record."""
    return len(reply.events) + 1


@st.composite
def hostile(draw: st.DrawFn, ticket: str) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(m.COMMAND_TYPES)))
    if draw(st.integers(0, 9)) == 0:
        return name, draw(st.binary(max_size=64))
    fields: dict[str, Any] = {
        "ticket_id": ticket,
        "account_id": "acme",
        "requester": "bob@acme.example",
        "subject": "hostile",
        "body": "text",
        "score": 3,
        "tags": ["x"],
        "priority": "high",
        "status": "open",
        "category": "technical",
        "agent_id": "ana",
        "team": "network",
        "comment_id": "c1",
        "reason": "r",
        "metric": "first_reply",
        "due_at": "2026-01-01T00:00:00Z",
        "threshold": 0.5,
        "policy_id": "default",
        "calendar_id": "office",
        "definition": {"default": {"first_reply": 60}},
        "tier": "enterprise",
        "account_name": "Acme",
        "availability": "away",
        "capacity": 3,
    }
    model = m.COMMAND_TYPES[name]
    payload = {k: v for k, v in fields.items() if k in model.model_fields}
    for key in draw(st.lists(st.sampled_from(sorted(payload) or ["x"]), max_size=3)):
        payload[key] = draw(JSON)
    if draw(st.booleans()):
        payload["actor"] = draw(ACTORS)
    if draw(st.booleans()):
        payload["occurred_at"] = draw(TIMES)
    if draw(st.booleans()):
        payload["expected_version"] = draw(JSON)
    payload["command_id"] = f"hostile-{uuid4()}"  # fresh: a repeat would write nothing
    return name, json.dumps(payload, default=str).encode()


def test_hostile_payloads_from_every_principal_never_hurt_the_service_or_a_neighbour(
    nats_home: Path,
) -> None:
    service = start_ticketing(nats_home, "run", "command-service")
    stack: Stack | None = None
    try:
        stack = Stack(nats_home)
        create = b'{"command_id": "acme", "account_id": "acme", "account_name": "A"}'
        answered = stack
        wait_until(
            lambda: isinstance(answered.send("admin", "create_account", create), Reply),
            what="the command service to answer",
        )
        ok(stack.send("admin", "create_account", create))
        opened = ok(
            stack.send(
                "admin",
                "open_ticket",
                b'{"account_id": "acme", "requester": "bob@acme.example", "subject": "x"}',
            )
        )
        ticket = str(opened.ticket_id)
        neighbour_ticket = str(
            ok(
                stack.send(
                    "caller",
                    "open_ticket",
                    b'{"account_id": "acme", "requester": "n@acme.example", "subject": "n"}',
                )
            ).ticket_id
        )
        seen: dict[str, int] = {}
        running = stack

        # Each kind of refusal is tried at least once, whatever the random examples find.
        customer_prioritizes = json.dumps(
            {
                "ticket_id": ticket,
                "priority": "urgent",
                "actor": {"kind": "customer", "id": "bob@acme.example"},
                "command_id": f"hostile-{uuid4()}",
            }
        ).encode()

        @settings(
            max_examples=120,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @example(sender="caller", attack=("prioritize_ticket", customer_prioritizes), tag=1)
        @example(sender="analyst", attack=("prioritize_ticket", customer_prioritizes), tag=2)
        @example(sender="caller", attack=("prioritize_ticket", b'{"priority": 5}'), tag=3)
        @given(
            sender=st.sampled_from(SENDERS + SILENCED),
            attack=hostile(ticket),
            tag=st.integers(0, 10**9),
        )
        def throw(sender: str, attack: tuple[str, bytes], tag: int) -> None:
            name, payload = attack
            neighbour = json.dumps(
                {
                    "ticket_id": neighbour_ticket,
                    "tags": [f"n{tag}"],
                    "command_id": f"neighbour-{uuid4()}",
                }
            ).encode()
            before = running.position()
            reply, good = running.send_pair(
                (sender, name, payload), ("caller", "tag_ticket", neighbour)
            )
            # Then: the neighbour was served whatever happened beside it
            assert isinstance(good, Reply) and good.ok, good
            grew = running.position() - before
            if sender in SILENCED:
                assert isinstance(reply, ForbiddenError), reply
                assert grew == written(good)
                seen["server-denied"] = seen.get("server-denied", 0) + 1
                return
            assert isinstance(reply, Reply), reply
            if reply.ok:
                assert grew == written(good) + written(reply)
                seen["accepted"] = seen.get("accepted", 0) + 1
            else:
                assert reply.error is not None
                assert reply.error.code in STABLE_CODES, reply.error
                assert reply.error.code != "store_unavailable", reply.error
                assert grew == written(good), (name, payload, reply.error)
                seen[reply.error.code] = seen.get(reply.error.code, 0) + 1

        throw()
        assert {"validation_error", "forbidden", "server-denied"} <= set(seen), seen
        assert service.poll() is None, "the command service died"
    finally:
        if stack is not None:
            stack.close()
        stop(service)
    assert service.returncode == 0, (nats_home / "run-command-service.log").read_text()
