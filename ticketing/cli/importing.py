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
    from ticketing.importing.runner import ImportReport


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
    if not report.finished:
        lines.append("not finished: run the same command again to resume")
    counts = [("skipped", k, v) for k, v in sorted(report.skipped.items())] + [
        ("unmappable", k, v)
        for k, v in sorted(report.unmappable.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if counts:
        lines += ["", output.table(counts, ["rows", "reason", "count"])]
    for reason, examples in sorted(report.examples.items()):
        lines += [f"  {reason}: {example}" for example in examples]
    return "\n".join(lines)


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
    via: str,
    batch: int,
    max_cases: int | None,
    restart: bool,
    as_json: bool,
) -> None:
    """Import an event log (CSV, gzip CSV or XES) through the command path.

    Every change becomes a command with its historical time and an import actor. A second run
    appends nothing; an interrupted run resumes where it stopped (progress in
    <home>/imports/<source>.json). Rows that cannot be imported are counted by reason."""
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
    progress = ProgressFile(progress_path(obj.settings.home, mapping.source.name))
    bar = _ProgressBar(f"importing {mapping.source.name}")
    close: Callable[[], None] = _nothing
    try:
        send, close = _sender(obj, via)
        runner = ImportRunner(
            mapping,
            file,
            send,
            progress=progress,
            strict=strict,
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


def _sender(obj: Context, via: str) -> tuple[Callable[..., Any], Callable[[], None]]:
    if via == "nats":
        from ticketing.importing.senders import NatsSender
        from ticketing.nats.connect import resolve_endpoint

        sender = NatsSender(resolve_endpoint(obj.settings))
        return sender, sender.close
    return obj.writer.execute_many, _nothing


def _nothing() -> None:
    return None


def register(group: click.Group) -> None:
    """Add `import` to the main `ticketing` group."""
    group.add_command(import_command)
