"""The stream's aggregate queries (counting what a rebuild will read, numbering one ticket's
records for an export) answer exactly what a scan of the library's notifications answers, on
every durable store."""

from __future__ import annotations

from uuid import UUID

import pytest

from commands import models as m
from projections.payloads import PUBLISHED_TOPICS
from replay.stream import aggregate_notification_ids, published_after
from ticketing.cli.demo_day import support_day
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings
from ticketing.store.application import TicketingApplication

pytestmark = pytest.mark.integration


def scanned(app: TicketingApplication) -> list[tuple[int, UUID, int]]:
    """(notification id, aggregate id, version) of every published record, oldest first."""
    notifications = app.recorder.select_notifications(
        start=1, limit=10**9, topics=PUBLISHED_TOPICS, inclusive_of_start=True
    )
    return [(n.id, n.originator_id, n.originator_version) for n in notifications]


def test_counts_and_numbers_match_a_scan_of_the_store(store_settings: Settings) -> None:
    # Given a day in SQLite or PostgreSQL (command records stored beside the events)
    service = build_command_service(store_settings)
    try:
        support_day(service.execute, tickets=8, seed=5)
        app = service.app
        records = scanned(app)
        middle = records[len(records) // 2][0]
        # Then the published events after any position, up to any notification, are counted
        assert published_after(app, 0) == (len(records), records[-1][0])
        assert published_after(app, middle) == (
            sum(1 for n, _, _ in records if n > middle),
            records[-1][0],
        )
        assert published_after(app, 0, middle) == (
            sum(1 for n, _, _ in records if n <= middle),
            middle,
        )
        assert published_after(app, records[-1][0]) == (0, records[-1][0])
        # And one ticket's records, interleaved with another's, carry the scan's numbers
        agent = m.ActorModel(kind="agent", id="ana")
        first, second = (
            UUID(
                service.execute(
                    m.OpenTicket(account_id="acme", requester="bob@acme.example", subject=s)
                ).ticket_id
            )
            for s in ("first", "second")
        )
        for ticket in (first, second, first, first):
            assert service.execute(m.AddComment(ticket_id=ticket, body="hi", actor=agent)).ok
        expected = {v: n for n, aggregate, v in scanned(app) if aggregate == first}
        assert sorted(expected) == list(range(1, len(expected) + 1)) and len(expected) >= 4
        assert aggregate_notification_ids(app, first) == expected
        assert aggregate_notification_ids(app, UUID(int=7)) == {}
    finally:
        service.app.close()
