"""`ticketing sql` and `ticketing kpi`: readable and JSON output from the analysts' snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from projections.analytics.store import AnalyticsStore
from tests.integration.test_analytics_store import scenario
from ticketing.cli.analytics import (
    LIVE_NAME,
    NO_SNAPSHOT,
    SNAPSHOT_NAME,
    SNAPSHOT_STATE,
    SNAPSHOT_TABLES,
    SNAPSHOT_VIEWS,
    kpi_table,
    register,
)
from ticketing.cli.app import CliError, Context
from ticketing.settings import Settings


@click.group()
@click.option("--home", type=click.Path(file_okay=False), required=True)
@click.pass_context
def group(ctx: click.Context, home: str) -> None:
    """Stands in for the main `ticketing` group, which the lead wires."""
    ctx.obj = Context(Settings(home=Path(home)))


register(group)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def published(home: Path) -> Path:
    events, _ = scenario()
    with AnalyticsStore(home / LIVE_NAME) as store:
        store.apply(events)
        store.publish_snapshot(home / SNAPSHOT_NAME)
    return home


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(group, ["--home", str(home), *args])


def failure(result: Result) -> CliError:
    assert result.exit_code != 0
    assert isinstance(result.exception, CliError), result.output
    return result.exception


def test_sql_prints_a_readable_table_with_a_row_count(published: Path) -> None:
    result = invoke(
        published, "sql", "SELECT status, count(*) AS n FROM ticket_facts GROUP BY 1 ORDER BY 1"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["STATUS", "N"]
    assert lines[1].split() == ["closed", "1"]
    assert lines[-1] == "(3 rows)"


def test_sql_json_prints_a_list_of_row_objects(published: Path) -> None:
    result = invoke(
        published, "sql", "SELECT day, backlog FROM kpi_backlog ORDER BY day LIMIT 2", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"day": "2026-03-02", "backlog": 1},
        {"day": "2026-03-03", "backlog": 2},
    ]


def test_a_sql_error_is_one_clear_line(published: Path) -> None:
    error = failure(invoke(published, "sql", "SELECT * FROM no_such_table"))
    assert error.code == "sql_error"
    assert "no_such_table" in error.message
    assert "\n" not in error.message


def test_sql_cannot_change_the_snapshot(published: Path) -> None:
    error = failure(invoke(published, "sql", "DELETE FROM ticket_facts"))
    assert (error.code, "read-only" in error.message) == ("sql_error", True)


def test_without_a_snapshot_the_commands_say_how_to_get_one(home: Path) -> None:
    home.mkdir()  # a home without a snapshot (a home that does not exist is not_found)
    for args in (["sql", "SELECT 1"], ["kpi"]):
        error = failure(invoke(home, *args))
        assert (error.code, error.message) == ("no_snapshot", NO_SNAPSHOT)


def test_kpi_prints_one_row_per_group_and_kpi_then_the_rates(published: Path) -> None:
    result = invoke(published, "kpi", "--by", "category")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["incident", "first_reply", "2", "30.0", "30.0", "30.0"] in rows
    assert ["all"] not in [r[:1] for r in rows]
    assert ["usage", "1", "1", "0.0%", "0.0%", "0", "-", "-"] in rows


def test_kpi_json_filters_on_the_opening_day(published: Path) -> None:
    result = invoke(published, "kpi", "--since", "2026-03-03", "--until", "2026-03-04", "--json")
    assert result.exit_code == 0, result.output
    (overall,) = json.loads(result.output)
    assert (overall["group"], overall["tickets"], overall["solved"]) == ("all", 1, 0)


def test_kpi_table_reports_a_snapshot_for_the_demo(published: Path) -> None:
    text = kpi_table(published / SNAPSHOT_NAME)
    assert "first_resolution" in text and "REOPEN_RATE" in text


def test_sql_prints_at_most_its_limit_and_says_when_it_cut(published: Path) -> None:
    # Given a query with more rows than the limit
    query = "SELECT * FROM range(1500)"
    # When / Then: the default limit of 1,000
    lines = invoke(published, "sql", query).output.splitlines()
    assert len(lines) == 1 + 1_000 + 1
    assert lines[-1] == "(1,000 of 1,500 rows shown; --limit N for more (0: all))"
    # And a given limit, or none
    assert invoke(published, "sql", query, "--limit", "3").output.splitlines()[-1] == (
        "(3 of 1,500 rows shown; --limit N for more (0: all))"
    )
    assert invoke(published, "sql", query, "--limit", "0").output.splitlines()[-1] == (
        "(1500 rows)"
    )
    cut = invoke(published, "sql", query, "--limit", "2", "--json")
    assert len(json.loads(cut.stdout)) == 2
    assert "2 of 1,500 rows shown" in cut.stderr


def test_an_empty_sql_text_is_a_usage_error(published: Path) -> None:
    for text in ("", "  \n"):
        error = failure(invoke(published, "sql", text))
        assert (error.code, error.exit_code) == ("usage_error", 2)


def test_sql_help_lists_every_table_and_view_of_the_snapshot(published: Path) -> None:
    import duckdb

    with duckdb.connect(str(published / SNAPSHOT_NAME), read_only=True) as con:
        found = con.execute(
            "SELECT table_type, table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' ORDER BY 2"
        ).fetchall()
    tables = sorted(name for kind, name in found if kind == "BASE TABLE")
    views = sorted(name for kind, name in found if kind == "VIEW")
    assert sorted([*SNAPSHOT_TABLES, *SNAPSHOT_STATE]) == tables
    assert sorted(SNAPSHOT_VIEWS) == views
    text = " ".join(invoke(published, "sql", "--help").output.split())
    assert all(name in text for name in [*tables, *views])
    assert "ticket_sla" in text and "kpi_sla_achievement" in text


def test_kpi_takes_the_one_time_syntax_with_zones(published: Path) -> None:
    same_day = invoke(
        published, "kpi", "--since", "2026-03-03T00:00:00Z", "--until", "2026-03-04", "--json"
    )
    assert json.loads(same_day.output)[0]["tickets"] == 1
    error = failure(invoke(published, "kpi", "--since", "03/03/2026"))
    assert (error.code, error.exit_code) == ("invalid_time", 2)
    assert "%" not in error.message
