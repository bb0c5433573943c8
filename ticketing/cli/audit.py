"""Auditor and operator commands: history, verify, rebuild, export, checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ticketing.cli import output
from ticketing.cli.context import CliError, current_context, ticket_uuid
from ticketing.cli.times import local_iso, parse_moment

if TYPE_CHECKING:
    from replay.chain import ChainReport


@click.command()
@click.argument("ticket")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of events.")
def history(ticket: str, as_json: bool) -> None:
    """Every event of a ticket, oldest first, from the event store, with its chain hash
    (`log` is the same command). Times in --tz; redacted comments marked."""
    from replay.history import history as ticket_history

    obj = current_context()
    events = ticket_history(obj.service.app, ticket_uuid(ticket))
    if as_json:
        click.echo(json.dumps(events))
        return
    rows = [
        (
            e["version"],
            local_iso(e["occurred_at"], obj.zone),
            output.actor_text(e["actor"]),
            e["type"],
            _change_text(e),
            (e.get("event_hash") or "")[:12],
        )
        for e in events
    ]
    click.echo(output.table(rows, ["v", "occurred_at", "actor", "event", "change", "hash"]))


def _change_text(event: dict[str, Any]) -> str:
    if event.get("erased_without_redaction"):
        return "[text erased without a CommentRedacted: see `ticketing verify chain`]"
    return "[redacted]" if event.get("redacted") else output.describe_change(event)


@click.group()
def verify() -> None:
    """Prove the store and the projections right."""


@verify.command("chain")
@click.argument("ticket", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_chain(ticket: str | None, as_json: bool) -> None:
    """Check every hash chain (or one ticket's, against its head in the newest signed
    checkpoint) and the signed checkpoints; print one line per finding and exit non-zero."""
    from replay.chain import verify_aggregate, verify_store
    from replay.checkpoint import CheckpointLog

    obj = current_context()
    app = obj.service.app
    checkpoints = CheckpointLog(obj.settings.home / "audit")
    if ticket:
        report = verify_aggregate(app, ticket_uuid(ticket), checkpoints)
        if report.events == 0 and report.ok:
            raise CliError("not_found", f"ticket {ticket} not found")
    else:
        report = verify_store(app, checkpoints)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(
            f"{report.events} events in {report.aggregates} chains, "
            f"{report.checkpoints_checked} signed checkpoints checked"
        )
        if ticket:
            click.echo(_signed_head_line(report))
        for found in report.breaks[:MAX_FINDINGS_SHOWN]:
            click.echo(f"  {found.code}: {found.message}")
        if len(report.breaks) > MAX_FINDINGS_SHOWN:
            click.echo(f"  … and {len(report.breaks) - MAX_FINDINGS_SHOWN} more (see --json)")
    if not report.ok:
        first = report.breaks[0]
        more = f" (and {len(report.breaks) - 1} more findings)" if len(report.breaks) > 1 else ""
        raise CliError(first.code, first.message + more)
    if not as_json:
        click.echo("chain intact")


MAX_FINDINGS_SHOWN = 20


def _signed_head_line(report: ChainReport) -> str:
    head = report.signed_head
    if head is None:
        return "not yet in a signed checkpoint (`ticketing checkpoint` signs it)"
    newer = report.events - head.version
    after = f"; {newer} newer events not yet signed" if newer > 0 else ""
    return (
        f"signed up to v{head.version} by the checkpoint at notification "
        f"{head.notification_id} ({head.created_at}){after}"
    )


@verify.command("projections")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_projections(as_json: bool) -> None:
    """Rebuild each projection from the store up to its position and compare row by row."""
    from replay.verify import verify_analytics, verify_queue
    from ticketing.settings import analytics_snapshot_path, queue_path

    obj = current_context()
    obj.require_home()
    checks = []
    if queue_path(obj.settings).exists():
        checks.append(verify_queue(obj.service.app, queue_path(obj.settings)))
    if analytics_snapshot_path(obj.settings).exists():
        checks.append(verify_analytics(obj.service.app, analytics_snapshot_path(obj.settings)))
    if not checks:
        raise CliError("not_ready", "no projections to verify in this data directory")
    _add_running_failures(obj.settings, checks)
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in checks]))
    else:
        for check in checks:
            state = "ok" if check.drift_count == 0 else f"DRIFT in {check.drift_count} rows"
            click.echo(
                f"{check.projection:<10} position {check.position}  "
                f"{check.rows_compared} rows compared  {state}"
                + (f"  STUCK: {check.stuck}" if check.stuck else "")
            )
            for drift in check.drift:
                click.echo(f"  {drift.table} {drift.key}: {drift.problem} {drift.columns or ''}")
    stuck = [c for c in checks if c.stuck]
    if stuck:
        raise CliError("projection_stuck", "; ".join(f"{c.projection}: {c.stuck}" for c in stuck))
    drifting = [c.projection for c in checks if not c.ok]
    if drifting:
        raise CliError("drift", f"projection drift in {', '.join(drifting)}")


def _add_running_failures(settings: Any, checks: list[Any]) -> None:
    """A running projector that reports it cannot make progress makes its check fail too
    (best effort: without a reachable NATS only the store's events are judged)."""
    import asyncio

    from ticketing.runtime.status import projector_failures

    failures = asyncio.run(projector_failures(settings))
    for check in checks:
        error = failures.get(f"{check.projection}-projector")
        if error and not check.stuck:
            check.stuck = f"the running {check.projection} projector reports: {error}"


@click.command()
@click.argument("projection", type=click.Choice(["queue", "analytics"]))
@click.option(
    "--to",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of replacing the live file (stop its projector first).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Analytics: processes that decode events beside the fold (default: one per core "
    "for large stores; 0: none).",
)
def rebuild(projection: str, target: Path | None, workers: int | None) -> None:
    """Rebuild a projection from the event store, with a progress bar."""
    from replay.rebuild import analytics_workers, published_count, rebuild_analytics, rebuild_queue
    from ticketing.settings import analytics_path, analytics_snapshot_path, queue_path

    obj = current_context()
    app = obj.service.app
    if target is None:
        obj.require_writable_home()
    live = queue_path(obj.settings) if projection == "queue" else analytics_path(obj.settings)
    destination = target or live
    if projection == "analytics":
        workers = analytics_workers(app, workers)  # refused here, before anything starts
        how = f" ({workers} workers)" if workers else " (in one process)"
    total = published_count(app)
    with click.progressbar(length=total, label=f"rebuilding {projection}", file=sys.stderr) as bar:
        if projection == "queue":
            applied, how = rebuild_queue(app, destination, progress=bar.update), ""
        else:
            applied = rebuild_analytics(
                app, destination, progress=bar.update, workers=workers, published=total
            )
    if projection == "analytics" and target is None:
        from projections.analytics.store import AnalyticsStore

        store = AnalyticsStore(destination)
        try:
            store.publish_snapshot(analytics_snapshot_path(obj.settings))
        finally:
            store.close()
    click.echo(f"rebuilt {projection} from {applied} events into {destination}{how}")


@click.command()
@click.option("--ticket", help="Only this ticket's events.")
@click.option("--since", help="Events that occurred at or after this time (ISO 8601).")
@click.option("--until", help="Events that occurred before this time (ISO 8601).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl")
@click.option(
    "--output",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (required for parquet; jsonl defaults to stdout).",
)
def export(
    ticket: str | None, since: str | None, until: str | None, fmt: str, out: Path | None
) -> None:
    """Export events for auditors, each with its chain hashes."""
    from replay.export import select_events, write_jsonl, write_parquet

    if ticket and (since or until):
        raise CliError("validation_error", "give --ticket or --since/--until, not both")
    obj = current_context()
    events = select_events(
        obj.service.app,
        ticket=ticket_uuid(ticket) if ticket else None,
        since=parse_moment(since, "--since", obj.zone) if since else None,
        until=parse_moment(until, "--until", obj.zone) if until else None,
    )
    if fmt == "parquet":
        if out is None:
            raise CliError("validation_error", "--output is required for parquet")
        count = write_parquet(events, out)
    elif out is None:
        write_jsonl(events, sys.stdout)
        return
    else:
        with out.open("w") as handle:
            count = write_jsonl(events, handle)
    click.echo(f"exported {count} events to {out}", err=True)


@click.command()
def checkpoint() -> None:
    """Sign the store as it is now (HMAC over a digest of every event), so deleting the newest
    events is caught by `verify chain`. `ticketing serve` does this every minute."""
    from replay.checkpoint import CheckpointLog, write_checkpoint

    obj = current_context()
    app = obj.service.app
    obj.require_writable_home()
    signed = write_checkpoint(app, CheckpointLog(obj.settings.home / "audit"))
    if signed is None:
        click.echo("nothing new since the last checkpoint")
    else:
        heads = len(signed.heads or {})
        click.echo(
            f"checkpoint: {signed.events} events up to notification {signed.notification_id}, "
            f"digest {signed.digest[:16]}…, heads of {heads} changed chains"
        )


def register(group: click.Group) -> None:
    for command in (history, verify, rebuild, export, checkpoint):
        group.add_command(command)
    group.add_command(history, "log")  # one command, two names: people say both
