"""The triggers worker folded through a real `AutomationStore` file with synthetic payloads:
outcomes become outbox actions with their deterministic keys, redeliveries queue nothing new,
conditions see the row after the event (account tier changes included)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.stream_event import StreamEvent
from ticketing.settings import Settings
from ticketing.workers import parse_rules
from ticketing.workers.outbox import AutomationStore
from ticketing.workers.runner import WorkerConfigError
from ticketing.workers.trigger_worker import TriggerWorker, run
from ticketing.workers.triggers import load_rules

EXAMPLE = Path(__file__).parents[2] / "mappings" / "triggers.example.toml"
TICKET = "4cd73e7a-8d23-54bd-9edc-cb342a22bfec"
OTHER_TICKET = "0f3b8a52-0c4e-5d0c-9d36-6a3c8e1f2b11"
ACCOUNT = "6a1f1a0e-2f4e-5b8e-8f0c-3d1f6f1c7a55"
AT = "2026-03-02T09:00:00+00:00"
CUSTOMER = {"kind": "customer", "id": "bob@acme.example"}
AGENT = {"kind": "agent", "id": "ana"}


# --- builders ----------------------------------------------------------------------------


def opened(ticket: str = TICKET, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "TicketOpened",
        "aggregate_id": ticket,
        "version": 1,
        "occurred_at": AT,
        "recorded_at": AT,
        "actor": CUSTOMER,
        "command_id": f"open-{ticket}",
        "account_id": "acme",
        "account_tier": "business",
        "requester": "bob@acme.example",
        "subject": "VPN drops every hour",
        "description": "",
        "channel": "web",
        "priority": "normal",
        "category": None,
        "tags": [],
        "follow_up_of": None,
    }
    return payload | fields


def later(event_type: str, version: int, ticket: str = TICKET, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": event_type,
        "aggregate_id": ticket,
        "version": version,
        "occurred_at": AT,
        "recorded_at": AT,
        "actor": AGENT,
        "command_id": f"cmd-{ticket}-{version}",
    }
    return payload | fields


def account(event_type: str, version: int, **fields: Any) -> dict[str, Any]:
    return later(event_type, version, ACCOUNT, **fields)


def stream(*payloads: dict[str, Any], start: int = 1) -> list[StreamEvent]:
    return [StreamEvent(start + i, p) for i, p in enumerate(payloads)]


def outbox(store: AutomationStore) -> list[tuple[str, str, dict[str, Any]]]:
    rows = store.db.execute("SELECT key, kind, body FROM outbox ORDER BY seq").fetchall()
    return [(key, kind, json.loads(body)) for key, kind, body in rows]


@pytest.fixture
def example_store(tmp_path: Path) -> Iterator[AutomationStore]:
    store = AutomationStore(tmp_path / "triggers.sqlite", TriggerWorker(load_rules(EXAMPLE)))
    yield store
    store.close()


def store_with(tmp_path: Path, *raw_rules: dict[str, Any], name: str = "t") -> AutomationStore:
    rules = parse_rules({"rules": list(raw_rules)})
    return AutomationStore(tmp_path / f"{name}.sqlite", TriggerWorker(rules))


TAG_URGENT = {
    "id": "tag-urgent",
    "on": "TicketPrioritized",
    "if": {"priority": "urgent"},
    "then": {"tag": ["hot"]},
}
ENTERPRISE_NOTE = {
    "id": "enterprise-note",
    "on": "TicketPrioritized",
    "if": {"account_tier": "enterprise"},
    "then": {"add_internal_note": "enterprise ticket, priority {priority}"},
}


# --- outcomes to actions -----------------------------------------------------------------


def test_an_event_queues_its_commands_and_notifications_with_the_position(
    example_store: AutomationStore,
) -> None:
    # Given: an enterprise outage, which the example's first rules act on
    event = opened(account_tier="enterprise", subject="Checkout outage")
    # When
    example_store.apply(stream(event, start=7))
    # Then
    items = outbox(example_store)
    commands = {
        body["name"]: (key, body["payload"]) for key, kind, body in items if kind == "command"
    }
    assert set(commands) == {
        "categorize_ticket",
        "prioritize_ticket",
        "assign_ticket",
        "tag_ticket",
        "add_comment",
    }
    for key, payload in commands.values():
        assert key == payload["command_id"]
        assert key.startswith("trigger:1:") and f":{TICKET}:1:" in key
        assert payload["actor"]["kind"] == "automation"
        assert payload["ticket_id"] == TICKET
    assert commands["assign_ticket"][1]["actor"]["id"] == "urgent-to-tier2"
    assert "agent" not in commands["assign_ticket"][1]  # unset fields stay unset: agent kept
    assert commands["prioritize_ticket"][1]["priority"] == "urgent"
    [(key, _, body)] = [item for item in items if item[1] == "channel"]
    assert key.endswith(":notify0")
    assert body == {
        "channel": "oncall",
        "subject": "[enterprise-outage] Checkout outage",
        "text": f"Urgent outage for acme: Checkout outage ({TICKET})",
        "ticket_id": TICKET,
    }
    assert example_store.position() == 7


def test_a_redelivered_batch_queues_nothing_and_a_rebuilt_store_the_same_keys(
    example_store: AutomationStore, tmp_path: Path
) -> None:
    # Given
    events = stream(opened(account_tier="enterprise", subject="Checkout outage"))
    example_store.apply(events)
    first = outbox(example_store)
    # When: the batch is delivered again, and a fresh store reads the stream from the start
    example_store.apply(events)
    rebuilt = AutomationStore(tmp_path / "rebuilt.sqlite", TriggerWorker(load_rules(EXAMPLE)))
    rebuilt.apply(events)
    # Then
    assert outbox(example_store) == first
    assert [key for key, _, _ in outbox(rebuilt)] == [key for key, _, _ in first]
    rebuilt.close()


def test_conditions_see_the_ticket_after_the_event(tmp_path: Path) -> None:
    # Given
    store = store_with(tmp_path, TAG_URGENT)
    # When: an agent raises the priority in a later batch
    store.apply(stream(opened()))
    store.apply(
        stream(
            later("TicketPrioritized", 2, priority="urgent", previous_priority="normal"), start=2
        )
    )
    # Then
    [(key, kind, body)] = outbox(store)
    assert kind == "command"
    assert key == f"trigger:1:tag-urgent:{TICKET}:2:tag"
    assert body["payload"]["tags"] == ["hot"]
    store.close()


def test_an_event_seen_before_or_of_an_unknown_ticket_is_not_evaluated(tmp_path: Path) -> None:
    # Given
    store = store_with(tmp_path, TAG_URGENT)
    raised = later("TicketPrioritized", 2, priority="urgent", previous_priority="normal")
    # When: the same ticket event appears twice, and another ticket's event has no opening
    store.apply(stream(opened(), raised, raised))
    store.apply(
        stream(
            later(
                "TicketPrioritized", 2, OTHER_TICKET, priority="urgent", previous_priority="normal"
            ),
            start=4,
        )
    )
    # Then
    assert len(outbox(store)) == 1
    store.close()


@pytest.mark.parametrize("same_batch", [True, False])
def test_an_account_tier_change_reaches_its_tickets_rows(tmp_path: Path, same_batch: bool) -> None:
    # Given: an account registered as business, with an open ticket
    store = store_with(tmp_path, ENTERPRISE_NOTE)
    registered = account("AccountRegistered", 1, account_id="acme", name="Acme", tier="business")
    before = stream(registered, opened())
    upgraded = account("AccountTierChanged", 2, tier="enterprise", previous_tier="business")
    raised = later("TicketPrioritized", 2, priority="high", previous_priority="normal")
    # When: the account becomes enterprise, then the ticket changes
    if same_batch:
        store.apply([*before, *stream(upgraded, raised, start=3)])
    else:
        store.apply(before)
        store.apply(stream(upgraded, start=3))
        store.apply(stream(raised, start=4))
    # Then: the rule saw the new tier
    [(_, _, body)] = outbox(store)
    assert body["payload"]["body"] == "enterprise ticket, priority high"
    row = store.db.execute("SELECT row_json FROM trigger_tickets").fetchone()[0]
    assert json.loads(row)["account_tier"] == "enterprise"
    store.close()


def test_a_tier_change_of_another_account_leaves_the_ticket_alone(tmp_path: Path) -> None:
    # Given
    store = store_with(tmp_path, ENTERPRISE_NOTE)
    other = "9b8c7d6e-0000-5000-8000-000000000001"
    store.apply(
        stream(
            account("AccountRegistered", 1, account_id="acme", name="Acme", tier="business"),
            later(
                "AccountRegistered", 1, other, account_id="globex", name="Globex", tier="business"
            ),
            opened(),
            later("AccountTierChanged", 2, other, tier="enterprise", previous_tier="business"),
            later("TicketPrioritized", 2, priority="high", previous_priority="normal"),
        )
    )
    # Then
    assert outbox(store) == []
    store.close()


# --- the process entry -------------------------------------------------------------------


def test_a_bad_rules_file_is_one_clear_error(tmp_path: Path) -> None:
    # Given
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nid = "x"\non = "TicketExploded"\nthen.tag = ["a"]\n')
    settings = Settings(home=tmp_path / "home", triggers_file=rules)
    # When
    with pytest.raises(WorkerConfigError) as raised:
        asyncio.run(run(settings, asyncio.Event(), print))
    # Then
    assert raised.value.code == "invalid_rules"
    assert "rule 'x'" in raised.value.message and "TicketExploded" in raised.value.message


def test_without_a_rules_file_the_process_says_so_and_idles(tmp_path: Path) -> None:
    # Given
    said: list[str] = []

    async def start_and_stop() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run(Settings(home=tmp_path), stop, said.append))
        await asyncio.sleep(0)  # let it start
        stop.set()
        await asyncio.wait_for(task, 5)

    # When
    asyncio.run(start_and_stop())
    # Then
    assert said == ["triggers: no rules file (set TICKETING_TRIGGERS to a TOML rules file); idle"]
