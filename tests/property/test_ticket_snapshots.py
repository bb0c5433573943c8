"""A ticket restored from a snapshot plus the events after it equals the ticket replayed from all
its events, for random histories and a random snapshot point (the lifecycle state machine of
test_ticket_lifecycle.py, with one more rule). The snapshot goes through the application's real
mapper (the JSON transcoder), so what is compared is what a store would give back."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from tests.builders import replayed
from tests.property.test_ticket_lifecycle import TicketMachine, Tracked
from tests.snapshot_checks import canonical_state
from ticketing.store.application import TicketingApplication
from ticketing.store.snapshots import LazyList, TicketSnapshot, bind_lazy_lists

APP = TicketingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def restored(events: list[Any], point: int) -> Any:
    """The ticket from a snapshot at version `point` through the store's encoding, then the
    events after it; its comment thread loads from the events up to `point` on first need."""
    snapshot = TicketSnapshot.take(replayed(events[:point]))
    decoded = APP.mapper.to_domain_event(APP.mapper.to_stored_event(snapshot))
    ticket = decoded.mutate(None)
    bind_lazy_lists(ticket, lambda: replayed(events[:point]))
    for event in events[point:]:
        ticket = event.mutate(ticket)
    return ticket


class SnapshotMachine(TicketMachine):
    """The lifecycle machine, also checking snapshot + tail against a full replay."""

    @rule(tracked=TicketMachine.tickets, point=st.integers(min_value=0, max_value=10**6))
    def snapshot_and_tail_equal_a_full_replay(self, tracked: Tracked, point: int) -> None:
        events = tracked.events
        cut = 1 + point % len(events)
        ticket = restored(events, cut)
        full = replayed(events)
        # Length and the next comment id work without loading the thread.
        assert len(ticket.comments) == len(full.comments)
        if isinstance(ticket.comments, LazyList):
            assert not ticket.comments.loaded or any(
                type(e).__name__ == "CommentRedacted" for e in events[cut:]
            )
        assert canonical_state(ticket) == canonical_state(full)
        assert ticket.as_dict() == full.as_dict() == tracked.ticket.as_dict()


TestSnapshotLifecycle = SnapshotMachine.TestCase
TestSnapshotLifecycle.settings = settings(stateful_step_count=120)
