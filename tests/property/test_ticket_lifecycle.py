"""Random command sequences against the Ticket aggregate and an independent model of its rules.

The model is a dataclass of plain values written from docs/status-model.md (plus the
documented refusals: closed is read-only, times never go backwards, customers write no internal
notes); it never calls the aggregate. For every command it predicts either the refusal code or the
events appended; after every step each ticket must agree with its model, count its events and
replay to itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from tests.builders import AGENT, AUTOMATION, CUSTOMER, OTHER_AGENT, T0, replayed
from ticketing.domain.errors import TicketingError
from ticketing.domain.ticket import KEEP, Ticket
from ticketing.domain.values import Actor, ActorKind, Priority, Status, Visibility

SYSTEM = Actor(ActorKind.SYSTEM, "sla-monitor")

# --- the model ------------------------------------------------------------------------------

WORKING = {"open", "pending", "on_hold"}
MOVES: dict[str, set[str]] = {
    # Work moves freely between the working statuses, never back to new; anything unsolved can
    # be solved; solved reopens (-> open) or is archived (-> closed); closed is terminal.
    "new": WORKING | {"solved"},
    "open": (WORKING - {"open"}) | {"solved"},
    "pending": (WORKING - {"pending"}) | {"solved"},
    "on_hold": (WORKING - {"on_hold"}) | {"solved"},
    "solved": {"open", "closed"},
    "closed": set(),
}
VALID_TAGS = ["vpn", "billing", "sla:breach", "v2.1_x-y"]
INVALID_TAGS = ["Not Valid", "", "-dash"]


class Refused(Exception):  # noqa: N818 - a model outcome, not an error of the code under test
    """The model's prediction that the aggregate refuses the command with `code`."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Model:
    """What docs/status-model.md says a ticket's state is after each command; no aggregate
    code used."""

    last_at: datetime
    priority: str
    category: str | None
    tags: set[str]
    status: str = "new"
    team: str | None = None
    agent: str | None = None
    resolution: str | None = None
    rating: tuple[int, str | None] | None = None
    reopen_count: int = 0
    comments: list[tuple[str | None, str]] = field(default_factory=list)
    """(body, visibility) of each comment in order; a redacted comment's body is None."""
    warned: set[tuple[str, int]] = field(default_factory=set)
    breached: set[tuple[str, int]] = field(default_factory=set)

    def sla_record(self, kind: str, metric: str, cycle: int) -> list[str]:
        """SLA records: once per metric cycle, no warning after a breach, accepted on closed
        tickets, at any time (measurements never move the ticket's time on)."""
        key = (metric, cycle)
        if key in self.breached or (kind == "warning" and key in self.warned):
            return []
        (self.warned if kind == "warning" else self.breached).add(key)
        return ["SlaWarningIssued" if kind == "warning" else "SlaBreached"]

    def _refuse_if_closed(self) -> None:
        if self.status == "closed":
            raise Refused("ticket_closed")

    def _stamp(self, when: datetime) -> None:
        """A change may be dated at or after the latest one, never before it."""
        if when < self.last_at:
            raise Refused("time_out_of_order")
        self.last_at = when

    def _move(self, target: str) -> str:
        """The event a status move records; solved -> open counts as a reopen."""
        if target not in MOVES[self.status]:
            raise Refused("invalid_transition")
        if target == "solved":
            event = "TicketResolved"
        elif target == "closed":
            event = "TicketClosed"
        elif self.status == "solved":
            event = "TicketReopened"
            self.reopen_count += 1
        else:
            event = "StatusChanged"
        self.status = target
        return event

    def categorize(self, category: str, when: datetime) -> list[str]:
        self._refuse_if_closed()
        if category == self.category:
            return []
        self._stamp(when)
        self.category = category
        return ["TicketCategorized"]

    def prioritize(self, priority: str, when: datetime) -> list[str]:
        self._refuse_if_closed()
        if priority == self.priority:
            return []
        self._stamp(when)
        self.priority = priority
        return ["TicketPrioritized"]

    def assign(self, team: Any, agent: Any, when: datetime) -> list[str]:
        self._refuse_if_closed()
        new_team = self.team if team is KEEP else team
        new_agent = self.agent if agent is KEEP else agent
        if (new_team, new_agent) == (self.team, self.agent):
            return []
        self._stamp(when)
        self.team, self.agent = new_team, new_agent
        events = ["TicketAssigned"]
        if self.status == "new" and new_agent is not None:
            events.append(self._move("open"))
        return events

    def comment(self, body: str, visibility: str, kind: str, when: datetime) -> list[str]:
        self._refuse_if_closed()
        if not body.strip():
            raise Refused("validation_error")
        if kind == "customer" and visibility == "internal":
            raise Refused("forbidden")
        self._stamp(when)
        self.comments.append((body, visibility))
        events = ["CommentAdded"]
        if visibility == "public" and (
            (kind == "agent" and self.status == "new")
            or (kind == "customer" and self.status in ("pending", "solved"))
        ):
            events.append(self._move("open"))
        return events

    def redact(self, number: int, when: datetime) -> list[str]:
        """Privacy outranks read-only: a closed ticket's comments can be redacted too."""
        if not 1 <= number <= len(self.comments):
            raise Refused("not_found")
        body, visibility = self.comments[number - 1]
        if body is None:
            return []
        self._stamp(when)
        self.comments[number - 1] = (None, visibility)
        return ["CommentRedacted"]

    def change_status(self, target: str, reason: str | None, when: datetime) -> list[str]:
        if target == self.status:
            return []
        self._refuse_if_closed()
        if target not in MOVES[self.status]:
            raise Refused("invalid_transition")
        self._stamp(when)
        if target == "solved":
            self.resolution = reason
        return [self._move(target)]

    def resolve(self, resolution: str | None, when: datetime) -> list[str]:
        if self.status == "solved" and resolution in (None, self.resolution):
            return []
        self._refuse_if_closed()
        # A solved ticket with a new resolution is not a move the table allows: reopen first.
        if "solved" not in MOVES[self.status]:
            raise Refused("invalid_transition")
        self._stamp(when)
        self.resolution = resolution
        return [self._move("solved")]

    def reopen(self, when: datetime) -> list[str]:
        self._refuse_if_closed()
        if self.status != "solved":
            raise Refused("invalid_transition")
        self._stamp(when)
        return [self._move("open")]

    def close(self, when: datetime) -> list[str]:
        if self.status == "closed":
            return []
        if "closed" not in MOVES[self.status]:
            raise Refused("invalid_transition")
        self._stamp(when)
        return [self._move("closed")]

    def rate(self, score: int, comment: str | None, when: datetime) -> list[str]:
        if not 1 <= score <= 5:
            raise Refused("validation_error")
        if self.status not in ("solved", "closed"):
            raise Refused("invalid_transition")
        if self.rating == (score, comment):
            return []
        self._stamp(when)
        self.rating = (score, comment)
        return ["TicketRated"]

    def tag(self, tags: list[str], when: datetime) -> list[str]:
        self._refuse_if_closed()
        if any(t not in VALID_TAGS for t in tags):
            raise Refused("validation_error")
        added = set(tags) - self.tags
        if not added:
            return []
        self._stamp(when)
        self.tags |= added
        return ["TicketTagged"]

    def untag(self, tags: list[str], when: datetime) -> list[str]:
        self._refuse_if_closed()
        if any(t not in VALID_TAGS for t in tags):
            raise Refused("validation_error")
        removed = set(tags) & self.tags
        if not removed:
            return []
        self._stamp(when)
        self.tags -= removed
        return ["TicketUntagged"]


# --- strategies -----------------------------------------------------------------------------

# Minutes after the ticket's latest change; about one in five goes backwards.
deltas = st.integers(min_value=-5, max_value=20)
actors = st.sampled_from([AGENT, OTHER_AGENT, CUSTOMER, AUTOMATION, Actor(ActorKind.AI, "bot")])
teams = st.sampled_from([KEEP, None, "network", "billing"])
agents = st.sampled_from([KEEP, None, "ana", "ben"])
tag_lists = st.lists(st.sampled_from(VALID_TAGS), max_size=3) | st.lists(
    st.sampled_from(VALID_TAGS + INVALID_TAGS), min_size=1, max_size=3
)
reasons = st.sampled_from([None, "fixed", "workaround"])
priorities = st.sampled_from(list(Priority))
categories = st.sampled_from([None, "incident", "usage"])
opening_tags = st.lists(st.sampled_from(VALID_TAGS), max_size=2)
# Half the tickets start new; the others move on at once, so short runs reach every status.
head_starts = st.sampled_from([None, None, None, None, *sorted(MOVES["new"])])


@dataclass
class Tracked:
    """One ticket under test, its model, and every event it has produced so far."""

    ticket: Ticket
    model: Model
    events: list[Any]

    def when(self, delta: int) -> datetime:
        return self.model.last_at + timedelta(minutes=delta)


class TicketMachine(RuleBasedStateMachine):
    """Opens tickets and sends them random commands, checking each against its model."""

    tickets: Bundle[Tracked] = Bundle("tickets")

    def __init__(self) -> None:
        super().__init__()
        self.tracked: list[Tracked] = []
        self.last_touched: Tracked | None = None
        self.commands = 0

    @initialize(
        target=tickets,
        priority=priorities,
        category=categories,
        tags=opening_tags,
        head_start=head_starts,
    )
    def open_ticket(
        self, priority: Priority, category: str | None, tags: list[str], head_start: str | None
    ) -> Tracked:
        return self.open(priority, category, tags, head_start)

    @rule(
        target=tickets,
        priority=priorities,
        category=categories,
        tags=opening_tags,
        head_start=head_starts,
    )
    def open_another_ticket(
        self, priority: Priority, category: str | None, tags: list[str], head_start: str | None
    ) -> Tracked:
        return self.open(priority, category, tags, head_start)

    def open(
        self, priority: Priority, category: str | None, tags: list[str], head_start: str | None
    ) -> Tracked:
        """Open a ticket and its model side by side, then give it its head start (if any)."""
        ticket = Ticket.open(
            account_id="acme",
            account_tier="business",
            requester="bob@acme.example",
            subject="VPN drops",
            actor=CUSTOMER,
            priority=priority,
            category=category,
            tags=tags,
            at=T0,
            command_id="open",
        )
        model = Model(last_at=T0, priority=str(priority), category=category, tags=set(tags))
        tracked = Tracked(ticket, model, list(ticket.collect_events()))
        self.tracked.append(tracked)
        self.last_touched = tracked
        if head_start is not None:
            self.change_status(tracked, Status(head_start), None, AGENT, 1)
        return tracked

    # --- the comparison at the heart of every rule ---------------------------------------

    def run(
        self,
        tracked: Tracked,
        predict: Callable[[Model], list[str]],
        command: Callable[[Ticket, str], None],
        actor: Actor,
        when: datetime,
    ) -> None:
        """Predict the outcome with a copy of the model, run the command, compare."""
        self.commands += 1
        self.last_touched = tracked
        command_id = f"cmd-{self.commands}"
        ticket = tracked.ticket
        expected_model = copy.deepcopy(tracked.model)
        expected_code: str | None = None
        expected_events: list[str] = []
        try:
            expected_events = predict(expected_model)
        except Refused as refusal:
            expected_code = refusal.code
        event(expected_code or ("no-op" if not expected_events else "accepted"))
        event(f"command on a {tracked.model.status} ticket")
        version = ticket.version

        try:
            command(ticket, command_id)
        except TicketingError as error:
            assert error.code == expected_code, f"refused with {error.code}, model expected " + (
                f"{expected_code}" if expected_code else f"success with {expected_events}"
            )
            assert ticket.collect_events() == []
            assert ticket.version == version
            return
        assert expected_code is None, f"accepted, but the model expected {expected_code}"

        events: list[Any] = list(ticket.collect_events())
        assert [type(e).__name__ for e in events] == expected_events
        assert ticket.version == version + len(events)
        for recorded in events:
            assert recorded.actor == actor.as_dict()
            assert recorded.occurred_at == when
            assert recorded.command_id == command_id
        tracked.events.extend(events)
        tracked.model = expected_model

    # --- rules ----------------------------------------------------------------------------

    @rule(tracked=tickets, team=teams, agent=agents, actor=actors, delta=deltas)
    def assign(self, tracked: Tracked, team: Any, agent: Any, actor: Actor, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.assign(team, agent, when),
            lambda t, cid: t.assign(team=team, agent=agent, actor=actor, at=when, command_id=cid),
            actor,
            when,
        )

    @rule(
        tracked=tickets,
        body=st.sampled_from(["thanks", "still broken", "ok", "", "  \n"]),
        visibility=st.sampled_from(list(Visibility)),
        actor=actors,
        delta=deltas,
    )
    def comment(
        self, tracked: Tracked, body: str, visibility: Visibility, actor: Actor, delta: int
    ) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.comment(body, str(visibility), str(actor.kind), when),
            lambda t, cid: t.add_comment(
                body, visibility=visibility, actor=actor, at=when, command_id=cid
            ),
            actor,
            when,
        )

    @rule(
        tracked=tickets,
        number=st.integers(min_value=1, max_value=4),
        actor=actors,
        delta=deltas,
    )
    def redact_comment(self, tracked: Tracked, number: int, actor: Actor, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.redact(number, when),
            lambda t, cid: t.redact_comment(
                f"c{number}", reason="privacy request", actor=actor, at=when, command_id=cid
            ),
            actor,
            when,
        )

    @rule(
        tracked=tickets,
        status=st.sampled_from(list(Status)),
        reason=reasons,
        actor=actors,
        delta=deltas,
    )
    def change_status(
        self, tracked: Tracked, status: Status, reason: str | None, actor: Actor, delta: int
    ) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.change_status(str(status), reason, when),
            lambda t, cid: t.change_status(
                status, reason=reason, actor=actor, at=when, command_id=cid
            ),
            actor,
            when,
        )

    @rule(tracked=tickets, data=st.data(), reason=reasons, actor=actors, delta=deltas)
    def move_along(
        self,
        tracked: Tracked,
        data: st.DataObject,
        reason: str | None,
        actor: Actor,
        delta: int,
    ) -> None:
        """A status change the model allows, so that random runs reach every status."""
        # Closing is left to the other rules: a closed ticket refuses everything after it.
        moves = sorted(MOVES[tracked.model.status] - {"closed"}) or ["closed"]
        status = data.draw(st.sampled_from(moves), label="status")
        self.change_status(tracked, Status(status), reason, actor, delta)

    @rule(tracked=tickets, resolution=reasons, actor=actors, delta=deltas)
    def resolve(self, tracked: Tracked, resolution: str | None, actor: Actor, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.resolve(resolution, when),
            lambda t, cid: t.resolve(resolution=resolution, actor=actor, at=when, command_id=cid),
            actor,
            when,
        )

    @rule(tracked=tickets, actor=actors, delta=deltas)
    def reopen(self, tracked: Tracked, actor: Actor, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.reopen(when),
            lambda t, cid: t.reopen(actor=actor, at=when, command_id=cid),
            actor,
            when,
        )

    @rule(tracked=tickets, actor=actors, delta=deltas)
    def close(self, tracked: Tracked, actor: Actor, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.close(when),
            lambda t, cid: t.close(actor=actor, at=when, command_id=cid),
            actor,
            when,
        )

    @rule(
        tracked=tickets,
        score=st.integers(min_value=-1, max_value=7),
        comment=st.sampled_from([None, "great", "slow"]),
        delta=deltas,
    )
    def rate(self, tracked: Tracked, score: int, comment: str | None, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.rate(score, comment, when),
            lambda t, cid: t.rate(score, comment=comment, actor=CUSTOMER, at=when, command_id=cid),
            CUSTOMER,
            when,
        )

    @rule(tracked=tickets, tags=tag_lists, actor=actors, delta=deltas)
    def tag(self, tracked: Tracked, tags: list[str], actor: Actor, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.tag(tags, when),
            lambda t, cid: t.tag(tags, actor=actor, at=when, command_id=cid),
            actor,
            when,
        )

    @rule(tracked=tickets, tags=tag_lists, actor=actors, delta=deltas)
    def untag(self, tracked: Tracked, tags: list[str], actor: Actor, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.untag(tags, when),
            lambda t, cid: t.untag(tags, actor=actor, at=when, command_id=cid),
            actor,
            when,
        )

    @rule(tracked=tickets, category=st.sampled_from(["incident", "usage", "account"]), delta=deltas)
    def categorize(self, tracked: Tracked, category: str, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.categorize(category, when),
            lambda t, cid: t.categorize(category, actor=AGENT, at=when, command_id=cid),
            AGENT,
            when,
        )

    @rule(tracked=tickets, priority=st.sampled_from(list(Priority)), delta=deltas)
    def prioritize(self, tracked: Tracked, priority: Priority, delta: int) -> None:
        when = tracked.when(delta)
        self.run(
            tracked,
            lambda m: m.prioritize(str(priority), when),
            lambda t, cid: t.prioritize(priority, actor=AGENT, at=when, command_id=cid),
            AGENT,
            when,
        )

    @rule(
        tracked=tickets,
        kind=st.sampled_from(["warning", "breach"]),
        metric=st.sampled_from(["first_reply", "next_reply", "resolution"]),
        cycle=st.integers(min_value=0, max_value=2),
        delta=st.integers(min_value=-600, max_value=600),
    )
    def record_sla(self, tracked: Tracked, kind: str, metric: str, cycle: int, delta: int) -> None:
        when = tracked.when(delta)  # a monitor's clock may be behind or ahead of the ticket's
        due = when - timedelta(minutes=5)

        def command(ticket: Ticket, command_id: str) -> None:
            cause: dict[str, Any] = {"actor": SYSTEM, "at": when, "command_id": command_id}
            if kind == "warning":
                ticket.record_sla_warning(
                    metric=metric, cycle=cycle, due_at=due, threshold=0.75, **cause
                )
            else:
                ticket.record_sla_breach(metric=metric, cycle=cycle, due_at=due, **cause)

        self.run(tracked, lambda m: m.sla_record(kind, metric, cycle), command, SYSTEM, when)

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def status_is_valid_and_as_modelled(self) -> None:
        for tracked in self.tracked:
            assert isinstance(tracked.ticket.status, Status)
            assert tracked.ticket.status == tracked.model.status

    @invariant()
    def state_is_as_modelled(self) -> None:
        for tracked in self.tracked:
            state, model = tracked.ticket.as_dict(), tracked.model
            assert (state["team"], state["agent"]) == (model.team, model.agent)
            assert state["tags"] == sorted(model.tags)
            assert (state["priority"], state["category"]) == (model.priority, model.category)
            assert state["resolution"] == model.resolution
            assert state["reopen_count"] == model.reopen_count
            rating = model.rating
            assert state["rating"] == (
                None if rating is None else {"score": rating[0], "comment": rating[1]}
            )
            assert [(c["body"], c["visibility"]) for c in state["comments"]] == model.comments
            assert [c["redacted"] for c in state["comments"]] == [
                body is None for body, _ in model.comments
            ]
            assert state["updated_at"] == model.last_at.isoformat()
            assert state["sla_breaches"] == [f"{m}#{c}" for m, c in sorted(model.breached)]

    @invariant()
    def version_counts_every_event(self) -> None:
        for tracked in self.tracked:
            events = tracked.events
            assert tracked.ticket.version == len(events)
            assert [e.originator_version for e in events] == list(range(1, len(events) + 1))

    @invariant()
    def replay_rebuilds_the_live_state(self) -> None:
        # Only the ticket the last step touched can have changed; teardown replays them all.
        if self.last_touched is not None:
            tracked = self.last_touched
            assert replayed(tracked.events).as_dict() == tracked.ticket.as_dict()

    def teardown(self) -> None:
        for tracked in self.tracked:
            assert replayed(tracked.events).as_dict() == tracked.ticket.as_dict()


TestTicketLifecycle = TicketMachine.TestCase
# Long runs reach the rarer paths (a customer reply on a solved ticket, a team-only routing of a
# new one) within the profile's example budget; about 5 s under the "dev" profile.
TestTicketLifecycle.settings = settings(stateful_step_count=200)
