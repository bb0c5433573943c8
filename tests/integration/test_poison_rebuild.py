"""A poison event in the store (one no projection can apply) stops `rebuild` with one error line
naming it, and `verify projections` reports a projection held behind it as stuck.

The event is written through the domain and the store, past the command boundary (which
refuses such values): the read side must name what it cannot apply whatever wrote it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from commands import models as m
from commands.service import CommandService
from replay.rebuild import published_count
from tests.processes import run_cli
from ticketing.domain.ticket import Ticket
from ticketing.domain.values import Actor, ActorKind
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = [pytest.mark.integration]

END_OF_TIME = datetime(9999, 12, 31, 20, 0, tzinfo=UTC)
EXAMPLE_POLICY = Path(__file__).parents[2] / "mappings" / "sla.example.toml"


def ticketing(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, *args, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def service(home: Path) -> Iterator[CommandService]:
    service = build_command_service(Settings(home=home))
    yield service
    service.app.close()


def open_ticket(service: CommandService, subject: str) -> UUID:
    reply = service.execute(
        m.OpenTicket(account_id="acme", requester="bob@acme.example", subject=subject)
    )
    assert reply.ok, reply.as_dict()
    assert reply.ticket_id is not None
    return UUID(str(reply.ticket_id))


def write_poison_ticket(service: CommandService, pinned_like: UUID) -> None:
    """A ticket opened at 9999-12-31T20:00Z and pinned to the business-hours policy `pinned_like`
    is pinned to: its SLA clock cannot be computed (the calendar overflows the year 9999)."""
    pin = next(
        e for e in service.app.events.get(pinned_like) if type(e).__name__ == "SlaPolicyApplied"
    )
    actor = Actor(ActorKind.SYSTEM, "test")
    ticket = Ticket.open(
        account_id="acme",
        account_tier="business",
        requester="mallory@acme.example",
        subject="from the end of time",
        actor=actor,
        at=END_OF_TIME,
    )
    ticket.apply_sla_policy(
        policy_id=pin.policy_id,
        policy_version=pin.policy_version,
        calendar_id=pin.calendar_id,
        calendar_version=pin.calendar_version,
        actor=actor,
        at=END_OF_TIME,
    )
    service.app.save(ticket)


@pytest.fixture
def poisoned(home: Path, service: CommandService) -> int:
    """Account, the example policy, two good tickets, the poison, one more good ticket; the
    queue and analytics projections built (by rebuild) up to just before the poison. Returns
    the poison's stream sequence (its `SlaPolicyApplied`)."""
    reply = service.execute(
        m.CreateAccount(account_id="acme", account_name="Acme", tier="business")
    )
    assert reply.ok, reply.as_dict()
    published = ticketing(home, "sla", "publish", str(EXAMPLE_POLICY))
    assert published.returncode == 0, published.stderr
    first = open_ticket(service, "VPN drops hourly")
    open_ticket(service, "Printer on fire")
    for projection in ("queue", "analytics"):
        built = ticketing(home, "rebuild", projection)
        assert built.returncode == 0, built.stderr
    before = ticketing(home, "verify", "projections")
    assert before.returncode == 0, before.stdout + before.stderr
    built_upto = published_count(service.app)
    write_poison_ticket(service, first)
    open_ticket(service, "After the poison")
    # the projections hold events 1..N; the poison is TicketOpened N+1, SlaPolicyApplied N+2
    return built_upto + 2


@pytest.mark.parametrize("projection", ["queue", "analytics"])
def test_rebuild_meeting_a_poison_event_fails_with_one_line_naming_it(
    home: Path, poisoned: int, projection: str
) -> None:
    # When the projection is rebuilt from the poisoned store
    result = ticketing(home, "rebuild", projection)
    # Then it fails with one error line naming the event, and no traceback
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(
        f"error: event_not_applied: {projection} cannot apply stream sequence {poisoned} "
        "(SlaPolicyApplied, aggregate "
    ), result.stderr
    assert "OverflowError" in errors[0]
    assert "Traceback" not in result.stderr
    # And the live file is the one built before, not a half-built one
    assert not list(home.glob("*.building*"))


def test_verify_projections_reports_a_projection_stuck_behind_a_poison_event(
    home: Path, poisoned: int
) -> None:
    # When both projections, built up to the poison, are verified against the store
    result = ticketing(home, "verify", "projections", "--json")
    # Then both are reported stuck at the poison, and the command fails
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error: projection_stuck: queue: cannot apply stream sequence")
    checks = {c["projection"]: c for c in json.loads(result.stdout)}
    for projection in ("queue", "analytics"):
        check = checks[projection]
        assert check["ok"] is False
        assert check["drift_count"] == 0
        assert check["position"] == poisoned - 2
        assert check["stuck"].startswith(
            f"cannot apply stream sequence {poisoned} (SlaPolicyApplied"
        ), check
