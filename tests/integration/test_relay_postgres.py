"""The relay follows a PostgreSQL event store as it follows SQLite: every event once, in order."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from projections.payloads import PUBLISHED_TOPICS
from projections.relay import NOTIFICATION_HEADER, Relay
from ticketing.cli.demo_day import support_day
from ticketing.nats.connect import connect, resolve_endpoint
from ticketing.nats.roles import STREAM
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.nats, pytest.mark.postgres]


def test_the_relay_publishes_a_postgresql_store_in_order_exactly_once(
    nats_home: Path, postgres_settings: Settings
) -> None:
    # Given a day of support in PostgreSQL
    settings = dataclasses.replace(postgres_settings, home=nats_home)
    service = build_command_service(settings)
    try:
        support_day(service.execute, tickets=25, seed=3)
        stored = [
            n.id
            for n in service.app.recorder.select_notifications(
                start=1, limit=100_000, topics=PUBLISHED_TOPICS
            )
        ]

        async def relay_then_read() -> list[int]:
            endpoint = resolve_endpoint(settings)
            nc = await connect(endpoint, "relay", name="test-relay")
            try:
                # When the relay catches up, twice (the second run must add nothing)
                await Relay(service.app, nc, batch_size=100).run_until_caught_up()
                await Relay(service.app, nc, batch_size=100).run_until_caught_up()
            finally:
                await nc.close()
            admin = await connect(endpoint, "admin", name="test-reader")
            try:
                js = admin.jetstream()
                last = (await js.stream_info(STREAM)).state.last_seq
                return [
                    int((await js.get_msg(STREAM, seq)).headers[NOTIFICATION_HEADER])
                    for seq in range(1, last + 1)
                ]
            finally:
                await admin.close()

        published = asyncio.run(relay_then_read())
    finally:
        service.app.close()
    # Then the stream holds every stored event once, in store order
    assert len(stored) > 200
    assert published == stored
