"""The Account aggregate: a customer organisation and the SLA tier its tickets are served at."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ticketing.domain.chain import GENESIS_HASH, chained
from ticketing.domain.clock import as_utc, utc_now
from ticketing.domain.events import AccountRegistered, AccountRenamed, AccountTierChanged
from ticketing.domain.recording import ChainedAggregate
from ticketing.domain.values import Actor, SlaTier

_ACCOUNT_NAMESPACE = uuid5(NAMESPACE_URL, "ticketing:account")


def account_uuid(account_id: str) -> UUID:
    """Accounts are named by readable ids; the store needs a UUID, so derive it stably."""
    return uuid5(_ACCOUNT_NAMESPACE, account_id)


class Account(ChainedAggregate):
    """A customer organisation; its tier decides the SLA its tickets are held to."""

    def __init__(self) -> None:
        self.account_id = ""
        self.name = ""
        self.tier = SlaTier.STANDARD
        self.last_occurred_at = utc_now()
        self.chain_head = GENESIS_HASH

    @classmethod
    def register(
        cls,
        *,
        account_id: str,
        name: str,
        tier: SlaTier,
        actor: Actor,
        at: datetime | None = None,
        command_id: str = "",
    ) -> Account:
        new_id = account_uuid(account_id)
        fields = {
            "account_id": account_id,
            "name": name,
            "tier": str(SlaTier(tier)),
            "actor": actor.as_dict(),
            "occurred_at": as_utc(at) if at else utc_now(),
            "command_id": command_id,
        }
        return cls._create(
            AccountRegistered,
            id=new_id,
            **chained(AccountRegistered, new_id, 1, GENESIS_HASH, fields),
        )

    def change_tier(
        self, tier: SlaTier, *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        tier = SlaTier(tier)
        if tier is self.tier:
            return
        self._record(
            AccountTierChanged,
            actor,
            at,
            command_id,
            tier=str(tier),
            previous_tier=str(self.tier),
        )

    def rename(
        self, name: str, *, actor: Actor, at: datetime | None = None, command_id: str = ""
    ) -> None:
        if name == self.name:
            return
        self._record(AccountRenamed, actor, at, command_id, name=name, previous_name=self.name)

    def evolve(self, event: Any) -> None:
        match event:
            case AccountRegistered():
                self.account_id = event.account_id
                self.name = event.name
                self.tier = SlaTier(event.tier)
            case AccountTierChanged():
                self.tier = SlaTier(event.tier)
            case AccountRenamed():
                self.name = event.name
        self.last_occurred_at = event.occurred_at
        self.chain_head = event.event_hash

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "name": self.name,
            "tier": str(self.tier),
            "version": self.version,
        }

    def _moment(self, at: datetime | None) -> datetime:
        # Accounts change rarely and out of band; a past time is accepted as given.
        return as_utc(at) if at else max(utc_now(), self.last_occurred_at)
