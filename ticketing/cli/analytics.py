"""Analyst commands: `ticketing sql` and `ticketing kpi`, read from the published snapshot.

They never open the live DuckDB file (its writer, the analytics projector, locks it); they read
`<home>/analytics-snapshot.duckdb`, which the projector republishes every second or so."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from ticketing.cli import output
from ticketing.cli.context import CliError, current_context
from ticketing.cli.exit_codes import USAGE
from ticketing.cli.times import parse_moment

LIVE_NAME = "analytics.duckdb"
SNAPSHOT_NAME = "analytics-snapshot.duckdb"
NO_SNAPSHOT = "no analytics snapshot yet: run `ticketing serve` or `ticketing rebuild analytics`"
SQL_ROW_LIMIT = 1_000
"""Rows `sql` prints unless told otherwise (`--limit N`; 0: all)."""
SNAPSHOT_TABLES = (
    "event_facts",
    "ticket_facts",
    "accounts",
    "ticket_sla",
    "projection_position",
)
SNAPSHOT_VIEWS = (
    "kpi_ticket_metrics",
    "kpi_daily_volume",
    "kpi_backlog",
    "kpi_csat",
    "kpi_sla_achievement",
)
SNAPSHOT_STATE = ("sla_catalog", "sla_state")
"""The projector's own fold state, readable too but not meant for reports."""
# What analysts can query; a test compares these with the snapshot's own catalogue.


def snapshot_path() -> Path:
    """The snapshot in the current invocation's home directory (`not_found` without one)."""
    obj = current_context()
    obj.require_home()
    return obj.settings.home / SNAPSHOT_NAME


def _one_line(error: Exception) -> str:
    """DuckDB messages span lines (hints, the query with a caret); keep the telling part."""
    lines: list[str] = []
    for line in str(error).splitlines():
        text = line.strip()
        if text.startswith("LINE "):
            break
        if text:
            lines.append(text)
    return " ".join(lines) or type(error).__name__


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


@click.command(
    "sql",
    help="Run read-only SQL against the analytics snapshot ('-' reads the SQL from stdin); at "
    f"most {SQL_ROW_LIMIT:,} rows are printed unless --limit says otherwise.\n\n"
    f"Tables: {', '.join(SNAPSHOT_TABLES)}; views: {', '.join(SNAPSHOT_VIEWS)} "
    f"(docs/kpis.md defines them); the projector's own state: {', '.join(SNAPSHOT_STATE)}.",
)
@click.argument("query", metavar="SQL")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=SQL_ROW_LIMIT,
    show_default=True,
    help="Print at most this many rows (0: all); a note says when rows were cut.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of row objects.")
def sql_command(query: str, limit: int, as_json: bool) -> None:
    import duckdb

    from projections.analytics.queries import SnapshotMissingError, run_sql

    text = sys.stdin.read() if query == "-" else query
    if not text.strip():
        raise CliError(
            "usage_error",
            'SQL: empty; give a query, e.g. `ticketing sql "SELECT count(*) FROM ticket_facts"`',
            USAGE,
        )
    try:
        columns, rows = run_sql(snapshot_path(), text)
    except SnapshotMissingError as error:
        raise CliError("no_snapshot", NO_SNAPSHOT) from error
    except duckdb.Error as error:
        raise CliError("sql_error", _one_line(error)) from error
    total = len(rows)
    if limit and total > limit:
        rows = rows[:limit]
    cut = (
        f"{len(rows):,} of {total:,} rows shown; --limit N for more (0: all)"
        if len(rows) < total
        else None
    )
    if as_json:
        objects = [dict(zip(columns, row, strict=True)) for row in rows]
        click.echo(json.dumps(objects, default=_json_value, indent=2))
        if cut:
            click.echo(f"note: {cut}", err=True)
    elif columns:
        click.echo(output.table(rows, columns))
        click.echo(f"({cut})" if cut else f"({total} row{'s' if total != 1 else ''})")


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.1f}%"


def format_summary(groups: list[dict[str, Any]]) -> str:
    """Two readable tables: duration KPIs (minutes) per group, then counts and rates."""
    durations = [
        (
            g["group"],
            name.removesuffix("_minutes"),
            stats["count"],
            _number(stats["median"]),
            _number(stats["p90"]),
            _number(stats["mean"]),
        )
        for g in groups
        for name, stats in g["kpis"].items()
    ]
    rates = [
        (
            g["group"],
            g["tickets"],
            g["solved"],
            _percent(g["reopen_rate"]),
            _percent(g["one_touch_rate"]),
            g["ratings"],
            _percent(g["csat"]),
            _number(g["mean_rating"]),
        )
        for g in groups
    ]
    return (
        output.table(durations, ["group", "kpi (minutes)", "count", "median", "p90", "mean"])
        + "\n\n"
        + output.table(
            rates,
            [
                "group",
                "tickets",
                "solved",
                "reopen_rate",
                "one_touch_rate",
                "ratings",
                "csat",
                "mean_rating",
            ],
        )
    )


def kpi_table(
    path: Path,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    by: str | None = None,
) -> str:
    """The readable KPI report of a snapshot (raises `SnapshotMissingError` without one)."""
    from projections.analytics.kpis import kpi_summary
    from projections.analytics.queries import open_readonly

    con = open_readonly(path)
    try:
        return format_summary(kpi_summary(con, since=since, until=until, by=by))
    finally:
        con.close()


@click.command("kpi")
@click.option(
    "--since",
    help="Only tickets opened at or after this time (ISO 8601; a date alone: its midnight; "
    "without a zone: in --tz).",
)
@click.option(
    "--until",
    help="Only tickets opened before this time (exclusive; same syntax as --since).",
)
@click.option(
    "--by",
    type=click.Choice(["category", "priority", "team", "channel", "account", "tier"]),
    help="Group the report; default one overall group.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def kpi_command(since: str | None, until: str | None, by: str | None, as_json: bool) -> None:
    """KPIs from the analytics snapshot: medians, p90s and means in minutes, plus rates."""
    import duckdb

    from projections.analytics.kpis import kpi_summary
    from projections.analytics.queries import SnapshotMissingError, open_readonly

    zone = current_context().zone
    start = parse_moment(since, "--since", zone) if since else None
    end = parse_moment(until, "--until", zone) if until else None
    try:
        con = open_readonly(snapshot_path())
    except SnapshotMissingError as error:
        raise CliError("no_snapshot", NO_SNAPSHOT) from error
    try:
        groups = kpi_summary(con, since=start, until=end, by=by)
    except duckdb.Error as error:
        raise CliError("sql_error", _one_line(error)) from error
    finally:
        con.close()
    if as_json:
        click.echo(json.dumps(groups, default=_json_value, indent=2))
    else:
        click.echo(format_summary(groups))


def register(group: click.Group) -> None:
    """Add the analyst commands to the main `ticketing` group."""
    group.add_command(sql_command)
    group.add_command(kpi_command)
