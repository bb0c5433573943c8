"""Settings, read from the environment in one place (and overridable by the CLI)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ticketing.domain.values import DEFAULT_CATEGORIES

EVENT_STORES = ("sqlite", "postgres", "memory")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".ticketing")
    event_store: str = "sqlite"
    postgres_url: str | None = None
    postgres_schema: str | None = None
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    nats_url: str | None = None
    nats_credentials: Path | None = None
    sla_policy: str = "default"
    triggers_file: Path | None = None
    routing_file: Path | None = None
    notifier_file: Path | None = None
    principals_file: Path | None = None
    clock_skew_seconds: int = 300
    timezone: str = "UTC"
    """The IANA zone people read and type times in (`TICKETING_TZ`, the CLI's `--tz`)."""
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        store = env.get("TICKETING_EVENT_STORE", "sqlite").strip().lower()
        if store not in EVENT_STORES:
            raise SettingsError(
                f"TICKETING_EVENT_STORE must be one of {', '.join(EVENT_STORES)}, got {store!r}"
            )
        categories = tuple(
            c.strip() for c in env.get("TICKETING_CATEGORIES", "").split(",") if c.strip()
        )
        return cls(
            home=Path(env.get("TICKETING_HOME", ".ticketing")),
            event_store=store,
            postgres_url=env.get("TICKETING_POSTGRES_URL") or None,
            postgres_schema=env.get("TICKETING_POSTGRES_SCHEMA") or None,
            categories=categories or DEFAULT_CATEGORIES,
            nats_url=env.get("NATS_URL") or None,
            nats_credentials=Path(env["TICKETING_NATS_CREDENTIALS"])
            if env.get("TICKETING_NATS_CREDENTIALS")
            else None,
            sla_policy=env.get("TICKETING_SLA_POLICY") or "default",
            triggers_file=_optional_path(env.get("TICKETING_TRIGGERS")),
            routing_file=_optional_path(env.get("TICKETING_ROUTING")),
            notifier_file=_optional_path(env.get("TICKETING_NOTIFIER")),
            principals_file=_optional_path(env.get("TICKETING_PRINCIPALS")),
            clock_skew_seconds=_seconds(env, "TICKETING_CLOCK_SKEW", 300),
            timezone=time_zone(env.get("TICKETING_TZ") or "UTC", "TICKETING_TZ"),
        )

    def with_home(self, home: Path | str | None) -> Settings:
        return self if home is None else replace(self, home=Path(home))

    @property
    def principals_path(self) -> Path:
        """The operator's service principals (TOML); missing means the built-in ones only."""
        return self.principals_file or self.home / "principals.toml"

    @property
    def sqlite_path(self) -> Path:
        return self.home / "events.sqlite"

    def eventsourcing_env(self, *, read_only: bool = False) -> dict[str, str]:
        """The eventsourcing library's own settings for the chosen store. `read_only` opens the
        SQLite file through a read-only URI (the library connects with `uri=True`) and creates
        no tables: for reading a home that cannot be written."""
        if self.event_store == "memory":
            env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        elif self.event_store == "sqlite":
            env = {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "30",
            }
            if read_only:
                from ticketing.home import sqlite_read_uri

                env["SQLITE_DBNAME"] = sqlite_read_uri(self.sqlite_path)
                env["CREATE_TABLE"] = "no"
        else:
            env = {"PERSISTENCE_MODULE": "eventsourcing.postgres", **self._postgres_env()}
        return {**env, **self.extra_env}

    def _postgres_env(self) -> dict[str, str]:
        if not self.postgres_url:
            raise SettingsError(
                "TICKETING_POSTGRES_URL is required when TICKETING_EVENT_STORE=postgres "
                "(e.g. postgresql://user:password@127.0.0.1:5432/ticketing)"
            )
        url = urlsplit(self.postgres_url)
        if url.scheme not in ("postgres", "postgresql") or not url.path.strip("/"):
            raise SettingsError(
                "TICKETING_POSTGRES_URL must look like postgresql://user@host:port/dbname"
            )
        env = {
            "POSTGRES_DBNAME": unquote(url.path.strip("/")),
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "5",
        }
        if self.postgres_schema:
            env["POSTGRES_SCHEMA"] = self.postgres_schema
        return env


def queue_path(settings: Settings) -> Path:
    """The queue projection's SQLite file."""
    return settings.home / "queue.sqlite"


def analytics_path(settings: Settings) -> Path:
    """The analytics projector's own DuckDB file (one writer, no readers)."""
    return settings.home / "analytics.duckdb"


def analytics_snapshot_path(settings: Settings) -> Path:
    """The analysts' read-only copy of the analytics file."""
    return settings.home / "analytics-snapshot.duckdb"


def time_zone(name: str, source: str) -> str:
    """`name` when it is an IANA zone (or UTC); `SettingsError` naming `source` otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = name.strip()
    if name.upper() in ("UTC", "Z"):
        return "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{source} must be an IANA time zone such as Europe/Paris or UTC, got {name!r}"
        ) from None
    return name


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) > 86_400:
        raise SettingsError(f"{name} must be whole seconds from 0 to 86400, got {text!r}")
    return int(text)


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
