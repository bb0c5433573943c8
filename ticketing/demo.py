"""`ticketing demo`: a scripted walk through a ticket's life, so a newcomer sees the core work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from commands import models as m
from commands.replies import Reply
from commands.service import CommandService
from ticketing import output
from ticketing.domain.events import event_payload

AGENT = {"kind": "agent", "id": "ana"}
CUSTOMER = {"kind": "customer", "id": "bob"}


def walk_through_a_ticket(service: CommandService, say: Callable[[str], None]) -> UUID:
    """Open, triage, converse, solve, rate and close one ticket; return its id."""

    def run(step: str, command: m.Command) -> Reply:
        reply = service.execute(command)
        if not reply.ok:
            raise RuntimeError(f"demo step {step!r} failed: {reply.as_dict()}")
        changes = ", ".join(e["type"] for e in reply.events) or "no change"
        say(f"  {step:<44} -> v{reply.version}: {changes}")
        return reply

    say("A ticket's life, one command at a time:")
    if not service.account_exists("acme"):
        run(
            "register account acme (business tier)",
            m.CreateAccount(
                account_id="acme", account_name="Acme Corp", tier="business", actor=AGENT
            ),
        )
    opened = run(
        "customer opens a ticket by email",
        m.OpenTicket(
            account_id="acme",
            requester="bob@acme.example",
            subject="VPN drops every hour",
            description="Since Monday the VPN disconnects hourly.",
            channel="email",
            actor=CUSTOMER,
        ),
    )
    ticket = UUID(str(opened.ticket_id))
    steps: list[tuple[str, dict[str, Any], type[m.TicketCommand]]] = [
        ("triage: category technical", {"category": "technical"}, m.CategorizeTicket),
        ("triage: priority high", {"priority": "high"}, m.PrioritizeTicket),
        ("route to team network, agent ana", {"team": "network", "agent": "ana"}, m.AssignTicket),
        (
            "agent asks for logs (public reply)",
            {"body": "Could you send the client log?"},
            m.AddComment,
        ),
        ("agent waits on the customer", {"status": "pending"}, m.ChangeStatus),
    ]
    for step, fields, command in steps:
        run(step, command(ticket_id=ticket, actor=AGENT, **fields))
    run(
        "customer replies (reopens to open)",
        m.AddComment(ticket_id=ticket, body="Log attached.", actor=CUSTOMER),
    )
    run(
        "internal note for the team",
        m.AddComment(
            ticket_id=ticket,
            body="MTU mismatch on the gateway.",
            visibility="internal",
            actor=AGENT,
        ),
    )
    run(
        "agent solves it",
        m.ResolveTicket(ticket_id=ticket, resolution="Gateway MTU set to 1400.", actor=AGENT),
    )
    run(
        "customer rates 5/5",
        m.RateTicket(ticket_id=ticket, score=5, comment="Fast and clear", actor=CUSTOMER),
    )
    run(
        "ticket is closed (archived, still replayable)",
        m.CloseTicket(ticket_id=ticket, actor=AGENT),
    )
    say("")
    say("Its full history, replayed from the event store:")
    say(output.events_table([event_payload(e) for e in service.app.events.get(ticket)]))
    say("")
    say("Current state:")
    say(output.ticket_card(service.load_ticket(ticket).as_dict()))
    return ticket
