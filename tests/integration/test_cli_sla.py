"""`ticketing sla` on a SQLite store: publishing policy files (idempotent, versioned, pinned by
the tickets opened under them), showing them, what-if replays with hand-computed figures, and
one-line errors that publish nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from replay.rebuild import published_count
from tests.unit.test_cli import Cli, run_main, store_position
from ticketing.cli.context import CliError
from ticketing.runtime.bootstrap import build_application
from ticketing.settings import Settings

pytestmark = pytest.mark.integration

OFFICE = """
[calendars.office]
time_zone = "UTC"
hours = { mon = [["09:00", "17:00"]], tue = [["09:00", "17:00"]], wed = [["09:00", "17:00"]], \
thu = [["09:00", "17:00"]], fri = [["09:00", "17:00"]] }
"""


def policy_text(first_reply: int, *, calendar: str | None = None, inline: bool = False) -> str:
    head = 'policy = "default"\n' + (f'calendar = "{calendar}"\n' if calendar else "")
    body = f"[default]\nfirst_reply = {first_reply}\n"
    return head + body + (OFFICE if inline else "")


@pytest.fixture
def ticketing(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    return folder


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def published_events(home: Path) -> int:
    """Events in the stream (a no-op command still writes its idempotency record, not an event)."""
    app = build_application(Settings(home=home, event_store="sqlite"))
    try:
        return published_count(app)
    finally:
        app.close()


def failure(result: Result) -> CliError:
    assert result.exit_code != 0
    assert isinstance(result.exception, CliError), result.output
    return result.exception


def open_ticket(ticketing: Cli, at: str) -> str:
    return ticketing.ok(
        "open",
        "--account",
        "acme",
        "--requester",
        "bob@acme.example",
        "--subject",
        "VPN drops",
        "--at",
        at,
        "--as",
        "customer:bob",
    ).strip()


def reply(ticketing: Cli, ticket: str, at: str) -> None:
    ticketing.ok("comment", ticket, "--body", "On it", "--at", at, "--as", "agent:ana")


def pin(ticketing: Cli, ticket: str) -> dict[str, Any]:
    events = json.loads(ticketing.ok("history", ticket, "--json"))
    applied: dict[str, Any] = next(e for e in events if e["type"] == "SlaPolicyApplied")
    return applied


def test_publishing_the_same_file_twice_records_one_version(ticketing: Cli, files: Path) -> None:
    path = write(files, "sla.toml", policy_text(60, calendar="office", inline=True))

    first = ticketing.ok("sla", "publish", str(path))
    events = published_events(ticketing.home)
    again = json.loads(ticketing.ok("sla", "publish", str(path), "--json"))

    assert first.splitlines() == [
        "calendar office version 1 published",
        "policy default version 1 published",
        "tickets opened from now on use policy default",
    ]
    assert again == {
        "kind": "policy",
        "id": "default",
        "version": 1,
        "changed": False,
        "in_force": True,
        "calendars": [{"kind": "calendar", "id": "office", "version": 1, "changed": False}],
    }
    assert published_events(ticketing.home) == events == 2
    shown = json.loads(ticketing.ok("sla", "show", "--json"))
    assert [v["version"] for v in shown["versions"]] == [1]
    assert shown["versions"][0]["calendar"] == "office"
    assert "unchanged" in ticketing.ok("sla", "publish", str(path))


def test_a_changed_file_is_version_2_and_open_tickets_keep_version_1(
    ticketing: Cli, files: Path
) -> None:
    path = write(files, "sla.toml", policy_text(60))
    ticketing.ok("sla", "publish", str(path), "--at", "2026-03-01T00:00:00Z")
    ticketing.ok("account", "create", "acme", "--name", "Acme", "--tier", "business")
    before = open_ticket(ticketing, "2026-03-02T09:00:00Z")

    path.write_text(policy_text(30))
    published = ticketing.ok("sla", "publish", str(path), "--at", "2026-03-02T09:30:00Z")
    after = open_ticket(ticketing, "2026-03-02T10:00:00Z")
    # A ticket opened afterwards but dated before version 2's time is measured by version 1
    backfilled = open_ticket(ticketing, "2026-03-02T09:15:00Z")
    assert pin(ticketing, backfilled)["policy_version"] == 1

    assert "policy default version 2 published" in published
    assert (pin(ticketing, before)["policy_version"], pin(ticketing, after)["policy_version"]) == (
        1,
        2,
    )
    assert pin(ticketing, before)["calendar_id"] is None
    shown = json.loads(ticketing.ok("sla", "show", "default", "--json"))
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["definition"]["default"] == {"first_reply": 30}
    old = json.loads(ticketing.ok("sla", "show", "--version", "1", "--json"))
    business_normal = next(
        t for t in old["targets"] if (t["tier"], t["priority"]) == ("business", "normal")
    )
    assert business_normal == {
        "tier": "business",
        "priority": "normal",
        "first_reply": 60,
        "next_reply": None,
        "resolution": None,
        "from": "default",
    }


def test_show_prints_versions_and_the_targets_table(ticketing: Cli) -> None:
    example = Path(__file__).parents[2] / "mappings" / "sla.example.toml"
    ticketing.ok("sla", "publish", str(example))

    text = ticketing.ok("sla", "show")

    lines = text.splitlines()
    assert lines[0].split() == ["VERSION", "PUBLISHED_AT", "CALENDAR"]
    assert lines[1].split()[0] == "1" and lines[1].split()[2] == "office"
    assert "policy default version 1: targets in minutes on office, warning at 75%" in text
    assert ["enterprise", "urgent", "30", "60", "240", "own"] in [line.split() for line in lines]
    assert ["standard", "low", "480", "960", "7200", "default"] in [line.split() for line in lines]


def test_what_if_compares_a_stricter_policy_with_the_pinned_one(
    ticketing: Cli, files: Path
) -> None:
    # Given: one ticket under a 60-minute policy, answered after 45 minutes; one opened before
    # any policy existed, answered after 10 minutes
    ticketing.ok("account", "create", "acme", "--name", "Acme", "--tier", "business")
    unpinned = open_ticket(ticketing, "2026-03-02T08:00:00Z")
    reply(ticketing, unpinned, "2026-03-02T08:10:00Z")
    now_toml = write(files, "now.toml", policy_text(60))
    ticketing.ok("sla", "publish", str(now_toml), "--at", "2026-03-02T08:30:00Z")
    ticket = open_ticket(ticketing, "2026-03-02T09:00:00Z")
    reply(ticketing, ticket, "2026-03-02T09:45:00Z")
    stricter = write(files, "strict.toml", policy_text(30))
    position = store_position(ticketing.home)
    # When
    result = ticketing.invoke(
        "sla", "what-if", "--policy", str(stricter), "--until", "2026-03-03T00:00:00Z", "--json"
    )
    # Then: actual achieved 1 of 1 (the other is unmeasured); what-if breaches the 45-minute one
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["policy"] == {"policy_id": "default", "version": 2}
    assert report["tickets"] == 2
    first_reply = {
        column: report["overall"][column]["metrics"]["first_reply"]
        for column in ("actual", "what_if")
    }
    assert first_reply == {
        "actual": {
            "measured": 1,
            "achieved": 1,
            "breached": 0,
            "running": 0,
            "breach_rate": 0.0,
        },
        "what_if": {
            "measured": 2,
            "achieved": 1,
            "breached": 1,
            "running": 0,
            "breach_rate": 0.5,
        },
    }
    assert report["overall"]["actual"]["unmeasured"] == 1
    assert [(s["tier"], s["priority"]) for s in report["by_segment"]] == [("business", "normal")]
    assert "replaying tickets" in result.stderr
    assert store_position(ticketing.home) == position  # a what-if publishes nothing


def test_what_if_uses_the_published_calendar_across_a_weekend(ticketing: Cli, files: Path) -> None:
    # Given: office hours published; opened Friday 16:30, answered Monday 09:45 (75 minutes)
    office = write(files, "office.toml", policy_text(90, inline=True))
    ticketing.ok("sla", "publish", str(office), "--at", "2026-03-01T00:00:00Z")
    ticketing.ok("account", "create", "acme", "--name", "Acme", "--tier", "business")
    ticket = open_ticket(ticketing, "2026-03-06T16:30:00Z")
    reply(ticketing, ticket, "2026-03-09T09:45:00Z")
    hour = write(files, "hour.toml", policy_text(60, calendar="office"))
    # When
    text = ticketing.ok(
        "sla", "what-if", "--policy", str(hour), "--since", "2026-03-01", "--until", "2026-03-10"
    )
    # Then: 24x7 actual policy: 65 h 15 min > 90 min, breached; office hours: 75 > 60, breached
    rows = [line.split() for line in text.splitlines()]
    assert rows[0][:3] == ["policy", "default", "(as"]
    assert "1 ticket opened from 2026-03-01T00:00:00+00:00 before 2026-03-10" in text
    assert ["first_reply", "actual", "1", "0", "1", "0", "100.0%"] in rows
    assert ["first_reply", "what-if", "1", "0", "1", "0", "100.0%"] in rows
    ninety = write(files, "ninety.toml", policy_text(90, calendar="office"))
    text = ticketing.ok("sla", "what-if", "--policy", str(ninety), "--until", "2026-03-10")
    assert ["first_reply", "what-if", "1", "1", "0", "0", "0.0%"] in [
        line.split() for line in text.splitlines()
    ]


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ('policy = "default"\n[default\n', "policy_file_error", "not valid TOML"),
        (
            policy_text(60) + "[targets.gold.urgent]\nfirst_reply = 5\n",
            "policy_file_error",
            ": targets.gold: ",
        ),
        (policy_text(60) + "first_response = 5\n", "policy_file_error", "default.first_response"),
        (policy_text(60, calendar="nowhere"), "unknown_calendar", "'nowhere'"),
    ],
)
def test_a_bad_file_publishes_nothing(
    ticketing: Cli, files: Path, text: str, code: str, words: str
) -> None:
    path = write(files, "bad.toml", text)
    ticketing.ok("account", "create", "acme", "--name", "Acme")
    position = store_position(ticketing.home)

    for command in (("publish", str(path)), ("what-if", "--policy", str(path))):
        error = failure(ticketing.invoke("sla", *command))
        assert (error.code, error.exit_code) == (code, 2)
        assert words in error.message
        assert str(path) in error.message
    assert store_position(ticketing.home) == position


def test_bad_options_and_unknown_policies_are_one_line_errors(ticketing: Cli, files: Path) -> None:
    path = write(files, "sla.toml", policy_text(60))

    since = failure(ticketing.invoke("sla", "what-if", "--policy", str(path), "--since", "soon"))
    assert (since.code, since.exit_code) == ("invalid_time", 2)
    assert since.message.startswith("--since: not a time: 'soon'")
    ticketing.ok("sla", "publish", str(path))
    assert failure(ticketing.invoke("sla", "show", "other")).code == "not_found"
    missing = failure(ticketing.invoke("sla", "show", "--version", "3"))
    assert (missing.code, missing.message) == (
        "not_found",
        "policy 'default' has versions 1..1, not 3",
    )
    assert failure(ticketing.invoke("sla", "publish", str(path), "--as", "nobody")).code == (
        "validation_error"
    )


def test_the_entry_point_prints_one_error_line(tmp_path: Path, files: Path) -> None:
    path = write(files, "bad.toml", policy_text(60) + "[targets.gold.urgent]\nfirst_reply = 5\n")

    result = run_main(tmp_path / "home", "sla", "publish", str(path))

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: policy_file_error: {path}: targets.gold: ")
    assert len(result.stderr.splitlines()) == 1
