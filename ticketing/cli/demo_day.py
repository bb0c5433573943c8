"""A realistic, seeded day of support, issued as commands: several accounts and tiers, teams,
agents and channels; customer replies, pending, on-hold, reopens, ratings and a backlog."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from commands import models as m
from commands.replies import Reply

ACCOUNTS = (
    ("acme", "Acme Corp", "enterprise"),
    ("globex", "Globex", "business"),
    ("initech", "Initech", "standard"),
    ("umbrella", "Umbrella Health", "business"),
    ("hooli", "Hooli", "enterprise"),
)
TEAMS = {
    "network": ("ana", "ben"),
    "billing": ("chloe", "dev"),
    "platform": ("eli", "fay", "gus"),
}
CATEGORY_TEAM = {
    "incident": "platform",
    "technical": "network",
    "account": "billing",
    "usage": "platform",
    "feedback": "billing",
}
SUBJECTS = {
    "incident": ("API returns 502 for all requests", "Dashboard down since 09:00"),
    "technical": ("VPN drops every hour", "SSO login loops back to the start"),
    "account": ("Invoice shows the wrong VAT number", "Please add two seats to our plan"),
    "usage": ("How do I export tickets to CSV?", "Where are saved views configured?"),
    "feedback": ("Dark mode would be lovely", "The new editor is great"),
}
CHANNELS = ("email", "email", "email", "chat", "chat", "web", "phone", "slack", "api")
PRIORITIES = {
    "incident": "urgent",
    "technical": "high",
    "account": "normal",
    "usage": "normal",
    "feedback": "low",
}


@dataclass
class _Clock:
    now: datetime

    def advance(self, rng: random.Random, low: float, high: float) -> datetime:
        self.now += timedelta(minutes=rng.uniform(low, high))
        return self.now


DEMO_DAY = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
"""When the simulated day starts (its events carry times from then on)."""


def support_day(
    send: Callable[[m.Command], Reply],
    *,
    tickets: int = 80,
    seed: int = 7,
    day: datetime = DEMO_DAY,
) -> dict[str, int]:
    """Issue the day's commands through `send`; returns counts of what happened."""
    rng = random.Random(seed)
    counts = {"accounts": 0, "tickets": 0, "commands": 0, "reopened": 0, "rated": 0}

    def issue(command: m.Command) -> Reply:
        reply = send(command)
        counts["commands"] += 1
        if not reply.ok:
            raise RuntimeError(f"{command.name} failed: {reply.as_dict()}")
        return reply

    for account_id, name, tier in ACCOUNTS:
        issue(
            m.CreateAccount(
                account_id=account_id,
                account_name=name,
                tier=tier,
                actor={"kind": "system", "id": "onboarding"},
                command_id=f"demo-{seed}-account-{account_id}",
            )
        )
        counts["accounts"] += 1
    for number in range(tickets):
        opened_at = day + timedelta(minutes=rng.uniform(0, 9 * 60))
        for command in _ticket_story(rng, number, opened_at, seed, counts):
            issue(command)
        counts["tickets"] += 1
    return counts


def _ticket_story(  # noqa: PLR0915 - one story reads best top to bottom
    rng: random.Random, number: int, opened_at: datetime, seed: int, counts: dict[str, int]
) -> Iterator[m.Command]:
    """One ticket's commands in time order; the id comes from the OpenTicket command id."""
    from commands.command_log import ticket_id_for

    category = rng.choice(list(SUBJECTS))
    account_id = rng.choice(ACCOUNTS)[0]
    # Customers are known by their e-mail address: that is what makes a ticket theirs.
    customer = {"kind": "customer", "id": f"user{rng.randint(1, 9)}@{account_id}.example"}
    team = CATEGORY_TEAM[category]
    agent = {"kind": "agent", "id": rng.choice(TEAMS[team])}
    automation = {"kind": "automation", "id": "triage-rules"}
    clock = _Clock(opened_at)
    open_id = f"demo-{seed}-ticket-{number}"
    ticket = ticket_id_for(open_id)
    agent_opened = rng.random() < 0.15
    channel = "phone" if agent_opened else rng.choice(CHANNELS)

    def cmd(model: type[m.TicketCommand], actor: dict[str, str], **fields: Any) -> m.Command:
        return model(ticket_id=ticket, actor=actor, occurred_at=clock.now, **fields)

    yield m.OpenTicket(
        command_id=open_id,
        account_id=account_id,
        requester=customer["id"],
        subject=rng.choice(SUBJECTS[category]),
        description="Reported during the demo day.",
        channel=channel,
        actor=agent if agent_opened else customer,
        occurred_at=clock.now,
    )
    clock.advance(rng, 0.5, 5)
    yield cmd(m.CategorizeTicket, automation, category=category)
    yield cmd(m.PrioritizeTicket, automation, priority=PRIORITIES[category])
    clock.advance(rng, 1, 45)
    yield cmd(m.AssignTicket, automation, team=team, agent=agent["id"])
    if agent_opened:
        yield cmd(m.AddComment, agent, body="Logged from your call; we are on it.")
    clock.advance(rng, 2, 90)
    yield cmd(m.AddComment, agent, body="Thanks for reporting this. Looking into it now.")
    if rng.random() < 0.12:
        return  # still open at the end of the day: part of the backlog
    if rng.random() < 0.45:
        clock.advance(rng, 5, 60)
        yield cmd(m.AddComment, agent, body="Could you send a screenshot or a log?")
        yield cmd(m.ChangeStatus, agent, status="pending", reason="asked for details")
        clock.advance(rng, 10, 240)
        if rng.random() < 0.15:
            return  # the customer never answered: still pending
        yield cmd(m.AddComment, customer, body="Here it is, attached.")
    if rng.random() < 0.2:
        clock.advance(rng, 5, 30)
        yield cmd(m.AddComment, agent, body="Escalated to engineering.", visibility="internal")
        yield cmd(m.ChangeStatus, agent, status="on_hold", reason="waiting on engineering")
        clock.advance(rng, 30, 240)
        yield cmd(m.ChangeStatus, agent, status="open", reason="engineering answered")
    clock.advance(rng, 5, 120)
    yield cmd(m.ResolveTicket, agent, resolution="Fixed and verified with the customer.")
    if rng.random() < 0.15:
        clock.advance(rng, 10, 120)
        yield cmd(m.AddComment, customer, body="It is happening again.")
        counts["reopened"] += 1
        clock.advance(rng, 10, 90)
        yield cmd(m.AddComment, agent, body="Applied a permanent fix.")
        yield cmd(m.ResolveTicket, agent, resolution="Permanent fix applied.")
    if rng.random() < 0.7:
        clock.advance(rng, 5, 180)
        score = rng.choices((5, 4, 3, 2, 1), weights=(50, 25, 10, 8, 7))[0]
        yield cmd(m.RateTicket, customer, score=score, comment="Thanks!" if score >= 4 else None)
        counts["rated"] += 1
    if rng.random() < 0.5:
        clock.advance(rng, 30, 240)
        yield cmd(m.CloseTicket, {"kind": "system", "id": "auto-close"})
