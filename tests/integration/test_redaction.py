"""Redacting a comment on both durable stores: the stored text is erased in place, every reader
sees it as redacted, the hash chain still verifies, and the analytics projection keeps no trace
of the text while still equalling a rebuild from the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from projections.analytics.store import AnalyticsStore
from replay.chain import verify_store
from replay.checkpoint import CheckpointLog, write_checkpoint
from replay.history import history
from replay.stream import stream_batches
from replay.verify import verify_analytics
from ticketing.cli.demo_day import support_day
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings
from ticketing.store.erasure import decode_state

pytestmark = pytest.mark.integration

SECRET = "My card is 4111-1111-1111-1111, expiry 09/29"
AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}
PRIVACY_OFFICER = {"kind": "agent", "id": "dpo"}


@dataclass
class Story:
    """A store with a few demo tickets and one ticket where the customer over-shared."""

    service: CommandService
    ticket: UUID
    comment_id: str

    def run(self, command: m.Command) -> Reply:
        return self.service.execute(command)

    def redact(self, comment_id: str | None = None, **fields: Any) -> Reply:
        return self.run(
            m.RedactComment(
                ticket_id=self.ticket,
                comment_id=comment_id or self.comment_id,
                reason="privacy request #77",
                actor=PRIVACY_OFFICER,
                **fields,
            )
        )

    def stored_comment(self) -> dict[str, Any]:
        """The CommentAdded record exactly as stored (no upcasting, no folding)."""
        app = self.service.app
        for stored in app.recorder.select_events(self.ticket):
            state = decode_state(app, stored.state)
            if stored.topic.endswith(":CommentAdded") and state["comment_id"] == self.comment_id:
                return state
        raise AssertionError(f"no stored CommentAdded {self.comment_id}")


def ok(reply: Reply) -> Reply:
    assert reply.ok, reply.as_dict()
    return reply


@pytest.fixture
def story(store_settings: Settings) -> Iterator[Story]:
    service = build_command_service(store_settings)
    support_day(service.execute, tickets=4, seed=3)
    opened = ok(
        service.execute(
            m.OpenTicket(
                account_id="acme",
                requester="bob@acme.example",
                subject="Payment failed",
                actor=CUSTOMER,
            )
        )
    )
    assert opened.ticket_id is not None
    ticket = UUID(opened.ticket_id)
    for command in (
        m.AssignTicket(ticket_id=ticket, team="billing", agent="ana", actor=AGENT),
        m.AddComment(ticket_id=ticket, body="Which card did you use?", actor=AGENT),
        m.AddComment(ticket_id=ticket, body=SECRET, actor=CUSTOMER),
        m.AddComment(ticket_id=ticket, body="Thanks, retrying now.", actor=AGENT),
    ):
        ok(service.execute(command))
    yield Story(service, ticket, comment_id="c2")
    service.app.close()


def test_redaction_erases_the_stored_text_and_keeps_the_commitment(story: Story) -> None:
    # Given
    before = story.stored_comment()
    assert before["body"] == SECRET
    # When
    reply = ok(story.redact())
    # Then
    assert [e["type"] for e in reply.events] == ["CommentRedacted"]
    after = story.stored_comment()
    assert (after["body"], after["body_salt"]) == ("", "")
    assert after["body_commitment"] == before["body_commitment"]
    assert after["event_hash"] == before["event_hash"]


def test_no_stored_record_keeps_the_redacted_text(story: Story) -> None:
    # When
    ok(story.redact())
    # Then
    recorder = story.service.app.recorder
    leaks = [
        (n.originator_id, n.originator_version, n.topic)
        for n in recorder.select_notifications(start=1, limit=1_000_000)
        if SECRET.encode() in n.state
    ]
    assert leaks == []


def test_history_and_state_show_the_comment_as_redacted(story: Story) -> None:
    # When
    ok(story.redact())
    # Then
    entries = history(story.service.app, story.ticket)
    comment = next(
        e for e in entries if e.get("comment_id") == "c2" and e["type"] == "CommentAdded"
    )
    assert (comment["body"], comment["redacted"]) == (None, True)
    assert entries[-1]["type"] == "CommentRedacted"
    assert entries[-1]["reason"] == "privacy request #77"
    comments = {c["comment_id"]: c for c in story.service.load_ticket(story.ticket).comments}
    assert (comments["c2"]["body"], comments["c2"]["redacted"]) == (None, True)
    assert (comments["c1"]["body"], comments["c1"]["redacted"]) == (
        "Which card did you use?",
        False,
    )


def test_the_chain_and_its_checkpoints_still_verify_after_a_redaction(
    story: Story, tmp_path: Path
) -> None:
    # Given
    checkpoints = CheckpointLog(tmp_path / "audit")
    write_checkpoint(story.service.app, checkpoints)
    # When
    ok(story.redact())
    write_checkpoint(story.service.app, checkpoints)
    # Then
    report = verify_store(story.service.app, checkpoints)
    assert report.ok, report.breaks
    assert report.checkpoints_checked == 2


def test_repeating_a_redaction_appends_nothing(story: Story) -> None:
    # Given
    first = ok(story.redact())
    # When
    again = ok(story.redact())
    # Then
    assert again.events == []
    assert again.version == first.version
    assert story.service.load_ticket(story.ticket).version == first.version


def test_redacting_an_unknown_comment_is_not_found(story: Story) -> None:
    # Given
    version = story.service.load_ticket(story.ticket).version
    # When
    reply = story.redact("c99")
    # Then
    assert not reply.ok
    assert reply.error is not None and reply.error.code == "not_found"
    assert story.service.load_ticket(story.ticket).version == version
    assert story.stored_comment()["body"] == SECRET


def test_a_closed_ticket_comment_can_be_redacted(story: Story) -> None:
    # Given
    ok(story.run(m.ResolveTicket(ticket_id=story.ticket, actor=AGENT)))
    ok(story.run(m.CloseTicket(ticket_id=story.ticket, actor=AGENT)))
    assert story.service.load_ticket(story.ticket).status == "closed"
    # When
    reply = ok(story.redact())
    # Then
    assert [e["type"] for e in reply.events] == ["CommentRedacted"]
    assert story.stored_comment()["body"] == ""
    assert verify_store(story.service.app).ok


def test_analytics_fed_across_a_redaction_keeps_no_trace_and_equals_a_rebuild(
    story: Story, tmp_path: Path
) -> None:
    # Given: the projection already holds the comment's text
    app = story.service.app
    analytics = AnalyticsStore(tmp_path / "analytics.duckdb")
    try:
        for batch in stream_batches(app, batch=7):
            analytics.apply(batch)
        db = analytics.connection().cursor()
        assert db.execute(
            "SELECT count(*) FROM event_facts WHERE CAST(payload AS VARCHAR) LIKE ?",
            [f"%{SECRET}%"],
        ).fetchone() == (1,)
        # When
        ok(story.redact())
        for batch in stream_batches(app, batch=7):
            analytics.apply(batch)
        # Then
        # (the card number with its dashes: a bare '4111' can occur inside a random hash)
        assert db.execute(
            "SELECT count(*) FROM event_facts WHERE CAST(payload AS VARCHAR) LIKE ?",
            ["%4111-1111%"],
        ).fetchone() == (0,)
        assert db.execute(
            "SELECT json_extract_string(payload, '$.body') FROM event_facts "
            "WHERE aggregate_id = ? AND type = 'CommentAdded' "
            "AND json_extract_string(payload, '$.comment_id') = 'c2'",
            [str(story.ticket)],
        ).fetchall() == [("",)]
        snapshot = tmp_path / "analytics-snapshot.duckdb"
        analytics.publish_snapshot(snapshot)
    finally:
        analytics.close()
    check = verify_analytics(app, snapshot)
    assert check.ok, check.drift
    assert check.position == analytics.position()
