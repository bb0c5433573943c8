"""The SLA clock: first reply, next reply and resolution, with pauses, re-targets and breaches.

The policy's office is Berlin, Mon-Fri 09:00-17:00. January 2026 is CET, and Mon 2026-01-12
starts the week used throughout; every time below is Berlin wall time. The clock is controlled
by passing `now`; nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ticketing.domain.business_hours import CALENDAR_TIME, WEEKDAYS, BusinessCalendar
from ticketing.domain.errors import ValidationError
from ticketing.domain.sla_policy import (
    DEFAULT_PAUSE_STATUSES,
    ClockState,
    MetricClock,
    Opened,
    PriorityChanged,
    PublicReply,
    Reopened,
    SlaClock,
    SlaMetric,
    SlaPolicy,
    SlaReport,
    SlaTargets,
    Solved,
    StatusChanged,
    TimelineEntry,
)
from ticketing.domain.values import ActorKind, Priority, SlaTier, Status

BERLIN = ZoneInfo("Europe/Berlin")
MINUTE, HOUR = 60, 3600
OFFICE = BusinessCalendar.create(
    "Europe/Berlin", {day: [("09:00", "17:00")] for day in WEEKDAYS[:5]}
)
POLICY = SlaPolicy(
    name="standard-support",
    version=3,
    calendar=OFFICE,
    default_targets=SlaTargets(first_reply=60, next_reply=120, resolution=480),
    targets={
        (SlaTier.STANDARD, Priority.URGENT): SlaTargets(
            first_reply=30, next_reply=60, resolution=240
        ),
        (SlaTier.STANDARD, Priority.LOW): SlaTargets(resolution=2400),
    },
)
AGENT, CUSTOMER = ActorKind.AGENT, ActorKind.CUSTOMER


def mon(hour: int, minute: int = 0) -> datetime:
    return _berlin("2026-01-12", hour, minute)


def tue(hour: int, minute: int = 0) -> datetime:
    return _berlin("2026-01-13", hour, minute)


def wed(hour: int, minute: int = 0) -> datetime:
    return _berlin("2026-01-14", hour, minute)


def _berlin(day: str, hour: int, minute: int) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour, minute), BERLIN)


def opened(
    at: datetime, priority: Priority = Priority.NORMAL, tier: SlaTier = SlaTier.STANDARD
) -> Opened:
    return Opened(at=at, priority=priority, tier=tier)


def status(at: datetime, to: Status) -> StatusChanged:
    return StatusChanged(at=at, to=to)


def reply(at: datetime, by_kind: ActorKind) -> PublicReply:
    return PublicReply(at=at, by_kind=by_kind)


def report(now: datetime, *timeline: TimelineEntry, policy: SlaPolicy = POLICY) -> SlaReport:
    return SlaClock(policy).evaluate(list(timeline), now=now)


def wrong(value: object) -> Any:
    """A deliberately ill-typed argument: the refusals guard callers without type checks."""
    return value


def measured(clock: MetricClock | None) -> MetricClock:
    assert clock is not None, "the metric should be measured"
    return clock


# --- first reply ------------------------------------------------------------------------------


def test_first_reply_clock_runs_from_opening() -> None:
    # Given a ticket opened Mon 09:00; when asked at 09:20
    first = measured(report(mon(9, 20), opened(mon(9))).first_reply)
    # Then 20 minutes are used and the reply is due at 10:00 (09:00Z)
    assert first.state is ClockState.RUNNING
    assert first.target_minutes == 60
    assert first.elapsed_seconds == 20 * MINUTE
    assert first.due_at == mon(10)
    assert first.due_at is not None and first.due_at.tzinfo is UTC
    assert not first.paused
    assert first.achieved_at is None and first.breached_at is None


def test_first_reply_due_time_skips_closed_hours() -> None:
    # Given a ticket opened Fri 16:30: 30 minutes on Friday, 30 more on Monday
    friday = _berlin("2026-01-09", 16, 30)
    first = measured(report(_berlin("2026-01-10", 12, 0), opened(friday)).first_reply)
    assert first.state is ClockState.RUNNING
    assert first.elapsed_seconds == 30 * MINUTE
    assert first.due_at == mon(9, 30)


def test_an_agent_reply_before_the_due_time_achieves_first_reply() -> None:
    first = measured(
        report(tue(12), opened(mon(9)), reply(mon(9, 45), AGENT)).first_reply,
    )
    assert first.state is ClockState.ACHIEVED
    assert first.achieved_at == mon(9, 45)
    assert first.elapsed_seconds == 45 * MINUTE
    assert first.due_at is None
    assert first.breached_at is None


def test_first_reply_breaches_exactly_at_the_due_instant() -> None:
    # Given a ticket opened Mon 09:00, due 10:00
    timeline = [opened(mon(9))]
    # When asked one microsecond before the due instant, then at it
    just_before = measured(report(mon(10) - timedelta(microseconds=1), *timeline).first_reply)
    at_due = measured(report(mon(10), *timeline).first_reply)
    # Then it is running just before and breached at the instant itself
    assert just_before.state is ClockState.RUNNING
    assert at_due.state is ClockState.BREACHED
    assert at_due.breached_at == mon(10)
    assert at_due.due_at == mon(10)


def test_a_reply_at_the_due_instant_is_late() -> None:
    first = measured(report(mon(11), opened(mon(9)), reply(mon(10), AGENT)).first_reply)
    assert first.state is ClockState.BREACHED
    assert first.breached_at == mon(10)
    assert first.achieved_at == mon(10)


def test_a_late_reply_stays_breached_and_records_when_it_came() -> None:
    first = measured(report(tue(9), opened(mon(9)), reply(mon(16), AGENT)).first_reply)
    assert first.state is ClockState.BREACHED
    assert (first.breached_at, first.achieved_at) == (mon(10), mon(16))
    assert first.elapsed_seconds == 7 * HOUR


def test_customer_and_automation_replies_do_not_answer_the_customer() -> None:
    first = measured(
        report(
            mon(9, 30),
            opened(mon(9)),
            reply(mon(9, 5), CUSTOMER),
            reply(mon(9, 10), ActorKind.AUTOMATION),
            reply(mon(9, 15), ActorKind.AI),
        ).first_reply
    )
    assert first.state is ClockState.RUNNING
    assert first.due_at == mon(10)


# --- pauses -----------------------------------------------------------------------------------


def test_pending_pauses_the_first_reply_clock_without_a_due_time() -> None:
    # Given the ticket went pending at 09:20; when asked at 09:50
    first = measured(
        report(mon(9, 50), opened(mon(9)), status(mon(9, 20), Status.PENDING)).first_reply
    )
    # Then it is paused with 20 minutes used and no due time
    assert first.state is ClockState.PAUSED
    assert first.paused
    assert first.elapsed_seconds == 20 * MINUTE
    assert first.due_at is None


def test_resuming_moves_the_due_time_by_the_business_time_spent_paused() -> None:
    # Given pending 09:20-10:00 (40 minutes paused); when asked at 10:05
    first = measured(
        report(
            mon(10, 5),
            opened(mon(9)),
            status(mon(9, 20), Status.PENDING),
            status(mon(10), Status.OPEN),
        ).first_reply
    )
    # Then 25 minutes are used and the due time moved from 10:00 to 10:40
    assert first.state is ClockState.RUNNING
    assert first.elapsed_seconds == 25 * MINUTE
    assert first.due_at == mon(10, 40)


def test_a_paused_clock_does_not_breach_while_paused() -> None:
    first = measured(
        report(wed(12), opened(mon(9)), status(mon(9, 30), Status.PENDING)).first_reply
    )
    assert first.state is ClockState.PAUSED
    assert first.breached_at is None
    assert first.elapsed_seconds == 30 * MINUTE


def test_a_clock_breached_before_its_pause_stays_breached() -> None:
    first = measured(report(mon(12), opened(mon(9)), status(mon(11), Status.PENDING)).first_reply)
    assert first.state is ClockState.BREACHED
    assert first.paused
    assert first.breached_at == mon(10)
    assert first.due_at == mon(10)


def test_on_hold_pauses_resolution_but_not_the_reply_clocks() -> None:
    # Given on hold Mon 10:00-12:00; when asked at 12:00
    result = report(
        mon(12),
        opened(mon(9)),
        status(mon(10), Status.ON_HOLD),
        status(mon(12), Status.OPEN),
    )
    # Then the first reply kept running and breached at 10:00
    assert measured(result.first_reply).breached_at == mon(10)
    # And resolution used 1 hour; 7 remain: 5 on Monday (12-17) and 2 on Tuesday -> Tue 11:00
    resolution = measured(result.resolution)
    assert resolution.state is ClockState.RUNNING
    assert resolution.elapsed_seconds == HOUR
    assert resolution.due_at == tue(11)


def test_a_policy_may_choose_other_pause_statuses() -> None:
    # Given first reply pausing on hold (and no longer when pending)
    policy = SlaPolicy(
        name="vendor-heavy",
        version=1,
        calendar=OFFICE,
        default_targets=SlaTargets(first_reply=60),
        pause_statuses={SlaMetric.FIRST_REPLY: frozenset({Status.ON_HOLD})},
    )
    on_hold = report(mon(11), opened(mon(9)), status(mon(9, 30), Status.ON_HOLD), policy=policy)
    pending = report(mon(11), opened(mon(9)), status(mon(9, 30), Status.PENDING), policy=policy)
    assert measured(on_hold.first_reply).state is ClockState.PAUSED
    assert measured(pending.first_reply).state is ClockState.BREACHED
    assert (
        policy.pause_statuses[SlaMetric.RESOLUTION]
        == (DEFAULT_PAUSE_STATUSES[SlaMetric.RESOLUTION])
    )


# --- next reply -------------------------------------------------------------------------------

ANSWERED = (opened(mon(9)), reply(mon(9, 10), AGENT))


def test_a_customer_reply_after_the_first_answer_starts_the_next_reply_clock() -> None:
    next_reply = measured(report(mon(10, 30), *ANSWERED, reply(mon(10), CUSTOMER)).next_reply)
    assert next_reply.state is ClockState.RUNNING
    assert next_reply.started_at == mon(10)
    assert next_reply.elapsed_seconds == 30 * MINUTE
    assert next_reply.due_at == mon(12)


def test_a_customer_reply_before_the_first_answer_starts_no_next_reply_clock() -> None:
    result = report(mon(9, 30), opened(mon(9)), reply(mon(9, 5), CUSTOMER))
    assert result.next_reply is None
    assert measured(result.first_reply).state is ClockState.RUNNING


def test_further_customer_replies_do_not_restart_an_unanswered_next_reply_clock() -> None:
    next_reply = measured(
        report(
            mon(11, 30), *ANSWERED, reply(mon(10), CUSTOMER), reply(mon(11), CUSTOMER)
        ).next_reply
    )
    assert next_reply.started_at == mon(10)
    assert next_reply.due_at == mon(12)


def test_each_answered_customer_reply_is_followed_by_a_new_next_reply_cycle() -> None:
    # Given the agent answered at 11:30 and the customer wrote again at 13:00
    result = report(
        mon(13, 30),
        *ANSWERED,
        reply(mon(10), CUSTOMER),
        reply(mon(11, 30), AGENT),
        reply(mon(13), CUSTOMER),
    )
    # Then the first cycle is achieved and a second runs from 13:00, due 15:00
    first_cycle, second_cycle = result.next_reply_cycles
    assert first_cycle.state is ClockState.ACHIEVED
    assert first_cycle.achieved_at == mon(11, 30)
    assert first_cycle.elapsed_seconds == 90 * MINUTE
    assert result.next_reply == second_cycle
    assert second_cycle.state is ClockState.RUNNING
    assert second_cycle.due_at == mon(15)


def test_a_customer_reply_to_a_pending_ticket_starts_the_clock_as_it_reopens() -> None:
    # Given the agent answered and set pending; the customer's reply brings it back to open
    result = report(
        mon(10, 30),
        opened(mon(9)),
        reply(mon(9, 10), AGENT),
        status(mon(9, 10), Status.PENDING),
        reply(mon(10), CUSTOMER),
        status(mon(10), Status.OPEN),
    )
    next_reply = measured(result.next_reply)
    assert next_reply.elapsed_seconds == 30 * MINUTE
    assert next_reply.due_at == mon(12)


def test_next_reply_pauses_while_pending() -> None:
    # Given the cycle from 10:00 ran 30 minutes, then pending 10:30-11:00
    next_reply = measured(
        report(
            mon(11),
            *ANSWERED,
            reply(mon(10), CUSTOMER),
            status(mon(10, 30), Status.PENDING),
            status(mon(11), Status.OPEN),
        ).next_reply
    )
    # Then 30 minutes are used and it is due 30 minutes later than 12:00
    assert next_reply.elapsed_seconds == 30 * MINUTE
    assert next_reply.due_at == mon(12, 30)


# --- resolution -------------------------------------------------------------------------------


def test_solving_before_the_due_time_achieves_resolution() -> None:
    resolution = measured(report(tue(9), opened(mon(9)), Solved(at=mon(12))).resolution)
    assert resolution.state is ClockState.ACHIEVED
    assert resolution.achieved_at == mon(12)
    assert resolution.elapsed_seconds == 3 * HOUR
    assert resolution.due_at is None


def test_a_reopen_resumes_resolution_from_where_it_stopped() -> None:
    # Given solved Mon 12:00 after 3 hours, reopened Tue 09:00; when asked Tue 10:00
    resolution = measured(
        report(tue(10), opened(mon(9)), Solved(at=mon(12)), Reopened(at=tue(9))).resolution
    )
    # Then 4 hours are used; the remaining 4 run out at Tue 14:00
    assert resolution.state is ClockState.RUNNING
    assert resolution.elapsed_seconds == 4 * HOUR
    assert resolution.due_at == tue(14)
    assert resolution.achieved_at is None


def test_solving_again_after_a_reopen_achieves_resolution_at_the_last_solve() -> None:
    resolution = measured(
        report(
            wed(9),
            opened(mon(9)),
            Solved(at=mon(12)),
            Reopened(at=tue(9)),
            Solved(at=tue(11)),
        ).resolution
    )
    assert resolution.state is ClockState.ACHIEVED
    assert resolution.achieved_at == tue(11)
    assert resolution.elapsed_seconds == 5 * HOUR


def test_a_reopened_ticket_breaches_resolution_when_the_resumed_clock_runs_out() -> None:
    resolution = measured(
        report(tue(14), opened(mon(9)), Solved(at=mon(12)), Reopened(at=tue(9))).resolution
    )
    assert resolution.state is ClockState.BREACHED
    assert resolution.breached_at == tue(14)


def test_solving_fulfils_a_reply_clock_still_running() -> None:
    first = measured(report(tue(9), opened(mon(9)), Solved(at=mon(9, 30))).first_reply)
    assert first.state is ClockState.ACHIEVED
    assert first.achieved_at == mon(9, 30)


def test_a_customer_reply_to_a_solved_ticket_starts_next_reply_and_resumes_resolution() -> None:
    # Given answered 09:10, solved 09:30; the customer writes Tue 09:00, which reopens it
    result = report(
        tue(9, 30),
        *ANSWERED,
        Solved(at=mon(9, 30)),
        reply(tue(9), CUSTOMER),
        Reopened(at=tue(9)),
    )
    next_reply = measured(result.next_reply)
    assert next_reply.due_at == tue(11)
    resolution = measured(result.resolution)
    assert resolution.state is ClockState.RUNNING
    assert resolution.elapsed_seconds == HOUR  # 09:00-09:30 on Monday and on Tuesday


# --- priority and targets ---------------------------------------------------------------------


def test_a_priority_change_retargets_running_clocks() -> None:
    # Given a normal ticket made urgent at 09:10 (first reply 30 min, resolution 4 h)
    result = report(
        mon(9, 15), opened(mon(9)), PriorityChanged(at=mon(9, 10), priority=Priority.URGENT)
    )
    first = measured(result.first_reply)
    assert first.target_minutes == 30
    assert first.due_at == mon(9, 30)
    assert measured(result.resolution).due_at == mon(13)


def test_a_tighter_target_already_exceeded_breaches_at_the_change() -> None:
    # Given 40 minutes used when the ticket becomes urgent (30-minute target)
    first = measured(
        report(
            mon(10), opened(mon(9)), PriorityChanged(at=mon(9, 40), priority=Priority.URGENT)
        ).first_reply
    )
    # Then it breaches at the change, never retroactively at 09:30
    assert first.state is ClockState.BREACHED
    assert first.breached_at == mon(9, 40)


def test_a_breach_survives_a_later_looser_target() -> None:
    first = measured(
        report(
            mon(9, 50),
            opened(mon(9)),
            PriorityChanged(at=mon(9, 40), priority=Priority.URGENT),
            PriorityChanged(at=mon(9, 45), priority=Priority.NORMAL),
        ).first_reply
    )
    assert first.state is ClockState.BREACHED
    assert first.breached_at == mon(9, 40)
    assert first.target_minutes == 60


def test_a_priority_change_leaves_achieved_clocks_alone() -> None:
    first = measured(
        report(
            mon(11),
            opened(mon(9)),
            reply(mon(9, 50), AGENT),
            PriorityChanged(at=mon(10), priority=Priority.URGENT),
        ).first_reply
    )
    assert first.state is ClockState.ACHIEVED
    assert first.target_minutes == 60


def test_a_reopen_applies_the_current_priority_to_resolution() -> None:
    # Given solved after 5 hours, made urgent while solved (4-hour target), then reopened
    resolution = measured(
        report(
            tue(10),
            opened(mon(9)),
            Solved(at=mon(14)),
            PriorityChanged(at=mon(15), priority=Priority.URGENT),
            Reopened(at=tue(9)),
        ).resolution
    )
    assert resolution.target_minutes == 240
    assert resolution.breached_at == tue(9)


def test_targets_come_from_the_tier_and_priority_or_fall_back_to_the_defaults() -> None:
    assert POLICY.targets_for(SlaTier.STANDARD, Priority.URGENT).first_reply == 30
    assert POLICY.targets_for("enterprise", "urgent") == POLICY.default_targets


def test_a_metric_without_a_target_is_not_measured() -> None:
    result = report(mon(10), opened(mon(9), priority=Priority.LOW))
    assert result.first_reply is None
    assert measured(result.resolution).target_minutes == 2400


def test_a_calendar_time_policy_counts_nights_and_weekends() -> None:
    policy = SlaPolicy(
        name="around-the-clock",
        version=1,
        calendar=CALENDAR_TIME,
        default_targets=SlaTargets(first_reply=60),
    )
    friday = _berlin("2026-01-09", 16, 30)
    first = measured(
        report(_berlin("2026-01-10", 12, 0), opened(friday), policy=policy).first_reply
    )
    assert first.breached_at == _berlin("2026-01-09", 17, 30)


def test_due_times_follow_local_office_hours_across_a_clock_change() -> None:
    # Given a New York office; opened Fri 2026-03-06 16:00 EST with a 2-hour first reply
    new_york = ZoneInfo("America/New_York")
    policy = SlaPolicy(
        name="us-office",
        version=1,
        calendar=BusinessCalendar.create(
            "America/New_York", {day: [("09:00", "17:00")] for day in WEEKDAYS[:5]}
        ),
        default_targets=SlaTargets(first_reply=120),
    )
    first = measured(
        report(
            datetime(2026, 3, 7, 12, tzinfo=new_york),
            opened(datetime(2026, 3, 6, 16, tzinfo=new_york)),
            policy=policy,
        ).first_reply
    )
    # Then it is due Monday 10:00 EDT (14:00Z), after the clocks went forward on Sunday
    assert first.due_at == datetime(2026, 3, 9, 14, tzinfo=UTC)


def test_entries_after_now_are_ignored() -> None:
    first = measured(report(mon(9, 30), opened(mon(9)), reply(mon(9, 45), AGENT)).first_reply)
    assert first.state is ClockState.RUNNING
    assert first.elapsed_seconds == 30 * MINUTE


def test_the_report_names_the_policy_version_it_used() -> None:
    result = report(mon(9, 30), opened(mon(9)))
    assert (result.policy_name, result.policy_version) == ("standard-support", 3)
    assert result.evaluated_at == mon(9, 30)
    assert set(result.by_metric()) == set(SlaMetric)


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: SlaTargets(first_reply=0), "first_reply"),
        (lambda: SlaTargets(next_reply=-5), "next_reply"),
        (lambda: SlaTargets(resolution=wrong(1.5)), "resolution"),
        (lambda: SlaPolicy("", 1, OFFICE, SlaTargets()), "name"),
        (lambda: SlaPolicy("p", 0, OFFICE, SlaTargets()), "version"),
        (lambda: SlaPolicy("p", 1, wrong("office"), SlaTargets()), "calendar"),
        (
            lambda: SlaPolicy(
                "p", 1, OFFICE, SlaTargets(), wrong({("gold", "urgent"): SlaTargets()})
            ),
            "targets",
        ),
        (
            lambda: SlaPolicy(
                "p",
                1,
                OFFICE,
                SlaTargets(),
                pause_statuses=wrong({"resolution": {"solved"}}),
            ),
            "pause_statuses",
        ),
        (lambda: StatusChanged(at=mon(9), to=Status.SOLVED), "to"),
        (
            lambda: Opened(
                at=datetime(2026, 1, 12, 9), priority=Priority.LOW, tier=SlaTier.STANDARD
            ),
            "at",
        ),
        (lambda: Opened(at=mon(9), priority=wrong("asap"), tier=SlaTier.STANDARD), "priority"),
    ],
)
def test_invalid_policies_and_entries_are_refused_naming_the_field(
    build: object, field: str
) -> None:
    assert callable(build)
    with pytest.raises(ValidationError) as refused:
        build()
    assert refused.value.details == {"field": field}


@pytest.mark.parametrize(
    ("timeline", "now", "field"),
    [
        ([], mon(10), "timeline"),
        ([reply(mon(9), AGENT)], mon(10), "timeline"),
        ([opened(mon(9)), opened(mon(9, 5))], mon(10), "timeline"),
        ([opened(mon(9)), reply(mon(9, 30), AGENT), Solved(at=mon(9, 20))], mon(10), "timeline"),
        ([opened(mon(9))], mon(8), "now"),
        ([opened(mon(9))], datetime(2026, 1, 12, 10), "now"),
    ],
)
def test_an_unusable_timeline_or_now_is_refused_naming_the_field(
    timeline: list[TimelineEntry], now: datetime, field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        SlaClock(POLICY).evaluate(timeline, now=now)
    assert refused.value.details == {"field": field}
