"""Text search over the queue projection: subjects, descriptions and comments are indexed in the
batch that writes the rows, internal notes are marked, a redaction takes the words out of the
index and the file, a rebuild gives the same index, and no input is FTS5 syntax."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from projections.queue.queries import QueueQuery, SearchFilters, list_queue, open_reader, search
from projections.queue.search_index import match_expression
from projections.queue.store import QueueOutdatedError, QueueStore
from replay.rebuild import rebuild_queue
from replay.stream import stream_batches
from ticketing.cli.demo_day import support_day
from ticketing.domain.errors import ValidationError
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = pytest.mark.integration

AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}
SECRET = "My passphrase is zanzibarquokka, please reset it"
SEARCH_DUMP = (
    "SELECT ticket_id, field, comment_id, visibility, text FROM queue_search ORDER BY 1, 2, 3"
)


@dataclass
class Desk:
    service: CommandService
    vpn: UUID
    printer: UUID
    live: QueueStore
    fed: int = 0

    def run(self, command: m.Command) -> Reply:
        reply = self.service.execute(command)
        assert reply.ok, reply.as_dict()
        return reply

    def project(self) -> None:
        """Feed the live store what the store published since the last call, batch by batch."""
        for events in stream_batches(self.service.app, batch=7):
            fresh = [e for e in events if e.sequence > self.fed]
            if fresh:
                self.live.apply(fresh)
                self.fed = fresh[-1].sequence

    def find(self, text: str, **filters: Any) -> list[dict[str, Any]]:
        return search(self.live.db, text, 20, SearchFilters(**filters))


def opened(desk_service: CommandService, **fields: Any) -> UUID:
    reply = desk_service.execute(m.OpenTicket(account_id="acme", actor=CUSTOMER, **fields))
    assert reply.ok and reply.ticket_id, reply.as_dict()
    return UUID(reply.ticket_id)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    service = build_command_service(Settings(home=tmp_path / "home"))
    support_day(service.execute, tickets=12, seed=4)
    vpn = opened(
        service,
        requester="Bob@Acme.example",
        subject="Wireguard tunnel flaps every hour",
        description="Since Monday the tunnel to the Köln office resets.",
    )
    printer = opened(
        service,
        requester="carol@acme.example",
        subject="Printer jam on floor 3",
        description="Paper gets stuck in tray 2.",
    )
    live = QueueStore(tmp_path / "live.sqlite")
    desk = Desk(service, vpn, printer, live)
    desk.run(m.AddComment(ticket_id=vpn, body="Could you send the client log?", actor=AGENT))
    desk.run(
        m.AddComment(
            ticket_id=vpn, body="MTU mismatch on the gateway", visibility="internal", actor=AGENT
        )
    )
    desk.run(m.AddComment(ticket_id=printer, body=SECRET, actor=CUSTOMER))
    desk.project()
    yield desk
    live.close()
    service.app.close()


def rebuilt_rows(desk: Desk, tmp_path: Path) -> list[tuple[Any, ...]]:
    target = tmp_path / "rebuilt.sqlite"
    rebuild_queue(desk.service.app, target)
    db = sqlite3.connect(target)
    try:
        return db.execute(SEARCH_DUMP).fetchall()
    finally:
        db.close()


def test_subject_description_and_comments_are_found_with_where_they_matched(desk: Desk) -> None:
    (hit,) = desk.find("wireguard")
    assert (hit["ticket_id"], hit["matched_in"]) == (str(desk.vpn), ["subject"])
    assert hit["snippet"] == "[Wireguard] tunnel flaps every hour"
    assert hit["status"] == "open" and hit["requester"] == "Bob@Acme.example"
    (hit,) = desk.find("koln office")  # diacritics folded, every word must occur
    assert (hit["matched_in"], hit["snippet_in"]) == (["description"], "description")
    (hit,) = desk.find("client log")
    assert hit["matched_in"] == ["comment"]
    assert "[client] [log]" in hit["snippet"]


def test_an_internal_note_match_is_marked_and_can_be_left_out(desk: Desk) -> None:
    (hit,) = desk.find("gateway mtu")
    assert hit["matched_in"] == ["internal note"]
    assert hit["internal_only"] is True
    assert desk.find("gateway mtu", include_internal=False) == []
    (hit,) = desk.find("wireguard")
    assert hit["internal_only"] is False


def test_a_subject_match_ranks_above_a_comment_match(desk: Desk) -> None:
    desk.run(m.AddComment(ticket_id=desk.printer, body="Is the printer on wireguard?", actor=AGENT))
    desk.project()
    assert [h["ticket_id"] for h in desk.find("wireguard")] == [str(desk.vpn), str(desk.printer)]


def test_phrases_prefixes_and_filters(desk: Desk) -> None:
    assert [h["ticket_id"] for h in desk.find('"flaps every"')] == [str(desk.vpn)]
    assert desk.find('"every flaps"') == []
    assert [h["ticket_id"] for h in desk.find("print*")] == [str(desk.printer)]
    assert desk.find("wireguard", requester="bob@ACME.example")[0]["ticket_id"] == str(desk.vpn)
    assert desk.find("wireguard", requester="carol@acme.example") == []
    assert desk.find("wireguard", account="globex") == []
    assert desk.find("wireguard", status=["solved", "closed"]) == []
    assert len(desk.find("wireguard", status=["open"], account="acme")) == 1


def test_the_queue_lists_a_requesters_tickets_in_any_case(desk: Desk) -> None:
    tickets = list_queue(desk.live.db, QueueQuery(requester="BOB@acme.EXAMPLE", account="acme"))
    assert [t["ticket_id"] for t in tickets] == [str(desk.vpn)]


def test_a_redaction_takes_the_words_out_of_the_index_and_the_file(
    desk: Desk, tmp_path: Path
) -> None:
    # Given a comment whose words are found
    assert [h["ticket_id"] for h in desk.find("zanzibarquokka")] == [str(desk.printer)]
    # When it is redacted and the queue takes the event
    desk.run(
        m.RedactComment(ticket_id=desk.printer, comment_id="c1", reason="privacy", actor=AGENT)
    )
    desk.project()
    # Then nothing finds it, no index term holds it, and the file's bytes do not either
    assert desk.find("zanzibarquokka") == []
    assert desk.find("passphrase") == []
    desk.live.db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, queue_search, row)")
    terms = {term for (term,) in desk.live.db.execute("SELECT term FROM temp.vocab")}
    assert "zanzibarquokka" not in terms and "vpn" in terms
    wal = Path(f"{desk.live.path}-wal")
    for written in (desk.live.path, wal):
        assert b"zanzibarquokka" not in (written.read_bytes() if written.exists() else b"")
    # Then the ticket is still found by its other texts, and a rebuild gives the same index
    assert desk.find("printer jam")
    assert desk.live.db.execute(SEARCH_DUMP).fetchall() == rebuilt_rows(desk, tmp_path)


def test_a_rebuild_gives_the_index_the_live_queue_has(desk: Desk, tmp_path: Path) -> None:
    live = desk.live.db.execute(SEARCH_DUMP).fetchall()
    assert len(live) > 30
    assert live == rebuilt_rows(desk, tmp_path)


HOSTILE = ['"', "AND (", "NEAR(a b", "*", "a OR", "text:x", "^vpn", "'", "-vpn", "vpn)", '""']


@pytest.mark.parametrize("text", HOSTILE)
def test_fts_syntax_in_the_text_is_searched_as_words_or_refused_naming_the_field(
    desk: Desk, text: str
) -> None:
    try:
        hits = desk.find(text)
    except ValidationError as error:
        assert error.details == {"field": "text"}
        assert error.message.startswith("text: nothing to search for")
    else:
        assert isinstance(hits, list)


def test_fts_operators_are_only_words(desk: Desk) -> None:
    assert [h["ticket_id"] for h in desk.find("wireguard)")] == [str(desk.vpn)]
    assert desk.find("wireguard OR printer") == []  # OR is a word that must occur too
    assert desk.find("-wireguard")[0]["ticket_id"] == str(desk.vpn)


def test_bad_limits_and_long_texts_are_refused_naming_the_field(desk: Desk) -> None:
    with pytest.raises(ValidationError, match=r"^limit: ") as error:
        search(desk.live.db, "vpn", 0)
    assert error.value.details == {"field": "limit"}
    with pytest.raises(ValidationError, match=r"^text: at most"):
        search(desk.live.db, "vpn " * 200)


@given(st.text(max_size=60))
def test_any_text_is_a_valid_fts5_query_or_nothing(text: str) -> None:
    expression = match_expression(text)
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
        db.execute("INSERT INTO t VALUES ('some text')")
        if expression:
            db.execute("SELECT * FROM t WHERE t MATCH ?", (expression,)).fetchall()
    finally:
        db.close()


def test_a_queue_from_before_the_index_is_refused_with_the_fix(tmp_path: Path) -> None:
    # Given a queue file as the release before wrote it (no index, no schema version)
    path = tmp_path / "queue.sqlite"
    QueueStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE queue_search")
    db.execute("PRAGMA user_version = 0")
    db.close()
    # Then the projector and the search refuse it, naming the file and the fix; the queue
    # itself can still be listed
    with pytest.raises(QueueOutdatedError, match="run: ticketing rebuild queue") as error:
        QueueStore(path)
    assert error.value.code == "projection_outdated"
    assert str(path) in error.value.message
    reader = open_reader(path)
    try:
        assert list_queue(reader, QueueQuery()) == []
        with pytest.raises(QueueOutdatedError, match=r"older release \(queue schema 0"):
            search(reader, "vpn")
    finally:
        reader.close()
