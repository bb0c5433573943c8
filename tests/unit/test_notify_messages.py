"""What the notifier tells customers and webhooks about each event (pure rendering), fed with
the real event payloads of tickets driven through the in-memory command service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands import models as m
from commands.service import CommandService
from ticketing.workers.notify.config import CUSTOMER_EVENTS, CustomerConfig, WebhookConfig
from ticketing.workers.notify.messages import (
    Email,
    TicketFacts,
    customer_emails,
    email_key,
    fold_ticket,
    is_stale,
    redacted,
    reference,
    webhook_deliveries,
)

AGENT = m.ActorModel(kind="agent", id="ana")
CUSTOMER = m.ActorModel(kind="customer", id="bob@acme.example")
BOT = m.ActorModel(kind="ai", id="helper")
RULE = m.ActorModel(kind="automation", id="auto-ack")
SURVEY = "https://support.example.com/csat/{ticket_id}"
CUSTOMER_SETTINGS = CustomerConfig(survey_url=SURVEY, signature="Acme support")


class Story:
    """A ticket driven through the command service; every event it made, in order, and the
    notifier's facts about the ticket folded along."""

    def __init__(self, service: CommandService) -> None:
        self.service = service
        self.events: list[dict[str, Any]] = []
        self.ticket: TicketFacts | None = None
        reply = self.run(
            m.OpenTicket(account_id="acme", requester="bob@acme.example", subject="VPN drops")
        )
        self.ticket_id = str(reply.ticket_id)

    def run(self, command: m.Command) -> Any:
        reply = self.service.execute(command)
        assert reply.ok, reply.as_dict()
        self.events.extend(reply.events)
        return reply

    def emails(
        self,
        command: m.Command | None = None,
        *,
        customer: CustomerConfig = CUSTOMER_SETTINGS,
        wanted: tuple[str, ...] = CUSTOMER_EVENTS,
    ) -> list[Email]:
        """The e-mails the events `command` makes call for (the opening's, if None)."""
        start = len(self.events) if command is not None else 0
        if command is not None:
            self.run(command)
        sent: list[Email] = []
        for event in self.events[start:]:
            self.ticket = fold_ticket(event, self.ticket)
            sent.extend(customer_emails(event, self.ticket, customer, wanted))
        return sent


@pytest.fixture
def story(memory_service: CommandService) -> Story:
    reply = memory_service.execute(m.CreateAccount(account_id="acme", account_name="Acme"))
    assert reply.ok
    return Story(memory_service)


def sla_warning(story: Story, metric: str, cycle: int = 0) -> dict[str, Any]:
    last = story.events[-1]
    return {
        **{k: last[k] for k in ("aggregate_id", "occurred_at", "recorded_at", "command_id")},
        "type": "SlaWarningIssued",
        "version": last["version"] + 1,
        "actor": {"kind": "system", "id": "sla-monitor"},
        "metric": metric,
        "cycle": cycle,
        "due_at": last["occurred_at"],
        "threshold": 0.75,
    }


def test_an_opened_ticket_is_acknowledged_to_its_requester(story: Story) -> None:
    # When the ticket is opened
    [email] = story.emails()
    # Then the requester hears that it arrived, with a reference to the ticket
    assert email.to == "bob@acme.example"
    assert email.subject == f"[#{reference(story.ticket_id)}] We received your request: VPN drops"
    assert "VPN drops" in email.text
    assert email.text.rstrip().endswith(f"Ticket {reference(story.ticket_id)}")
    assert "Acme support" in email.text
    assert email.key == f"email:{story.ticket_id}:1:opened"


def test_an_agents_public_reply_is_mailed_with_its_text(story: Story) -> None:
    story.emails()
    # When an agent replies publicly
    [email] = story.emails(
        m.AddComment(ticket_id=story.ticket_id, body="Which client version?", actor=AGENT)
    )
    # Then the reply's text goes to the requester, keyed by the comment's event
    assert email.update == "public_reply"
    assert email.subject.endswith("Re: VPN drops")
    assert email.text.startswith("Which client version?\n")
    assert email.comment_id == "c1"
    assert email.key == f"email:{story.ticket_id}:2:public_reply"


def test_internal_notes_are_never_mailed(story: Story) -> None:
    story.emails()
    note = m.AddComment(
        ticket_id=story.ticket_id, body="MTU mismatch?", visibility="internal", actor=AGENT
    )
    assert story.emails(note) == []


def test_the_customers_own_comment_is_not_mailed_back(story: Story) -> None:
    story.emails()
    comment = m.AddComment(ticket_id=story.ticket_id, body="Still broken", actor=CUSTOMER)
    assert story.emails(comment) == []


def test_ai_and_automation_replies_are_mailed_only_when_configured(story: Story) -> None:
    story.emails()
    # Given the default: only agents' replies are mailed
    assert story.emails(m.AddComment(ticket_id=story.ticket_id, body="Try A", actor=BOT)) == []
    assert story.emails(m.AddComment(ticket_id=story.ticket_id, body="Got it", actor=RULE)) == []
    # When AI replies are allowed too
    with_ai = CustomerConfig(reply_authors=["agent", "ai"])
    [email] = story.emails(
        m.AddComment(ticket_id=story.ticket_id, body="Try B", actor=BOT), customer=with_ai
    )
    # Then they are mailed
    assert email.text.startswith("Try B")


def test_moving_to_pending_asks_for_the_customers_reply(story: Story) -> None:
    story.emails()
    story.emails(m.AssignTicket(ticket_id=story.ticket_id, team="tier1", agent="ana", actor=AGENT))
    [email] = story.emails(m.ChangeStatus(ticket_id=story.ticket_id, status="pending", actor=AGENT))
    assert email.update == "pending"
    assert "We need your reply: VPN drops" in email.subject
    assert "waiting for your reply" in email.text


def test_a_solved_ticket_is_announced_with_the_csat_survey_link(story: Story) -> None:
    story.emails()
    solve = m.ResolveTicket(ticket_id=story.ticket_id, resolution="MTU 1400", actor=AGENT)
    [email] = story.emails(solve)
    assert email.update == "solved"
    assert "Solved: VPN drops" in email.subject
    assert f"https://support.example.com/csat/{story.ticket_id}" in email.text
    assert "MTU 1400" not in email.text  # the resolution is written for the ticket


def test_without_a_survey_url_the_solved_mail_has_no_link(story: Story) -> None:
    story.emails()
    solve = m.ResolveTicket(ticket_id=story.ticket_id, actor=AGENT)
    [email] = story.emails(solve, customer=CustomerConfig())
    assert "http" not in email.text


def test_a_reply_sla_warning_says_still_working_once_per_cycle(story: Story) -> None:
    story.emails()
    first = sla_warning(story, "first_reply")
    ticket = fold_ticket(first, story.ticket)
    [email] = customer_emails(first, ticket, CUSTOMER_SETTINGS, CUSTOMER_EVENTS)
    assert "Still working on it: VPN drops" in email.subject
    # A second warning in the same cycle has the same key (the outbox keeps one), a new cycle not
    again = {**first, "version": first["version"] + 1, "threshold": 0.9}
    [repeat] = customer_emails(again, ticket, CUSTOMER_SETTINGS, CUSTOMER_EVENTS)
    assert repeat.key == email.key == f"email:{story.ticket_id}:still_working:first_reply:0"
    next_cycle = {**first, "metric": "next_reply", "cycle": 1}
    [later] = customer_emails(next_cycle, ticket, CUSTOMER_SETTINGS, CUSTOMER_EVENTS)
    assert later.key != email.key


def test_no_still_working_mail_for_resolution_warnings_or_while_waiting_on_the_customer(
    story: Story,
) -> None:
    story.emails()
    resolution = sla_warning(story, "resolution")
    assert customer_emails(resolution, story.ticket, CUSTOMER_SETTINGS, CUSTOMER_EVENTS) == []
    story.emails(m.AssignTicket(ticket_id=story.ticket_id, agent="ana", actor=AGENT))
    story.emails(m.ChangeStatus(ticket_id=story.ticket_id, status="pending", actor=AGENT))
    waiting = sla_warning(story, "next_reply", 1)
    assert customer_emails(waiting, story.ticket, CUSTOMER_SETTINGS, CUSTOMER_EVENTS) == []


def test_updates_switched_off_are_not_sent(story: Story) -> None:
    assert story.emails(wanted=("solved",)) == []
    solve = m.ResolveTicket(ticket_id=story.ticket_id, actor=AGENT)
    assert [e.update for e in story.emails(solve, wanted=("solved",))] == ["solved"]


def test_a_closed_ticket_and_an_unknown_ticket_get_nothing(story: Story) -> None:
    story.emails()
    story.emails(m.ResolveTicket(ticket_id=story.ticket_id, actor=AGENT))
    closing = m.CloseTicket(ticket_id=story.ticket_id, actor=AGENT)
    assert story.emails(closing) == []
    resolved = {**story.events[0], "type": "TicketResolved"}
    assert customer_emails(resolved, None, CUSTOMER_SETTINGS, CUSTOMER_EVENTS) == []


def test_a_redelivered_event_yields_the_same_message_and_key(story: Story) -> None:
    first = story.emails()
    story.ticket = None
    assert story.emails() == first
    assert email_key(story.events[0], "opened") == first[0].key


def test_imported_history_and_events_long_past_are_stale() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    day = timedelta(hours=24)

    def event(occurred: datetime, recorded: datetime) -> dict[str, str]:
        return {"occurred_at": occurred.isoformat(), "recorded_at": recorded.isoformat()}

    assert not is_stale(event(now, now), now, day)
    assert is_stale(event(now - timedelta(days=400), now), now, day)  # an import of history
    assert is_stale(event(now - timedelta(days=3), now - timedelta(days=3)), now, day)
    assert not is_stale(event(now - timedelta(hours=2), now - timedelta(hours=1)), now, day)


def test_webhooks_get_only_the_event_types_they_subscribed_to(story: Story) -> None:
    story.run(m.AddComment(ticket_id=story.ticket_id, body="Hello", actor=AGENT))
    hooks = [
        WebhookConfig(id="crm", url="http://h/x", secret="s", events=["TicketOpened"]),
        WebhookConfig(id="log", url="http://h/y", secret="s", events=["CommentAdded"]),
    ]
    deliveries = [d for e in story.events for d in webhook_deliveries(e, hooks)]
    assert [(d.webhook, d.event["type"]) for d in deliveries] == [
        ("crm", "TicketOpened"),
        ("log", "CommentAdded"),
    ]
    assert deliveries[0].key == f"webhook:crm:{story.ticket_id}:1"
    assert deliveries[1].body()["comment_id"] == "c1"


def test_redacting_blanks_the_comment_text_in_e_mails_and_webhook_bodies() -> None:
    email = {"to": "bob@acme.example", "text": "secret words", "comment_id": "c1"}
    hook = {"webhook": "crm", "event": {"type": "CommentAdded", "body": "secret words"}}
    assert redacted(email) == {**email, "text": "", "redacted": True}
    assert redacted(hook)["event"] == {"type": "CommentAdded", "body": ""}
