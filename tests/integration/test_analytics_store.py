"""The DuckDB analytics projection: KPI definitions by hand, fold correctness, exactly-once
position handling and analysts' snapshots, on real DuckDB files."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from projections.analytics.kpis import kpi_summary
from projections.analytics.queries import open_readonly, run_sql, snapshot_position
from projections.analytics.row_groups import RowGroupLayout
from projections.analytics.store import AnalyticsStore
from projections.stream_event import StreamEvent
from ticketing.domain.events import event_payload
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Actor, ActorKind

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = 24 * 60
CUSTOMER = ("customer", "bob@acme.example")
ANA = ("agent", "ana")
BEN = ("agent", "ben")
BOT = ("automation", "rule-7")


# --- a small builder of wire payloads -------------------------------------------------------


class Stream:
    """Wire payloads in stream order; sequence numbers are given out on `events()`."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def emit(
        self,
        aggregate_id: str,
        kind: str,
        minute: float,
        actor: tuple[str, str],
        version: int,
        **fields: Any,
    ) -> None:
        moment = (T0 + timedelta(minutes=minute)).isoformat()
        self.payloads.append(
            {
                "type": kind,
                "aggregate_id": aggregate_id,
                "version": version,
                "notification_id": len(self.payloads) + 1,
                "recorded_at": moment,
                "occurred_at": moment,
                "actor": {"kind": actor[0], "id": actor[1]},
                "command_id": f"cmd-{len(self.payloads) + 1}",
                **fields,
            }
        )

    def events(self) -> list[StreamEvent]:
        """In time order (stable, so each aggregate keeps its version order)."""
        ordered = sorted(self.payloads, key=lambda p: datetime.fromisoformat(p["occurred_at"]))
        return [StreamEvent(i + 1, p) for i, p in enumerate(ordered)]


class TicketBuilder:
    """One ticket's events, explicit: every status move is written out by the test."""

    def __init__(
        self,
        stream: Stream,
        minute: float,
        *,
        actor: tuple[str, str] = CUSTOMER,
        category: str | None = "incident",
        priority: str = "normal",
        channel: str = "email",
        account: str = "acme",
    ) -> None:
        self.stream = stream
        self.id = str(uuid.uuid4())
        self.version = 0
        self.status = "new"
        self._emit(
            "TicketOpened",
            minute,
            actor,
            account_id=account,
            account_tier="business",
            requester="bob@acme.example",
            subject="VPN drops",
            description="every hour",
            channel=channel,
            priority=priority,
            category=category,
            tags=[],
            follow_up_of=None,
        )

    def _emit(self, kind: str, minute: float, actor: tuple[str, str], **fields: Any) -> None:
        self.version += 1
        self.stream.emit(self.id, kind, minute, actor, self.version, **fields)

    def assign(
        self, minute: float, agent: str | None, team: str | None = "support"
    ) -> TicketBuilder:
        self._emit(
            "TicketAssigned",
            minute,
            ANA,
            team=team,
            agent=agent,
            previous_team=None,
            previous_agent=None,
        )
        return self

    def reply(
        self, minute: float, actor: tuple[str, str] = ANA, visibility: str = "public"
    ) -> TicketBuilder:
        self._emit(
            "CommentAdded",
            minute,
            actor,
            comment_id=f"c{self.version}",
            body="hello",
            visibility=visibility,
        )
        return self

    def move(self, minute: float, to: str, actor: tuple[str, str] = ANA) -> TicketBuilder:
        extra: dict[str, Any]
        if to == "solved":
            kind, extra = "TicketResolved", {"resolution": f"fixed at {minute}"}
        elif to == "closed":
            kind, extra = "TicketClosed", {}
        elif self.status == "solved":
            kind, extra = "TicketReopened", {"reason": None}
        else:
            kind, extra = "StatusChanged", {"reason": None}
        self._emit(kind, minute, actor, from_status=self.status, to_status=to, **extra)
        self.status = to
        return self

    def rate(self, minute: float, score: int) -> TicketBuilder:
        self._emit("TicketRated", minute, CUSTOMER, score=score, comment=None)
        return self

    def categorize(self, minute: float, category: str) -> TicketBuilder:
        self._emit("TicketCategorized", minute, ANA, category=category, previous_category=None)
        return self


ACME_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "acme"))


def scenario() -> tuple[list[StreamEvent], dict[str, TicketBuilder]]:
    """Five tickets and one account whose KPIs are worked out by hand in the tests below."""
    stream = Stream()
    stream.emit(
        ACME_UUID, "AccountRegistered", -10, ANA, 1, account_id="acme", name="Acme", tier="business"
    )
    # A: customer-opened, reopened once, pending and on-hold spells, rated 5, closed.
    a = TicketBuilder(stream, 0, priority="high")
    a.assign(10, "ana").move(10, "open").reply(30).reply(40, BOT).move(60, "pending")
    a.reply(180, CUSTOMER).move(180, "open").move(200, "solved").move(300, "open", CUSTOMER)
    a.move(320, "on_hold").move(380, "open").reply(400).move(420, "solved")
    a.rate(500, 5).move(600, "closed")
    # B: opened by an agent on the phone: the description is the agent's first public comment
    # (as in Zendesk), so the first reply is the first public agent CommentAdded.
    b = TicketBuilder(stream, 60, actor=BEN, category="usage", channel="phone")
    b.reply(65, BEN).move(65, "open", BEN).reply(75, BOT).reply(80, BEN, "internal")
    b.reply(90, BEN).move(120, "solved", BEN)
    # C: one touch; a second resolution text is no new solve; rated 2, then re-rated 3.
    c = TicketBuilder(stream, 120)
    c.reply(150).move(150, "open").move(160, "solved").move(165, "solved")
    c.rate(170, 2).rate(175, 3)
    # D: only automation answers; reassigned twice; solved three days later without replies.
    d = TicketBuilder(stream, 200, category=None, priority="urgent", channel="chat")
    d.reply(201, BOT).assign(210, "ana").move(210, "open").assign(220, "ben")
    d.assign(230, None).assign(240, "carl").assign(250, "carl", team="tier2")
    d.categorize(260, "technical").move(3 * DAY + 60, "solved")
    # E: opened the next day, untouched.
    e = TicketBuilder(stream, DAY + 60, priority="high")
    stream.emit(
        ACME_UUID,
        "AccountTierChanged",
        DAY + 70,
        ANA,
        2,
        tier="enterprise",
        previous_tier="business",
    )
    stream.emit(
        ACME_UUID, "AccountRenamed", DAY + 80, ANA, 3, name="Acme Inc", previous_name="Acme"
    )
    return stream.events(), {"A": a, "B": b, "C": c, "D": d, "E": e}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AnalyticsStore]:
    s = AnalyticsStore(tmp_path / "analytics.duckdb")
    yield s
    s.close()


def metrics(store: AnalyticsStore) -> dict[str, dict[str, Any]]:
    return rows_by_id(store, "SELECT * FROM kpi_ticket_metrics")


def rows_by_id(store: AnalyticsStore, sql: str) -> dict[str, dict[str, Any]]:
    cursor = store.connection().cursor()
    try:
        cursor.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        return {str(row[0]): dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
    finally:
        cursor.close()


def query(store: AnalyticsStore, sql: str) -> list[tuple[Any, ...]]:
    return store.connection().execute(sql).fetchall()


def table_contents(store: AnalyticsStore) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "event_facts": query(store, "SELECT * FROM event_facts ORDER BY stream_sequence"),
        "ticket_facts": query(store, "SELECT * FROM ticket_facts ORDER BY ticket_id"),
        "accounts": query(store, "SELECT * FROM accounts ORDER BY account_uuid"),
        "position": query(store, "SELECT projection, stream_sequence FROM projection_position"),
    }


def in_batches(events: Sequence[StreamEvent], sizes: Sequence[int]) -> Iterator[list[StreamEvent]]:
    start, index = 0, 0
    while start < len(events):
        size = sizes[index % len(sizes)]
        yield list(events[start : start + size])
        start += size
        index += 1


@pytest.fixture
def applied(store: AnalyticsStore) -> tuple[AnalyticsStore, dict[str, TicketBuilder]]:
    events, tickets = scenario()
    for batch in in_batches(events, [3, 1, 5]):
        store.apply(batch)
    return store, tickets


# --- KPI definitions, worked out by hand ----------------------------------------------------


def test_a_reopened_ticket_has_first_and_full_resolution_and_one_reopen(applied: Any) -> None:
    store, t = applied
    a = metrics(store)[t["A"].id]
    assert a["first_resolution_minutes"] == pytest.approx(200)
    assert a["full_resolution_minutes"] == pytest.approx(420)
    assert a["reopens"] == 1
    assert a["status"] == "closed"


def test_first_reply_is_the_first_public_agent_reply(applied: Any) -> None:
    store, t = applied
    # A: automation answered at 40, an agent at 30; internal notes never count.
    assert metrics(store)[t["A"].id]["first_reply_minutes"] == pytest.approx(30)


def test_an_agent_opened_tickets_description_counts_as_its_first_comment(
    applied: Any,
) -> None:
    store, t = applied
    b = metrics(store)[t["B"].id]
    # Opened at 60 by the agent (the description is the first comment, as in Zendesk); the
    # agent's public replies at 65 and 90: the reply at 65 is the first reply.
    assert b["first_reply_minutes"] == pytest.approx(5)
    assert b["agent_replies"] == 2


def test_automation_replies_are_reported_separately_and_never_count_as_first_reply(
    applied: Any,
) -> None:
    store, t = applied
    m = metrics(store)
    assert m[t["D"].id]["first_reply_minutes"] is None
    assert m[t["D"].id]["first_automated_reply_minutes"] == pytest.approx(1)
    assert m[t["A"].id]["first_automated_reply_minutes"] == pytest.approx(40)
    assert m[t["B"].id]["first_automated_reply_minutes"] == pytest.approx(15)


def test_pending_time_is_agent_wait_not_requester_wait(applied: Any) -> None:
    store, t = applied
    a = metrics(store)[t["A"].id]
    # new 0-10; open 10-60, 180-200, 300-320, 380-420 = 130; pending 60-180; on_hold 320-380.
    assert a["agent_wait_minutes"] == pytest.approx(120)
    assert a["requester_wait_minutes"] == pytest.approx(10 + 130 + 60)
    facts = rows_by_id(store, "SELECT * FROM ticket_facts")[t["A"].id]
    assert (facts["seconds_new"], facts["seconds_open"]) == (600, 130 * 60)
    assert (facts["seconds_pending"], facts["seconds_on_hold"]) == (120 * 60, 60 * 60)


def test_on_hold_time_is_reported_and_is_part_of_requester_wait(applied: Any) -> None:
    store, t = applied
    assert metrics(store)[t["A"].id]["on_hold_minutes"] == pytest.approx(60)


def test_wait_times_and_full_resolution_wait_until_the_ticket_is_solved(applied: Any) -> None:
    store, t = applied
    e = metrics(store)[t["E"].id]
    assert e["requester_wait_minutes"] is None
    assert e["full_resolution_minutes"] is None
    assert e["one_touch"] is None


def test_one_touch_means_solved_with_fewer_than_two_agent_replies(applied: Any) -> None:
    store, t = applied
    m = metrics(store)
    assert {k: m[b.id]["one_touch"] for k, b in t.items()} == {
        "A": False,  # two agent replies
        "B": False,  # two agent replies
        "C": True,  # one
        "D": True,  # none at all (automation only)
        "E": None,  # not solved
    }


def test_a_new_resolution_text_is_not_a_new_solve(applied: Any) -> None:
    store, t = applied
    c = metrics(store)[t["C"].id]
    assert c["first_resolution_minutes"] == pytest.approx(40)
    assert c["full_resolution_minutes"] == pytest.approx(40)
    assert c["reopens"] == 0


def test_csat_counts_latest_ratings_and_excludes_unanswered_surveys(applied: Any) -> None:
    store, t = applied
    # Rated: A=5, C=3 (its 2 was replaced); B and D are solved but never rated.
    (ratings, good, mean) = query(
        store, "SELECT sum(ratings), sum(good), sum(score_sum) / sum(ratings) FROM kpi_csat"
    )[0]
    assert (ratings, good, mean) == (2, 1, 4.0)
    assert query(store, "SELECT day, ratings, good, csat, mean_score FROM kpi_csat") == [
        (date(2026, 3, 2), 2, 1, 0.5, 4.0)
    ]
    m = metrics(store)
    assert (m[t["C"].id]["csat_good"], m[t["C"].id]["rating_score"]) == (False, 3)
    assert m[t["B"].id]["csat_good"] is None


def test_backlog_is_open_tickets_at_each_days_end_with_quiet_days_filled(applied: Any) -> None:
    store, _ = applied
    assert query(store, "SELECT day, opened, solved, reopened, backlog FROM kpi_backlog") == [
        # A, B, C, D opened; A solved twice, B and C once; A reopened once: D is left.
        (date(2026, 3, 2), 4, 4, 1, 1),
        (date(2026, 3, 3), 1, 0, 0, 2),  # E opened
        (date(2026, 3, 4), 0, 0, 0, 2),  # nothing happened
        (date(2026, 3, 5), 0, 1, 0, 1),  # D solved
    ]


def test_reassignments_count_agent_changes_after_the_first_assignment(applied: Any) -> None:
    store, t = applied
    facts = rows_by_id(store, "SELECT * FROM ticket_facts")
    # D: ana (first), ben (+1), unassigned, carl (+1), carl again with a new team (no change).
    d = facts[t["D"].id]
    assert (d["reassignments"], d["agent"], d["team"]) == (2, "carl", "tier2")
    assert (d["team_at_resolution"], d["agent_at_resolution"]) == ("tier2", "carl")
    assert facts[t["A"].id]["reassignments"] == 0


def test_ticket_facts_keep_the_descriptive_fields(applied: Any) -> None:
    store, t = applied
    a = rows_by_id(store, "SELECT * FROM ticket_facts")[t["A"].id]
    assert a["public_comments"] == 4  # agent 30, bot 40, customer 180, agent 400
    assert a["internal_comments"] == 0
    assert a["rated_at"] == T0 + timedelta(minutes=500)
    assert a["closed_at"] == a["last_event_at"] == T0 + timedelta(minutes=600)
    assert a["version"] == 16
    assert a["opened_by_kind"] == "customer"
    assert a["subject"] == "VPN drops"
    assert rows_by_id(store, "SELECT * FROM ticket_facts")[t["D"].id]["category"] == "technical"


def test_daily_volume_counts_opened_tickets_by_day_category_priority_channel_team(
    applied: Any,
) -> None:
    store, _ = applied
    assert query(store, "SELECT * FROM kpi_daily_volume ORDER BY ALL") == [
        (date(2026, 3, 2), "incident", "high", "email", "support", 1),  # A
        (date(2026, 3, 2), "incident", "normal", "email", None, 1),  # C
        (date(2026, 3, 2), "technical", "urgent", "chat", "tier2", 1),  # D
        (date(2026, 3, 2), "usage", "normal", "phone", None, 1),  # B
        (date(2026, 3, 3), "incident", "high", "email", None, 1),  # E
    ]


def test_account_events_keep_the_accounts_table_and_name_the_account(applied: Any) -> None:
    store, _ = applied
    assert query(store, "SELECT account_id, name, tier, version FROM accounts") == [
        ("acme", "Acme Inc", "enterprise", 3)
    ]
    assert query(
        store, "SELECT DISTINCT aggregate_kind, account_id FROM event_facts ORDER BY ALL"
    ) == [("account", "acme"), ("ticket", "acme")]
    # A ticket keeps the tier it was opened under (the SLA it is held to).
    assert query(store, "SELECT DISTINCT account_tier FROM ticket_facts") == [("business",)]


def test_event_facts_hold_one_typed_row_per_event(applied: Any) -> None:
    store, t = applied
    events, _ = scenario()
    assert query(store, "SELECT count(*) FROM event_facts") == [(len(events),)]
    row = query(
        store,
        "SELECT type, from_status, to_status, actor_kind, occurred_at, payload->>'resolution' "
        f"FROM event_facts WHERE aggregate_id = '{t['A'].id}' AND version = 9",
    )
    resolved_at = T0 + timedelta(minutes=200)
    assert row == [("TicketResolved", "open", "solved", "agent", resolved_at, "fixed at 200")]


def test_kpi_summary_reports_counts_medians_p90_means_and_rates(applied: Any) -> None:
    store, _ = applied
    (overall,) = kpi_summary(store.connection())
    assert (overall["group"], overall["tickets"], overall["solved"]) == ("all", 5, 4)
    assert overall["reopen_rate"] == pytest.approx(1 / 4)
    assert overall["one_touch_rate"] == pytest.approx(2 / 4)
    assert (overall["ratings"], overall["csat"], overall["mean_rating"]) == (2, 0.5, 4.0)
    first_reply = overall["kpis"]["first_reply_minutes"]  # A 30, B 5, C 30
    assert first_reply == {"count": 3, "median": 30.0, "p90": 30.0, "mean": pytest.approx(65 / 3)}
    resolution = overall["kpis"]["first_resolution_minutes"]  # 200, 60, 40, 4180
    assert resolution["count"] == 4
    assert resolution["median"] == pytest.approx(130)  # between 60 and 200
    assert resolution["p90"] == pytest.approx(200 + 0.7 * (4180 - 200))
    assert resolution["mean"] == pytest.approx((200 + 60 + 40 + 4180) / 4)


def test_kpi_summary_groups_and_filters_on_opening_time(applied: Any) -> None:
    store, _ = applied
    groups = kpi_summary(store.connection(), by="category")
    assert [(g["group"], g["tickets"]) for g in groups] == [
        ("incident", 3),
        ("technical", 1),
        ("usage", 1),
    ]
    second_day = kpi_summary(store.connection(), since=date(2026, 3, 3), until=date(2026, 3, 4))
    assert second_day[0]["tickets"] == 1
    first_day = kpi_summary(store.connection(), until=T0 + timedelta(minutes=120), by="channel")
    assert [(g["group"], g["tickets"]) for g in first_day] == [("email", 1), ("phone", 1)]
    with pytest.raises(ValueError, match="by must be one of"):
        kpi_summary(store.connection(), by="color")


# --- fold correctness and exactly-once ------------------------------------------------------


def synthetic_events(tickets: int, seed: int) -> list[StreamEvent]:
    """Interleaved random but valid ticket histories (the domain's status rules)."""
    rng = random.Random(seed)
    stream = Stream()
    moves = {
        "new": ["open", "pending", "solved"],
        "open": ["pending", "on_hold", "solved"],
        "pending": ["open", "on_hold", "solved"],
        "on_hold": ["open", "solved"],
        "solved": ["open", "closed"],
    }
    for n in range(tickets):
        minute = float(rng.randrange(0, 5 * DAY))
        opener = ANA if rng.random() < 0.2 else CUSTOMER
        ticket = TicketBuilder(stream, minute, actor=opener, channel=rng.choice(["email", "web"]))
        for _ in range(rng.randrange(1, 12)):
            minute += rng.randrange(1, 600) + rng.random()
            roll = rng.random()
            if ticket.status == "closed":
                break
            if roll < 0.3:
                ticket.reply(minute, rng.choice([ANA, BEN, CUSTOMER, BOT]))
            elif roll < 0.4:
                ticket.assign(minute, rng.choice(["ana", "ben", None]), f"team-{n % 3}")
            elif roll < 0.5 and ticket.status in ("solved", "closed"):
                ticket.rate(minute, rng.randint(1, 5))
            else:
                ticket.move(minute, rng.choice(moves[ticket.status]))
    return stream.events()


def assert_close(actual: Any, expected: Any) -> None:
    """Equal, except floats that may differ in their last bits (parallel sums in DuckDB)."""
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-12)
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key, value in expected.items():
            assert_close(actual[key], value)
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for item, value in zip(actual, expected, strict=True):
            assert_close(item, value)
    else:
        assert actual == expected


@pytest.mark.parametrize(
    ("tickets", "sizes"), [(30, [1]), (150, [2, 7]), (150, [13, 1, 250]), (150, [999])]
)
def test_any_batching_gives_the_same_projection_as_one_big_batch(
    tmp_path: Path, tickets: int, sizes: list[int]
) -> None:
    events = synthetic_events(tickets, seed=sum(sizes))
    with AnalyticsStore(tmp_path / "whole.duckdb") as whole:
        whole.apply(events)
        expected = table_contents(whole)
        expected_kpis = kpi_summary(whole.connection(), by="channel")
    with AnalyticsStore(tmp_path / "batched.duckdb") as batched:
        for batch in in_batches(events, sizes):
            batched.apply(batch)
        assert table_contents(batched) == expected
        assert_close(kpi_summary(batched.connection(), by="channel"), expected_kpis)
    assert len(expected["ticket_facts"]) == tickets


def test_two_events_of_one_ticket_in_one_batch_fold_into_one_row(store: AnalyticsStore) -> None:
    # Given a ticket already stored
    stream = Stream()
    ticket = TicketBuilder(stream, 0)
    ticket.assign(5, "ana").move(5, "open").reply(20).move(30, "solved").rate(40, 4)
    events = stream.events()
    store.apply(events[:1])
    # When one batch carries all of its later events (MERGE would keep only the last)
    store.apply(events[1:])
    # Then
    facts = rows_by_id(store, "SELECT * FROM ticket_facts")
    assert list(facts) == [ticket.id]
    row = facts[ticket.id]
    assert (row["agent"], row["status"], row["agent_replies"], row["rating_score"]) == (
        "ana",
        "solved",
        1,
        4,
    )
    assert (row["seconds_new"], row["seconds_open"], row["version"]) == (300, 25 * 60, 6)


def test_the_position_is_what_was_committed_after_reopening_the_file(tmp_path: Path) -> None:
    events, _ = scenario()
    path = tmp_path / "analytics.duckdb"
    with AnalyticsStore(path) as store:
        assert store.position() == 0
        store.apply(events[:10])
        store.apply(events[10:17])
        before = table_contents(store)
    with AnalyticsStore(path) as reopened:
        assert reopened.position() == 17
        assert table_contents(reopened) == before
        reopened.apply(events[17:])
        assert reopened.position() == len(events)


@pytest.mark.parametrize(
    "missing",
    [("external_id", "subject"), ("external_id",)],
    ids=["before subject", "before external_id"],
)
def test_a_file_from_before_a_ticket_facts_column_gains_it_filled_as_a_rebuild_would(
    tmp_path: Path, missing: tuple[str, ...]
) -> None:
    # Given a projection written before ticket_facts had these columns
    events, _ = scenario()
    path = tmp_path / "analytics.duckdb"
    with AnalyticsStore(path) as store:
        store.apply(events[:20])
    with duckdb.connect(str(path)) as con:
        for column in missing:
            con.execute(f"ALTER TABLE ticket_facts DROP COLUMN {column}")
    # When today's store opens it and goes on
    with AnalyticsStore(path) as migrated:
        migrated.apply(events[20:])
        after = table_contents(migrated)
    # Then it holds exactly what a store fed from the start holds, in the same column order
    with AnalyticsStore(tmp_path / "fresh.duckdb") as fresh:
        fresh.apply(events)
        assert after == table_contents(fresh)


def test_events_at_or_below_the_position_are_ignored(store: AnalyticsStore) -> None:
    events, _ = scenario()
    store.apply(events[:20])
    once = table_contents(store)
    # A redelivered batch, and one straddling the position, change nothing twice.
    store.apply(events[:20])
    store.apply(events[5:15])
    assert table_contents(store) == once
    store.apply(events[10:30])
    with AnalyticsStore(store.path.with_name("fresh.duckdb")) as fresh:
        fresh.apply(events[:30])
        assert table_contents(store) == table_contents(fresh)


def test_a_failing_batch_leaves_rows_and_position_untouched(store: AnalyticsStore) -> None:
    events, _ = scenario()
    store.apply(events[:10])
    before = table_contents(store)
    broken = StreamEvent(12, {**events[11].payload, "occurred_at": "not a time"})
    with pytest.raises(ValueError, match="isoformat"):
        store.apply([events[10], broken])
    assert table_contents(store) == before
    assert store.position() == 10
    store.apply(events[10:])  # and the redelivery then succeeds
    assert store.position() == len(events)


def test_a_batch_failing_after_its_first_write_is_rolled_back_whole(
    store: AnalyticsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, _ = scenario()
    store.apply(events[:10])
    before = table_contents(store)

    def failing_upsert(*args: Any) -> None:
        raise RuntimeError("disk full")

    # event_facts is written first, then the upserts fail.
    monkeypatch.setattr(store, "_upsert", failing_upsert)
    with pytest.raises(RuntimeError, match="disk full"):
        store.apply(events[10:20])
    monkeypatch.undo()
    assert table_contents(store) == before
    assert store.position() == 10
    store.apply(events[10:])
    assert store.position() == len(events)


def test_reset_empties_the_projection_for_a_rebuild_that_equals_the_live_one(
    store: AnalyticsStore,
) -> None:
    events, _ = scenario()
    store.apply(events)
    live = table_contents(store)
    store.reset()
    assert store.position() == 0
    assert query(store, "SELECT count(*) FROM event_facts") == [(0,)]
    store.apply(events)
    assert table_contents(store) == live


def test_payloads_from_the_real_ticket_aggregate_project_its_state(store: AnalyticsStore) -> None:
    agent, customer = Actor(ActorKind.AGENT, "ana"), Actor(ActorKind.CUSTOMER, "bob@acme.example")
    ticket = Ticket.open(
        account_id="acme",
        account_tier="business",
        requester="bob@acme.example",
        subject="VPN",
        actor=customer,
        at=T0,
    )
    ticket.assign(team="support", agent="ana", actor=agent, at=T0 + timedelta(minutes=5))
    ticket.add_comment("try this", actor=agent, at=T0 + timedelta(minutes=9))
    ticket.change_status("pending", actor=agent, at=T0 + timedelta(minutes=10))
    ticket.add_comment("still broken", actor=customer, at=T0 + timedelta(minutes=40))
    ticket.resolve(actor=agent, at=T0 + timedelta(minutes=50))
    ticket.add_comment("no, it is not", actor=customer, at=T0 + timedelta(minutes=70))
    ticket.resolve(actor=agent, at=T0 + timedelta(minutes=80))
    ticket.rate(4, actor=customer, at=T0 + timedelta(minutes=90))
    payloads = [event_payload(e) for e in ticket.collect_events()]
    store.apply(
        [StreamEvent(i + 1, {**p, "notification_id": i + 1}) for i, p in enumerate(payloads)]
    )
    row = rows_by_id(store, "SELECT * FROM ticket_facts")[str(ticket.id)]
    assert (row["status"], row["reopens"], row["rating_score"]) == ("solved", 1, 4)
    assert (row["team"], row["agent"], row["version"]) == ("support", "ana", ticket.version)
    m = metrics(store)[str(ticket.id)]
    assert m["first_reply_minutes"] == pytest.approx(9)
    assert m["agent_wait_minutes"] == pytest.approx(30)  # pending 10-40
    assert m["requester_wait_minutes"] == pytest.approx(5 + 5 + 10 + 10)  # new, open x3


# --- analysts' snapshots --------------------------------------------------------------------

READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
count = lambda: con.execute("SELECT count(*) FROM event_facts").fetchall()[0][0]
print(count(), flush=True)
sys.stdin.readline()
print(count(), flush=True)
"""


def test_a_published_snapshot_opens_read_only_elsewhere_while_the_writer_keeps_writing(
    tmp_path: Path,
) -> None:
    events, _ = scenario()
    snapshot = tmp_path / "analytics-snapshot.duckdb"
    with AnalyticsStore(tmp_path / "analytics.duckdb") as store:
        store.apply(events[:20])
        assert store.publish_snapshot(snapshot) == 20
        # Another process holds the snapshot open while the writer applies and republishes.
        with subprocess.Popen(
            [sys.executable, "-c", READER, str(snapshot)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as reader:
            assert reader.stdout is not None and reader.stdin is not None
            assert reader.stdout.readline().strip() == "20"
            store.apply(events[20:])
            store.publish_snapshot(snapshot)
            reader.stdin.write("\n")
            reader.stdin.flush()
            assert reader.stdout.readline().strip() == "20"  # its open snapshot is unchanged
            assert reader.wait(timeout=30) == 0
        # A new reader sees the new snapshot, equal to the live file, views included.
        live = table_contents(store)
        con = open_readonly(snapshot)
        try:
            assert snapshot_position(con) == len(events)
            assert (
                con.execute("SELECT * FROM ticket_facts ORDER BY ticket_id").fetchall()
                == (live["ticket_facts"])
            )
            assert con.execute("SELECT count(*) FROM kpi_backlog").fetchall() == [(4,)]
        finally:
            con.close()
        assert not list(tmp_path.glob(".*.tmp"))


def test_the_live_file_stays_locked_to_other_processes(tmp_path: Path) -> None:
    with AnalyticsStore(tmp_path / "analytics.duckdb") as store:
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True)",
                str(store.path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert probe.returncode != 0
    assert "lock" in probe.stderr.lower()


def test_run_sql_returns_columns_and_rows_and_refuses_writes(tmp_path: Path) -> None:
    events, _ = scenario()
    snapshot = tmp_path / "snap.duckdb"
    with AnalyticsStore(tmp_path / "analytics.duckdb") as store:
        store.apply(events)
        store.publish_snapshot(snapshot)
    columns, rows = run_sql(
        snapshot, "SELECT status, count(*) AS n FROM ticket_facts GROUP BY 1 ORDER BY 1"
    )
    assert columns == ["status", "n"]
    assert rows == [("closed", 1), ("new", 1), ("solved", 3)]
    with pytest.raises(duckdb.Error, match="read-only"):
        run_sql(snapshot, "DELETE FROM ticket_facts")
    assert json.dumps(run_sql(snapshot, "SELECT 1 AS one")) == '[["one"], [[1]]]'


@pytest.mark.parametrize("expected", ["unknown", "exact", "too few", "too many"])
def test_the_bulk_rebuild_path_ends_in_exactly_the_rows_of_batch_by_batch_applies(
    tmp_path: Path, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (row groups of 100 rows and a tail of 30 for the layout, so that a small day is cut
    # into a lead, whole groups and a tail, committed on the way)
    monkeypatch.setattr("projections.analytics.row_groups.ROW_GROUP_ROWS", 100)
    monkeypatch.setattr("projections.analytics.row_groups.SHORTEST_TAIL", 30)
    # Given a realistic day in the event store, read as the stream
    from replay.stream import stream_batches
    from ticketing.cli.demo_day import support_day
    from ticketing.runtime.bootstrap import build_command_service
    from ticketing.settings import Settings

    service = build_command_service(Settings(home=tmp_path / "home"))
    try:
        support_day(service.execute, tickets=40, seed=11)
        batches = list(stream_batches(service.app, batch=97))
    finally:
        service.app.close()
    incremental = AnalyticsStore(tmp_path / "incremental.duckdb")
    bulk = AnalyticsStore(tmp_path / "bulk.duckdb")
    try:
        # When one is fed batch by batch and the other through apply_all, told how many
        # events come (the part-filled row group first, committed early) or not
        total = sum(len(b) for b in batches)
        expected_events = {"unknown": None, "exact": total, "too few": 250, "too many": 10**6}
        commits: list[bool] = []
        commit_early = bulk._commit_early
        monkeypatch.setattr(
            bulk,
            "_commit_early",
            lambda *, checkpoint: [commits.append(checkpoint), commit_early(checkpoint=checkpoint)],
        )
        for events in batches:
            incremental.apply(events)
        applied = bulk.apply_all(iter(batches), expected_events=expected_events[expected])
        if expected == "exact":  # any lead compressed early, the whole groups committed
            layout = RowGroupLayout(total)
            assert layout.settle_points
            assert commits == [point == layout.lead for point in layout.settle_points]
        elif expected == "unknown":
            assert commits == []
        # Then every table and the position are the same
        assert applied == total > 300
        assert bulk.position() == incremental.position()
        for table, key in (
            ("event_facts", "stream_sequence"),
            ("ticket_facts", "ticket_id"),
            ("accounts", "account_uuid"),
        ):
            query = f"SELECT * FROM {table} ORDER BY {key}"
            got = bulk.connection().execute(query).fetchall()
            assert got == incremental.connection().execute(query).fetchall(), table
    finally:
        incremental.close()
        bulk.close()


def test_the_bulk_path_refuses_a_file_with_event_facts_but_no_position(tmp_path: Path) -> None:
    # Given a file holding the early-committed facts of a rebuild that died (no position yet)
    store = AnalyticsStore(tmp_path / "analytics.duckdb")
    try:
        store.connection().execute(
            "INSERT INTO event_facts (stream_sequence, aggregate_id, type) "
            "VALUES (1, '00000000-0000-0000-0000-000000000001', 'TicketOpened')"
        )
        # Then the bulk path will not add to it
        with pytest.raises(ValueError, match="empty projection"):
            store.apply_all(iter([]))
        assert store.position() == 0
    finally:
        store.close()
