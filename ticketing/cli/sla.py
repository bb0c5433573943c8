"""`ticketing sla`: publish SLA policy files, show a policy's versions and targets, and replay
history under a policy that is not (yet) in force (`what-if`)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from commands import models as m
from commands.policy_publishing import publish_commands
from commands.replies import Reply
from commands.service import CommandService
from ticketing.cli import output
from ticketing.cli.context import CliError, current_context, default_actor
from ticketing.cli.exit_codes import USAGE
from ticketing.cli.times import parse_moment
from ticketing.domain.business_hours import BusinessCalendar
from ticketing.domain.policies import VersionedSlaPolicy, policy_uuid
from ticketing.domain.sla_definitions import build_policy
from ticketing.domain.sla_policy import SlaMetric, SlaPolicy
from ticketing.domain.values import Priority, SlaTier
from ticketing.sla.policy_file import PolicyFile, PolicyFileError, load_policy_file

_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)


@click.group()
def sla() -> None:
    """SLA policies: publish a policy file, show versions and targets, what-if replays."""


@sla.command("publish")
@click.argument("file", type=_FILE)
@click.option(
    "--as",
    "actor",
    default=None,
    show_default="agent:<your login>",
    help="Who publishes, as KIND:ID.",
)
@click.option(
    "--at",
    "in_force_from",
    help="In force from this time (ISO 8601 with a zone; default now). Tickets opened from "
    "then on use it; a future time schedules the change, a past one covers backfilled history.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was published as JSON.")
def publish(file: Path, actor: str | None, in_force_from: str | None, as_json: bool) -> None:
    """Publish FILE's calendars, then its policy. An unchanged definition records nothing; a
    changed one is the next version, used by tickets opened from its time on."""
    policy_file = _load(file)
    obj = current_context()
    service = obj.writer
    calendar_id = policy_file.calendar_id
    if (
        calendar_id is not None
        and calendar_id not in policy_file.calendars
        and service.find_calendar(calendar_id) is None
    ):
        raise _unknown_calendar(policy_file, calendar_id)
    outcomes = [
        _outcome(service.execute(command), *_subject(command))
        for command in publish_commands(
            policy_file, _actor(actor), _time(in_force_from, "--at") if in_force_from else None
        )
    ]
    published, policy = outcomes[:-1], outcomes[-1]
    in_force = policy_file.policy_id == obj.settings.sla_policy
    if as_json:
        click.echo(json.dumps({**policy, "in_force": in_force, "calendars": published}))
        return
    for item in [*published, policy]:
        state = "unchanged" if not item["changed"] else "published"
        click.echo(f"{item['kind']} {item['id']} version {item['version']} {state}")
    if in_force:
        click.echo(f"tickets opened from now on use policy {policy_file.policy_id}")


@sla.command("show")
@click.argument("policy_id", metavar="[POLICY]", required=False)
@click.option("--version", "version", type=int, help="This version (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the policy as JSON.")
def show(policy_id: str | None, version: int | None, as_json: bool) -> None:
    """A policy's versions (when published, which calendar) and its targets per tier x
    priority, in minutes. POLICY defaults to the one new tickets use."""
    obj = current_context()
    name = policy_id or obj.settings.sla_policy
    versions = _versions(obj.service, name)
    if not versions:
        raise CliError("not_found", f"policy {name!r} not found; publish it with `sla publish`")
    chosen = versions[-1] if version is None else _version(versions, name, version)
    policy = build_policy(name, chosen.version, chosen.definition, None)
    targets = _targets(policy, chosen.definition)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "policy_id": name,
                    "version": chosen.version,
                    "in_force": name == obj.settings.sla_policy,
                    "definition": chosen.definition,
                    "versions": [_version_row(v) for v in versions],
                    "targets": targets,
                }
            )
        )
        return
    rows = [(v.version, v.published_at.isoformat(), v.definition["calendar"]) for v in versions]
    click.echo(output.table(rows, ["version", "published_at", "calendar"]))
    calendar = chosen.definition["calendar"] or "24x7 calendar time"
    click.echo(
        f"\npolicy {name} version {chosen.version}: targets in minutes on {calendar}, "
        f"warning at {chosen.definition['warning_at']:.0%} of a target"
    )
    headers = ["tier", "priority", *(str(metric) for metric in SlaMetric), "from"]
    click.echo(output.table([list(t.values()) for t in targets], headers))
    for metric, statuses in chosen.definition["pauses"].items():
        click.echo(f"{metric} pauses in {', '.join(statuses)}")


@sla.command("what-if")
@click.option("--policy", "file", type=_FILE, required=True, help="The policy file to try.")
@click.option("--since", help="Only tickets opened at or after this time (ISO 8601).")
@click.option("--until", help="Evaluate as of this time (default now); tickets opened before it.")
@click.option("--json", "as_json", is_flag=True, help="Print overall and per-segment figures.")
def what_if_command(file: Path, since: str | None, until: str | None, as_json: bool) -> None:
    """Replay every ticket's history from the event store under the file's policy and compare
    with the policy each ticket actually had: per metric measured, achieved, breached, running
    and breach rate = breached / (achieved + breached). Nothing is published."""
    from replay.rebuild import published_count
    from replay.stream import stream_batches
    from ticketing.domain.clock import utc_now
    from ticketing.sla.what_if import what_if

    policy_file = _load(file)
    start = _time(since, "--since") if since else None
    now = _time(until, "--until") if until else utc_now()
    if start is not None and start >= now:
        raise CliError("usage_error", "--since must be before --until (or now)", USAGE)
    service = current_context().service
    alternative = _alternative(service, policy_file)
    app = service.app
    batches = ([event.payload for event in batch] for batch in stream_batches(app))
    with click.progressbar(
        length=published_count(app), label="replaying tickets", file=sys.stderr
    ) as bar:
        result = what_if(batches, alternative, now=now, since=start, progress=bar.update)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    since_text = f"from {start.isoformat()} " if start else ""
    click.echo(
        f"policy {alternative.name} (as version {alternative.version}) vs actual: "
        f"{result.tickets} ticket{'s' if result.tickets != 1 else ''} opened {since_text}"
        f"before {now.isoformat()}, evaluated as of then"
    )
    rows = []
    for metric in SlaMetric:
        for label, tally in (
            ("actual", result.overall.actual),
            ("what-if", result.overall.what_if),
        ):
            counts = tally.metrics[metric]
            rate = counts.breach_rate
            rows.append(
                (
                    metric,
                    label,
                    counts.measured,
                    counts.achieved,
                    counts.breached,
                    counts.running,
                    None if rate is None else f"{rate:.1%}",
                )
            )
    headers = ["metric", "policy", "measured", "achieved", "breached", "running", "breach rate"]
    click.echo(output.table(rows, headers))
    unmeasured = result.overall.actual.unmeasured
    if unmeasured:
        click.echo(f"{unmeasured} tickets had no pinned policy (unmeasured in the actual rows)")


@sla.command("report")
@click.option("--by", type=click.Choice(["tier", "priority", "team"]), help="Break down by.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def report(by: str | None, as_json: bool) -> None:
    """SLA achievement = achieved / (achieved + breached) per metric, in the policy's business
    hours and in calendar time, from the analysts' snapshot (clocks still running count in
    neither)."""
    from ticketing.settings import analytics_snapshot_path

    obj = current_context()
    obj.require_home()
    rows = sla_report(analytics_snapshot_path(obj.settings), by)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(sla_report_table(rows, by))


def sla_report(snapshot: Path, by: str | None = None) -> list[dict[str, Any]]:
    from projections.analytics.queries import SnapshotMissingError, open_readonly
    from projections.analytics.sla import sla_achievement

    try:
        con = open_readonly(snapshot)
    except SnapshotMissingError as error:
        raise CliError("not_ready", str(error)) from error
    try:
        return sla_achievement(con, by)
    finally:
        con.close()


def sla_report_table(rows: list[dict[str, Any]], by: str | None = None) -> str:
    if not rows:
        return "no SLA clocks yet: publish a policy (`ticketing sla publish`) and open tickets"

    def pct(value: float | None) -> str | None:
        return None if value is None else f"{value:.1%}"

    lines = [
        (
            r["metric"],
            *([r[by]] if by else []),
            r["business_achieved"],
            r["business_breached"],
            pct(r["business_achievement"]),
            r["calendar_achieved"],
            r["calendar_breached"],
            pct(r["calendar_achievement"]),
            r["in_progress"],
        )
        for r in rows
    ]
    headers = ["metric", *([by] if by else []), "achieved", "breached", "achievement"]
    calendar = ["achieved (24x7)", "breached (24x7)", "achievement (24x7)", "running"]
    return output.table(lines, [*headers, *calendar])


def register(group: click.Group) -> None:
    """Add `sla` to the main `ticketing` group."""
    group.add_command(sla)


# --- helpers --------------------------------------------------------------------------------


def _load(file: Path) -> PolicyFile:
    try:
        return load_policy_file(file)
    except PolicyFileError as error:
        raise CliError(error.code, error.message, USAGE) from error


def _unknown_calendar(policy_file: PolicyFile, calendar_id: str) -> CliError:
    return CliError(
        "unknown_calendar",
        f"{policy_file.path}: calendar: {calendar_id!r} is neither in the file "
        f"([calendars.{calendar_id}]) nor published",
        USAGE,
    )


def _actor(text: str | None) -> m.ActorModel:
    if text is None:
        text = default_actor()
    try:
        return m.ActorModel.parse(text)
    except ValueError:
        raise CliError("validation_error", f"--as: expected KIND:ID, got {text!r}") from None


def _outcome(reply: Reply, kind: str, name: str) -> dict[str, Any]:
    if not reply.ok:
        assert reply.error is not None
        raise CliError(reply.error.code, f"{kind} {name}: {reply.error.message}")
    return {"kind": kind, "id": name, "version": reply.version, "changed": bool(reply.events)}


def _subject(command: m.Command) -> tuple[str, str]:
    if isinstance(command, m.PublishCalendar):
        return "calendar", command.calendar_id
    assert isinstance(command, m.PublishSlaPolicy)
    return "policy", command.policy_id


def _time(text: str, option: str) -> datetime:
    return parse_moment(text, option, current_context().zone)


def _versions(service: CommandService, name: str) -> list[VersionedSlaPolicy]:
    """Every version of a policy, oldest first (each as it stood then)."""
    latest = service.find_policy(name)
    if latest is None:
        return []
    aggregate_id = policy_uuid(name)
    history: list[VersionedSlaPolicy] = [
        service.app.repository.get(aggregate_id, version=v) for v in range(1, latest.version)
    ]
    return [*history, latest]


def _version(versions: list[VersionedSlaPolicy], name: str, number: int) -> VersionedSlaPolicy:
    for version in versions:
        if version.version == number:
            return version
    raise CliError(
        "not_found", f"policy {name!r} has versions 1..{versions[-1].version}, not {number}"
    )


def _version_row(version: VersionedSlaPolicy) -> dict[str, Any]:
    return {
        "version": version.version,
        "published_at": version.published_at.isoformat(),
        "calendar": version.definition["calendar"],
    }


def _targets(policy: SlaPolicy, definition: dict[str, Any]) -> list[dict[str, Any]]:
    """Every tier x priority with the targets it gets and where they come from."""
    own = definition["targets"]
    rows = []
    for tier in SlaTier:
        for priority in Priority:
            targets = policy.targets_for(tier, priority)
            row: dict[str, Any] = {"tier": str(tier), "priority": str(priority)}
            row.update({str(metric): targets.minutes(metric) for metric in SlaMetric})
            row["from"] = "own" if str(priority) in own.get(str(tier), {}) else "default"
            rows.append(row)
    return rows


def _alternative(service: CommandService, policy_file: PolicyFile) -> SlaPolicy:
    """The file's policy as it would be measured: its inline calendar or the published one,
    numbered as the version it would get if it were published now."""
    calendar: BusinessCalendar | None = None
    calendar_id = policy_file.calendar_id
    if calendar_id is not None:
        if calendar_id in policy_file.calendars:
            definition = policy_file.calendars[calendar_id]
        else:
            published = service.find_calendar(calendar_id)
            if published is None:
                raise _unknown_calendar(policy_file, calendar_id)
            definition = published.definition
        calendar = BusinessCalendar.from_dict(definition)
    current = service.find_policy(policy_file.policy_id)
    if current is None:
        version = 1
    elif current.definition == policy_file.definition:
        version = current.version
    else:
        version = current.version + 1
    return build_policy(policy_file.policy_id, version, policy_file.definition, calendar)
