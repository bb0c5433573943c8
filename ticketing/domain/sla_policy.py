"""SLA policies and the SLA clock: reply and resolution targets measured in business time.

A policy (`SlaPolicy`) gives targets in minutes per account tier x priority (`SlaTargets`,
falling back as a whole to `default_targets` when a pair has no entry), a `BusinessCalendar`
(`CALENDAR_TIME` for calendar-hours policies) and, per metric, the statuses that pause it.
`SlaClock(policy).evaluate(timeline, now=...)` replays a ticket's timeline (`Opened`,
`StatusChanged`, `PublicReply`, `PriorityChanged`, `Solved`, `Reopened`, `Closed`) and reports
each metric as of `now`; entries after `now` are ignored, so the same call answers "as of" any
time. Nothing reads a real clock: `now` is always passed in.

Definitions
-----------
- **first reply**: from `Opened` to the first public reply by an agent.
- **next reply**: from a customer's public reply to the next public agent reply. A cycle starts
  at a customer reply only when no agent reply is owed: after the first reply, and when the
  previous cycle has been answered; further customer replies before the answer do not restart
  it (it measures from the oldest unanswered customer reply). Each answered customer reply
  after that starts a new cycle; the report shows the latest and lists all.
- **resolution**: from `Opened` to `Solved`. A reopen resumes it from the business time already
  elapsed (it does not restart), and a later solve ends it again; it is achieved if the last
  solve comes before the due instant.
- Only agent replies answer; automation and AI replies are reported elsewhere and ignored here.
  Solving a ticket fulfils any reply clock still running (there is nothing left to answer).
- **elapsed** is business time (the policy's calendar) during which the metric ran: a metric
  does not run while the ticket is in one of its pause statuses (by default resolution pauses in
  `pending` and `on_hold`, first and next reply in `pending`) nor while it is solved or closed.
- **due_at** is the earliest instant at which elapsed would reach the target if the metric kept
  running; pausing therefore pushes it later by the business time spent paused.
- **breached** when `now >= due_at` before the metric is achieved: an achievement at the due
  instant itself is late. A breach is permanent; `breached_at` is the due instant. A late
  achievement keeps the state `breached` and also records `achieved_at`.
- **priority change** re-targets every clock not yet achieved (a solved ticket's resolution
  clock is re-targeted when it is reopened): elapsed time is kept and due_at is recomputed
  from the new target. If elapsed already reaches the new target, the clock breaches at the
  instant of the change (never retroactively). The tier is the one recorded at opening.
- A metric whose target is `None` for the ticket's tier x priority is not measured (reported as
  `None`); it is still timed in the background so a later priority change can give it one.

Report fields per metric (`MetricClock`): target, `due_at` (UTC; `None` when paused or
achieved, the breach instant when breached), elapsed business seconds, `paused`, `state`
(running | paused | achieved | breached), `achieved_at`, `breached_at`.

Which policy version a ticket uses
----------------------------------
`SlaClock` measures against exactly the policy (and so calendar) version it is given. The rule
for callers: a ticket is measured against the policy version in force when it was opened, and
that version pins its calendar version; publishing a new version of either never moves the due
times of tickets already open, and tickets opened afterwards use the new version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from ticketing.domain.business_hours import ZERO, BusinessCalendar
from ticketing.domain.errors import ValidationError
from ticketing.domain.status_rules import ENTERABLE_WORKING_STATUSES
from ticketing.domain.values import IDENTIFIER_PATTERN, ActorKind, Priority, SlaTier, Status


class SlaMetric(StrEnum):
    """What an SLA measures; see the module docstring for each definition."""

    FIRST_REPLY = "first_reply"
    NEXT_REPLY = "next_reply"
    RESOLUTION = "resolution"


class ClockState(StrEnum):
    """A metric's state as of the evaluation time."""

    RUNNING = "running"
    PAUSED = "paused"
    ACHIEVED = "achieved"
    BREACHED = "breached"


PAUSABLE_STATUSES = frozenset({Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD})
"""Statuses a policy may pause a metric in; solved and closed stop every metric anyway."""

DEFAULT_PAUSE_STATUSES: Mapping[SlaMetric, frozenset[Status]] = MappingProxyType(
    {
        SlaMetric.FIRST_REPLY: frozenset({Status.PENDING}),
        SlaMetric.NEXT_REPLY: frozenset({Status.PENDING}),
        SlaMetric.RESOLUTION: frozenset({Status.PENDING, Status.ON_HOLD}),
    }
)
"""Waiting on the customer pauses everything; waiting on a third party pauses resolution only,
since the customer is still owed replies meanwhile."""

_STOPPED = frozenset({Status.SOLVED, Status.CLOSED})


@dataclass(frozen=True)
class SlaTargets:
    """Targets in whole minutes of business time; `None` means the metric is not measured."""

    first_reply: int | None = None
    next_reply: int | None = None
    resolution: int | None = None

    def __post_init__(self) -> None:
        for metric in SlaMetric:
            minutes = getattr(self, metric.value)
            if minutes is None:
                continue
            if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
                raise ValidationError(
                    f"{metric.value} must be a positive number of minutes or None, got {minutes!r}",
                    field=metric.value,
                )

    def minutes(self, metric: SlaMetric) -> int | None:
        """The target of one metric."""
        value: int | None = getattr(self, SlaMetric(metric).value)
        return value


@dataclass(frozen=True)
class SlaPolicy:
    """One version of a named SLA policy: targets per tier x priority, a calendar, pauses.

    `targets` maps `(tier, priority)` to the targets for that pair; a pair without an entry
    uses `default_targets` as a whole. `pause_statuses` overrides the defaults per metric.
    """

    name: str
    version: int
    calendar: BusinessCalendar
    default_targets: SlaTargets
    targets: Mapping[tuple[SlaTier, Priority], SlaTargets] = field(default_factory=dict)
    pause_statuses: Mapping[SlaMetric, frozenset[Status]] = field(
        default_factory=lambda: DEFAULT_PAUSE_STATUSES
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not IDENTIFIER_PATTERN.match(self.name):
            raise ValidationError(
                f"policy name must be a short identifier, got {self.name!r}", field="name"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValidationError(
                f"version must be a positive integer, got {self.version!r}", field="version"
            )
        if not isinstance(self.calendar, BusinessCalendar):
            raise ValidationError("calendar must be a BusinessCalendar", field="calendar")
        if not isinstance(self.default_targets, SlaTargets):
            raise ValidationError("default_targets must be SlaTargets", field="default_targets")
        object.__setattr__(self, "targets", MappingProxyType(_checked_targets(self.targets)))
        object.__setattr__(
            self, "pause_statuses", MappingProxyType(_checked_pauses(self.pause_statuses))
        )

    def targets_for(self, tier: SlaTier | str, priority: Priority | str) -> SlaTargets:
        """The targets of one tier x priority, or the policy's defaults."""
        return self.targets.get((SlaTier(tier), Priority(priority)), self.default_targets)

    def target(self, metric: SlaMetric, tier: SlaTier, priority: Priority) -> timedelta | None:
        """One metric's target as business time, or `None` when it is not measured."""
        minutes = self.targets_for(tier, priority).minutes(metric)
        return None if minutes is None else timedelta(minutes=minutes)

    def pauses(self, metric: SlaMetric, status: Status) -> bool:
        """Whether `metric` stands still while the ticket is in `status`."""
        return status in _STOPPED or status in self.pause_statuses[metric]


# --- the timeline a clock reads -------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    at: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.at, datetime) or self.at.utcoffset() is None:
            raise ValidationError("at must be a time-zone-aware datetime", field="at")
        object.__setattr__(self, "at", self.at.astimezone(UTC))


@dataclass(frozen=True)
class Opened(_Entry):
    """The ticket was opened (status `new`) with this priority, for an account of this tier."""

    priority: Priority
    tier: SlaTier

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "priority", _enum(Priority, self.priority, "priority"))
        object.__setattr__(self, "tier", _enum(SlaTier, self.tier, "tier"))


@dataclass(frozen=True)
class StatusChanged(_Entry):
    """A move between working statuses (open, pending, on_hold); not the event of that name."""

    to: Status

    def __post_init__(self) -> None:
        super().__post_init__()
        status = _enum(Status, self.to, "to")
        if status not in ENTERABLE_WORKING_STATUSES:
            raise ValidationError(
                f"status changes move to open, pending or on_hold; use Solved, Reopened or "
                f"Closed for {status}",
                field="to",
            )
        object.__setattr__(self, "to", status)


@dataclass(frozen=True)
class PublicReply(_Entry):
    """A public comment; only `agent` and `customer` replies affect the clocks."""

    by_kind: ActorKind

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "by_kind", _enum(ActorKind, self.by_kind, "by_kind"))


@dataclass(frozen=True)
class PriorityChanged(_Entry):
    """The ticket's priority changed; running clocks are re-targeted."""

    priority: Priority

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "priority", _enum(Priority, self.priority, "priority"))


@dataclass(frozen=True)
class Solved(_Entry):
    """The ticket was solved (from any working status)."""


@dataclass(frozen=True)
class Reopened(_Entry):
    """solved -> open."""


@dataclass(frozen=True)
class Closed(_Entry):
    """solved -> closed; nothing follows."""


TimelineEntry = Opened | StatusChanged | PublicReply | PriorityChanged | Solved | Reopened | Closed


# --- the clock ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricClock:
    """One metric's clock as of the evaluation time; see the module docstring."""

    metric: SlaMetric
    state: ClockState
    target_minutes: int
    started_at: datetime
    due_at: datetime | None
    elapsed_seconds: float
    paused: bool
    achieved_at: datetime | None
    breached_at: datetime | None
    cycle: int = 0
    """Which cycle of the metric: 0 for first reply and resolution, 0, 1, 2… for next reply."""


@dataclass(frozen=True)
class SlaReport:
    """Every metric of one ticket as of `evaluated_at`; `None` where a metric is not measured
    (no target, or no next-reply cycle yet)."""

    policy_name: str
    policy_version: int
    evaluated_at: datetime
    first_reply: MetricClock | None
    next_reply: MetricClock | None
    resolution: MetricClock | None
    next_reply_cycles: tuple[MetricClock, ...] = ()

    def by_metric(self) -> dict[SlaMetric, MetricClock | None]:
        """The three current clocks keyed by metric."""
        return {
            SlaMetric.FIRST_REPLY: self.first_reply,
            SlaMetric.NEXT_REPLY: self.next_reply,
            SlaMetric.RESOLUTION: self.resolution,
        }


@dataclass
class _Cycle:
    """Working state of one metric cycle while the timeline is replayed."""

    metric: SlaMetric
    started_at: datetime
    target: timedelta | None
    elapsed: timedelta = ZERO
    running_since: datetime | None = None
    achieved_at: datetime | None = None
    breached_at: datetime | None = None
    number: int = 0

    @property
    def active(self) -> bool:
        """Not achieved yet (a reopen makes a solved ticket's resolution active again)."""
        return self.achieved_at is None


class SlaClock:
    """Replays a ticket's timeline against one policy version; pure, so any `now` works."""

    def __init__(self, policy: SlaPolicy) -> None:
        self.policy = policy
        self.calendar = policy.calendar

    def evaluate(self, timeline: Sequence[TimelineEntry], *, now: datetime) -> SlaReport:
        """Each metric's clock as of `now`; timeline entries after `now` are ignored."""
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise ValidationError("now must be a time-zone-aware datetime", field="now")
        now = now.astimezone(UTC)
        opened = _checked_timeline(timeline)
        if now < opened.at:
            raise ValidationError("now is before the ticket was opened", field="now")
        run = _Run(self.policy, opened)
        for entry in timeline[1:]:
            if entry.at > now:
                break
            run.apply(entry)
        run.advance(now)
        first = self._report(run.first, now)
        resolution = self._report(run.resolution, now)
        cycles = tuple(r for c in run.next_cycles if (r := self._report(c, now)) is not None)
        latest = run.next_cycles[-1] if run.next_cycles else None
        return SlaReport(
            policy_name=self.policy.name,
            policy_version=self.policy.version,
            evaluated_at=now,
            first_reply=first,
            next_reply=None if latest is None else self._report(latest, now),
            resolution=resolution,
            next_reply_cycles=cycles,
        )

    def _report(self, cycle: _Cycle, now: datetime) -> MetricClock | None:
        if cycle.target is None:
            return None
        paused = cycle.active and cycle.running_since is None
        due_at: datetime | None = None
        if cycle.breached_at is not None:
            state, due_at = ClockState.BREACHED, cycle.breached_at
        elif not cycle.active:
            state = ClockState.ACHIEVED
        elif paused:
            state = ClockState.PAUSED
        else:
            state = ClockState.RUNNING
            due_at = self.calendar.add_business_time(now, cycle.target - cycle.elapsed)
        return MetricClock(
            metric=cycle.metric,
            state=state,
            target_minutes=int(cycle.target / timedelta(minutes=1)),
            started_at=cycle.started_at,
            due_at=due_at,
            elapsed_seconds=cycle.elapsed.total_seconds(),
            paused=paused,
            achieved_at=cycle.achieved_at,
            breached_at=cycle.breached_at,
            cycle=cycle.number,
        )


class _Run:
    """The replay of one timeline: ticket status, priority and the cycles of every metric."""

    def __init__(self, policy: SlaPolicy, opened: Opened) -> None:
        self.policy = policy
        self.calendar = policy.calendar
        self.tier = opened.tier
        self.priority = opened.priority
        self.status = Status.NEW
        self.first = self._start(SlaMetric.FIRST_REPLY, opened.at)
        self.resolution = self._start(SlaMetric.RESOLUTION, opened.at)
        self.next_cycles: list[_Cycle] = []

    def _start(self, metric: SlaMetric, at: datetime) -> _Cycle:
        cycle = _Cycle(metric, at, self.policy.target(metric, self.tier, self.priority))
        if not self.policy.pauses(metric, self.status):
            cycle.running_since = at
        return cycle

    def _open_cycles(self) -> list[_Cycle]:
        cycles = [self.first, self.resolution, *self.next_cycles[-1:]]
        return [c for c in cycles if c.active]

    def _open_reply_cycles(self) -> list[_Cycle]:
        return [c for c in (self.first, *self.next_cycles[-1:]) if c.active]

    def advance(self, moment: datetime) -> None:
        """Accrue business time up to `moment` on every running clock, noting any breach."""
        for cycle in self._open_cycles():
            since = cycle.running_since
            if since is None:
                continue
            accrued = self.calendar.business_time_between(since, moment)
            if (
                cycle.breached_at is None
                and cycle.target is not None
                and cycle.elapsed + accrued >= cycle.target
            ):
                cycle.breached_at = self.calendar.add_business_time(
                    since, cycle.target - cycle.elapsed
                )
            cycle.elapsed += accrued
            cycle.running_since = moment

    def apply(self, entry: TimelineEntry) -> None:
        at = entry.at
        self.advance(at)
        match entry:
            case StatusChanged():
                self.status = entry.to
            case PublicReply(by_kind=ActorKind.AGENT):
                for cycle in self._open_reply_cycles():
                    _achieve(cycle, at)
            case PublicReply(by_kind=ActorKind.CUSTOMER):
                if not self._open_reply_cycles():
                    cycle = self._start(SlaMetric.NEXT_REPLY, at)
                    cycle.number = len(self.next_cycles)
                    self.next_cycles.append(cycle)
            case PriorityChanged():
                self.priority = entry.priority
                for cycle in self._open_cycles():
                    self._retarget(cycle, at)
            case Solved():
                self.status = Status.SOLVED
                for cycle in self._open_cycles():
                    _achieve(cycle, at)
            case Reopened():
                self.status = Status.OPEN
                self.resolution.achieved_at = None
                self._retarget(self.resolution, at)
            case Closed():
                self.status = Status.CLOSED
        self._pause_or_resume(at)

    def _retarget(self, cycle: _Cycle, at: datetime) -> None:
        cycle.target = self.policy.target(cycle.metric, self.tier, self.priority)
        if cycle.breached_at is None and cycle.target is not None and cycle.elapsed >= cycle.target:
            cycle.breached_at = at

    def _pause_or_resume(self, at: datetime) -> None:
        for cycle in self._open_cycles():
            paused = self.policy.pauses(cycle.metric, self.status)
            if paused:
                cycle.running_since = None
            elif cycle.running_since is None:
                cycle.running_since = at


def _achieve(cycle: _Cycle, at: datetime) -> None:
    cycle.achieved_at = at
    cycle.running_since = None


def _checked_timeline(timeline: Sequence[TimelineEntry]) -> Opened:
    if not timeline or not isinstance(timeline[0], Opened):
        raise ValidationError("a timeline starts with Opened", field="timeline")
    previous = timeline[0].at
    for index, entry in enumerate(timeline[1:], start=1):
        if isinstance(entry, Opened):
            raise ValidationError(f"entry {index}: a ticket opens only once", field="timeline")
        if entry.at < previous:
            raise ValidationError(
                f"entry {index} is dated before the entry it follows", field="timeline"
            )
        previous = entry.at
    return timeline[0]


def _checked_targets(
    targets: Mapping[tuple[SlaTier, Priority], SlaTargets],
) -> dict[tuple[SlaTier, Priority], SlaTargets]:
    checked = {}
    for key, value in targets.items():
        try:
            tier, priority = key
            pair = (SlaTier(tier), Priority(priority))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"targets are keyed by (tier, priority), got {key!r}", field="targets"
            ) from exc
        if not isinstance(value, SlaTargets):
            raise ValidationError(f"targets[{key!r}] must be SlaTargets", field="targets")
        checked[pair] = value
    return checked


def _checked_pauses(
    pauses: Mapping[SlaMetric, frozenset[Status]],
) -> dict[SlaMetric, frozenset[Status]]:
    checked = dict(DEFAULT_PAUSE_STATUSES)
    for metric, statuses in pauses.items():
        try:
            key = SlaMetric(metric)
            values = frozenset(Status(s) for s in statuses)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"pause_statuses: {exc}", field="pause_statuses") from exc
        if not values <= PAUSABLE_STATUSES:
            raise ValidationError(
                f"{key} can pause only in {sorted(PAUSABLE_STATUSES)}", field="pause_statuses"
            )
        checked[key] = values
    return checked


_E = TypeVar("_E", bound=StrEnum)


def _enum(kind: type[_E], value: object, name: str) -> _E:
    message = f"{name}: {value!r} is not a valid {kind.__name__}"
    if not isinstance(value, str):
        raise ValidationError(message, field=name)
    try:
        return kind(value)
    except ValueError as exc:
        raise ValidationError(message, field=name) from exc
