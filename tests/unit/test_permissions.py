"""The permission table, cell by cell, through the real command service on the in-memory store.

For every command and every actor kind, a command that the domain would accept is sent as that
actor by a principal that may speak for it; the table's cell alone decides whether it is
`forbidden`. Ownership, grants and the time gate are checked with the same commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from commands import models as m
from commands.permissions import READ_TICKET, TABLE, Rule, may_read
from commands.replies import Reply
from commands.service import CommandService, ownership_of
from ticketing.domain.values import Actor, ActorKind
from ticketing.principals import BUILT_IN, LOCAL, Principal, Principals
from ticketing.store.application import TicketingApplication

CUSTOMER_ID = "bob@acme.example"
ACTOR_IDS = {
    ActorKind.CUSTOMER: CUSTOMER_ID,
    ActorKind.AGENT: "ana",
    ActorKind.SYSTEM: "importer",
    ActorKind.AUTOMATION: "rule-1",
    ActorKind.AI: "triage",
    ActorKind.API: "crm",
}
POLICY = {"default": {"first_reply": 60, "resolution": 480}}
CALENDAR = {"time_zone": "UTC", "weekly_hours": {"mon": [["09:00", "17:00"]]}}
NOW = datetime.now(UTC)


def principal(*, accounts: tuple[str, ...] = ("acme",)) -> Principal:
    """A service principal that may act as anyone but reserved actors, with no grant."""
    return Principal("svc", role="service", act_as=("*",), accounts=accounts)


def admin_free_principal() -> Principal:
    return Principal("svc", role="service", act_as=("*",), accounts=("acme",))


class World:
    """A store with an account, a solved ticket of the customer's and a comment on it."""

    def __init__(self) -> None:
        self.service = CommandService(
            TicketingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        )
        self.ok(m.CreateAccount(account_id="acme", account_name="Acme"))
        self.ok(m.CreateAccount(account_id="globex", account_name="Globex"))
        self.ok(m.PublishCalendar(calendar_id="office", definition=CALENDAR))
        self.ok(m.PublishSlaPolicy(policy_id="default", definition=POLICY))
        self.ticket = self.open("acme", CUSTOMER_ID)
        self.ok(m.AddComment(ticket_id=self.ticket, body="note", actor=self.agent))
        self.ok(m.ResolveTicket(ticket_id=self.ticket, actor=self.agent))

    agent = m.ActorModel(kind="agent", id="ana")

    def ok(self, command: m.Command) -> Reply:
        reply = self.service.execute(command)
        assert reply.ok, reply.error
        return reply

    def open(self, account: str, requester: str) -> UUID:
        reply = self.ok(
            m.OpenTicket(account_id=account, requester=requester, subject="VPN", actor=self.agent)
        )
        assert reply.ticket_id is not None
        return UUID(reply.ticket_id)


def valid_command(name: str, world: World, actor: m.ActorModel) -> m.Command:
    """A command named `name` that the domain accepts on `world`'s ticket."""
    t = world.ticket
    build: dict[str, Callable[[], m.Command]] = {
        "open_ticket": lambda: m.OpenTicket(
            account_id="acme", requester=CUSTOMER_ID, subject="Again"
        ),
        "categorize_ticket": lambda: m.CategorizeTicket(ticket_id=t, category="technical"),
        "prioritize_ticket": lambda: m.PrioritizeTicket(ticket_id=t, priority="high"),
        "assign_ticket": lambda: m.AssignTicket(ticket_id=t, team="network", agent="ana"),
        "add_comment": lambda: m.AddComment(ticket_id=t, body="still broken"),
        "redact_comment": lambda: m.RedactComment(ticket_id=t, comment_id="c1", reason="gdpr"),
        "change_status": lambda: m.ChangeStatus(ticket_id=t, status="open"),
        "resolve_ticket": lambda: m.ResolveTicket(ticket_id=world.open("acme", "x@acme.example")),
        "reopen_ticket": lambda: m.ReopenTicket(ticket_id=t),
        "close_ticket": lambda: m.CloseTicket(ticket_id=t),
        "rate_ticket": lambda: m.RateTicket(ticket_id=t, score=5),
        "tag_ticket": lambda: m.TagTicket(ticket_id=t, tags=["vpn"]),
        "untag_ticket": lambda: m.UntagTicket(ticket_id=t, tags=["vpn"]),
        "create_account": lambda: m.CreateAccount(account_id="initech", account_name="I"),
        "change_account_tier": lambda: m.ChangeAccountTier(account_id="acme", tier="business"),
        "rename_account": lambda: m.RenameAccount(account_id="acme", account_name="Acme Inc"),
        "record_sla_warning": lambda: m.RecordSlaWarning(
            ticket_id=t, metric="resolution", due_at=NOW, threshold=0.75
        ),
        "record_sla_breach": lambda: m.RecordSlaBreach(
            ticket_id=t, metric="resolution", due_at=NOW
        ),
        "publish_sla_policy": lambda: m.PublishSlaPolicy(
            policy_id="default", definition={"default": {"first_reply": 30}}
        ),
        "publish_calendar": lambda: m.PublishCalendar(calendar_id="night", definition=CALENDAR),
        "join_team": lambda: m.JoinTeam(agent_id="ana", team="network"),
        "leave_team": lambda: m.LeaveTeam(agent_id="ana", team="network"),
        "set_agent_availability": lambda: m.SetAgentAvailability(
            agent_id="ana", availability="away"
        ),
        "set_agent_capacity": lambda: m.SetAgentCapacity(agent_id="ana", capacity=3),
    }
    return build[name]().model_copy(update={"actor": actor})


COMMAND_CELLS = [(name, kind) for name in TABLE if name != READ_TICKET for kind in ActorKind]


def test_the_table_covers_every_command_and_every_actor_kind() -> None:
    assert set(TABLE) == set(m.COMMAND_TYPES) | {READ_TICKET}
    assert all(set(row) == set(ActorKind) for row in TABLE.values())


@pytest.mark.parametrize(
    ("name", "kind"), COMMAND_CELLS, ids=[f"{n}-{k}" for n, k in COMMAND_CELLS]
)
def test_each_cell_of_the_table_decides_alone(name: str, kind: ActorKind) -> None:
    # Given: a principal holding every grant, serving the customer's account
    world = World()
    sender = Principal(
        "svc",
        role="service",
        act_as=("*",),
        accounts=("acme",),
        grants=frozenset({"admin", "import"}),
    )
    actor = m.ActorModel(kind=kind, id=ACTOR_IDS[kind])
    if name.startswith("record_sla") and kind is ActorKind.SYSTEM:
        sender = Principal("sla-monitor", role="worker", act_as=("system:sla-monitor",))
        actor = m.ActorModel(kind=kind, id="sla-monitor")
    command = valid_command(name, world, actor)
    # When
    reply = world.service.execute(command, sender)
    # Then
    rule = TABLE[name][kind]
    if rule is Rule.DENY or (rule is Rule.SLA_MONITOR and kind is not ActorKind.SYSTEM):
        assert reply.error is not None and reply.error.code == "forbidden", reply
        assert reply.error.details["command"] == name
    else:
        assert reply.ok, (rule, reply.error)


@pytest.mark.parametrize(
    "name",
    [n for n, row in TABLE.items() if Rule.ADMIN in row.values()],
)
def test_policies_tiers_accounts_and_redaction_need_the_admin_or_auditor_grant(name: str) -> None:
    world = World()
    without = admin_free_principal()
    command = valid_command(name, world, world.agent)
    before = world.service.app.recorder.max_notification_id()
    reply = world.service.execute(command, without)
    assert reply.error is not None and reply.error.code == "forbidden"
    assert reply.error.details["missing_grant"] == "admin|auditor"
    assert world.service.app.recorder.max_notification_id() == before  # nothing changed
    for grant in ("admin", "auditor"):
        granted = Principal("svc", role="service", act_as=("*",), grants=frozenset({grant}))
        fresh = World()
        assert fresh.service.execute(valid_command(name, fresh, fresh.agent), granted).ok


@pytest.mark.parametrize("name", ["add_comment", "reopen_ticket", "rate_ticket"])
def test_customers_act_only_on_their_own_tickets(name: str) -> None:
    world = World()
    other = m.ActorModel(kind="customer", id="eve@acme.example")
    owner = m.ActorModel(kind="customer", id=CUSTOMER_ID)
    sender = principal()
    refused = world.service.execute(valid_command(name, world, other), sender)
    assert refused.error is not None and refused.error.code == "forbidden"
    assert refused.error.details["missing_grant"] == "ownership"
    assert world.service.execute(valid_command(name, world, owner), sender).ok


def test_a_customer_opens_tickets_only_for_accounts_the_principal_serves() -> None:
    world = World()
    customer = m.ActorModel(kind="customer", id="bob@globex.example")
    command = m.OpenTicket(
        account_id="globex", requester="bob@globex.example", subject="Hi", actor=customer
    )
    reply = world.service.execute(command, principal(accounts=("acme",)))
    assert reply.error is not None and reply.error.code == "forbidden"
    assert reply.error.details["missing_grant"] == "accounts globex"
    assert world.service.execute(command, principal(accounts=("globex",))).ok


def test_a_principal_may_act_only_as_the_actors_it_is_granted() -> None:
    world = World()
    caller = Principals.built_in().get("caller")
    assert caller is not None
    for actor in (
        m.ActorModel(kind="system", id="sla-monitor"),
        m.ActorModel(kind="automation", id="router"),
        m.ActorModel(kind="system", id="importer"),
    ):
        reply = world.service.execute(
            m.PrioritizeTicket(ticket_id=world.ticket, priority="high", actor=actor), caller
        )
        assert reply.error is not None and reply.error.code == "forbidden", actor
        assert reply.error.details["missing_grant"] == f"act_as {actor.kind}:{actor.id}"


def test_a_wildcard_never_matches_another_workers_reserved_actor() -> None:
    triggers = Principals.built_in().get("triggers")
    assert triggers is not None
    assert triggers.may_act_as(Actor(ActorKind.AUTOMATION, "escalate-vip"))
    assert not triggers.may_act_as(Actor(ActorKind.AUTOMATION, "router"))
    assert not triggers.may_act_as(Actor(ActorKind.SYSTEM, "sla-monitor"))


def test_a_command_naming_no_actor_acts_as_the_principal_itself() -> None:
    world = World()
    caller = Principals.built_in().get("caller")
    assert caller is not None
    reply = world.service.execute(
        m.PrioritizeTicket(ticket_id=world.ticket, priority="urgent"), caller
    )
    assert reply.ok
    assert reply.events[0]["actor"] == {"kind": "api", "id": "caller"}


def test_only_the_import_grant_dates_commands_into_the_past() -> None:
    world = World()
    past = datetime.now(UTC) - timedelta(days=30)
    command = m.TagTicket(ticket_id=world.ticket, tags=["old"], occurred_at=past)
    refused = world.service.execute(command, admin_free_principal())
    assert refused.error is not None and refused.error.code == "forbidden"
    assert refused.error.details == {**refused.error.details, "missing_grant": "import"}
    importer = Principals.built_in().get("importer")
    assert importer is not None
    # the ticket's latest change is NOW, so the domain now judges the time, not the gate
    judged = world.service.execute(command, importer)
    assert judged.error is not None and judged.error.code == "time_out_of_order"


def test_nobody_dates_commands_into_the_future_beyond_the_clock_skew() -> None:
    world = World()
    now = datetime.now(UTC)
    for sender in (LOCAL, Principals.built_in().get("importer")):
        assert sender is not None
        late = m.TagTicket(
            ticket_id=world.ticket, tags=["x"], occurred_at=now + timedelta(minutes=6)
        )
        reply = world.service.execute(late, sender)
        assert reply.error is not None and reply.error.code == "validation_error"
        assert reply.error.details["field"] == "occurred_at"
    within = m.TagTicket(ticket_id=world.ticket, tags=["y"], occurred_at=now + timedelta(minutes=4))
    assert world.service.execute(within, LOCAL).ok


def test_reading_a_ticket_follows_the_same_table() -> None:
    world = World()
    ticket = ownership_of(world.service.load_ticket(world.ticket))
    sender = principal()
    assert may_read(sender, Actor(ActorKind.CUSTOMER, CUSTOMER_ID), ticket)
    assert not may_read(sender, Actor(ActorKind.CUSTOMER, "eve@acme.example"), ticket)
    assert may_read(sender, Actor(ActorKind.AGENT, "ana"), ticket)
    assert not may_read(
        principal(accounts=("globex",)), Actor(ActorKind.CUSTOMER, CUSTOMER_ID), ticket
    )


def test_every_built_in_principal_has_a_nats_role() -> None:
    from ticketing.nats.roles import permissions_for

    for each in BUILT_IN:
        assert permissions_for(each).publish, each.name


def test_an_importer_may_create_the_accounts_its_history_names_but_a_caller_may_not() -> None:
    world = World()
    importer, caller = Principals.built_in().get("importer"), Principals.built_in().get("caller")
    assert importer is not None and caller is not None
    command = m.CreateAccount(account_id="initech", account_name="Initech")
    refused = world.service.execute(command, caller)
    assert refused.error is not None and refused.error.code == "forbidden"
    assert refused.error.details["missing_grant"] == "admin|auditor|import"
    assert world.service.execute(command, importer).ok
    tier = m.ChangeAccountTier(account_id="initech", tier="enterprise")
    assert world.service.execute(tier, importer).error is not None
