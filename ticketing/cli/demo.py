"""`ticketing demo`: the whole stack on embedded defaults, driven through the NATS command API
by a seeded day of support (or, with `--log`, a real event log replayed through the importer);
then the live queue and the KPI table, and everything stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commands import models as m
from commands.client import SyncTicketingClient
from ticketing.cli import output
from ticketing.cli.demo_day import DEMO_DAY, support_day
from ticketing.home import serve_lock
from ticketing.nats.connect import connect, resolve_endpoint
from ticketing.runtime.supervisor import Supervisor
from ticketing.settings import Settings, analytics_snapshot_path, queue_path

if TYPE_CHECKING:
    from ticketing.importing.mapping import ImportMapping


def run_demo(
    settings: Settings,
    say: Callable[[str], None],
    *,
    tickets: int = 80,
    seed: int = 7,
    log: Path | None = None,
    mapping: ImportMapping | None = None,
) -> dict[str, Any]:
    """Start the stack, drive it, show the queue and KPIs, stop it; returns what was sent."""
    with serve_lock(settings.home):  # the demo's stack is a `serve`: one per home
        return _run_demo(settings, say, tickets=tickets, seed=seed, log=log, mapping=mapping)


def _run_demo(
    settings: Settings,
    say: Callable[[str], None],
    *,
    tickets: int,
    seed: int,
    log: Path | None,
    mapping: ImportMapping | None,
) -> dict[str, Any]:
    supervisor = Supervisor(settings, say)
    say(f"starting the stack in {settings.home}")
    supervisor.start()
    try:
        endpoint = resolve_endpoint(settings)
        started = time.monotonic()
        if log is not None and mapping is not None:
            counts = replay_log(settings, say, log, mapping)
        else:
            with SyncTicketingClient(endpoint, principal="admin", timeout=10) as client:
                publish_example_policy(client, say, in_force_from=DEMO_DAY - timedelta(hours=1))
                counts = support_day(
                    lambda command: client.execute(command, retry_for=30, raise_errors=False),
                    tickets=tickets,
                    seed=seed,
                )
            elapsed = time.monotonic() - started
            say(
                f"sent {counts['commands']} commands over NATS in {elapsed:.1f} s: "
                f"{counts['accounts']} accounts, {counts['tickets']} tickets, "
                f"{counts['reopened']} reopened, {counts['rated']} rated"
            )
        sequence = wait_for_projections(settings, timeout=90 if log is None else 300)
        say(f"projections caught up with stream sequence {sequence}")
        say("")
        say("The queue (unsolved, by priority):")
        say(show_queue(settings))
        say("")
        say(
            "KPIs (minutes; calendar time):" if log else "KPIs of the day (minutes; calendar time):"
        )
        say(show_kpis(settings))
        if log is None:
            say("")
            say("SLA achievement (mappings/sla.example.toml; the monitor judges as of now):")
            say(show_sla(settings))
        return counts
    finally:
        supervisor.stop()
        supervisor.checkpoint()  # sign what the demo wrote, as `serve` does on stopping


def replay_log(
    settings: Settings, say: Callable[[str], None], log: Path, mapping: ImportMapping
) -> dict[str, Any]:
    """Import `log` through the running command service over NATS, saying how it goes."""
    from ticketing.cli.importing import summary_text
    from ticketing.importing.runner import ImportReport, ImportRunner, ProgressFile, progress_path
    from ticketing.importing.senders import NatsSender

    say(f"replaying {log} through the NATS command API ({mapping.source.name})")
    shown = [0.0]

    def progress(report: ImportReport) -> None:
        if time.monotonic() - shown[0] >= 2 or report.finished:
            shown[0] = time.monotonic()
            say(f"  {report.cases_done:,}/{report.cases:,} cases, {report.commands:,} commands")

    with NatsSender(resolve_endpoint(settings)) as sender:
        report = ImportRunner(
            mapping,
            log,
            sender,
            progress=ProgressFile(progress_path(settings.home, mapping.source.name)),
            categories=settings.categories,
            on_progress=progress,
        ).run()
    say(summary_text(report))
    return report.as_dict()


def wait_for_projections(settings: Settings, timeout: float) -> int:
    """Wait until the relay has published everything and both projections have it."""
    from projections.relay import last_published_position
    from ticketing.runtime.status import store_position

    async def stream_position() -> tuple[int, int]:
        nc = await connect(
            resolve_endpoint(settings), "admin", name="demo", reconnect_forever=False
        )
        try:
            return await last_published_position(nc.jetstream(timeout=5))
        finally:
            await nc.close()

    from ticketing.runtime.bootstrap import build_application

    app = build_application(settings)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sequence, published = asyncio.run(stream_position())
            unpublished = store_position(app, published)["unpublished"]
            if unpublished == 0 and min(projection_positions(settings).values()) >= sequence:
                return sequence
            time.sleep(0.2)
    finally:
        app.close()
    raise TimeoutError(f"projections did not catch up within {timeout:.0f} s")


def projection_positions(settings: Settings) -> dict[str, int]:
    import duckdb

    from projections.queue.queries import open_reader, queue_position

    positions = {"queue": 0, "analytics": 0}
    if queue_path(settings).exists():
        reader = open_reader(queue_path(settings))
        try:
            positions["queue"] = queue_position(reader)
        finally:
            reader.close()
    snapshot = analytics_snapshot_path(settings)
    if snapshot.exists():
        with duckdb.connect(str(snapshot), read_only=True) as con:
            row = con.execute("SELECT max(stream_sequence) FROM projection_position").fetchone()
            positions["analytics"] = int(row[0] or 0) if row else 0
    return positions


def show_queue(settings: Settings, limit: int = 15) -> str:
    """The first `limit` tickets of the live queue, saying so when there are more."""
    from projections.queue.queries import MAX_LIMIT, QueueQuery, list_queue, open_reader

    reader = open_reader(queue_path(settings))
    try:
        tickets = list_queue(reader, QueueQuery(limit=MAX_LIMIT))
    finally:
        reader.close()
    table = output.queue_table(tickets[:limit])
    if len(tickets) <= limit:
        return table
    return f"{table}\n({limit} of {len(tickets)} shown; `ticketing queue` lists them all)"


EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "mappings" / "sla.example.toml"


def publish_example_policy(
    client: SyncTicketingClient, say: Callable[[str], None], *, in_force_from: datetime
) -> None:
    """Business hours and tiered targets, in force from before the simulated day, so the
    queue shows due times and analytics SLA achievement (skipped where the example file is
    not installed)."""
    from commands.policy_publishing import publish_commands
    from ticketing.sla.policy_file import load_policy_file

    if not EXAMPLE_POLICY.exists():
        return
    actor = m.ActorModel(kind="system", id="demo")
    policy_file = load_policy_file(EXAMPLE_POLICY)
    for command in publish_commands(policy_file, actor, in_force_from):
        client.execute(command, retry_for=30)
    say(f"published the SLA policy in {EXAMPLE_POLICY.name}")


def show_sla(settings: Settings) -> str:
    from ticketing.cli.sla import sla_report, sla_report_table

    return sla_report_table(sla_report(analytics_snapshot_path(settings)))


def show_kpis(settings: Settings) -> str:
    from ticketing.cli.analytics import kpi_table

    return kpi_table(analytics_snapshot_path(settings))
