"""Benchmark: KPI query latency on a generated analytics projection at scale.

Run as a file, never imported:

    .venv/bin/python scripts/bench/kpi_latency.py          # 1M tickets, 10M events
    .venv/bin/python scripts/bench/kpi_latency.py --smoke  # tiny sizes, for CI
    .venv/bin/python scripts/bench/kpi_latency.py --kpi-tickets 200000

Everything happens in one fresh temporary directory, removed afterwards.

What is measured:

**KPI query latency at scale**: an analytics projection of `--kpi-tickets` tickets with ten
events each (1M / 10M by default) generated directly with DuckDB SQL into the schema that
`AnalyticsStore(path)` creates (plausible, self-consistent times, statuses, ratings and
status moves; event rows in time order). Each query runs `KPI_REPEATS` times on a
read-only connection (`open_readonly`, as analysts do), the first run cold.

Aims: every KPI query's median <= 100 ms on 1M tickets / 10M events.

The KPI part of the former `projectors.py`, with the same JSON keys (`kpi`, `aims`); the
generated projection lives under the system temporary directory (TMPDIR to move it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from benchkit import (
    aim,
    bench_main,
    bench_parser,
    log,
    machine_load,
    run_context,
)

from projections.analytics.kpis import kpi_summary
from projections.analytics.queries import open_readonly
from projections.analytics.store import (
    AnalyticsStore,
)

AIM_KPI_MS = 100.0
KPI_REPEATS = 5
KPI_EVENTS_PER_TICKET = 10


# --- KPI latency at scale -------------------------------------------------------------------

KPI_START = "2025-11-25 00:00:00+00"
KPI_DAYS = 365

GENERATE_TICKETS = """
CREATE TEMP TABLE gen AS
WITH a AS (
    SELECT
        i,
        uuid() AS ticket_id,
        rnd(i, 1) AS r_cat,
        rnd(i, 2) AS r_status,
        floor(pow(rnd(i, 3), 2) * 2000)::INTEGER AS account,
        epoch(TIMESTAMPTZ '{start}') + rnd(i, 4) * {days} * 86400 AS opened_s
    FROM range({tickets}) r(i)
), b AS (
    SELECT
        *,
        CASE WHEN r_cat < 0.10 THEN 'incident' WHEN r_cat < 0.35 THEN 'technical'
             WHEN r_cat < 0.60 THEN 'account' WHEN r_cat < 0.85 THEN 'usage'
             ELSE 'feedback' END AS category,
        NOT ((epoch(TIMESTAMPTZ '{start}') + {days} * 86400 - opened_s < 10 * 86400
              AND r_status < 0.5) OR r_status < 0.02) AS done
    FROM a
)
SELECT
    *,
    CASE WHEN done THEN (CASE WHEN rnd(i, 5) < 0.65 THEN 'closed' ELSE 'solved' END)
         ELSE ['new', 'open', 'open', 'pending', 'pending', 'on_hold'][
             1 + floor(rnd(i, 6) * 6)::INTEGER] END AS status,
    CASE category WHEN 'incident' THEN 'urgent' WHEN 'feedback' THEN 'low'
         WHEN 'technical' THEN (CASE WHEN rnd(i, 7) < 0.7 THEN 'high' ELSE 'normal' END)
         ELSE 'normal' END AS priority,
    ['email', 'email', 'email', 'chat', 'chat', 'web', 'phone', 'slack', 'api'][
        1 + floor(rnd(i, 8) * 9)::INTEGER] AS channel,
    CASE category WHEN 'technical' THEN 'network' WHEN 'account' THEN 'billing'
         WHEN 'feedback' THEN 'billing' ELSE 'platform' END AS team,
    CASE WHEN account < 100 THEN 'enterprise' WHEN account < 600 THEN 'business'
         ELSE 'standard' END AS tier,
    20 + expo(i, 9, 1200) AS assigned_s,
    60 + expo(i, 10, 5400) AS reply_s,
    rnd(i, 11) < 0.3 AS automated,
    60 + expo(i, 10, 5400) + expo(i, 12, 86400) AS solve_s,
    rnd(i, 13) < 0.08 AS reopened,
    expo(i, 14, 172800) AS reopen_s,
    rnd(i, 15) < 0.55 AS rated,
    CASE WHEN rnd(i, 16) < 0.50 THEN 5 WHEN rnd(i, 16) < 0.75 THEN 4
         WHEN rnd(i, 16) < 0.85 THEN 3 WHEN rnd(i, 16) < 0.93 THEN 2 ELSE 1 END AS score,
    1 + floor(rnd(i, 17) * 4)::INTEGER AS agent_replies,
    floor(rnd(i, 18) * 3)::INTEGER AS customer_replies,
    floor(rnd(i, 19) * 2)::INTEGER AS internal_comments,
    rnd(i, 20) AS r_wait,
    rnd(i, 21) < 0.2 AS held,
    rnd(i, 22) < 0.1 AS reassigned,
    rnd(i, 23) < 0.15 AS agent_opened,
    'agent' || (1 + floor(rnd(i, 24) * 8)::INTEGER) AS agent_no
FROM b
"""

# Times as seconds since the epoch, then each ticket_facts column from them.
TIMES = """
CREATE TEMP TABLE tt AS
SELECT
    *,
    opened_s + assigned_s AS assigned_at_s,
    CASE WHEN status <> 'new' THEN opened_s + reply_s END AS reply_at_s,
    CASE WHEN done THEN opened_s + solve_s END AS first_solved_s,
    CASE WHEN done THEN opened_s + solve_s + (CASE WHEN reopened THEN reopen_s ELSE 0 END)
         END AS last_solved_s
FROM gen
"""

INSERT_TICKETS = """
INSERT INTO ticket_facts
SELECT
    ticket_id,
    'acct-' || account,
    tier,
    channel,
    category,
    priority,
    'user' || (i % 50) || '@acct-' || account || '.example',
    to_timestamp(opened_s),
    CASE WHEN agent_opened THEN 'agent' ELSE 'customer' END,
    status,
    to_timestamp(coalesce(CASE status WHEN 'closed' THEN last_solved_s + 4 * 86400
        WHEN 'solved' THEN last_solved_s END, reply_at_s, opened_s)),
    to_timestamp(reply_at_s),
    CASE WHEN automated THEN to_timestamp(opened_s + 60) END,
    to_timestamp(assigned_at_s),
    to_timestamp(first_solved_s),
    to_timestamp(last_solved_s),
    CASE WHEN status = 'closed' THEN to_timestamp(last_solved_s + 4 * 86400) END,
    CASE WHEN reopened AND done THEN 1 ELSE 0 END,
    CASE WHEN status = 'new' THEN 0 ELSE agent_replies END,
    CASE WHEN status = 'new' THEN 0 ELSE agent_replies + customer_replies END,
    internal_comments,
    assigned_s,
    CASE WHEN done THEN (solve_s - assigned_s) * (1 - r_wait * 0.4) ELSE reply_s END,
    CASE WHEN done THEN (solve_s - assigned_s) * r_wait * 0.3 ELSE 0 END,
    CASE WHEN done AND held THEN (solve_s - assigned_s) * r_wait * 0.1 ELSE 0 END,
    team,
    team || '-' || agent_no,
    CASE WHEN done THEN team END,
    CASE WHEN done THEN team || '-' || agent_no END,
    CASE WHEN reassigned THEN 1 ELSE 0 END,
    CASE WHEN done AND rated THEN score END,
    CASE WHEN done AND rated AND score >= 4 THEN 'Thanks!' END,
    CASE WHEN done AND rated THEN to_timestamp(last_solved_s + 7200) END,
    to_timestamp(CASE WHEN status = 'closed' THEN last_solved_s + 4 * 86400
        WHEN done AND rated THEN last_solved_s + 7200 WHEN done THEN last_solved_s
        ELSE opened_s + reply_s + 7200 END),
    {events_per_ticket},
    'Generated ticket ' || i,  -- subject
    NULL  -- external_id: generated, not imported
FROM tt
ORDER BY opened_s
"""

# Ten events per ticket, consistent with its row: opened, categorized, prioritized, assigned,
# first agent reply and the move new -> open, customer and agent comments, resolution, then a
# close, a rating or another comment. Event rows go in time order, as the stream has them.
INSERT_EVENTS = """
INSERT INTO event_facts
SELECT
    seq, seq, ticket_id, 'ticket', k + 1, type, to_timestamp(ev_s), to_timestamp(ev_s),
    actor_kind, actor_id, NULL, 'acct-' || account, from_status, to_status,
    '{{"type":"' || type || '","aggregate_id":"' || ticket_id || '","version":' || (k + 1)
        || ',"actor":{{"kind":"' || actor_kind || '","id":"' || actor_id || '"}}}}'
FROM (SELECT *, row_number() OVER (ORDER BY ev_s, ticket_id, k) AS seq FROM (
    SELECT
        i, ticket_id, account, k,
        CASE k WHEN 0 THEN 'TicketOpened' WHEN 1 THEN 'TicketCategorized'
            WHEN 2 THEN 'TicketPrioritized' WHEN 3 THEN 'TicketAssigned'
            WHEN 5 THEN (CASE WHEN status = 'new' THEN 'CommentAdded' ELSE 'StatusChanged' END)
            WHEN 8 THEN (CASE WHEN done THEN 'TicketResolved' ELSE 'CommentAdded' END)
            WHEN 9 THEN (CASE WHEN status = 'closed' THEN 'TicketClosed'
                WHEN done AND rated THEN 'TicketRated' ELSE 'CommentAdded' END)
            ELSE 'CommentAdded' END AS type,
        CASE k WHEN 0 THEN opened_s WHEN 1 THEN opened_s + 10 WHEN 2 THEN opened_s + 11
            WHEN 3 THEN assigned_at_s
            WHEN 4 THEN coalesce(reply_at_s, assigned_at_s + 1)
            WHEN 5 THEN coalesce(reply_at_s, assigned_at_s + 2)
            WHEN 8 THEN coalesce(first_solved_s, opened_s + reply_s + 3600)
            WHEN 9 THEN (CASE WHEN status = 'closed' THEN last_solved_s + 4 * 86400
                WHEN done THEN last_solved_s + 7200 ELSE opened_s + reply_s + 7200 END)
            ELSE coalesce(reply_at_s, assigned_at_s) + (k - 5) * 900 END AS ev_s,
        CASE WHEN k IN (1, 2) THEN 'automation' WHEN k = 9 AND status = 'closed' THEN 'system'
            WHEN k = 0 AND NOT agent_opened OR k = 6 OR (k = 9 AND done AND rated)
                THEN 'customer' ELSE 'agent' END AS actor_kind,
        CASE WHEN k IN (1, 2) THEN 'triage-rules' WHEN k = 9 AND status = 'closed'
            THEN 'auto-close' ELSE team || '-' || agent_no END AS actor_id,
        CASE WHEN k = 5 AND status <> 'new' THEN 'new'
            WHEN k = 8 AND done THEN 'open'
            WHEN k = 9 AND status = 'closed' THEN 'solved' END AS from_status,
        CASE WHEN k = 5 AND status <> 'new' THEN (CASE WHEN done THEN 'open' ELSE status END)
            WHEN k = 8 AND done THEN 'solved'
            WHEN k = 9 AND status = 'closed' THEN 'closed' END AS to_status
    FROM tt, range({events_per_ticket}) e(k)
))
ORDER BY seq
"""

INSERT_ACCOUNTS = """
INSERT INTO accounts
SELECT uuid(), 'acct-' || n, 'Account ' || n,
    CASE WHEN n < 100 THEN 'enterprise' WHEN n < 600 THEN 'business' ELSE 'standard' END,
    1, TIMESTAMPTZ '{start}'
FROM range(2000) r(n)
"""


def generate_projection(path: Path, tickets: int, scratch: Path) -> float:
    """Bulk-generate the analytics tables in the store's own schema; seconds taken."""
    AnalyticsStore(path).close()  # the schema and the KPI views
    start = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET memory_limit = '4GB'")
        con.execute(f"SET temp_directory = '{scratch}'")
        con.execute("CREATE TEMP MACRO rnd(i, s) AS (hash(i * 64 + s) % 1000000) / 1000000.0")
        con.execute("CREATE TEMP MACRO expo(i, s, mean) AS -ln(1 - rnd(i, s)) * mean")
        sizes = {"start": KPI_START, "days": KPI_DAYS, "tickets": tickets}
        con.execute(GENERATE_TICKETS.format(**sizes))
        con.execute(TIMES)
        con.execute("DROP TABLE gen")
        con.execute(INSERT_TICKETS.format(events_per_ticket=KPI_EVENTS_PER_TICKET))
        log(f"  ticket_facts: {tickets} rows after {time.perf_counter() - start:.1f} s")
        con.execute(INSERT_EVENTS.format(events_per_ticket=KPI_EVENTS_PER_TICKET))
        log(
            f"  event_facts: {tickets * KPI_EVENTS_PER_TICKET} rows after "
            f"{time.perf_counter() - start:.1f} s"
        )
        con.execute(INSERT_ACCOUNTS.format(start=KPI_START))
        con.execute(
            "UPDATE projection_position SET stream_sequence = ?, updated_at = now() "
            "WHERE projection = 'analytics'",
            [tickets * KPI_EVENTS_PER_TICKET],
        )
        con.execute("DROP TABLE tt")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return time.perf_counter() - start


def kpi_queries() -> dict[str, Callable[[duckdb.DuckDBPyConnection], Any]]:
    def sql(text: str) -> Callable[[duckdb.DuckDBPyConnection], Any]:
        return lambda con: con.execute(text).fetchall()

    end = datetime.fromisoformat(KPI_START).timestamp() + KPI_DAYS * 86400
    last_30 = datetime.fromtimestamp(end - 30 * 86400, UTC)
    return {
        "kpi_summary": kpi_summary,
        "kpi_summary_by_category": lambda con: kpi_summary(con, by="category"),
        "kpi_summary_by_team": lambda con: kpi_summary(con, by="team"),
        "kpi_summary_by_channel": lambda con: kpi_summary(con, by="channel"),
        "kpi_summary_by_tier": lambda con: kpi_summary(con, by="tier"),
        "kpi_summary_last_30_days": lambda con: kpi_summary(con, since=last_30),
        "kpi_backlog": sql("SELECT * FROM kpi_backlog"),
        "kpi_daily_volume_per_day": sql(
            "SELECT day, sum(opened) AS opened FROM kpi_daily_volume GROUP BY day ORDER BY day"
        ),
        "kpi_daily_volume_per_day_and_team": sql(
            "SELECT day, team, sum(opened) FROM kpi_daily_volume GROUP BY ALL ORDER BY ALL"
        ),
        "kpi_csat": sql("SELECT * FROM kpi_csat"),
    }


def measure_kpis(root: Path, tickets: int) -> dict[str, Any]:
    home = root / "kpi"
    home.mkdir()
    path = home / "analytics.duckdb"
    log(f"kpi: generating {tickets} tickets / {tickets * KPI_EVENTS_PER_TICKET} events")
    generated = generate_projection(path, tickets, home / "spill")
    size_mb = path.stat().st_size / 1e6
    log(f"  generated in {generated:.1f} s, {size_mb:.0f} MB")
    con = open_readonly(path)
    try:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM ticket_facts), (SELECT count(*) FROM event_facts)"
        ).fetchall()[0]
        queries: dict[str, Any] = {}
        for name, query in kpi_queries().items():
            runs = []
            for _ in range(KPI_REPEATS):
                start = time.perf_counter()
                rows = query(con)
                runs.append((time.perf_counter() - start) * 1000)
            queries[name] = {
                "median_ms": round(statistics.median(runs), 2),
                "max_ms": round(max(runs), 2),
                "first_ms": round(runs[0], 2),
                "rows": len(rows),
            }
            log(
                f"  {name:36} median {queries[name]['median_ms']:8.1f} ms, max "
                f"{queries[name]['max_ms']:8.1f} ms"
            )
    finally:
        con.close()
    return {
        "tickets": counts[0],
        "events": counts[1],
        "generate_s": round(generated, 1),
        "file_mb": round(size_mb, 1),
        "repeats": KPI_REPEATS,
        "queries": queries,
    }


# --- running --------------------------------------------------------------------------------


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    load_before = machine_load()
    kpis = measure_kpis(root, args.kpi_tickets)
    load_after = machine_load()
    aims = {
        f"{name}_median_ms": aim(AIM_KPI_MS, stats["median_ms"], higher_is_better=False)
        for name, stats in kpis["queries"].items()
    }
    return {
        "benchmark": "kpi_latency",
        "store": "sqlite",
        "smoke": args.smoke,
        "kpi": kpis,
        "aims": aims,
        **run_context(load_before, load_after, "nats-py", "duckdb", "pyarrow", sqlite=True),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--kpi-tickets", type=int, default=1_000_000, help="KPI tickets, 10 events each (1M)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.kpi_tickets = 10_000
    if args.kpi_tickets <= 0:
        parser.error("sizes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench_main("kpi-latency", args, f"bench KPI latency: {args.kpi_tickets} tickets", run)


if __name__ == "__main__":
    sys.exit(main())
