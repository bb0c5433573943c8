"""The rebuild's fast paths give exactly what the plain paths give: messages cut from the stored
JSON equal the relay's encoding byte for byte, stream ids equal `str(UUID)`, and the queue's
bulk rebuild ends in the rows of batch-by-batch applies."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands import models as m
from commands.service import CommandService
from projections.payloads import stored_message, stored_payload
from projections.queue.store import QueueStore
from replay.stream import _library_rows, _sqlite_rows, stream_batches
from ticketing.cli.demo_day import support_day
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings
from ticketing.store.erasure import encode_state

pytestmark = pytest.mark.integration

AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}
TRICKY_BODIES = (
    "Grüße aus Köln \u2013 naïve ☃ 日本語",
    'a "quote", a back\\slash, a tab\tand a newline\n',
    'looks like a marker: "_type_":{"_type_":"datetime_iso"} and ,"body_salt":"x"',
    "control \x01 and delete \x7f characters",
    '"occurred_at":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00"}',
)


def ok(reply: Any) -> Any:
    assert reply.ok, reply.as_dict()
    return reply


@pytest.fixture
def service(tmp_path: Path) -> Iterator[CommandService]:
    """A realistic day plus comments with awkward text and a tier change."""
    service = build_command_service(Settings(home=tmp_path / "home"))
    support_day(service.execute, tickets=30, seed=5)
    opened = ok(
        service.execute(
            m.OpenTicket(
                account_id="acme",
                requester="bob@acme.example",
                subject="Ünïcödé subject ✓",
                actor=CUSTOMER,
            )
        )
    )
    ticket = UUID(opened.ticket_id)
    for body in TRICKY_BODIES:
        ok(service.execute(m.AddComment(ticket_id=ticket, body=body, actor=AGENT)))
    ok(service.execute(m.ChangeAccountTier(account_id="acme", tier="business", actor=AGENT)))
    yield service
    service.app.close()


def test_messages_cut_from_the_store_equal_the_relays_encoding(service: CommandService) -> None:
    # Given every published record of the store
    app = service.app
    rows = _sqlite_rows(app, 0, 100_000)
    assert len(rows) > 200
    for notification_id, aggregate_id, version, topic, state in rows:
        # When the message is made as a rebuild makes it
        payload, message = stored_message(app, topic, aggregate_id, version, state, notification_id)
        # Then it is the relay's encoding of the plain payload, byte for byte
        expected = stored_payload(app, topic, aggregate_id, version, state)
        expected["notification_id"] = notification_id
        assert payload == expected
        assert message == json.dumps(expected, separators=(",", ":")).encode(), topic


def test_awkward_stored_records_give_the_relays_encoding(service: CommandService) -> None:
    # Given hand-made records: every escape, nested look-alikes of dropped fields, an old
    # class version (upcast) and a current one
    app = service.app
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    base = {"timestamp": moment, "originator_topic": "ticketing.domain.ticket:Ticket"}
    cases: list[tuple[str, dict[str, Any]]] = [
        (
            "ticketing.domain.events:CommentAdded",
            {
                "actor": {"kind": "agent", "id": "x", "body_salt": "s"},
                "occurred_at": moment,
                "comment_id": "c1",
                "body": body,
                "body_salt": "s",
                "visibility": "public",
            },
        )
        for body in TRICKY_BODIES
    ]
    cases += [
        (
            "ticketing.domain.events:CommentAdded",
            {
                "actor": {"kind": "agent", "id": "x", "body_salt": 'q"r'},
                "occurred_at": moment,
                "comment_id": "c2",
                "body": "b",
                "body_salt": 'q"r',
                "visibility": "public",
            },
        ),
        (
            "ticketing.domain.events:TicketCategorized",
            {"actor": AGENT, "occurred_at": moment, "category": "billing", "version": 7},
        ),
        (
            "ticketing.domain.events:TicketRated",
            {"actor": CUSTOMER, "occurred_at": moment, "score": 5, "comment": None},
        ),
        (
            "ticketing.domain.events:TicketRated",
            {
                "actor": CUSTOMER,
                "occurred_at": moment,
                "score": 5,
                "class_version": 2,
                "comment": "ok",
                "survey": "nps",
                "class_version_note": 23,
            },
        ),
    ]
    for topic, fields in cases:
        state = encode_state(app, {**base, **fields})
        # When
        payload, message = stored_message(app, topic, str(uuid4()), 3, state, 99)
        # Then
        assert message == json.dumps(payload, separators=(",", ":")).encode()
        assert "body_salt" not in payload and "class_version" not in payload


def test_stream_ids_are_the_library_uuid_text(service: CommandService) -> None:
    # Given the store read through the raw SQLite query and through the library
    app = service.app
    raw = _sqlite_rows(app, 0, 100_000)
    library = _library_rows(app, 0, 100_000)
    # Then both give the same ids, as the payloads spell them
    assert [r[:2] for r in raw] == [(n, str(i)) for n, i, *_ in library]


def test_the_queue_bulk_rebuild_ends_in_the_rows_of_batch_by_batch_applies(
    service: CommandService, tmp_path: Path
) -> None:
    # Given the stream in small batches (a tier change lands mid-stream)
    batches = list(stream_batches(service.app, batch=97))
    incremental = QueueStore(tmp_path / "incremental.sqlite")
    bulk = QueueStore(tmp_path / "bulk.sqlite")
    try:
        # When one is fed batch by batch and the other through apply_all
        for events in batches:
            incremental.apply(events)
        applied = bulk.apply_all(iter(batches))
        # Then every table and the position are the same
        assert applied == sum(len(b) for b in batches) > 200
        assert bulk.position() == incremental.position()
        tables = [
            name
            for (name,) in incremental.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name != 'projection_position' AND name NOT LIKE 'queue\\_search\\_%' "
                "ESCAPE '\\' ORDER BY name"
            )
        ]
        assert {"queue_tickets", "queue_search"} <= set(tables)
        for table in tables:
            # The search index's own tables (segments) depend on how it was written; its rows
            # are what counts.
            order = "1, 2, 3" if table == "queue_search" else "1"
            query = f"SELECT * FROM {table} ORDER BY {order}"
            assert _all(bulk.db, query) == _all(incremental.db, query), table
    finally:
        incremental.close()
        bulk.close()


def test_the_queue_bulk_path_refuses_a_projection_that_has_rows(
    service: CommandService, tmp_path: Path
) -> None:
    batches = list(stream_batches(service.app, batch=50))
    store = QueueStore(tmp_path / "queue.sqlite")
    try:
        store.apply(batches[0])
        with pytest.raises(ValueError, match="empty projection"):
            store.apply_all(iter(batches[1:]))
    finally:
        store.close()


def _all(db: sqlite3.Connection, query: str) -> list[tuple[Any, ...]]:
    return db.execute(query).fetchall()
