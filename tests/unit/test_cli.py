"""The `ticketing` command line: readable and `--json` replies, one error line, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from click.testing import CliRunner, Result

from commands.models import MAX_BODY_BYTES, MAX_SUBJECT_CHARS
from ticketing.cli.app import CliError, cli
from ticketing.runtime.bootstrap import build_application
from ticketing.settings import Settings

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


class Cli:
    """Runs `ticketing --home HOME ...` in-process through click's runner."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner(env={k: None for k in os.environ if k.startswith("TICKETING_")})

    def invoke(self, *args: str) -> Result:
        return self.runner.invoke(cli, ["--home", str(self.home), *args])

    def ok(self, *args: str) -> str:
        result = self.invoke(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    def reply(self, *args: str) -> dict[str, Any]:
        """The `--json` reply of a state-changing command."""
        reply: dict[str, Any] = json.loads(self.ok(*args, "--json"))
        assert reply["ok"] is True, reply
        return reply


@pytest.fixture
def ticketing(home: Path) -> Cli:
    return Cli(home)


def run_main(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the real entry point in a fresh interpreter, as a user's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        timeout=60,
        check=False,
    )


def store_position(home: Path) -> int:
    """The event store's last notification id: it moves if and only if something was stored."""
    app = build_application(Settings(home=home, event_store="sqlite"))
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


def open_new_ticket(ticketing: Cli) -> str:
    ticketing.ok("account", "create", "acme", "--name", "Acme Corp", "--tier", "business")
    out = ticketing.ok(
        "open", "--account", "acme", "--requester", "bob@acme.example", "--subject", "VPN drops"
    )
    return out.strip()


# --- readable output --------------------------------------------------------------------


def test_account_create_says_what_was_registered(ticketing: Cli) -> None:
    # When
    out = ticketing.ok("account", "create", "acme", "--name", "Acme Corp", "--tier", "business")
    # Then
    assert out == (
        "account acme -> version 1: AccountRegistered: account_id=acme, name=Acme Corp, "
        "tier=business\n"
    )


def test_open_prints_only_the_new_ticket_id(ticketing: Cli) -> None:
    # Given
    ticketing.ok("account", "create", "acme", "--name", "Acme Corp")
    # When
    out = ticketing.ok(
        "open",
        "--account",
        "acme",
        "--requester",
        "bob@acme.example",
        "--subject",
        "VPN drops",
        "--as",
        "customer:bob",
    )
    # Then
    assert out.endswith("\n")
    assert out.count("\n") == 1
    ticket_id = UUID(out.strip())
    shown = json.loads(ticketing.ok("show", str(ticket_id), "--json"))
    assert shown["subject"] == "VPN drops"
    assert shown["status"] == "new"
    assert shown["account_tier"] == "standard"


def test_a_ticket_walked_to_closed_reports_each_change(ticketing: Cli) -> None:
    # Given
    tid = open_new_ticket(ticketing)
    steps: list[tuple[list[str], str | None]] = [
        (
            ["assign", tid, "--team", "network", "--agent", "ana", "--as", "agent:ana"],
            "3: TicketAssigned: team=network, agent=ana; StatusChanged: new -> open (assigned)",
        ),
        (
            ["comment", tid, "--body", "checking logs", "--internal"],
            "4: CommentAdded: internal c1: checking logs",
        ),
        (
            ["set-status", tid, "pending", "--reason", "asked for logs"],
            "5: StatusChanged: open -> pending (asked for logs)",
        ),
        (["tag", tid, "vpn", "urgent"], "6: TicketTagged: tags=vpn,urgent"),
        (["untag", tid, "urgent"], "7: TicketUntagged: tags=urgent"),
        (["untag", tid, "urgent"], None),  # nothing to remove: a no-op, still answered
        (
            ["resolve", tid, "--resolution", "new client"],
            "8: TicketResolved: pending -> solved (new client)",
        ),
        (
            [
                "rate",
                tid,
                "--score",
                "5",
                "--comment",
                "great",
                "--as",
                "customer:bob@acme.example",
            ],
            "9: TicketRated: score=5, comment=great, survey=csat",
        ),
        (["close", tid], "10: TicketClosed: solved -> closed"),
    ]
    # When / Then
    for args, change in steps:
        expected = f"-> version {change}" if change else "unchanged (version 7)"
        assert ticketing.ok(*args) == f"ticket {tid} {expected}\n", args
    # And: show prints the card
    card = dict(
        line.split(None, 1) for line in ticketing.ok("show", tid).splitlines() if line[0] != " "
    )
    assert card["status"] == "closed"
    assert card["team"] == "network"
    assert card["agent"] == "ana"
    assert card["tags"] == "vpn"
    assert card["rating"] == "5/5 'great'"
    assert card["version"] == "10"
    # And: log (the same command as history) lists every event, oldest first, with who did it
    rows = ticketing.ok("log", tid).splitlines()
    assert rows[0].split() == ["V", "OCCURRED_AT", "ACTOR", "EVENT", "CHANGE", "HASH"]
    assert ticketing.ok("history", tid).splitlines() == rows
    assert [r.split()[0] for r in rows[1:]] == [str(v) for v in range(1, 11)]
    assert [r.split()[3] for r in rows[1:]] == [
        "TicketOpened",
        "TicketAssigned",
        "StatusChanged",
        "CommentAdded",
        "StatusChanged",
        "TicketTagged",
        "TicketUntagged",
        "TicketResolved",
        "TicketRated",
        "TicketClosed",
    ]
    assert rows[2].split()[2] == "agent:ana"
    assert rows[9].split()[2] == "customer:bob@acme.example"


def test_repeating_a_command_id_prints_the_first_reply_and_stores_nothing(
    ticketing: Cli, home: Path
) -> None:
    # Given
    tid = open_new_ticket(ticketing)
    first = ticketing.ok("tag", tid, "vpn", "--command-id", "tag-1")
    before = store_position(home)
    # When
    again = ticketing.ok("tag", tid, "vpn", "--command-id", "tag-1")
    # Then
    assert again == first
    assert store_position(home) == before


# --- --json replies ---------------------------------------------------------------------


def test_json_replies_have_the_one_reply_shape(ticketing: Cli) -> None:
    # Given
    account = ticketing.reply("account", "create", "acme", "--name", "Acme Corp")
    assert account["account_id"] == "acme"
    assert account["version"] == 1
    assert [e["type"] for e in account["events"]] == ["AccountRegistered"]
    # When
    opened = ticketing.reply(
        "open",
        *("--account", "acme", "--requester", "bob@acme.example", "--subject", "VPN drops"),
        *("--category", "technical", "--tag", "vpn", "--priority", "high"),
    )
    tid = opened["ticket_id"]
    replies = {
        "assign": ticketing.reply("assign", tid, "--agent", "ana"),
        "comment": ticketing.reply("comment", tid, "--body", "note", "--internal"),
        "set-status": ticketing.reply("set-status", tid, "on_hold"),
        "tag": ticketing.reply("tag", tid, "vpn", "p1"),
        "untag": ticketing.reply("untag", tid, "vpn"),
        "resolve": ticketing.reply("resolve", tid),
        "rate": ticketing.reply("rate", tid, "--score", "2", "--as", "customer:bob@acme.example"),
        "close": ticketing.reply("close", tid, "--expected-version", "9"),
    }
    # Then
    assert set(opened) == {"ok", "ticket_id", "version", "events"}
    assert opened["version"] == 1
    assert opened["events"][0]["category"] == "technical"
    assert opened["events"][0]["tags"] == ["vpn"]
    assert {name: [e["type"] for e in r["events"]] for name, r in replies.items()} == {
        "assign": ["TicketAssigned", "StatusChanged"],
        "comment": ["CommentAdded"],
        "set-status": ["StatusChanged"],
        "tag": ["TicketTagged"],
        "untag": ["TicketUntagged"],
        "resolve": ["TicketResolved"],
        "rate": ["TicketRated"],
        "close": ["TicketClosed"],
    }
    assert [r["version"] for r in replies.values()] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert all(r["ticket_id"] == tid for r in replies.values())
    assert replies["comment"]["events"][0]["visibility"] == "internal"
    assert replies["tag"]["events"][0]["tags"] == ["p1"]
    assert replies["rate"]["events"][0]["score"] == 2
    # And: show and log speak JSON too
    shown = json.loads(ticketing.ok("show", tid, "--json"))
    assert shown["status"] == "closed"
    assert shown["tags"] == ["p1"]
    assert shown["comments"][0]["visibility"] == "internal"
    logged = json.loads(ticketing.ok("log", tid, "--json"))
    assert [e["version"] for e in logged] == list(range(1, 11))
    assert [e["type"] for e in logged] == [
        "TicketOpened",
        *(e["type"] for r in replies.values() for e in r["events"]),
    ]


def test_a_json_error_reply_goes_to_stdout_and_the_error_line_to_stderr(
    ticketing: Cli, home: Path
) -> None:
    # Given
    tid = open_new_ticket(ticketing)
    # When
    result = run_main(home, "close", tid, "--json")
    # Then
    assert result.returncode == 1
    reply = json.loads(result.stdout)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_transition"
    assert reply["error"]["details"] == {"from_status": "new", "to_status": "closed"}
    assert result.stderr == f"error: invalid_transition: {reply['error']['message']}\n"


# --- bad input: one error line, non-zero exit, nothing stored ---------------------------

BAD_INPUT: dict[str, tuple[list[str], int, str, str]] = {
    # case: (arguments, exit code, error code, text the message must contain)
    "--as without a colon": (["tag", "{tid}", "vpn", "--as", "ana"], 1, "validation_error", "--as"),
    "unknown actor kind": (
        ["tag", "{tid}", "vpn", "--as", "robot:r2"],
        1,
        "validation_error",
        "actor.kind",
    ),
    "bad email": (
        ["open", "--account", "acme", "--requester", "bob-at-acme", "--subject", "Hi"],
        1,
        "validation_error",
        "requester",
    ),
    "subject too long": (
        [
            *("open", "--account", "acme", "--requester", "bob@acme.example"),
            *("--subject", "s" * (MAX_SUBJECT_CHARS + 1)),
        ],
        1,
        "validation_error",
        "subject",
    ),
    "body over 64 KiB": (
        ["comment", "{tid}", "--body", "b" * (MAX_BODY_BYTES + 1)],
        1,
        "validation_error",
        "body",
    ),
    "score 9": (["rate", "{tid}", "--score", "9"], 1, "validation_error", "score"),
    "unknown ticket id": (["tag", "{unknown}", "vpn"], 1, "not_found", "{unknown}"),
    "unknown ticket id (show)": (["show", "{unknown}"], 1, "not_found", "{unknown}"),
    "malformed ticket id": (["tag", "ticket-1", "vpn"], 1, "validation_error", "ticket_id"),
    "malformed ticket id (log)": (["log", "ticket-1"], 1, "validation_error", "ticket_id"),
    "illegal transition": (["close", "{tid}"], 1, "invalid_transition", "new"),
    "illegal status move": (
        ["set-status", "{tid}", "closed"],
        1,
        "invalid_transition",
        "closed",
    ),
    "unknown category": (["categorize", "{tid}", "billing"], 1, "validation_error", "billing"),
    "unknown account": (
        ["open", "--account", "initech", "--requester", "p@initech.example", "--subject", "Hi"],
        1,
        "not_found",
        "initech",
    ),
    "unknown status": (["set-status", "{tid}", "done"], 2, "usage_error", "done"),
    "unknown command": (["frobnicate", "{tid}"], 2, "usage_error", "frobnicate"),
    "no command": ([], 2, "usage_error", "command"),
    "group without its subcommand": (["account"], 2, "usage_error", "account"),
    "bad --at": (["tag", "{tid}", "vpn", "--at", "yesterday"], 2, "invalid_time", "--at"),
    "malformed ticket id (comment)": (
        ["comment", "abc", "--body", "hi"],
        1,
        "validation_error",
        "not a ticket id",
    ),
    "malformed ticket id (show)": (["show", "abc"], 1, "validation_error", "not a ticket id"),
    "unknown ticket id prefix": (["comment", "0000", "--body", "hi"], 1, "not_found", "0000"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_prints_one_error_line_exits_non_zero_and_stores_nothing(
    ticketing: Cli, home: Path, case: str
) -> None:
    # Given
    tid = open_new_ticket(ticketing)
    unknown = str(uuid4())
    before = store_position(home)
    log_before = ticketing.ok("log", tid, "--json")
    args, exit_code, code, mentions = BAD_INPUT[case]
    # When
    result = run_main(home, *(a.format(tid=tid, unknown=unknown) for a in args))
    # Then
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("\n")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {code}: ")
    assert mentions.format(unknown=unknown) in result.stderr
    assert result.stdout == ""
    assert store_position(home) == before
    assert ticketing.ok("log", tid, "--json") == log_before


def test_the_in_process_group_fails_too_so_scripts_can_rely_on_it(ticketing: Cli) -> None:
    # Given
    tid = open_new_ticket(ticketing)
    # When
    result = ticketing.invoke("rate", tid, "--score", "9")
    # Then
    assert result.exit_code == 1
    assert isinstance(result.exception, CliError)
    assert result.exception.code == "validation_error"
    assert "score" in result.exception.message
    assert result.stdout == ""


def test_a_successful_command_exits_zero_through_the_real_entry_point(
    ticketing: Cli, home: Path
) -> None:
    # Given
    tid = open_new_ticket(ticketing)
    # When
    result = run_main(home, "tag", tid, "vpn", "--as", "agent:ana")
    # Then
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == f"ticket {tid} -> version 2: TicketTagged: tags=vpn\n"


def test_agent_roster_changes_are_events_and_show_reads_them(ticketing: Cli) -> None:
    joined = ticketing.reply("agent", "join", "ana", "--team", "tier1")
    assert joined["agent_id"] == "ana"
    assert [e["type"] for e in joined["events"]] == ["AgentRegistered", "AgentJoinedTeam"]
    ticketing.reply("agent", "availability", "ana", "away")
    ticketing.reply("agent", "capacity", "ana", "4")
    again = ticketing.reply("agent", "availability", "ana", "away")
    assert again["events"] == []  # nothing changed, nothing recorded
    state = json.loads(ticketing.ok("agent", "show", "ana", "--json"))
    assert state == {
        "agent_id": "ana",
        "version": 4,
        "teams": ["tier1"],
        "availability": "away",
        "capacity": 4,
    }
    assert "agent ana -> version 5" in ticketing.ok("agent", "leave", "ana", "--team", "tier1")


def test_agent_bad_input_is_one_error_line(ticketing: Cli) -> None:
    for args, code in (
        (("agent", "capacity", "ana", "--", "-1"), "validation_error"),
        (("agent", "show", "nobody"), "not_found"),
    ):
        result = ticketing.invoke(*args)
        assert isinstance(result.exception, CliError), result.output
        assert result.exception.code == code


def test_show_names_where_an_imported_ticket_came_from(ticketing: Cli) -> None:
    from commands import models as m
    from ticketing.runtime.bootstrap import build_command_service

    ticketing.ok("account", "create", "acme", "--name", "Acme")
    service = build_command_service(Settings(home=ticketing.home))
    try:
        opened = m.OpenTicket(
            account_id="acme", requester="bob@acme.example", subject="old", external_id="snow:INC1"
        )
        ticket = service.execute(opened).ticket_id
    finally:
        service.app.close()
    assert ticket is not None
    card = dict(
        line.split(None, 1) for line in ticketing.ok("show", ticket).splitlines() if line[:1] != " "
    )
    assert card["external_id"] == "snow:INC1"
