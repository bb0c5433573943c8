"""A store written by an older release (TicketRated at class version 1, before `survey`) loads,
replays, rebuilds and verifies with today's code, and takes new version-2 events."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pytest

from commands import models as m
from commands.command_log import ticket_id_for
from commands.service import CommandService
from replay.chain import verify_store
from replay.history import ticket_as_of
from replay.rebuild import rebuild_analytics, rebuild_queue
from tests.builders import replayed
from ticketing.domain.events import TicketOpened, TicketRated
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "v1_store" / "events.sqlite"
TICKETS = (
    UUID("1d75ae99-7018-53ab-87bc-0811f00aa808"),
    UUID("eadee149-f37f-59fa-8dd6-b1e5588501ce"),
    UUID("babc4de4-3f8c-5808-8d73-dcc4cb830df1"),
)
CLOSED_TICKET = TICKETS[2]
RATED_TOPIC = "ticketing.domain.events:TicketRated"
V1_RATINGS = 4  # three ratings and one re-rating (SOURCE.md)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A copy of the v1 store: the fixture itself must never change."""
    if not FIXTURE.exists():
        pytest.fail(
            f"the v1 fixture store {FIXTURE} is missing; it cannot be regenerated with today's "
            "code (see tests/fixtures/v1_store/SOURCE.md): restore it from version control"
        )
    home = tmp_path / "v1-home"
    home.mkdir()
    shutil.copyfile(FIXTURE, home / "events.sqlite")
    return home


@pytest.fixture
def service(home: Path) -> Iterator[CommandService]:
    service = build_command_service(Settings(home=home))
    yield service
    service.app.close()


def stored_ratings(path: Path) -> list[dict[str, Any]]:
    """The TicketRated states exactly as stored, read with plain SQL."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT state FROM stored_events WHERE topic = ? ORDER BY rowid", (RATED_TOPIC,)
        ).fetchall()
    return [json.loads(state) for (state,) in rows]


def test_the_fixture_ratings_are_stored_at_class_version_1() -> None:
    # Given / When
    if not FIXTURE.exists():
        pytest.fail(f"the v1 fixture store {FIXTURE} is missing")
    ratings = stored_ratings(FIXTURE)
    # Then: so every test below goes through the v1 -> v2 upcaster
    assert len(ratings) == V1_RATINGS
    for state in ratings:
        assert "class_version" not in state, state
        assert "survey" not in state, state
    assert TicketRated.class_version == 2


def test_every_ticket_of_a_v1_store_loads_with_csat_ratings(service: CommandService) -> None:
    # When
    tickets = [service.load_ticket(t) for t in TICKETS]
    # Then
    assert [t.status for t in tickets] == ["open", "solved", "closed"]
    assert all(t.rating_survey == "csat" for t in tickets)
    ratings = [e for t in TICKETS for e in service.app.events.get(t) if isinstance(e, TicketRated)]
    assert len(ratings) == V1_RATINGS
    assert {e.survey for e in ratings} == {"csat"}
    comments = {c["comment_id"]: c for c in tickets[0].comments}
    assert (comments["c2"]["body"], comments["c2"]["redacted"]) == (None, True)


def test_a_v1_store_replays_at_every_version_and_time(service: CommandService) -> None:
    for ticket in TICKETS:
        events: list[Any] = list(service.app.events.get(ticket))
        for version in range(1, len(events) + 1):
            # When
            by_version = ticket_as_of(service.app, ticket, version=version)
            by_time = ticket_as_of(service.app, ticket, at=events[version - 1].occurred_at)
            # Then
            assert by_version.as_dict() == replayed(events[:version]).as_dict()
            same_moment = [e for e in events if e.occurred_at <= events[version - 1].occurred_at]
            assert by_time.as_dict() == replayed(same_moment).as_dict()
        assert ticket_as_of(service.app, ticket).as_dict() == (
            service.load_ticket(ticket).as_dict()
        )


def test_a_v1_store_rebuilds_both_projections(service: CommandService, tmp_path: Path) -> None:
    # When
    queued = rebuild_queue(service.app, tmp_path / "queue.sqlite")
    analysed = rebuild_analytics(service.app, tmp_path / "analytics.duckdb")
    # Then
    assert queued == analysed == 24  # the published events among the 44 notifications
    with closing(sqlite3.connect(tmp_path / "queue.sqlite")) as db:
        queue = dict(db.execute("SELECT ticket_id, rating_score FROM queue_tickets").fetchall())
    assert queue == {str(TICKETS[0]): 5, str(TICKETS[1]): 2, str(TICKETS[2]): 3}
    with duckdb.connect(str(tmp_path / "analytics.duckdb"), read_only=True) as db:
        facts = db.execute(
            "SELECT CAST(ticket_id AS VARCHAR), status, rating_score FROM ticket_facts"
        ).fetchall()
        surveys = db.execute(
            "SELECT DISTINCT json_extract_string(payload, '$.survey') FROM event_facts "
            "WHERE type = 'TicketRated'"
        ).fetchall()
    assert sorted(facts) == sorted(
        [
            (str(TICKETS[0]), "open", 5),
            (str(TICKETS[1]), "solved", 2),
            (str(TICKETS[2]), "closed", 3),
        ]
    )
    assert surveys == [("csat",)]


def test_the_chain_written_by_v1_code_verifies_today(service: CommandService) -> None:
    # When
    report = verify_store(service.app)
    # Then
    assert report.ok, report.breaks
    assert (report.events, report.aggregates) == (24, 4)


def test_a_v2_rating_appended_to_a_v1_store_verifies(service: CommandService, home: Path) -> None:
    # Given
    before = stored_ratings(home / "events.sqlite")
    # When
    reply = service.execute(
        m.RateTicket(
            ticket_id=CLOSED_TICKET,
            score=1,
            survey="nps",
            actor={"kind": "customer", "id": "bob@acme.example"},
        )
    )
    # Then
    assert reply.ok, reply.as_dict()
    after = stored_ratings(home / "events.sqlite")
    assert after[:V1_RATINGS] == before
    assert (after[-1]["class_version"], after[-1]["survey"], after[-1]["score"]) == (2, "nps", 1)
    ticket = service.load_ticket(CLOSED_TICKET)
    assert (ticket.rating, ticket.rating_survey) == ({"score": 1, "comment": None}, "nps")
    report = verify_store(service.app)
    assert report.ok, report.breaks
    assert report.events == 25


def test_v1_openings_load_without_an_external_id_and_v2_ones_verify_beside_them(
    service: CommandService, tmp_path: Path
) -> None:
    # Given: every opening in the fixture was stored before `external_id` (class version 1)
    assert all(service.load_ticket(t).external_id is None for t in TICKETS)
    opened = [e for e in service.app.events.get(TICKETS[0]) if isinstance(e, TicketOpened)]
    assert opened[0].external_id is None
    # When a ticket with an external id joins them
    account = service.load_ticket(TICKETS[0]).account_id
    reply = service.execute(
        m.OpenTicket(
            command_id="import:crm:42",
            account_id=account,
            requester="someone@example.com",
            subject="From the old tool",
            external_id="crm:42",
        )
    )
    # Then both kinds verify, replay and rebuild
    assert reply.ok, reply.as_dict()
    assert service.load_ticket(ticket_id_for("import:crm:42")).external_id == "crm:42"
    report = verify_store(service.app)
    assert report.ok, report.breaks
    rebuild_queue(service.app, tmp_path / "queue.sqlite")
    with closing(sqlite3.connect(tmp_path / "queue.sqlite")) as db:
        queue = dict(db.execute("SELECT ticket_id, external_id FROM queue_tickets").fetchall())
    assert queue == {
        **{str(t): None for t in TICKETS},
        str(ticket_id_for("import:crm:42")): "crm:42",
    }
