"""The CLI as a person meets it: ticket id prefixes, a readable `show`, one time syntax and
zone, long texts from stdin or files, a bounded `sql`, one table of exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from commands.command_log import ticket_id_for
from tests.unit.test_cli import CLEAN_ENV, Cli, open_new_ticket, run_main
from ticketing.cli import exit_codes
from ticketing.cli.app import CliError, cli, status_text
from ticketing.cli.context import MIN_PREFIX

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
EXAMPLE_POLICY = ROOT / "mappings" / "sla.example.toml"


@pytest.fixture
def ticketing(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def failure(ticketing: Cli, *args: str) -> CliError:
    result = ticketing.invoke(*args)
    assert isinstance(result.exception, CliError), result.output
    return result.exception


def colliding_command_ids() -> tuple[str, str, str]:
    """Two command ids whose tickets share their first 4 hex digits, and the shared prefix."""
    seen: dict[str, str] = {}
    for n in range(100_000):
        command_id = f"open-{n}"
        prefix = ticket_id_for(command_id).hex[:MIN_PREFIX]
        if prefix in seen:
            return seen[prefix], command_id, prefix
        seen[prefix] = command_id
    raise AssertionError("no collision")


def open_with(ticketing: Cli, command_id: str, *extra: str) -> str:
    return ticketing.ok(
        *("open", "--account", "acme", "--requester", "bob@acme.example"),
        *("--subject", "VPN drops", "--command-id", command_id, *extra),
    ).strip()


# --- ticket id prefixes ----------------------------------------------------------------------


def test_a_unique_prefix_names_a_ticket_in_every_command(ticketing: Cli) -> None:
    # Given
    tid = open_new_ticket(ticketing)
    prefix = tid[:8]
    # When
    ticketing.ok("comment", prefix, "--body", "on it", "--as", "agent:ana")
    ticketing.ok("tag", tid[:4].upper(), "vpn")
    # Then
    shown = json.loads(ticketing.ok("show", prefix, "--json"))
    assert shown["ticket_id"] == tid
    assert shown["tags"] == ["vpn"]
    assert [c["body"] for c in shown["comments"]] == ["on it"]
    assert ticketing.ok("history", prefix) == ticketing.ok("log", tid)
    assert ticketing.ok("verify", "chain", prefix).endswith("chain intact\n")


def test_an_ambiguous_prefix_lists_the_candidates_and_changes_nothing(ticketing: Cli) -> None:
    # Given two tickets whose ids start alike
    first_command, second_command, prefix = colliding_command_ids()
    ticketing.ok("account", "create", "acme", "--name", "Acme Corp")
    first, second = open_with(ticketing, first_command), open_with(ticketing, second_command)
    # When
    errors = [
        failure(ticketing, "show", prefix),
        failure(ticketing, "comment", prefix, "--body", "hi"),
        failure(ticketing, "history", prefix),
    ]
    # Then every command says the same
    assert {(e.code, e.message, e.exit_code) for e in errors} == {
        (errors[0].code, errors[0].message, exit_codes.FAILED)
    }
    assert errors[0].code == "ambiguous_id"
    assert first in errors[0].message and second in errors[0].message
    assert json.loads(ticketing.ok("show", first, "--json"))["comments"] == []
    # And one more digit that tells them apart is enough
    longer = next(
        n for n in range(5, 33) if first.replace("-", "")[:n] != second.replace("-", "")[:n]
    )
    assert (
        json.loads(ticketing.ok("show", first.replace("-", "")[:longer], "--json"))["ticket_id"]
        == first
    )


def test_comment_and_show_give_the_same_error_for_a_wrong_id(ticketing: Cli) -> None:
    open_new_ticket(ticketing)
    for text, code in (
        ("abc", "validation_error"),
        ("zzzzzz", "validation_error"),
        ("0000", "not_found"),
    ):
        show = failure(ticketing, "show", text)
        comment = failure(ticketing, "comment", text, "--body", "hi")
        assert (
            (show.code, show.message)
            == (comment.code, comment.message)
            == (
                code,
                show.message,
            )
        )
        assert repr(text) in show.message or text in show.message


def test_an_account_id_is_not_a_ticket(ticketing: Cli) -> None:
    ticketing.ok("account", "create", "acme", "--name", "Acme Corp")
    from ticketing.domain.account import account_uuid

    assert failure(ticketing, "show", account_uuid("acme").hex[:8]).code == "not_found"


# --- show for people -------------------------------------------------------------------------


def test_show_reads_as_a_ticket_with_description_sla_and_conversation(ticketing: Cli) -> None:
    # Given a business account under the example policy (Berlin office hours)
    ticketing.ok("sla", "publish", str(EXAMPLE_POLICY), "--at", "2026-01-01T00:00:00Z")
    ticketing.ok("account", "create", "acme", "--name", "Acme Corp", "--tier", "business")
    first = open_with(ticketing, "old", "--at", "2026-02-02T10:00:00+01:00")
    for step in (("resolve", first), ("close", first)):
        ticketing.ok(*step, "--at", "2026-02-02T11:00:00+01:00")
    tid = ticketing.ok(
        *("open", "--account", "acme", "--requester", "bob@acme.example", "--subject", "VPN"),
        *("--priority", "urgent", "--description", "Drops hourly.\nSince Monday."),
        *("--follow-up-of", first[:8], "--at", "2026-03-02T10:00:00+01:00"),
    ).strip()
    ticketing.ok("comment", tid, "--body", "Send the log?", "--at", "2026-03-02T10:05:00+01:00")
    ticketing.ok(
        *("comment", tid, "--body", "MTU?\ncheck gw", "--internal"),
        *("--at", "2026-03-02T10:06:00+01:00"),
    )
    # When
    text = ticketing.ok("--tz", "Europe/Paris", "show", tid, "--as-of", "2026-03-02T10:10")
    # Then
    lines = text.splitlines()
    card = dict(line.split(None, 1) for line in lines if line[0] != " " and " " in line)
    assert card["follow_up_of"] == first
    assert card["opened_at"] == "2026-03-02 10:00 CET"
    assert card["description"] == "Drops hourly."
    assert (
        "Since Monday." in lines[lines.index(next(x for x in lines if x.startswith("descr"))) + 1]
    )
    assert card["sla_policy"] == "default v1, calendar office v1"
    # urgent on business: first reply in 60 business minutes; the reply at 10:05 was public,
    # so next the resolution clock (960 min) is what falls due
    assert re.fullmatch(
        r"resolution due 2026-03-0\d \d\d:\d\d CET \(in .+; target 960 min\)", card["sla_next"]
    ), card["sla_next"]
    assert card["sla_breached"] == "-"
    assert card["conversation"] == "1 public reply, 1 internal note (times in Europe/Paris)"
    assert "  2026-03-02 10:05 CET  reply by agent:" in text
    assert re.search(r"^  2026-03-02 10:06 CET  INTERNAL NOTE by agent:\S+ \(c2\)$", text, re.M)
    assert "      MTU?\n      check gw" in text


def test_show_without_a_policy_says_so_and_times_default_to_utc(ticketing: Cli) -> None:
    tid = open_new_ticket(ticketing)
    text = ticketing.ok("show", tid)
    assert re.search(r"^opened_at     \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.M)
    assert re.search(r"^sla           none \(no policy applied\)$", text, re.M)
    assert re.search(r"^conversation  none yet$", text, re.M)


# --- times -----------------------------------------------------------------------------------


def test_a_date_alone_is_midnight_in_the_chosen_zone(ticketing: Cli) -> None:
    ticketing.ok("account", "create", "acme", "--name", "Acme Corp")
    tid = open_with(ticketing, "o", "--at", "2026-03-01T22:30:00Z")
    ticketing.ok("tag", tid, "x", "--at", "2026-03-02")  # midnight UTC: after 22:30 on the 1st
    paris = Cli(ticketing.home)
    paris.runner.env["TICKETING_TZ"] = "Europe/Paris"
    # 2026-03-02 in Paris began 23:00 UTC on the 1st, before the tag: a snapshot without it
    assert json.loads(paris.ok("show", tid, "--as-of", "2026-03-02", "--json"))["tags"] == []
    assert json.loads(ticketing.ok("show", tid, "--as-of", "2026-03-02", "--json"))["tags"] == ["x"]
    rows = paris.ok("history", tid).splitlines()
    assert rows[1].split()[1] == "2026-03-01T23:30:00+01:00"


def test_a_bad_time_is_the_same_usage_error_everywhere(ticketing: Cli, tmp_path: Path) -> None:
    tid = open_new_ticket(ticketing)
    errors = [
        failure(ticketing, "tag", tid, "x", "--at", "soon"),
        failure(ticketing, "show", tid, "--as-of", "soon"),
        failure(ticketing, "queue", "--as-of", "soon"),
        failure(ticketing, "export", "--since", "soon"),
        failure(ticketing, "sla", "publish", str(EXAMPLE_POLICY), "--at", "soon"),
        failure(ticketing, "kpi", "--since", "soon"),
    ]
    assert {(e.code, e.exit_code) for e in errors} == {("invalid_time", exit_codes.USAGE)}
    assert all("not a time: 'soon' (ISO 8601" in e.message for e in errors)
    assert not any("%" in e.message for e in errors)  # no strptime pattern leaks


def test_a_bad_zone_is_a_configuration_error(ticketing: Cli) -> None:
    assert (failure(ticketing, "--tz", "Mars/Olympus", "queue").code) == "configuration_error"
    result = subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "queue"],
        env={**CLEAN_ENV, "TICKETING_TZ": "Nowhere/Else"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == exit_codes.USAGE
    assert result.stderr.startswith("error: configuration_error: TICKETING_TZ must be an IANA")


def test_the_queue_table_names_the_zone_of_its_times() -> None:
    from zoneinfo import ZoneInfo

    from ticketing.cli.output import queue_table

    ticket: dict[str, Any] = {
        **dict.fromkeys(["priority", "status", "waiting_on", "team", "agent", "account_id"]),
        **{"ticket_id": "t", "channel": "web", "subject": "s"},
        **{"opened_at": "2026-03-02T09:00:00+00:00", "sla_breached": []},
        **{"sla_due_at": "2026-03-02T10:00:00+00:00", "sla_next_metric": "first_reply"},
    }
    text = queue_table([ticket], ZoneInfo("Europe/Paris"))
    header, row = text.splitlines()
    assert "OPENED (EUROPE/PARIS)" in header and "SLA (NEXT DUE, EUROPE/PARIS)" in header
    assert "2026-03-02 10:00" in row
    assert "first_reply due 2026-03-02 11:00 CET" in row


# --- long texts ------------------------------------------------------------------------------


def test_descriptions_and_bodies_come_from_stdin_or_a_file(ticketing: Cli, tmp_path: Path) -> None:
    ticketing.ok("account", "create", "acme", "--name", "Acme Corp")
    opening = ("open", "--account", "acme", "--requester", "b@acme.example", "--subject", "S")
    from_stdin = ticketing.runner.invoke(
        cli,
        ["--home", str(ticketing.home), *opening, "--description", "-"],
        input="line 1\nline 2\n",
    )
    tid = from_stdin.stdout.strip()
    (tmp_path / "d.txt").write_text("from a file\n")
    other = ticketing.ok(*opening, "--description-file", str(tmp_path / "d.txt")).strip()
    ticketing.runner.invoke(
        cli, ["--home", str(ticketing.home), "comment", tid, "--body", "-"], input="piped reply"
    )
    ticketing.ok("comment", tid, "--body-file", str(tmp_path / "d.txt"), "--internal")
    shown = json.loads(ticketing.ok("show", tid, "--json"))
    assert shown["description"] == "line 1\nline 2\n"
    assert [c["body"] for c in shown["comments"]] == ["piped reply", "from a file\n"]
    assert json.loads(ticketing.ok("show", other, "--json"))["description"] == "from a file\n"
    both = failure(
        ticketing, *opening, "--description", "x", "--description-file", str(tmp_path / "d.txt")
    )
    assert (both.code, both.exit_code) == ("usage_error", exit_codes.USAGE)
    assert failure(ticketing, "comment", tid).exit_code == exit_codes.USAGE


# --- exit codes ------------------------------------------------------------------------------


def test_configuration_errors_share_one_code_and_exit_code(tmp_path: Path) -> None:
    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ticketing.cli", "--home", str(tmp_path / "h"), "show", "abcd"],
            env={**CLEAN_ENV, **env},
            capture_output=True,
            text=True,
            check=False,
        )

    missing_url = run({"TICKETING_EVENT_STORE": "postgres"})
    unknown_kind = run({"TICKETING_EVENT_STORE": "oracle"})
    for result in (missing_url, unknown_kind):
        assert result.returncode == exit_codes.USAGE, result.stderr
        assert result.stderr.startswith("error: configuration_error: TICKETING_")
        assert len(result.stderr.splitlines()) == 1


def test_the_readme_documents_the_one_table_of_exit_codes() -> None:
    section = README.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M)
    assert [(int(code), text) for code, text in rows] == list(exit_codes.TABLE)


def test_a_bad_at_exits_alike_on_tickets_and_on_sla_publish(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ticketing = Cli(home)
    tid = open_new_ticket(ticketing)
    on_ticket = run_main(home, "tag", tid, "x", "--at", "later")
    on_policy = run_main(home, "sla", "publish", str(EXAMPLE_POLICY), "--at", "later")
    assert on_ticket.returncode == on_policy.returncode == exit_codes.USAGE
    assert on_ticket.stderr.split(":")[:2] == on_policy.stderr.split(":")[:2]


# --- the rest --------------------------------------------------------------------------------


def test_the_quick_start_puts_ticketing_on_the_path() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"^\. \.venv/bin/activate", quick_start, re.M)
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in quick_start


def test_serve_help_names_the_log_files(ticketing: Cli) -> None:
    text = " ".join(ticketing.ok("serve", "--help").split())
    assert "<home>/logs/" in text and "queue-projector.log" in text
    assert "<home>/nats/server.log" in text


def test_status_lists_idle_workers_beside_those_that_answered() -> None:
    report: dict[str, Any] = {
        "event_store": "sqlite",
        "nats": {"url": "nats://x", "reachable": True},
        "stream": {"last_sequence": 3, "last_notification_id": 3},
        "store": {"last_notification_id": 3},
        "relay_lag_events": 0,
        "processes": [
            {"name": "ticketing-relay", "id": "a", "stats": {"position": 3}, "state": "ok"},
            {"name": "ticketing-commands", "id": "b", "stats": {}, "state": "ok"},
        ],
        "serve": {
            "pid": 1,
            "children": [
                {"name": "relay", "pid": 11, "failing": False},
                {"name": "command-service", "pid": 12, "failing": False},
                {"name": "triggers", "pid": 13, "failing": False},
                {"name": "router", "pid": 14, "failing": True},
            ],
        },
    }
    rows = {line.split()[0]: line.split() for line in status_text(report).splitlines()}
    assert rows["triggers"][1:4] == ["pid", "13", "-"] and "idle" in rows["triggers"]
    assert "FAILING" in rows["router"]
    assert "command-service" not in rows  # it answered, as ticketing-commands
    assert "idle:" in rows


def test_the_demo_says_when_it_cuts_the_queue(ticketing: Cli) -> None:
    from ticketing.cli.demo import show_queue
    from ticketing.settings import Settings

    ticketing.ok("account", "create", "acme", "--name", "Acme Corp")
    for n in range(3):
        open_with(ticketing, f"o{n}")
    ticketing.ok("rebuild", "queue")
    settings = Settings(home=ticketing.home)
    assert show_queue(settings, limit=2).endswith(
        "\n(2 of 3 shown; `ticketing queue` lists them all)"
    )
    assert "shown" not in show_queue(settings, limit=3)


def test_make_test_says_how_to_enable_the_skipped_postgres_tests() -> None:
    from tests.conftest import postgres_hint

    class Report:
        stats = {
            "skipped": [
                type(
                    "R",
                    (),
                    {"longrepr": ("f", 1, "Skipped: TICKETING_TEST_POSTGRES_URL is not set")},
                )()
            ]
        }

    assert "TICKETING_TEST_POSTGRES_URL" in (postgres_hint(Report()) or "")
    Report.stats = {}
    assert postgres_hint(Report()) is None


def test_the_queue_limit_help_names_the_queues_own_maximum(ticketing: Cli) -> None:
    from projections.queue.queries import MAX_LIMIT

    assert f"1 to {MAX_LIMIT:,}" in " ".join(ticketing.ok("queue", "--help").split())
    assert "--version" in ticketing.ok("--help") and "show" in ticketing.ok("--help")


@pytest.mark.parametrize("skew", ["soon", "-5", "90000"])
def test_a_bad_clock_skew_is_a_configuration_error_naming_the_variable(
    tmp_path: Path, skew: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "--home", str(tmp_path / "h"), "principals"],
        env={**CLEAN_ENV, "TICKETING_CLOCK_SKEW": skew},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == exit_codes.USAGE
    assert result.stderr.startswith("error: configuration_error: TICKETING_CLOCK_SKEW must be")
    assert not (tmp_path / "h").exists()
