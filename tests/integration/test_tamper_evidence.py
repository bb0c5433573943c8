"""Tamper evidence on both durable stores: a realistic day plus a signed checkpoint verifies,
and every kind of change made directly in the database (edit, delete, reorder, truncate, forge,
erase, rewrite with recomputed hashes) or in the checkpoint log is caught and named, by
`verify_store`, by `verify_aggregate` (one ticket against its signed head) and by
`ticketing verify chain [TICKET]`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.command_log import ticket_id_for
from commands.service import CommandService
from replay.chain import ChainReport, verify_aggregate, verify_store
from replay.checkpoint import Checkpoint, CheckpointLog, write_checkpoint
from replay.history import history
from ticketing.cli.demo_day import support_day
from ticketing.domain.chain import event_hash
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings
from ticketing.store.erasure import decode_state, encode_state

pytestmark = pytest.mark.integration

TICKETS = 8
SEED = 5
TICKET = ticket_id_for(f"demo-{SEED}-ticket-0")
"""Every demo ticket has at least six events: opened, categorized, assigned, status changed (the
agent starts work), commented, and more."""
OTHER_TICKET = ticket_id_for(f"demo-{SEED}-ticket-1")
DOMAIN_TOPIC_PREFIX = "ticketing.domain.events:"


class EventTable:
    """The events table reached with plain SQL, as someone who can write the database (but not
    the checkpoint key) would: `{table}`, `{nid}` (notification order) and `?` placeholders."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def on_sqlite(self) -> bool:
        return self.settings.event_store == "sqlite"

    def key(self, aggregate_id: UUID) -> Any:
        return aggregate_id.hex if self.on_sqlite else aggregate_id

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.on_sqlite:
            text = sql.format(table="stored_events", nid="rowid")
            with closing(sqlite3.connect(self.settings.sqlite_path)) as db, db:
                return db.execute(text, params).fetchall()
        import psycopg

        table = f'"{self.settings.postgres_schema}"."ticketing_events"'
        text = sql.format(table=table, nid="notification_id").replace("?", "%s")
        assert self.settings.postgres_url is not None
        with psycopg.connect(self.settings.postgres_url, autocommit=True) as pg:
            cursor = pg.execute(text, params)
            return cursor.fetchall() if cursor.description else []

    def state(self, aggregate_id: UUID, version: int) -> dict[str, Any]:
        rows = self.execute(
            "SELECT state FROM {table} WHERE originator_id = ? AND originator_version = ?",
            (self.key(aggregate_id), version),
        )
        assert len(rows) == 1, f"no stored event {aggregate_id} v{version}"
        state: dict[str, Any] = json.loads(bytes(rows[0][0]))
        return state

    def topic(self, aggregate_id: UUID, version: int) -> str:
        rows = self.execute(
            "SELECT topic FROM {table} WHERE originator_id = ? AND originator_version = ?",
            (self.key(aggregate_id), version),
        )
        return str(rows[0][0])

    def last_version(self, aggregate_id: UUID) -> int:
        rows = self.execute(
            "SELECT MAX(originator_version) FROM {table} WHERE originator_id = ?",
            (self.key(aggregate_id),),
        )
        return int(rows[0][0])

    def write_state(self, aggregate_id: UUID, version: int, state: dict[str, Any]) -> None:
        self.execute(
            "UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (json.dumps(state).encode(), self.key(aggregate_id), version),
        )

    def set_version(self, aggregate_id: UUID, version: int, new_version: int) -> None:
        self.execute(
            "UPDATE {table} SET originator_version = ? "
            "WHERE originator_id = ? AND originator_version = ?",
            (new_version, self.key(aggregate_id), version),
        )

    def delete(self, aggregate_id: UUID, version: int) -> None:
        self.execute(
            "DELETE FROM {table} WHERE originator_id = ? AND originator_version = ?",
            (self.key(aggregate_id), version),
        )

    def delete_newest(self, rows: int) -> list[str]:
        """Delete the newest `rows` rows of the whole store; returns their topics."""
        newest = "SELECT MAX({nid}) FROM {table}"
        topics = self.execute(
            f"SELECT topic FROM {{table}} WHERE {{nid}} > ({newest}) - ?", (rows,)
        )
        self.execute(f"DELETE FROM {{table}} WHERE {{nid}} > ({newest}) - ?", (rows,))
        return [t for (t,) in topics]


@dataclass
class AuditedStore:
    """A store holding a realistic day, signed by one checkpoint."""

    settings: Settings
    service: CommandService
    checkpoints: CheckpointLog
    table: EventTable

    def verify(self) -> ChainReport:
        return verify_store(self.service.app, self.checkpoints)

    def verify_ticket(self, ticket: UUID = TICKET) -> ChainReport:
        return verify_aggregate(self.service.app, ticket, self.checkpoints)


@pytest.fixture
def audited(store_settings: Settings, tmp_path: Path) -> Iterator[AuditedStore]:
    settings = store_settings.with_home(tmp_path / "home")
    service = build_command_service(settings)
    support_day(service.execute, tickets=TICKETS, seed=SEED)
    checkpoints = CheckpointLog(settings.home / "audit")
    assert write_checkpoint(service.app, checkpoints) is not None
    yield AuditedStore(settings, service, checkpoints, EventTable(settings))
    service.app.close()


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment of a shell pointed at this store (TICKETING_HOME holds the audit log)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TICKETING_") and k != "NATS_URL"
    }
    env["TICKETING_HOME"] = str(settings.home)
    env["TICKETING_EVENT_STORE"] = settings.event_store
    if settings.event_store == "postgres":
        assert settings.postgres_url is not None and settings.postgres_schema is not None
        env["TICKETING_POSTGRES_URL"] = settings.postgres_url
        env["TICKETING_POSTGRES_SCHEMA"] = settings.postgres_schema
    return env


def ticketing(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `ticketing` command, run as an auditor's shell would."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("ticketing")), *args],
        capture_output=True,
        text=True,
        env=cli_env(settings),
        timeout=60,
    )


def test_a_realistic_day_with_a_signed_checkpoint_verifies(audited: AuditedStore) -> None:
    # When
    report = audited.verify()
    # Then
    assert report.ok, report.breaks
    assert report.checkpoints_checked == 1
    assert report.aggregates == TICKETS + 5  # the tickets and the day's five accounts
    assert report.events == audited.checkpoints.read()[0].events


def first_event_of_type(service: CommandService, event_type: str) -> tuple[UUID, int]:
    """The first demo ticket holding an event of this type, and that event's version."""
    for number in range(TICKETS):
        ticket = ticket_id_for(f"demo-{SEED}-ticket-{number}")
        for event in service.app.events.get(ticket):
            if type(event).__name__ == event_type:
                return ticket, event.originator_version
    raise AssertionError(f"the demo day has no {event_type}")


@pytest.mark.parametrize(
    ("event_type", "field", "forged"),
    [("TicketOpened", "subject", "Nothing to see here"), ("TicketPrioritized", "priority", "x")],
)
def test_an_edited_field_is_a_hash_mismatch_at_that_event(
    audited: AuditedStore, event_type: str, field: str, forged: str
) -> None:
    # Given
    ticket, version = first_event_of_type(audited.service, event_type)
    state = audited.table.state(ticket, version)
    assert state[field] != forged
    # When
    audited.table.write_state(ticket, version, {**state, field: forged})
    # Then
    report = audited.verify()
    assert [(b.code, b.aggregate_id, b.version) for b in report.breaks] == [
        ("hash_mismatch", str(ticket), version)
    ]


def test_an_edited_comment_text_is_detected(audited: AuditedStore) -> None:
    """The chain covers a comment through its salted commitment (so the text can be erased),
    which only protects the text if verification checks the stored text against it."""
    # Given
    ticket, version = first_event_of_type(audited.service, "CommentAdded")
    state = audited.table.state(ticket, version)
    assert state["body"] and state["body_salt"]
    # When
    audited.table.write_state(ticket, version, {**state, "body": "We will not fix this."})
    # Then
    report = audited.verify()
    assert not report.ok, "a rewritten comment text passed verification"
    assert [(b.aggregate_id, b.version) for b in report.breaks] == [(str(ticket), version)]


def test_a_lowered_class_version_cannot_silently_change_a_rating(audited: AuditedStore) -> None:
    """`class_version` is left out of the hash; lowering it must not let the v1 -> v2 upcaster
    rewrite what a stored v2 rating says without verification noticing."""
    # Given
    ticket, _ = first_event_of_type(audited.service, "TicketResolved")
    requester = history(audited.service.app, ticket)[0]["actor"]  # (customers rate their own)
    reply = audited.service.execute(
        m.RateTicket(ticket_id=ticket, score=2, survey="nps", actor=requester)
    )
    assert reply.ok and reply.version is not None, reply.as_dict()
    state = audited.table.state(ticket, reply.version)
    assert (state["class_version"], state["survey"]) == (2, "nps")
    # When
    audited.table.write_state(ticket, reply.version, {**state, "class_version": 1})
    # Then
    report = audited.verify()
    survey = audited.service.load_ticket(ticket).rating_survey
    assert not report.ok or survey == "nps", f"the rating now reads {survey!r} and verifies"


def test_a_deleted_middle_event_is_a_version_gap_at_the_next_version(
    audited: AuditedStore,
) -> None:
    # When
    audited.table.delete(TICKET, 3)
    # Then
    report = audited.verify()
    first = report.breaks[0]
    assert (first.code, first.aggregate_id, first.version) == ("version_gap", str(TICKET), 4)
    assert {b.code for b in report.breaks} == {"version_gap", "checkpoint_mismatch"}


def swap_states(table: EventTable, aggregate_id: UUID, a: int, b: int) -> None:
    first, second = table.state(aggregate_id, a), table.state(aggregate_id, b)
    table.write_state(aggregate_id, a, second)
    table.write_state(aggregate_id, b, first)


def swap_versions(table: EventTable, aggregate_id: UUID, a: int, b: int) -> None:
    table.set_version(aggregate_id, a, -1)
    table.set_version(aggregate_id, b, a)
    table.set_version(aggregate_id, -1, b)


@pytest.mark.parametrize("swap", [swap_states, swap_versions])
def test_two_reordered_events_of_a_ticket_are_detected(audited: AuditedStore, swap: Any) -> None:
    # When
    swap(audited.table, TICKET, 4, 5)
    # Then
    report = audited.verify()
    assert not report.ok
    first = report.breaks[0]
    assert first.code in ("broken_link", "hash_mismatch", "version_gap"), first
    assert first.aggregate_id == str(TICKET), first
    assert first.version in (4, 5), first


def test_deleting_the_newest_events_is_caught_by_the_checkpoint(audited: AuditedStore) -> None:
    # When
    deleted = audited.table.delete_newest(6)
    # Then
    assert any(t.startswith(DOMAIN_TOPIC_PREFIX) for t in deleted), deleted
    assert verify_store(audited.service.app).ok, "the chains alone cannot see a truncation"
    report = audited.verify()
    assert [b.code for b in report.breaks] == ["events_missing"]
    assert report.breaks[0].notification_id == audited.checkpoints.read()[0].notification_id


def test_a_checkpoint_edited_without_the_key_is_forged(audited: AuditedStore) -> None:
    # Given
    line = json.loads(audited.checkpoints.path.read_text())
    # When
    line["digest"] = "f" * 64
    audited.checkpoints.path.write_text(json.dumps(line) + "\n")
    # Then
    report = audited.verify()
    assert [b.code for b in report.breaks] == ["checkpoint_forged"]


def test_verify_chain_command_passes_an_intact_store(audited: AuditedStore) -> None:
    # When
    whole = ticketing(audited.settings, "verify", "chain")
    one = ticketing(audited.settings, "verify", "chain", str(TICKET))
    # Then
    assert (whole.returncode, whole.stderr) == (0, ""), whole.stderr
    assert "1 signed checkpoints checked" in whole.stdout
    assert "chain intact" in whole.stdout
    assert (one.returncode, one.stderr) == (0, ""), one.stderr


def test_verify_chain_command_names_the_first_broken_link(audited: AuditedStore) -> None:
    # Given
    state = audited.table.state(TICKET, 2)
    audited.table.write_state(TICKET, 2, {**state, "category": "feedback-forged"})
    # When
    whole = ticketing(audited.settings, "verify", "chain")
    one = ticketing(audited.settings, "verify", "chain", str(TICKET))
    other = ticketing(audited.settings, "verify", "chain", str(OTHER_TICKET))
    # Then
    for result in (whole, one):
        assert result.returncode != 0
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: hash_mismatch: {TICKET} v2 "), lines[0]
    assert other.returncode == 0, other.stderr


def test_verify_chain_command_reports_a_truncated_store(audited: AuditedStore) -> None:
    # Given
    audited.table.delete_newest(6)
    # When
    result = ticketing(audited.settings, "verify", "chain", "--json")
    # Then
    assert result.returncode != 0
    assert [b["code"] for b in json.loads(result.stdout)["breaks"]] == ["events_missing"]
    assert result.stderr.splitlines()[0].startswith("error: events_missing: ")
    assert len(result.stderr.splitlines()) == 1


# --- erased comment text: legitimate only after a CommentRedacted ---------------------------


def erase_comment_text(audited: AuditedStore) -> tuple[UUID, int]:
    """Blank a stored comment's `body` and `body_salt` in place, as `redact_comment` does
    after recording CommentRedacted, but with no CommentRedacted."""
    ticket, version = first_event_of_type(audited.service, "CommentAdded")
    state = audited.table.state(ticket, version)
    assert state["body"] and state["body_salt"]
    audited.table.write_state(ticket, version, {**state, "body": "", "body_salt": ""})
    return ticket, version


def test_a_comment_erased_without_a_redaction_is_detected(audited: AuditedStore) -> None:
    # When
    ticket, version = erase_comment_text(audited)
    # Then
    for report in (audited.verify(), audited.verify_ticket(ticket)):
        assert [(b.code, b.aggregate_id, b.version) for b in report.breaks] == [
            ("erased_without_redaction", str(ticket), version)
        ]


def test_history_does_not_call_an_unredacted_erasure_redacted(audited: AuditedStore) -> None:
    # Given
    ticket, version = erase_comment_text(audited)
    # When
    entry = history(audited.service.app, ticket)[version - 1]
    shown = ticketing(audited.settings, "history", str(ticket))
    # Then
    assert (entry["type"], entry["body"]) == ("CommentAdded", None)
    assert not entry.get("redacted")
    assert entry["erased_without_redaction"] is True
    assert shown.returncode == 0, shown.stderr
    assert "[text erased without a CommentRedacted" in shown.stdout


def test_verify_chain_command_reports_an_erasure_without_redaction(
    audited: AuditedStore,
) -> None:
    # Given
    ticket, version = erase_comment_text(audited)
    # When
    one = ticketing(audited.settings, "verify", "chain", str(ticket))
    whole = ticketing(audited.settings, "verify", "chain", "--json")
    # Then
    assert one.returncode != 0
    assert one.stderr.splitlines() == [
        next(line for line in one.stderr.splitlines() if line.startswith("error: "))
    ]
    assert one.stderr.startswith(f"error: erased_without_redaction: {ticket} v{version} ")
    assert f"  erased_without_redaction: {ticket} v{version} " in one.stdout
    assert whole.returncode != 0
    assert [b["code"] for b in json.loads(whole.stdout)["breaks"]] == ["erased_without_redaction"]


def test_a_redaction_recorded_in_the_chain_makes_the_erasure_legitimate(
    audited: AuditedStore,
) -> None:
    # Given
    ticket, version = first_event_of_type(audited.service, "CommentAdded")
    comment_id = audited.table.state(ticket, version)["comment_id"]
    # When
    reply = audited.service.execute(
        m.RedactComment(
            ticket_id=ticket,
            comment_id=comment_id,
            reason="privacy request #12",
            actor={"kind": "agent", "id": "dpo"},
        )
    )
    # Then
    assert reply.ok, reply.as_dict()
    assert audited.table.state(ticket, version)["body"] == ""
    assert audited.verify().ok, audited.verify().breaks
    assert audited.verify_ticket(ticket).ok, audited.verify_ticket(ticket).breaks


# --- one ticket against its signed head ------------------------------------------------------


def test_verify_chain_of_a_ticket_catches_its_deleted_last_event(audited: AuditedStore) -> None:
    # Given
    last = audited.table.last_version(TICKET)
    # When
    audited.table.delete(TICKET, last)
    # Then
    assert verify_aggregate(audited.service.app, TICKET).ok, "the chain alone cannot see it"
    report = audited.verify_ticket()
    assert [(b.code, b.aggregate_id, b.version) for b in report.breaks] == [
        ("events_missing", str(TICKET), last)
    ]
    result = ticketing(audited.settings, "verify", "chain", str(TICKET))
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"error: events_missing: {TICKET}: the checkpoint at notification "
        f"{audited.checkpoints.read()[0].notification_id} "
        f"({audited.checkpoints.read()[0].created_at}) signed its chain up to v{last}, "
        f"the store has only v{last - 1}: its newest events were deleted"
    ]
    assert audited.verify_ticket(OTHER_TICKET).ok


def rewrite_chain(audited: AuditedStore, ticket: UUID, subject: str) -> None:
    """Change the ticket's subject and recompute every hash and link after it, as someone who
    knows the (public) canonical form but not the checkpoint key would."""
    app = audited.service.app
    previous = None
    for version in range(1, audited.table.last_version(ticket) + 1):
        raw = audited.table.execute(
            "SELECT state FROM {table} WHERE originator_id = ? AND originator_version = ?",
            (audited.table.key(ticket), version),
        )[0][0]
        state = decode_state(app, bytes(raw))
        if version == 1:
            state["subject"] = subject
        if previous is not None:
            state["previous_hash"] = previous
        event_type = audited.table.topic(ticket, version).rsplit(":", 1)[-1]
        state["event_hash"] = previous = event_hash(event_type, str(ticket), version, state)
        audited.table.execute(
            "UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (encode_state(app, state), audited.table.key(ticket), version),
        )


def test_verify_chain_of_a_ticket_catches_a_chain_rewritten_with_recomputed_hashes(
    audited: AuditedStore,
) -> None:
    # When
    rewrite_chain(audited, TICKET, "Nothing to see here")
    # Then
    assert audited.service.load_ticket(TICKET).subject == "Nothing to see here"
    assert verify_aggregate(audited.service.app, TICKET).ok, "the chain alone cannot see it"
    last = audited.table.last_version(TICKET)
    report = audited.verify_ticket()
    assert [(b.code, b.aggregate_id, b.version) for b in report.breaks] == [
        ("checkpoint_mismatch", str(TICKET), last)
    ]
    result = ticketing(audited.settings, "verify", "chain", str(TICKET), "--json")
    assert result.returncode != 0
    assert [b["code"] for b in json.loads(result.stdout)["breaks"]] == ["checkpoint_mismatch"]
    assert result.stderr.startswith(f"error: checkpoint_mismatch: {TICKET} v{last} ")


def test_a_ticket_whose_events_were_all_deleted_is_missing_not_unknown(
    audited: AuditedStore,
) -> None:
    # Given
    last = audited.table.last_version(TICKET)
    # When
    audited.table.execute(
        "DELETE FROM {table} WHERE originator_id = ?", (audited.table.key(TICKET),)
    )
    # Then
    report = audited.verify_ticket()
    assert [(b.code, b.version) for b in report.breaks] == [("events_missing", last)]
    result = ticketing(audited.settings, "verify", "chain", str(TICKET))
    assert result.returncode != 0
    assert result.stderr.startswith("error: events_missing: ")


def open_tickets(service: CommandService) -> list[UUID]:
    """The demo tickets that still take comments."""
    tickets = [ticket_id_for(f"demo-{SEED}-ticket-{number}") for number in range(TICKETS)]
    return [t for t in tickets if service.load_ticket(t).status != "closed"]


def comment_on(audited: AuditedStore, ticket: UUID) -> int:
    reply = audited.service.execute(
        m.AddComment(ticket_id=ticket, body="Any news?", actor={"kind": "agent", "id": "ana"})
    )
    assert reply.ok and reply.version is not None, reply.as_dict()
    return reply.version


def test_a_ticket_changed_after_the_checkpoint_verifies_up_to_its_signed_head(
    audited: AuditedStore,
) -> None:
    # Given
    ticket = open_tickets(audited.service)[0]
    signed = audited.table.last_version(ticket)
    version = comment_on(audited, ticket)
    # When
    before = audited.verify_ticket(ticket)
    result = ticketing(audited.settings, "verify", "chain", str(ticket))
    second = write_checkpoint(audited.service.app, audited.checkpoints)
    after = audited.verify_ticket(ticket)
    # Then
    assert before.ok and before.signed_head is not None
    assert (before.signed_head.version, before.events) == (signed, version)
    assert result.returncode == 0, result.stderr
    assert f"signed up to v{signed} " in result.stdout
    assert second is not None and second.heads is not None
    assert set(second.heads) == {str(ticket)}, "a checkpoint lists only the chains that changed"
    assert after.ok and after.signed_head is not None
    assert after.signed_head.version == version
    assert audited.verify().ok


def test_a_ticket_opened_after_the_last_checkpoint_is_not_yet_signed(
    audited: AuditedStore,
) -> None:
    # Given
    reply = audited.service.execute(
        m.OpenTicket(
            account_id="acme",
            requester="bob@acme.example",
            subject="New",
            actor={"kind": "customer", "id": "bob@acme.example"},
        )
    )
    assert reply.ok and reply.ticket_id is not None, reply.as_dict()
    # When
    report = verify_aggregate(audited.service.app, UUID(reply.ticket_id), audited.checkpoints)
    result = ticketing(audited.settings, "verify", "chain", reply.ticket_id)
    # Then
    assert report.ok and report.signed_head is None and report.checkpoints_checked == 0
    assert result.returncode == 0, result.stderr
    assert "not yet in a signed checkpoint" in result.stdout


# --- the checkpoint log itself ----------------------------------------------------------------


def test_a_checkpoint_removed_from_the_log_is_reported(audited: AuditedStore) -> None:
    # Given: two more checkpoints, one after a change to a ticket, one after a change to another
    ticket, other = open_tickets(audited.service)[:2]
    for changed in (ticket, other):
        comment_on(audited, changed)
        assert write_checkpoint(audited.service.app, audited.checkpoints) is not None
    lines = audited.checkpoints.path.read_text().splitlines()
    assert len(lines) == 3
    # When: the checkpoint holding the ticket's newest head goes, and with it its newest event
    audited.checkpoints.path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    audited.table.delete(ticket, audited.table.last_version(ticket))
    # Then
    assert "checkpoint_missing" in [b.code for b in audited.verify().breaks]
    report = audited.verify_ticket(ticket)
    assert [b.code for b in report.breaks] == ["checkpoint_missing"]
    result = ticketing(audited.settings, "verify", "chain", str(ticket))
    assert result.returncode != 0
    assert result.stderr.startswith("error: checkpoint_missing: ")


def test_checkpoints_signed_before_heads_existed_still_verify(audited: AuditedStore) -> None:
    """A log written by the previous version (no `previous`, no `heads`): its lines stay
    authentic, and the next checkpoint lists every chain's head."""
    # Given
    old = json.loads(audited.checkpoints.path.read_text())
    old = {k: old[k] for k in ("notification_id", "events", "digest", "created_at")}
    audited.checkpoints.path.write_text(
        audited.checkpoints.sign(Checkpoint(**old)).as_json() + "\n"
    )
    assert audited.verify().ok
    assert audited.verify_ticket().signed_head is None
    # When
    upgraded = write_checkpoint(audited.service.app, audited.checkpoints)
    # Then
    assert upgraded is not None and upgraded.heads is not None
    assert len(upgraded.heads) == TICKETS + 5
    assert upgraded.events == old["events"]
    report = audited.verify()
    assert report.ok and report.checkpoints_checked == 2, report.breaks
    assert audited.verify_ticket().ok and audited.verify_ticket().signed_head is not None


def test_a_ticket_with_a_snapshot_is_verified_from_its_events(audited: AuditedStore) -> None:
    """Snapshots (their own table) are a cache for loading, never evidence: verification
    reads the event records only, so a snapshot neither breaks nor hides anything."""
    # Given: a ticket long enough to be snapshotted, signed, then its newest event deleted
    ticket = open_tickets(audited.service)[0]
    for _ in range(25):
        comment_on(audited, ticket)
    audited.service.load_ticket(ticket)
    schema = audited.settings.postgres_schema
    table = "stored_snapshots" if audited.table.on_sqlite else f'"{schema}".ticketing_snapshots'
    count = f"SELECT count(*) FROM {table} WHERE originator_id = ?"
    assert audited.table.execute(count, (audited.table.key(ticket),))[0][0] >= 1
    assert write_checkpoint(audited.service.app, audited.checkpoints) is not None
    assert audited.verify().ok and audited.verify_ticket(ticket).ok
    last = audited.table.last_version(ticket)
    # When
    audited.table.delete(ticket, last)
    # Then
    report = audited.verify_ticket(ticket)
    assert [(b.code, b.version) for b in report.breaks] == [("events_missing", last)]
