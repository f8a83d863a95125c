"""``planctl sync``: two-way calendar sync, push, pull, status, check (sincronizacion.log)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planctl.cli.context import (
    State,
    narrow_table,
    out_console,
    parse_date,
    parse_period,
    print_json,
    route_group_options,
)
from planctl.cli.context import state_of as _state
from planctl.errors import PlanctlError, SyncConflictError, SyncError, UsageError
from planctl.text import local_moment, plural

if TYPE_CHECKING:
    import logging

    from planctl.sync.backend import Backend
    from planctl.sync.options import SyncOptions
    from planctl.sync.report import SyncReport
    from planctl.sync.state import RunRecord

app = typer.Typer(
    rich_markup_mode=None,
    name="sync",
    help="Two-way sync of the sessions with a calendar (simulated or CalDAV).",
    invoke_without_command=True,
    no_args_is_help=False,
)
remote_app = typer.Typer(
    rich_markup_mode=None,
    name="remote",
    help="Change the simulated or Google calendar as a phone would (list, edit, delete, add).",
    no_args_is_help=True,
)
app.add_typer(remote_app, name="remote")

SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only sessions from this date, YYYY-MM-DD.")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Only sessions up to this date, YYYY-MM-DD.")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show the plan; write nothing on either side.")
]
AllowMassCancelOption = Annotated[
    bool,
    typer.Option(
        "--allow-mass-cancel",
        help="Let this run cancel more than a small share of the synced sessions at once "
        "(refused otherwise: it is what an empty or lost calendar looks like).",
    ),
]
AllowMassDeleteOption = Annotated[
    bool,
    typer.Option(
        "--allow-mass-delete",
        help="Let this run delete or cancel more than a small share of the synced events on "
        "the calendar at once (refused otherwise: it is what a planner that lost its "
        "sessions looks like).",
    ),
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        min=0,
        help="Seconds to wait for another sync of this database and backend (then exit 4).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="The plan or the result as JSON.")]
PLAN_ROWS = 20  # a longer plan is summarised unless -v or --json
THIRD_PARTY_LOGGERS = ("caldav", "urllib3", "urllib3_future", "niquests", "radicale", "xandikos")
ConflictOption = Annotated[
    str,
    typer.Option(
        "--conflict",
        help="Changed on both sides: local (planner wins), remote (calendar wins), "
        "fail (leave it, exit 1).",
    ),
]


def _options(
    state: State,
    mode: str,
    since: str | None,
    until: str | None,
    conflict: str,
    allow_mass_cancel: bool = False,
    allow_mass_delete: bool = False,
) -> SyncOptions:
    from planctl.sync.options import SyncOptions

    options = SyncOptions(
        timezone=state.settings.timezone,
        mode=mode,
        policy=conflict,
        since=parse_period(since, until)[0],
        until=parse_period(since, until)[1],
        allow_mass_cancel=allow_mass_cancel,
        allow_mass_delete=allow_mass_delete,
    )
    options.check()
    return options


@contextmanager
def _backend(state: State, *, create_calendar: bool = True) -> Iterator[Backend]:
    from planctl.sync.backend import open_backend

    backend = open_backend(state.settings, create_calendar=create_calendar)
    try:
        yield backend
    finally:
        backend.close()


@contextmanager
def _logged(log: logging.Logger, what: str) -> Iterator[None]:
    """Route all logging of the command to sincronizacion.log, and only there.

    The caldav library logs through the root logger (``logging.info`` and
    friends, which install a stderr handler on first use); its dependencies
    through their own loggers. For the command's duration the root logger gets
    the sync log's file handler (so nothing installs a default stderr handler
    and their warnings land in the file), and ``planctl`` stops propagating (so
    each line is written once, and only -v puts planctl's lines on stderr).
    Failures are logged here, then reach the one error handler (one ``error:``
    line on stderr).
    """
    import logging

    root = logging.getLogger()
    planctl_logger = logging.getLogger("planctl")
    files = [h for h in log.handlers if isinstance(h, logging.FileHandler)]
    saved_propagate = planctl_logger.propagate
    saved_levels = {name: logging.getLogger(name).level for name in THIRD_PARTY_LOGGERS}
    for handler in files:
        root.addHandler(handler)
    planctl_logger.propagate = False
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        yield
    except PlanctlError as error:
        log.error("%s failed: %s", what, error)
        raise
    finally:
        for handler in files:
            root.removeHandler(handler)
        planctl_logger.propagate = saved_propagate
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def _sync_logger(state: State) -> logging.Logger:
    """planctl.sync with sincronizacion.log; URLs masked by structure, never by text search."""
    return state.service_logger("sync", scrub_secrets=False)


def _progress(state: State) -> Any:
    """A progress bar on a terminal (stderr), None otherwise (cron, pipes, -q)."""
    from planctl.cli.context import err_console

    console = err_console()
    if state.quiet or not console.is_terminal:
        return None
    from rich.progress import Progress

    return Progress(console=console, transient=True)


def _progress_callback(progress: Any, mode: str) -> Callable[[int, int], None]:
    """What run_sync calls after each session: advance the bar (nothing without one)."""
    if progress is None:
        return lambda done, total: None
    task = progress.add_task("sync" if mode == "sync" else f"sync {mode}", total=None)
    return lambda done, total: progress.update(task, completed=done, total=total)


def _run(
    ctx: typer.Context,
    mode: str,
    since: str | None,
    until: str | None,
    dry_run: bool,
    conflict: str,
    allow_mass_cancel: bool = False,
    allow_mass_delete: bool = False,
    as_json: bool = False,
    lock_timeout: float = 0.0,
) -> None:
    from planctl.sync.backend import backend_name
    from planctl.sync.lock import sync_lock
    from planctl.sync.run import run_sync

    state = _state(ctx)
    options = _options(state, mode, since, until, conflict, allow_mass_cancel, allow_mass_delete)
    log = _sync_logger(state)
    what = "sync" if mode == "sync" else f"sync {mode}"
    url = state.settings.target
    with ExitStack() as held, _logged(log, what):
        # a real run holds the sync lock before it opens the calendar
        lock = (
            None
            if dry_run
            else held.enter_context(
                sync_lock(url, backend_name(state.settings), timeout=lock_timeout)
            )
        )
        backend = held.enter_context(_backend(state, create_calendar=not dry_run))
        progress = _progress(state)
        with progress if progress is not None else nullcontext():
            report = run_sync(
                url,
                backend,
                options,
                dry_run=dry_run,
                logger=log,
                on_progress=_progress_callback(progress, mode),
                lock=lock,
            )
        if as_json:  # streamed: never the whole document in memory
            sys.stdout.writelines(report.json_chunks(all_actions=state.verbose))
        else:
            _render(state, report)
        _raise_for_problems(report)


def _raise_for_problems(report: SyncReport) -> None:
    if report.dry_run:
        return
    if report.errors:
        first = report.errors[0]
        raise SyncError(
            f"{plural(len(report.errors), 'session')} could not be synced; "
            f"first: session {first.session_id}: {first.detail}",
            "details in sincronizacion.log",
        )
    if report.conflicts:
        ids = ", ".join(str(a.session_id) for a in report.conflicts[:10])
        more = "…" if len(report.conflicts) > 10 else ""
        raise SyncConflictError(
            f"{plural(len(report.conflicts), 'session')} changed on both sides and were left "
            f"as they are: {ids}{more}",
            "choose a side with --conflict local or --conflict remote",
        )


def _render(state: State, report: SyncReport) -> None:
    from rich.table import Table

    from planctl.sync.report import Kind

    if report.dry_run:
        plan = Table(
            title=f"Plan ({report.mode}, conflicts: {report.policy}) — nothing written",
            title_justify="left",
        )
        plan.add_column("session", justify="right")
        plan.add_column("action")
        plan.add_column("when / what")
        plan.add_column("why")
        quiet = (Kind.UNCHANGED, Kind.RECORD, Kind.FORGET)
        to_do = sum(n for (kind, _), n in report.planned().items() if kind not in quiet)
        shown = [a for a in report.actions if a.kind not in quiet]
        if to_do > PLAN_ROWS and not state.verbose:
            _render_plan_counts(state, report, to_do)
            shown = []
        for action in shown:
            what = str(action.kind)
            if action.then is not None:
                what = f"{action.then} (pending: {report.mode} only)"
            why = action.detail or action.reason
            plan.add_row(str(action.session_id), what, action.label, why)
        if shown:
            out_console().print(plan)
            if len(shown) < to_do:
                state.say(f"(the first {len(shown):,} of {to_do:,}; --json lists them all)")
        elif not to_do:
            state.say("Nothing to do: the planner and the calendar agree.")
    s = report.summary()
    table = Table(
        title=f"Sync summary — {report.calendar}" + (" (dry run)" if report.dry_run else ""),
        title_justify="left",
        caption="planner 'deleted': the session was set to cancelada, never removed",
        caption_justify="left",
    )
    for column in ("", "created", "updated", "deleted", "unchanged", "conflicts"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "calendar", f"{s['calendar_created']:,}", f"{s['calendar_updated']:,}",
        f"{s['calendar_deleted']:,}", "", "",
    )  # fmt: skip
    table.add_row(
        "planner", "—", f"{s['planner_updated']:,}",
        f"{s['planner_cancelled']:,}", "", "",
    )  # fmt: skip
    table.add_row("sessions", "", "", "", f"{s['unchanged']:,}", f"{s['conflicts']:,}")
    if not state.quiet:
        out_console().print(table)
    notes = []
    if s["pending"]:
        other = "pull" if report.mode == "push" else "push"
        notes.append(f"{plural(s['pending'], 'change')} left for {other} or a two-way sync")
    if s["errors"]:
        notes.append(plural(s["errors"], "error"))
    if report.foreign:
        notes.append(f"{plural(len(report.foreign), 'event')} not created by planctl left alone")
    if report.orphans:
        orphans = plural(len(report.orphans), "planctl event")
        notes.append(f"{orphans} this planner never synced left alone")
    if notes:
        state.say("; ".join(notes).capitalize() + ".")
    for action in report.noted:
        state.say(f"Session {action.session_id}: {action.note}.")
    if report.refusal:
        state.say(f"A real run would be refused: {_refusal_text(report)}.")


def _refusal_text(report: SyncReport) -> str:
    """The guard's answer with the option that lifts it (or that none does)."""
    override = report.refusal_override
    lift = f"{override} to proceed" if override else "no option overrides this"
    return f"{report.refusal} ({lift})"


def _render_plan_counts(state: State, report: SyncReport, to_do: int) -> None:
    """A long plan as one line per kind of action (the list: -v or --json)."""
    from planctl.sync.report import Kind

    quiet = (Kind.UNCHANGED, Kind.RECORD, Kind.FORGET)
    tally = {
        f"{then} (pending: {report.mode} only)" if then is not None else str(kind): count
        for (kind, then), count in report.planned().items()
        if kind not in quiet
    }
    lines = [f"Plan ({report.mode}, conflicts: {report.policy}) — nothing written:"]
    lines += [f"  {count:>8,}  {what}" for what, count in sorted(tally.items())]
    lines.append(f"  ({to_do:,} sessions; -v or --json lists them)")
    out_console().print("\n".join(lines), highlight=False, soft_wrap=True)


@app.callback()
def sync(
    ctx: typer.Context,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: DryRunOption = False,
    conflict: ConflictOption = "local",
    allow_mass_cancel: AllowMassCancelOption = False,
    allow_mass_delete: AllowMassDeleteOption = False,
    as_json: JsonOption = False,
    lock_timeout: LockTimeoutOption = 0.0,
) -> None:
    """Two-way sync: changes on either side are copied to the other (vdirsyncer's rules)."""
    if ctx.invoked_subcommand is not None:
        route_group_options(ctx)  # `sync --dry-run push` is a dry push, never a push
        return
    _run(
        ctx, "sync", since, until, dry_run, conflict, allow_mass_cancel, allow_mass_delete,
        as_json, lock_timeout,
    )  # fmt: skip


@app.command("push")
def push(
    ctx: typer.Context,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: DryRunOption = False,
    conflict: ConflictOption = "local",
    allow_mass_delete: AllowMassDeleteOption = False,
    as_json: JsonOption = False,
    lock_timeout: LockTimeoutOption = 0.0,
) -> None:
    """One way, planner → calendar: create, update and delete events only."""
    _run(
        ctx, "push", since, until, dry_run, conflict, False, allow_mass_delete, as_json,
        lock_timeout,
    )  # fmt: skip


@app.command("pull")
def pull(
    ctx: typer.Context,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: DryRunOption = False,
    conflict: ConflictOption = "remote",
    allow_mass_cancel: AllowMassCancelOption = False,
    as_json: JsonOption = False,
    lock_timeout: LockTimeoutOption = 0.0,
) -> None:
    """One way, calendar → planner: moved, re-placed, re-statused or deleted events only."""
    _run(
        ctx, "pull", since, until, dry_run, conflict, allow_mass_cancel, False, as_json,
        lock_timeout,
    )  # fmt: skip


def _local_time(state: State, moment: dt.datetime | None) -> str:
    if moment is None:
        return "—"
    return local_moment(moment, state.settings.timezone)


def _local_span(state: State, start: dt.datetime, end: dt.datetime) -> str:
    """``2026-11-25 09:30–11:00 +0100``: the day, both times and the end's offset."""
    first, last = (local_moment(m, state.settings.timezone) for m in (start, end))
    return f"{first[:16]}–{last[11:]}" if first[:10] == last[:10] else f"{first}–{last}"


def _last_run_text(state: State, last: RunRecord | None) -> str:
    if last is None:
        return "never"
    counts = ", ".join(f"{k} {v:,}" for k, v in last.counts.items() if v) or "no changes"
    return f"{_local_time(state, last.started)} ({last.mode}, {last.result}: {counts})"


@app.command("status")
def status(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list the calendar's events planctl left alone.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Counts of sessions in sync, pending and conflicting, and the last run (writes nothing)."""
    from rich.table import Table

    from planctl.sync.run import sync_status

    state = _state(ctx)
    options = _options(state, "sync", since, until, "fail")
    log = _sync_logger(state)
    with _logged(log, "sync status"), _backend(state, create_calendar=False) as backend:
        result = sync_status(state.settings.target, backend, options)
    if as_json:
        data = result.as_dict()
        if not show_all:
            for key in ("others", "orphans", "duplicates"):
                data.pop(key)
        print_json(data)
        return
    table = Table(title=f"Sync status — {result.calendar}", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    table.add_row("in sync", f"{result.in_sync:,}")
    table.add_row("pending", f"{result.pending:,}")
    table.add_row("conflicting", f"{result.conflicting:,}")
    if result.errors:
        table.add_row("errors", f"{result.errors:,}")
    table.add_row("last run", _last_run_text(state, result.last_run))
    out_console().print(table)
    if result.report.refusal:
        state.say(f"The next run would be refused: {_refusal_text(result.report)}.")
    if show_all:
        _render_others(state, result.report)


def _render_others(state: State, report: SyncReport) -> None:

    if not report.foreign and not report.orphans and not report.duplicates:
        state.say("Every event on the calendar is a synced planctl session.")
        return
    table = narrow_table("Events planctl leaves alone")
    table.add_column("event id", overflow="fold")  # whole: `sync remote edit` takes it
    table.add_column("start", no_wrap=True)
    table.add_column("summary")
    table.add_column("why")
    for event in report.foreign:
        content = event.content
        table.add_row(
            event.id,
            _local_time(state, content.start) if content else "—",
            content.summary if content else "",
            "not created by planctl",
        )
    for event in report.duplicates:
        content = event.content
        table.add_row(
            event.id,
            _local_time(state, content.start) if content else "—",
            content.summary if content else "",
            f"a second event of session {event.session_id}: planctl syncs the other one",
        )
    for action in report.orphans:
        assert action.remote is not None
        table.add_row(
            action.remote.id,
            _local_time(state, action.remote.content.start) if action.remote.content else "—",
            action.label,
            f"planctl event of session {action.session_id}, never synced from this planner",
        )
    out_console().print(table)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Check the backend's configuration, server, credentials and calendar (exit 1 if wrong)."""
    state = _state(ctx)
    log = _sync_logger(state)
    with _logged(log, "sync check"), _backend(state, create_calendar=False) as backend:
        described = backend.check()
    log.info("check OK: %s", described)
    state.say(f"OK: {described}")


# -- the simulated calendar's "phone" ----------------------------------------


@contextmanager
def _simulated(state: State) -> Iterator[Any]:
    """The calendar's events through the Calendar API (simulated: in-process; google)."""
    import importlib

    name = state.settings.sync_backend.strip().lower()
    if name not in ("simulated", "google"):
        raise UsageError(
            f"planctl sync remote changes the simulated calendar or a Google one, but "
            f"PLANCTL_SYNC_BACKEND is '{state.settings.sync_backend}'",
            "edit CalDAV events in your calendar app",
        )
    calendar = importlib.import_module(f"planctl.sync.backends.{name}").open_phone(state.settings)
    try:
        yield calendar
    finally:
        calendar.close()


def _parse_time(value: str | None, option: str) -> dt.time | None:
    if value is None:
        return None
    try:
        return dt.time.fromisoformat(value)
    except ValueError as error:
        raise UsageError(f"invalid time '{value}' for {option}", "use HH:MM") from error


@remote_app.command("list")
def remote_list(
    ctx: typer.Context,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Also show deleted events (tombstones).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The events as stored (Google Calendar's shape).")
    ] = False,
) -> None:
    """The calendar's events: id, session, when, status, summary (--json: all)."""
    from planctl.sync.backends.simulated import SHORT_ID

    state = _state(ctx)
    with _simulated(state) as calendar:
        if as_json:
            raw = calendar.describe_events(include_deleted=deleted)
            print_json(raw)
            return
        events = calendar.listing(include_deleted=deleted)
        # 80 columns, terminal or pipe: ids shortened to a prefix `remote edit` takes, the
        # summary elided; whole values in --json.
        table = narrow_table(f"{calendar.title} ({plural(len(events), 'event')})")
        # Fixed widths: left to itself Rich squeezes whole columns away to fit 80.
        fixed = {"id": SHORT_ID, "session": 7, "when": 28, "status": 9}
        for name, width in fixed.items():
            table.add_column(name, width=width, no_wrap=True)
        table.columns[1].justify = "right"
        rest = out_console().width - sum(fixed.values()) - 2 * len(fixed) - 2
        table.add_column("summary", width=max(rest, 10), no_wrap=True, overflow="ellipsis")
        for event in events:
            table.add_row(
                event.id[:SHORT_ID],
                str(event.session_id or "—"),
                _local_span(state, event.start, event.end) if event.start and event.end else "—",
                event.status,
                event.summary,
            )
    out_console().print(table)


@remote_app.command("edit")
def remote_edit(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="Event id, UID, or session id.")],
    date: Annotated[str | None, typer.Option("--date", help="New date, YYYY-MM-DD.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="New start time, HH:MM.")] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="New end time, HH:MM (before the start: the next day's)."),
    ] = None,
    location: Annotated[str | None, typer.Option("--location", help="New place.")] = None,
    summary: Annotated[str | None, typer.Option("--summary", help="New title.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="confirmed, tentative or cancelled.")
    ] = None,
) -> None:
    """Change an event as a phone would (the next sync brings it to the planner)."""
    from planctl.sync.backends.simulated import listed

    state = _state(ctx)
    with _simulated(state) as calendar:
        changed = calendar.edit(
            event,
            date=parse_date(date, "--date"),
            start_time=_parse_time(start, "--start"),
            end_time=_parse_time(end, "--end"),
            location=location,
            summary=summary,
            status=status,
        )
        shown = listed(changed, calendar.timezone)
    state.say(f"Event {shown.id} is now {shown.status} (etag {shown.etag}).")


@remote_app.command("delete")
def remote_delete(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(help="Event id, UID, or session id.")],
) -> None:
    """Delete an event as a phone would (it stays as a cancelled tombstone)."""
    state = _state(ctx)
    with _simulated(state) as calendar:
        removed = calendar.remove(event)
    state.say(f"Deleted event {removed}.")


@remote_app.command("add")
def remote_add(
    ctx: typer.Context,
    summary: Annotated[str, typer.Option("--summary", help="Title.")],
    date: Annotated[str, typer.Option("--date", help="Date, YYYY-MM-DD.")],
    start: Annotated[str, typer.Option("--start", help="Start time, HH:MM.")],
    end: Annotated[
        str, typer.Option("--end", help="End time, HH:MM (before --start: the next day's).")
    ],
) -> None:
    """Add an event of your own (planctl will leave it alone)."""
    from planctl.sync.backends.simulated import listed

    state = _state(ctx)
    day = parse_date(date, "--date")
    first, last = _parse_time(start, "--start"), _parse_time(end, "--end")
    assert day is not None and first is not None and last is not None
    with _simulated(state) as calendar:
        added = listed(calendar.add(summary, day, first, last), calendar.timezone)
    state.say(f"Added event {added.id}.")


# -- Google: authorisation and the API emulator (docs/sync.md#google) ----------


@app.command("auth")
def auth(
    ctx: typer.Context,
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="Print the URL to open instead of opening a browser."),
    ] = False,
    revoke: Annotated[
        bool,
        typer.Option(
            "--revoke", help="Revoke planctl's Google authorisation and delete the token."
        ),
    ] = False,
) -> None:
    """Authorise planctl to use your Google Calendar (OAuth, loopback redirect on 127.0.0.1)."""
    from planctl.sync.google import oauth

    state = _state(ctx)
    settings = state.settings
    if revoke:
        if not settings.google_token.exists():
            from planctl.errors import NothingToDoError

            raise NothingToDoError(
                f"no Google token at {settings.google_token}", "nothing to revoke"
            )
        known = oauth.revoke(settings.google_token)
        state.say(
            f"Revoked planctl's Google authorisation and deleted {settings.google_token}."
            if known
            else f"The authorisation was already revoked; deleted {settings.google_token}."
        )
        return
    client = oauth.read_client_secrets(settings.google_client_secrets)

    def show(url: str) -> None:  # printed even under -q: the user must open it
        lead = (
            "Open this URL in a browser to authorise planctl:"
            if no_browser
            else ("Opening a browser to authorise planctl; if none opens, visit:")
        )
        typer.echo(f"{lead}\n{url}")

    oauth.authorize(client, settings.google_token, show_url=show, open_browser=not no_browser)
    state.say(f"Authorised: the token is saved at {settings.google_token} (0600).")


@app.command("emulator")
def emulator(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port, printed).")
    ] = 8085,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="The store file (default: the simulated calendar's, PLANCTL_SYNC_STORE).",
        ),
    ] = None,
    client_secrets: Annotated[
        str | None,
        typer.Option(
            "--client-secrets", help="Write an OAuth client file pointing at the emulator here."
        ),
    ] = None,
) -> None:
    """Serve a Google Calendar API v3 emulator (OAuth included) on 127.0.0.1 until interrupted."""
    from pathlib import Path

    from planctl.sync.backends.simulated import SimulatedCalendar, open_calendar
    from planctl.sync.google.emulator import Emulator, serve

    state = _state(ctx)
    if not 0 <= port <= 65535:
        raise UsageError(f"invalid port {port} for --port", "use 1-65535, or 0 for any free port")
    calendar = (
        SimulatedCalendar(Path(store).absolute(), timezone=state.settings.timezone)
        if store
        else open_calendar(state.settings)
    )
    path = calendar.path

    def ready(bound: int) -> None:
        root = f"http://127.0.0.1:{bound}"
        if client_secrets:
            _write_emulator_client(Path(client_secrets), root)
        typer.echo(
            f"Google Calendar API emulator on {root} (store {path}); PLANCTL_GOOGLE_API_URL={root}"
        )

    try:
        serve(Emulator(calendar.store), port, ready=ready)
    except OSError as error:
        raise SyncError(
            f"cannot serve on 127.0.0.1:{port}: {error.strerror or error}", "choose another --port"
        ) from error
    except KeyboardInterrupt:
        pass
    finally:
        calendar.close()


def _write_emulator_client(path: Any, root: str) -> None:
    """An installed-app client file whose auth and token URIs are the emulator's."""
    import json

    from planctl.fsutil import atomic_write

    client = {
        "installed": {
            "client_id": "planctl-emulator.apps.googleusercontent.com",
            "client_secret": "emulator-" + __import__("secrets").token_urlsafe(12),
            "auth_uri": f"{root}/o/oauth2/auth",
            "token_uri": f"{root}/token",
            "redirect_uris": ["http://127.0.0.1"],
        }
    }
    with atomic_write(path, name=str(path)) as out:
        out.write(json.dumps(client, indent=1).encode())
