"""``planctl export csv|ical|pdf``: the data's way out, logged to exportacion.log."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from planctl.cli.context import State, err_console, parse_period
from planctl.cli.context import path as cli_path
from planctl.cli.context import state_of as _state
from planctl.errors import UsageError
from planctl.text import format_decimal, format_euros, plural

if TYPE_CHECKING:
    from planctl.fsutil import Guard

app = typer.Typer(
    rich_markup_mode=None,
    name="export",
    help="Export data as CSV, iCalendar or PDF.",
    no_args_is_help=True,
)

SinceOption = Annotated[str | None, typer.Option("--since", help="First date, YYYY-MM-DD.")]
UntilOption = Annotated[str | None, typer.Option("--until", help="Last date, YYYY-MM-DD.")]


@contextmanager
def progress_bar(
    state: State, total: int | None, label: str
) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar on stderr for long exports, only when stderr is a terminal."""
    if state.quiet or not sys.stderr.isatty() or not total or total < 50_000:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=err_console(), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def output_guard(state: State) -> Guard:
    from planctl.fsutil import Guard

    return Guard.for_settings(state.settings)


def warner(state: State) -> Callable[[str], None]:
    """A one-line warning on stderr (silenced by --quiet)."""

    def warn(message: str) -> None:
        if not state.quiet:
            err_console().print(
                f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True
            )

    return warn


@app.command("csv")
def export_csv(
    ctx: typer.Context,
    table: Annotated[
        str | None, typer.Argument(help="Table to export (see planctl db-info).")
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write, or - for stdout.")
    ] = "-",
    all_dir: Annotated[
        Path | None,
        typer.Option(
            "--all",
            parser=cli_path("--all"),
            help="Write every table as DIR/<table>.csv (all or nothing).",
        ),
    ] = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="Comma-separated columns, in order.")
    ] = None,
    delimiter: Annotated[
        str, typer.Option("--delimiter", help="Field delimiter (one character; \\t for tab).")
    ] = ",",
    excel: Annotated[
        bool, typer.Option("--excel", help="Start with a UTF-8 BOM, for spreadsheets.")
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="Do not neutralise formula-like text (= + - @).")
    ] = False,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Stream a table (or all of them) as CSV: header row, UTF-8, ISO dates, NULL as empty."""
    from planctl.db.sqlite_file import reading_connection
    from planctl.export.csv import count_rows, export_all, export_table
    from planctl.export.csv_common import CsvOptions, check_table_name
    from planctl.fsutil import is_standard_output, open_output

    state = _state(ctx)
    if (table is None) == (all_dir is None):
        raise UsageError("name one TABLE or pass --all DIR", "e.g. planctl export csv sesiones")
    options = CsvOptions(
        columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
        delimiter="\t" if delimiter in ("\\t", "tab", "TAB") else delimiter,
        excel=excel,
        raw=raw,
        since=parse_period(since, until)[0],
        until=parse_period(since, until)[1],
    )
    guard = output_guard(state)
    log = state.service_logger("export")
    started = time.perf_counter()
    if all_dir is not None:
        with reading_connection(state.settings.target) as connection:
            counts = export_all(connection, all_dir, options, warn=warner(state), guard=guard)
        files, total_rows = plural(len(counts), "CSV file"), plural(sum(counts.values()), "row")
        log.info("exported %s (%s) to %s", files, total_rows, all_dir)
        state.say(f"Wrote {files} ({total_rows}) to {all_dir}.")
        return
    assert table is not None
    check_table_name(table)  # unknown names fail before any output is opened
    quiet = is_standard_output(output)  # before the write: a replaced file is another inode
    with reading_connection(state.settings.target) as connection:
        total = count_rows(connection, table) if sys.stderr.isatty() and not state.quiet else None
        with (
            progress_bar(state, total, f"exporting {table}") as progress,
            open_output(output, guard) as out,
        ):
            rows = export_table(
                connection, table, out, options, progress=progress, warn=warner(state)
            )
    elapsed = time.perf_counter() - started
    log.info("exported %s: %s to %s in %.2f s", table, plural(rows, "row"), output, elapsed)
    if not quiet:  # data alone on the data stream
        state.say(f"Wrote {plural(rows, 'row')} of {table} to {output}.")


@app.command("ical")
def export_ical(
    ctx: typer.Context,
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write, or - for stdout.")
    ] = "-",
    since: SinceOption = None,
    until: UntilOption = None,
    client: Annotated[
        str | None, typer.Option("--client", help="Client id or company name.")
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only these estados (repeatable).")
    ] = None,
    include_cancelled: Annotated[
        bool, typer.Option("--include-cancelled", help="Also export cancelled sessions.")
    ] = False,
) -> None:
    """Sessions as an RFC 5545 calendar (one VEVENT per session, stable UIDs)."""
    from planctl.calendar.sessions import SessionFilter
    from planctl.db.sqlite_file import reading_connection
    from planctl.export.ical import write_calendar
    from planctl.fsutil import is_standard_output, open_output

    state = _state(ctx)
    guard = output_guard(state)
    quiet = is_standard_output(output)
    filters = SessionFilter(
        since=parse_period(since, until)[0],
        until=parse_period(since, until)[1],
        client=client,
        statuses=status or None,
        include_cancelled=include_cancelled or bool(status and "cancelada" in status),
    )
    log = state.service_logger("export")
    started = time.perf_counter()
    with (
        reading_connection(state.settings.target) as connection,
        open_output(output, guard) as out,
    ):
        events = write_calendar(
            connection,
            out,
            timezone=state.settings.timezone,
            filters=filters,
            warn=warner(state),
        )
    log.info(
        "exported %s as iCalendar to %s in %.2f s",
        plural(events, "session"),
        output,
        time.perf_counter() - started,
    )
    if not quiet:
        state.say(f"Wrote {plural(events, 'event')} to {output}.")


@app.command("pdf")
def export_pdf(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="First date, YYYY-MM-DD.")],
    until: Annotated[str, typer.Option("--until", help="Last date, YYYY-MM-DD.")],
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (- for stdout).")
    ] = None,
    view: Annotated[
        str, typer.Option("--view", help="list (agenda + billable hours) or month (calendar).")
    ] = "list",
    client: Annotated[
        str | None, typer.Option("--client", help="Client id or company name.")
    ] = None,
    generated_at: Annotated[
        str | None,
        typer.Option("--generated-at", help="Fixed generation time (ISO), for reproducible files."),
    ] = None,
) -> None:
    """A PDF report: agenda with billable hours per client and topic, or a month calendar."""
    from planctl.calendar.sessions import SessionFilter
    from planctl.db.sqlite_file import reading_connection
    from planctl.export.pdf import write_report
    from planctl.fsutil import is_standard_output, open_output

    state = _state(ctx)
    guard = output_guard(state)
    first, last = parse_period(since, until)
    assert first is not None and last is not None
    moment = None
    if generated_at is not None:
        try:
            moment = dt.datetime.fromisoformat(generated_at)
        except ValueError as error:
            raise UsageError(
                f"invalid time '{generated_at}' for --generated-at",
                "use ISO form, e.g. 2026-11-22T10:00:00+01:00",
            ) from error
    target = output or f"sesiones-{first}_{last}{'-mes' if view == 'month' else ''}.pdf"
    quiet = is_standard_output(target)
    log = state.service_logger("export")
    started = time.perf_counter()
    with (
        reading_connection(state.settings.target) as connection,
        open_output(target, guard) as out,
    ):
        summary = write_report(
            connection,
            out,
            since=first,
            until=last,
            view=view,
            timezone=state.settings.timezone,
            generated_at=moment,
            filters=SessionFilter(client=client) if client else None,
        )
    log.info(
        "exported PDF (%s view, %s, %s) to %s in %.2f s",
        view,
        plural(summary.sessions, "session"),
        plural(summary.pages, "page"),
        target,
        time.perf_counter() - started,
    )
    if not quiet:
        state.say(
            f"Wrote {target}: {plural(summary.sessions, 'session')}, "
            f"{plural(summary.pages, 'page')}, "
            f"{format_decimal(summary.hours)} h, {format_euros(summary.amount)}."
        )
