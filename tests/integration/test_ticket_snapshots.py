"""Snapshots on both durable stores: a long ticket loads from its snapshot exactly as a full
replay would, snapshots stay out of the notification log and the chain, a snapshot that does not
match its events or its code is ignored, no stored record keeps a redacted comment's text, and a
store written by an older release loads and gets snapshots."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from replay.chain import verify_store
from replay.history import ticket_as_of
from tests.snapshot_checks import canonical_state
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Actor, ActorKind
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings
from ticketing.store.application import replay_events
from ticketing.store.snapshots import CODE_KEY, TicketSnapshot, replace_snapshot

pytestmark = pytest.mark.integration

INTERVAL = 5
SECRET = "My card is 4111-1111-1111-1111, expiry 09/29"
AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob"}
PRIVACY_OFFICER = {"kind": "agent", "id": "dpo"}
V1_FIXTURE = Path(__file__).parent.parent / "fixtures" / "v1_store" / "events.sqlite"


def snapshotting(settings: Settings, **env: str) -> Settings:
    return replace(
        settings, extra_env={**settings.extra_env, "SNAPSHOT_INTERVAL": str(INTERVAL), **env}
    )


@pytest.fixture
def service(store_settings: Settings) -> Iterator[CommandService]:
    service = build_command_service(snapshotting(store_settings))
    yield service
    service.app.close()


def ok(reply: Reply) -> Reply:
    assert reply.ok, reply.as_dict()
    return reply


def open_ticket(service: CommandService) -> UUID:
    ok(service.execute(m.CreateAccount(account_id="acme", account_name="Acme", tier="business")))
    reply = ok(
        service.execute(
            m.OpenTicket(
                account_id="acme",
                requester="bob@acme.example",
                subject="Payment failed",
                actor=CUSTOMER,
            )
        )
    )
    assert reply.ticket_id is not None
    return UUID(reply.ticket_id)


def conversation(ticket: UUID, turns: int, start: int = 0) -> Iterator[m.Command]:
    """Replies, notes, status moves and tags, as a long support thread has them."""
    for n in range(start, start + turns):
        kind = n % 6
        if kind == 2:
            status = "pending" if n % 12 == 2 else "open"
            yield m.ChangeStatus(ticket_id=ticket, status=status, actor=AGENT)
        elif kind == 4:
            yield m.TagTicket(ticket_id=ticket, tags=[f"seen-{n}"], actor=AGENT)
        elif kind == 5:
            yield m.AddComment(ticket_id=ticket, body=f"Still failing ({n})", actor=CUSTOMER)
        else:
            yield m.AddComment(
                ticket_id=ticket, body=f"Note {n}", visibility="internal", actor=AGENT
            )


def full_replay(service: CommandService, ticket: UUID) -> Ticket:
    replayed: Ticket = service.app.repository.get(ticket, projector_func=replay_events)
    return replayed


def snapshot_rows(service: CommandService, ticket: UUID) -> list[int]:
    """The versions of the ticket's stored snapshots."""
    recorder = service.app.snapshot_recorder
    return [s.originator_version for s in recorder.select_events(ticket)]


def every_stored_value(service: CommandService) -> list[bytes]:
    """Every value in every table of the store, read with plain SQL."""
    app: Any = service.app
    datastore = app.recorder.datastore
    sqlite = type(app.recorder).__module__.endswith("sqlite")
    values: list[bytes] = []
    with datastore.transaction(commit=False) as cursor:
        if sqlite:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = [f'"{r[0]}"' for r in cursor.fetchall()]
        else:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (datastore.schema,),
            )
            tables = [f'"{datastore.schema}"."{r["table_name"]}"' for r in cursor.fetchall()]
        for table in tables:
            cursor.execute(f"SELECT * FROM {table}")
            for row in cursor.fetchall():
                for value in tuple(row) if sqlite else row.values():
                    is_bytes = isinstance(value, bytes | memoryview)
                    values.append(bytes(value) if is_bytes else str(value).encode())
    return values


def test_a_long_ticket_loads_from_its_snapshot_as_a_full_replay_would(
    service: CommandService,
) -> None:
    # Given
    ticket = open_ticket(service)
    # When / Then: after every command, the snapshot path equals a replay of every event
    for command in conversation(ticket, 4 * INTERVAL + 3):
        ok(service.execute(command))
        loaded = service.load_ticket(ticket)
        assert canonical_state(loaded) == canonical_state(full_replay(service, ticket))
    # Then: one snapshot is kept, at most an interval behind
    version = service.load_ticket(ticket).version
    [snapshot_version] = snapshot_rows(service, ticket)
    assert version - INTERVAL < snapshot_version <= version


def test_a_comment_on_a_long_ticket_reads_no_comment_thread(service: CommandService) -> None:
    # Given
    ticket = open_ticket(service)
    for command in conversation(ticket, 3 * INTERVAL):
        ok(service.execute(command))
    assert snapshot_rows(service, ticket)
    # When
    loaded = service.load_ticket(ticket)
    count = len(loaded.comments)
    loaded.add_comment("one more", actor=Actor(ActorKind.AGENT, "ana"), visibility="internal")
    # Then: the next comment id came from the length alone; the thread loads on first need
    assert loaded.comments[-1]["comment_id"] == f"c{count + 1}"
    assert [c["body"] for c in loaded.comments][-1] == "one more"


def test_snapshots_stay_out_of_the_notification_log_and_the_chain(
    service: CommandService,
) -> None:
    # Given
    ticket = open_ticket(service)
    for command in conversation(ticket, 3 * INTERVAL):
        ok(service.execute(command))
    assert snapshot_rows(service, ticket)
    # When
    app = service.app
    notifications = app.recorder.select_notifications(start=1, limit=1_000_000)
    # Then
    version = service.load_ticket(ticket).version
    assert not [n for n in notifications if n.topic == "commands.snapshots:TicketSnapshot"]
    assert len([n for n in notifications if n.originator_id == ticket]) == version
    assert verify_store(app).ok
    assert ticket_as_of(app, ticket, version=INTERVAL).version == INTERVAL


def test_no_stored_record_keeps_a_redacted_comment_s_text(service: CommandService) -> None:
    # Given: the secret is in the thread, and snapshots were written after it
    ticket = open_ticket(service)
    ok(service.execute(m.AddComment(ticket_id=ticket, body=SECRET, actor=CUSTOMER)))
    for command in conversation(ticket, 3 * INTERVAL):
        ok(service.execute(command))
    assert snapshot_rows(service, ticket)
    snapshots = service.app.snapshot_recorder.select_events(ticket)
    assert snapshots and not [s for s in snapshots if b"4111-1111" in s.state]
    assert [v for v in every_stored_value(service) if b"4111-1111" in v]  # the scan sees it
    # When
    ok(
        service.execute(
            m.RedactComment(
                ticket_id=ticket, comment_id="c1", reason="privacy", actor=PRIVACY_OFFICER
            )
        )
    )
    for command in conversation(ticket, 2 * INTERVAL, start=100):
        ok(service.execute(command))
    # Then: no row of any table (events, snapshots, command records) holds the text
    assert snapshot_rows(service, ticket)
    assert [v for v in every_stored_value(service) if b"4111-1111" in v] == []
    loaded = service.load_ticket(ticket)
    assert loaded.comments[0]["redacted"] and loaded.comments[0]["body"] is None
    assert canonical_state(loaded) == canonical_state(full_replay(service, ticket))


def test_a_snapshot_that_does_not_match_its_events_is_ignored(service: CommandService) -> None:
    # Given: a snapshot claiming another chain head, and one taken by other code
    ticket = open_ticket(service)
    for command in conversation(ticket, 2 * INTERVAL):
        ok(service.execute(command))
    app = service.app
    assert app.snapshots is not None
    good = full_replay(service, ticket)
    tampered = [
        (1_000, {"chain_head": "0" * 64}),  # events since truncated or rewritten
        (0, {"chain_head": "0" * 64, "reopen_count": 99}),
        (0, {CODE_KEY: "old", "reopen_count": 99}),  # another release's evolve
    ]
    for ahead, tamper in tampered:
        snapshot = TicketSnapshot.take(good)
        forged = TicketSnapshot(
            originator_id=snapshot.originator_id,
            originator_version=snapshot.originator_version + ahead,
            timestamp=snapshot.timestamp,
            topic=snapshot.topic,
            state={**snapshot.state, **tamper},
        )
        replace_snapshot(app.snapshots.recorder, app.mapper.to_stored_event(forged))
        # When
        loaded = service.load_ticket(ticket)
        # Then: the forged snapshot is replaced by one of the events' state
        assert canonical_state(loaded) == canonical_state(good)
        assert snapshot_rows(service, ticket) == [good.version]


def test_with_snapshotting_off_no_snapshot_is_written(store_settings: Settings) -> None:
    # Given
    service = build_command_service(snapshotting(store_settings, IS_SNAPSHOTTING_ENABLED="n"))
    try:
        ticket = open_ticket(service)
        # When
        for command in conversation(ticket, 3 * INTERVAL):
            ok(service.execute(command))
        # Then
        assert service.app.snapshots is None
        assert snapshot_rows(service, ticket) == []
        assert service.load_ticket(ticket).version == 3 * INTERVAL + 1
    finally:
        service.app.close()


def test_a_store_written_by_an_older_release_loads_and_gets_snapshots(tmp_path: Path) -> None:
    # Given: a copy of the v1 store (no snapshots table), snapshots after every event
    home = tmp_path / "v1-home"
    home.mkdir()
    shutil.copyfile(V1_FIXTURE, home / "events.sqlite")
    settings = replace(Settings(home=home), extra_env={"SNAPSHOT_INTERVAL": "1"})
    service = build_command_service(settings)
    try:
        tickets = [n.originator_id for n in service.app.recorder.select_notifications(1, 10_000)]
        ticket_ids = {t for t in tickets if isinstance(full_replay(service, t), Ticket)}
        assert ticket_ids
        for ticket in ticket_ids:
            # When: the first load replays and writes a snapshot, the second reads it
            first = service.load_ticket(ticket)
            assert snapshot_rows(service, ticket) == [first.version]
            second = service.load_ticket(ticket)
            # Then
            assert canonical_state(second) == canonical_state(full_replay(service, ticket))
            assert second.as_dict() == first.as_dict()
    finally:
        service.app.close()
