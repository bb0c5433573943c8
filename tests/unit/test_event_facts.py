"""Event fact rows, built column by column: times parsed by Arrow agree with the fold's own
conversion, messages are kept as received."""

from __future__ import annotations

from datetime import UTC, datetime

from projections.analytics.columns import compact_json, micros
from projections.analytics.event_facts import event_fact_batch, messages, timestamps
from projections.stream_event import StreamEvent


def test_wire_times_in_any_zone_become_the_same_instants_as_the_fold_reckons() -> None:
    values = [
        "2026-01-05T15:15:26.296718+00:00",
        "2026-01-05T15:15:26.296718+02:00",
        "2026-01-05T15:15:26-05:30",
        "2026-01-05T15:15:26.5Z",
    ]
    assert timestamps(values).cast("int64").to_pylist() == [micros(v) for v in values]


def test_times_arrow_will_not_take_still_convert_and_missing_ones_stay_empty() -> None:
    # Given a time without a zone (UTC on the wire), a datetime, and a missing time
    values = ["2026-01-05T15:15:26", datetime(2026, 1, 5, 16, tzinfo=UTC), None]
    # Then each is converted as the fold converts it
    assert timestamps(values).cast("int64").to_pylist() == [
        micros("2026-01-05T15:15:26+00:00"),
        micros("2026-01-05T16:00:00+00:00"),
        None,
    ]


def test_messages_are_kept_as_received_else_made_from_the_payload() -> None:
    received = StreamEvent(1, {"type": "TicketOpened"}, b'{"type":"TicketOpened","x":1}')
    made = StreamEvent(2, {"type": "TicketTagged", "tag": "vip"})
    assert messages([received, made]).to_pylist() == [
        '{"type":"TicketOpened","x":1}',
        compact_json(made.payload),
    ]


def test_a_row_holds_what_the_event_says_and_the_account_the_fold_found() -> None:
    # Given a status change by an agent
    payload = {
        "type": "StatusChanged",
        "aggregate_id": "74936ab3-9cbf-5d4b-98e4-b7daa7293000",
        "version": 4,
        "recorded_at": "2026-01-05T15:15:27+00:00",
        "occurred_at": "2026-01-05T15:15:26+00:00",
        "actor": {"kind": "agent", "id": "ana"},
        "command_id": "c-1",
        "from_status": "open",
        "to_status": "pending",
        "notification_id": 17,
    }
    # When its row is made with the account the fold found
    row = event_fact_batch([StreamEvent(9, payload)], ["acme"]).to_pylist()[0]
    # Then every column says it
    assert {k: v for k, v in row.items() if k not in ("occurred_at", "recorded_at")} == {
        "stream_sequence": 9,
        "notification_id": 17,
        "aggregate_id": payload["aggregate_id"],
        "aggregate_kind": "ticket",
        "version": 4,
        "type": "StatusChanged",
        "actor_kind": "agent",
        "actor_id": "ana",
        "command_id": "c-1",
        "account_id": "acme",
        "from_status": "open",
        "to_status": "pending",
        "payload": compact_json(payload),
    }
    assert row["occurred_at"] == datetime(2026, 1, 5, 15, 15, 26, tzinfo=UTC)
    assert row["recorded_at"] == datetime(2026, 1, 5, 15, 15, 27, tzinfo=UTC)
