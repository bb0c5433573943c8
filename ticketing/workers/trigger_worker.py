"""The triggers process (`ticketing run triggers`): the rules of TICKETING_TRIGGERS applied to
every ticket event, their commands and notifications queued in the automation outbox.

The worker keeps its own copy of every ticket's queue row (folded with the queue projection's
`fold_ticket`, so conditions see exactly the fields the queue shows, as they stand after the
event) and evaluates the rules once per ticket event, in stream order. Rows, outbox actions and
the stream position commit together (see `outbox.py`), and every command id is deterministic
(see `triggers.py`), so a redelivered batch or a restart from an empty store queues the same
ids again and the command service appends nothing the second time.

Account tiers. A ticket's row carries its account's tier from `TicketOpened`; an
`AccountTierChanged` rewrites the tier of every row of that account, as the queue store does,
so later events see the new tier. A tier change is an account event, not a ticket event: it
fires no rule by itself (rules listen to ticket events only).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from projections.queue.store import change_tiers, fold_ticket
from projections.stream_event import StreamEvent
from projections.where_in import fetch_where_in
from ticketing.settings import Settings
from ticketing.workers.command_delivery import command_action_body, command_deliverers
from ticketing.workers.outbox import Action
from ticketing.workers.runner import Deliver, configured, configured_or_idle, run_automation
from ticketing.workers.triggers import (
    EVENT_TYPES,
    Notification,
    Outcome,
    Rule,
    TriggerRulesError,
    evaluate,
    load_rules,
)

NAME = "triggers"

SCHEMA = """
CREATE TABLE IF NOT EXISTS trigger_tickets (
    ticket_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    row_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trigger_tickets_account ON trigger_tickets (account_id);
CREATE TABLE IF NOT EXISTS trigger_accounts (
    account_uuid TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    tier TEXT NOT NULL
);
"""

_TICKET_EVENTS = frozenset(EVENT_TYPES)


class TriggerWorker:
    """Folds ticket rows and turns each ticket event's rule outcomes into outbox actions."""

    name = NAME
    schema = SCHEMA

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)

    def fold(self, events: Sequence[StreamEvent], db: sqlite3.Connection) -> list[Action]:
        tickets = _load_rows(
            db, {e.payload["aggregate_id"] for e in events if e.payload["type"] in _TICKET_EVENTS}
        )
        actions: list[Action] = []
        for event in events:
            payload = event.payload
            kind = payload["type"]
            if kind in _TICKET_EVENTS:
                fold_ticket(tickets, payload)
                row = tickets.get(payload["aggregate_id"])
                # Only an event that was just folded is evaluated: a row at another version
                # means the event was seen already (or its ticket was never opened).
                if row is not None and row["version"] == payload["version"]:
                    outcomes = evaluate(self.rules, payload, row)
                    actions.extend(outcome_action(outcome, row) for outcome in outcomes)
            elif kind in ("AccountRegistered", "AccountTierChanged"):
                _fold_account(db, tickets, payload)
        db.executemany(
            "INSERT OR REPLACE INTO trigger_tickets VALUES (?, ?, ?)",
            [
                (ticket_id, row["account_id"], json.dumps(row, sort_keys=True))
                for ticket_id, row in tickets.items()
            ],
        )
        return actions

    def tick(self, db: sqlite3.Connection, now: datetime) -> list[Action]:
        return []  # triggers react to events only


def outcome_action(outcome: Outcome, row: Mapping[str, Any]) -> Action:
    """A rule's outcome as an outbox action: commands by command id, notifications by key."""
    if isinstance(outcome, Notification):
        return Action(
            outcome.key,
            "channel",
            {
                "channel": outcome.channel,
                "subject": f"[{outcome.rule_id}] {row.get('subject') or outcome.event_type}",
                "text": outcome.message,
                "ticket_id": str(outcome.ticket_id),
            },
        )
    # As the client sends it: unset fields stay unset (an AssignTicket that sets only the team
    # keeps the agent), the command id always travels.
    payload = outcome.model_dump(mode="json", exclude_unset=True)
    payload["command_id"] = outcome.command_id
    return Action(outcome.command_id, "command", command_action_body(outcome.name, payload))


def _load_rows(db: sqlite3.Connection, ticket_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    rows = fetch_where_in(
        db,
        "SELECT ticket_id, row_json FROM trigger_tickets WHERE ticket_id IN ({marks})",
        list(ticket_ids),
    )
    return {ticket_id: json.loads(text) for ticket_id, text in rows}


def _fold_account(
    db: sqlite3.Connection, tickets: dict[str, dict[str, Any]], payload: Mapping[str, Any]
) -> None:
    """Remember an account's id; on a tier change, rewrite the tier of all its tickets."""
    key = payload["aggregate_id"]
    if payload["type"] == "AccountRegistered":
        db.execute(
            "INSERT OR REPLACE INTO trigger_accounts VALUES (?, ?, ?)",
            (key, payload["account_id"], payload["tier"]),
        )
        return
    found = db.execute(
        "SELECT account_id FROM trigger_accounts WHERE account_uuid = ?", (key,)
    ).fetchone()
    if found is None:
        return  # an account never registered on the stream: no ticket can belong to it
    account_id, tier = found[0], payload["tier"]
    db.execute("UPDATE trigger_accounts SET tier = ? WHERE account_uuid = ?", (tier, key))
    db.execute(
        "UPDATE trigger_tickets SET row_json = json_set(row_json, '$.account_tier', ?) "
        "WHERE account_id = ?",
        (tier, account_id),
    )
    change_tiers(tickets, [(tier, account_id)])  # rows of this batch are written after the fold


def channel_deliverers(settings: Settings) -> dict[str, Deliver]:
    """The "channel" deliverer for the notifier's configuration (TICKETING_NOTIFIER); without
    one it records each notification as dropped, saying why."""
    from ticketing.workers.notify.channels import channel_deliverer
    from ticketing.workers.notify.config import load_notifier_config

    return {"channel": channel_deliverer(load_notifier_config(settings))}


async def run(settings: Settings, stop: asyncio.Event, say: Callable[[str], None]) -> None:
    """`ticketing run triggers`: idle without a rules file; a bad file ends the process with
    one error line."""
    from ticketing.workers.notify.config import NotifierConfigError

    path = settings.triggers_file
    rules = await configured_or_idle(
        path,
        lambda file: load_rules(file, categories=settings.categories),
        TriggerRulesError,
        code="invalid_rules",
        stop=stop,
        say=say,
        missing="triggers: no rules file (set TICKETING_TRIGGERS to a TOML rules file); idle",
    )
    if rules is None:
        return
    channels = configured(
        "invalid_notifier", lambda: channel_deliverers(settings), NotifierConfigError
    )
    if settings.notifier_file is None and any(rule.then.notify for rule in rules):
        say("triggers: no notifier configuration (TICKETING_NOTIFIER); notifications are dropped")

    def deliverers(nc: Any) -> dict[str, Deliver]:
        return {**command_deliverers(nc), **channels}

    await run_automation(
        settings,
        stop,
        say,
        worker=TriggerWorker(rules),
        deliverers=deliverers,
        description=f"{len(rules)} trigger rules from {path}",
    )
