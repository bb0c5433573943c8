"""`ticketing import FILE --mapping MAPPING.toml`: history from another tool, through the
command path (see ticketing/importing/ and the README's "Importing history")."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ticketing.cli import output
from ticketing.cli.context import CliError, Context, current_context

if TYPE_CHECKING:
    from ticketing.importing.runner import FailureLimit, ImportReport


class _ProgressBar:
    """A progress bar over cases on stderr, made once the runner knows how many there are."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0

    def __call__(self, report: ImportReport) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=report.cases, label=self.label, file=sys.stderr)
            self.bar.__enter__()
            self.shown = report.resumed_at
            self.bar.update(self.shown)
        self.bar.update(report.cases_done - self.shown)
        self.shown = report.cases_done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def summary_text(report: ImportReport) -> str:
    """The report for people: what was imported, then every reason a row was not, with the
    first examples."""
    if report.dry_run:
        return _dry_run_text(report)
    rate = report.commands_this_run / report.seconds if report.seconds else 0.0
    lines = [
        f"{report.source}: {report.cases_done:,}/{report.cases:,} cases, "
        f"{report.tickets:,} tickets, {report.commands:,} commands, {report.events:,} events",
    ]
    if report.cases_this_run == 0 and report.finished:
        lines.append("nothing to do: every case was imported before (--restart repeats them)")
    else:
        resumed = f", resumed after {report.resumed_at:,} cases" if report.resumed_at else ""
        lines.append(
            f"this run: {report.cases_this_run:,} cases, {report.commands_this_run:,} commands "
            f"in {report.seconds:.1f} s ({rate:,.0f} commands/s{resumed})"
        )
    lines.append(
        f"rows: {report.rows:,} read; {report.rows_imported:,} imported, "
        f"{report.rows_unchanged:,} unchanged, {sum(report.skipped.values()):,} skipped, "
        f"{report.unmappable_rows:,} unmappable"
    )
    if report.stopped is not None and report.commands_this_run == 0:
        lines.append("stopped before the first command: nothing was written")
    elif not report.finished:
        lines.append("not finished: run the same command again to resume")
    return "\n".join(lines + _reasons(report))


def _dry_run_text(report: ImportReport) -> str:
    lines = [
        f"dry run of {report.source}: nothing was written",
        f"would import {report.cases_this_run:,} of {report.cases:,} cases"
        + (f" (after the {report.resumed_at:,} imported before)" if report.resumed_at else "")
        + f": {report.tickets:,} tickets, {report.commands:,} commands",
        f"rows: {report.rows:,} read; {report.rows_imported:,} would be imported, "
        f"{report.rows_unchanged:,} unchanged, {sum(report.skipped.values()):,} skipped, "
        f"{report.unmappable_rows:,} unmappable",
        "refusals by the domain (invalid_transition, ticket_closed, time_out_of_order, ...) "
        "are known only when importing: the store is not read",
    ]
    return "\n".join(lines + _reasons(report))


def _reasons(report: ImportReport) -> list[str]:
    lines: list[str] = []
    counts = [("skipped", k, v) for k, v in sorted(report.skipped.items())] + [
        ("unmappable", k, v)
        for k, v in sorted(report.unmappable.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if counts:
        lines += ["", output.table(counts, ["rows", "reason", "count"])]
    for reason, examples in sorted(report.examples.items()):
        lines += [f"  {reason}: {example}" for example in examples]
    return lines


def _failure_limit(ctx: click.Context, param: click.Parameter, value: str) -> FailureLimit:
    from ticketing.importing.runner import FailureLimit

    try:
        return FailureLimit.parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--mapping",
    "mapping_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The mapping file (TOML): columns, formats, nulls and value maps; see the README.",
)
@click.option(
    "--strict", is_flag=True, help="Stop with an error at the first row that cannot be imported."
)
@click.option(
    "--max-failures",
    default="5%",
    show_default=True,
    callback=_failure_limit,
    help="Stop when more rows than this cannot be imported: a share of the file's rows (5%) "
    "or a number of rows (0 stops at the first failed batch); 100% never stops.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read, map and plan every row and report what would be imported; write nothing "
    "(the domain's refusals are not known without the store).",
)
@click.option(
    "--via",
    type=click.Choice(["store", "nats"]),
    default="store",
    show_default=True,
    help="store: the command service in this process, on this home's event store; "
    "nats: the running command service (ticketing serve).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 4096),
    default=256,
    show_default=True,
    help="How many cases' next commands share one commit.",
)
@click.option(
    "--max-cases", type=click.IntRange(1), help="Stop after this many cases (resume later)."
)
@click.option(
    "--restart",
    is_flag=True,
    help="Ignore where saved progress got to; repeat every case (appends nothing).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(
    file: Path,
    mapping_path: Path,
    strict: bool,
    max_failures: FailureLimit,
    dry_run: bool,
    via: str,
    batch: int,
    max_cases: int | None,
    restart: bool,
    as_json: bool,
) -> None:
    """Import an event log (CSV or XES; plain, gzip or zip, ARCHIVE.zip:MEMBER for one of
    several) through the command path.

    Every change becomes a command with its historical time and an import actor. A second run
    appends nothing; an interrupted run resumes where it stopped (progress in
    <home>/imports/<source>.json). Rows that cannot be imported are counted by reason; more
    than --max-failures of them stop the import with exit code 1."""
    from commands.client import ClientError
    from ticketing.importing.mapping import MappingError, load_mapping
    from ticketing.importing.readers import SourceError
    from ticketing.importing.runner import (
        ImportFailedError,
        ImportRunner,
        ProgressFile,
        progress_path,
    )

    obj = current_context()
    try:
        mapping = load_mapping(mapping_path)
    except MappingError as error:
        raise CliError("mapping_error", str(error), 2) from error
    progress = None
    if not dry_run:
        progress = ProgressFile(progress_path(obj.settings.home, mapping.source.name))
    bar = _ProgressBar(f"importing {mapping.source.name}")
    close: Callable[[], None] = _nothing
    try:
        send, close = (_refuse_to_send, _nothing) if dry_run else _sender(obj, via)
        runner = ImportRunner(
            mapping,
            file,
            send,
            progress=progress,
            strict=strict,
            max_failures=max_failures,
            dry_run=dry_run,
            window=batch,
            max_cases=max_cases,
            categories=obj.settings.categories,
            on_progress=bar if sys.stderr.isatty() and not as_json else None,
            restart=restart,
        )
        report = runner.run()
    except MappingError as error:
        raise CliError("mapping_error", f"{mapping_path}: {error}", 2) from error
    except SourceError as error:
        raise CliError("source_error", str(error), 2) from error
    except ImportFailedError as error:
        raise CliError(error.code, error.message) from error
    except ClientError as error:  # --via nats: the command service is down or too slow
        message = f"{error}; run the same command again to resume"
        raise CliError(error.code, message) from error
    except KeyboardInterrupt:
        raise CliError(
            "interrupted", "stopped; run the same command again to resume", 130
        ) from None
    finally:
        bar.close()
        close()
    click.echo(json.dumps(report.as_dict()) if as_json else summary_text(report))
    if report.stopped is not None:
        raise CliError("too_many_failures", report.stopped)


def _refuse_to_send(commands: Any) -> Any:
    raise AssertionError("a dry run sends nothing")


def _sender(obj: Context, via: str) -> tuple[Callable[..., Any], Callable[[], None]]:
    if via == "nats":
        from ticketing.importing.senders import NatsSender
        from ticketing.nats.connect import resolve_endpoint

        sender = NatsSender(resolve_endpoint(obj.settings))
        return sender, sender.close

    def send(commands: Any) -> Any:  # opens the store at the first command, not before
        return obj.writer.execute_many(commands)

    return send, _nothing


def _nothing() -> None:
    return None


def register(group: click.Group) -> None:
    """Add `import` to the main `ticketing` group."""
    group.add_command(import_command)
