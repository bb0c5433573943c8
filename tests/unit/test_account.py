"""Rules of the Account aggregate: registration, tier and name changes, replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.builders import AGENT, T0, at, replayed
from ticketing.domain.account import Account, account_uuid
from ticketing.domain.events import AccountRegistered, AccountRenamed, AccountTierChanged
from ticketing.domain.values import SlaTier


def collected(account: Account) -> list[Any]:
    """`collect_events()`, typed loosely because each event class has its own fields."""
    return list(account.collect_events())


def registered_account(tier: SlaTier = SlaTier.STANDARD) -> Account:
    """A fresh account with its registration event already collected."""
    account = Account.register(
        account_id="acme", name="Acme Corp", tier=tier, actor=AGENT, at=T0, command_id="reg-1"
    )
    account.collect_events()
    return account


def test_registering_an_account_records_its_tier_and_who_did_it() -> None:
    # Given / When
    account = Account.register(
        account_id="acme",
        name="Acme Corp",
        tier=SlaTier.BUSINESS,
        actor=AGENT,
        at=T0,
        command_id="reg-1",
    )
    # Then
    (event,) = collected(account)
    assert isinstance(event, AccountRegistered)
    assert (event.account_id, event.name, event.tier) == ("acme", "Acme Corp", "business")
    assert (event.actor, event.occurred_at, event.command_id) == (AGENT.as_dict(), T0, "reg-1")
    assert account.as_dict() == {
        "account_id": "acme",
        "name": "Acme Corp",
        "tier": "business",
        "version": 1,
    }


def test_an_account_id_always_maps_to_the_same_aggregate_id() -> None:
    # Given
    first = Account.register(account_id="acme", name="A", tier=SlaTier.STANDARD, actor=AGENT)
    # When
    second = Account.register(account_id="acme", name="B", tier=SlaTier.BUSINESS, actor=AGENT)
    # Then
    assert first.id == second.id == account_uuid("acme")
    assert account_uuid("acme") != account_uuid("globex")


def test_changing_the_tier_records_the_previous_tier() -> None:
    # Given
    account = registered_account()
    # When
    account.change_tier(SlaTier.ENTERPRISE, actor=AGENT, at=at(5), command_id="tier-1")
    # Then
    (event,) = collected(account)
    assert isinstance(event, AccountTierChanged)
    assert (event.tier, event.previous_tier) == ("enterprise", "standard")
    assert (event.actor, event.occurred_at, event.command_id) == (
        AGENT.as_dict(),
        at(5),
        "tier-1",
    )
    assert account.tier is SlaTier.ENTERPRISE


def test_setting_the_same_tier_appends_nothing() -> None:
    # Given
    account = registered_account(SlaTier.BUSINESS)
    # When
    account.change_tier("business", actor=AGENT, at=at(5))  # type: ignore[arg-type]
    # Then
    assert account.collect_events() == []
    assert account.version == 1


def test_an_unknown_tier_is_refused() -> None:
    # Given
    account = registered_account()
    # When / Then
    with pytest.raises(ValueError, match="platinum"):
        account.change_tier("platinum", actor=AGENT, at=at(5))  # type: ignore[arg-type]
    assert account.collect_events() == []


def test_renaming_records_the_previous_name() -> None:
    # Given
    account = registered_account()
    # When
    account.rename("Acme Inc.", actor=AGENT, at=at(5), command_id="ren-1")
    # Then
    (event,) = collected(account)
    assert isinstance(event, AccountRenamed)
    assert (event.name, event.previous_name, event.command_id) == (
        "Acme Inc.",
        "Acme Corp",
        "ren-1",
    )
    assert account.name == "Acme Inc."


def test_renaming_to_the_same_name_appends_nothing() -> None:
    # Given
    account = registered_account()
    # When
    account.rename("Acme Corp", actor=AGENT, at=at(5))
    # Then
    assert account.collect_events() == []
    assert account.version == 1


def test_an_account_change_may_carry_a_time_before_the_latest_change() -> None:
    # Given: accounts change out of band, so a past time is taken as given
    account = registered_account()
    # When
    account.rename("Acme Inc.", actor=AGENT, at=at(-60))
    # Then
    (event,) = collected(account)
    assert event.occurred_at == at(-60)


def test_without_a_time_an_account_change_never_goes_backwards() -> None:
    # Given
    future = datetime(2100, 1, 1, tzinfo=UTC)
    account = Account.register(
        account_id="acme", name="Acme", tier=SlaTier.STANDARD, actor=AGENT, at=future
    )
    # When
    account.change_tier(SlaTier.BUSINESS, actor=AGENT)
    # Then
    events = collected(account)
    assert [e.occurred_at for e in events] == [future, future]


def test_a_naive_time_is_refused_for_an_account() -> None:
    # Given
    account = registered_account()
    # When / Then
    with pytest.raises(ValueError, match="time zone"):
        account.rename("X", actor=AGENT, at=datetime(2026, 3, 2, 9, 0))
    assert account.collect_events() == []


def test_replaying_account_events_rebuilds_the_live_state() -> None:
    # Given
    account = Account.register(
        account_id="acme", name="Acme", tier=SlaTier.STANDARD, actor=AGENT, at=T0
    )
    account.change_tier(SlaTier.ENTERPRISE, actor=AGENT, at=at(1))
    account.rename("Acme Inc.", actor=AGENT, at=at(2))
    account.change_tier(SlaTier.BUSINESS, actor=AGENT, at=at(3))
    # When
    events = collected(account)
    rebuilt = replayed(events)
    # Then
    assert isinstance(rebuilt, Account)
    assert (
        rebuilt.as_dict()
        == account.as_dict()
        == {
            "account_id": "acme",
            "name": "Acme Inc.",
            "tier": "business",
            "version": 4,
        }
    )
    assert rebuilt.last_occurred_at == at(3)
