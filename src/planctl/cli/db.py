"""The flat ``db-*`` commands (manage.py style): migrations, seed, info."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from planctl.cli.context import can_prompt, out_console, print_json
from planctl.cli.context import state_of as _state
from planctl.cli.lock_options import LockWaitOption, TerminateBlockersOption, lock_wait_for
from planctl.errors import PlanctlError, UsageError


def _check_revision_argument(revision: str) -> None:
    """Relative revisions (-1) pass as arguments; anything else dash-led is a typo'd option."""
    if revision.startswith("-") and not revision[1:].isdigit():
        raise UsageError(f"no such option: {revision}", "see --help")


def _rev(revision: str | None) -> str:
    return revision or "<none>"


def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it.")
    ] = False,
    lock_wait: LockWaitOption = None,
    terminate_blockers: TerminateBlockersOption = False,
) -> None:
    """Bring the schema up to REVISION (default: head)."""
    from planctl.db import migrate

    _check_revision_argument(revision)
    state = _state(ctx)
    url = state.settings.target
    if sql:
        sys.stdout.write(migrate.upgrade_sql(url, revision))
        return
    log = state.service_logger("migrations")
    waiting = lock_wait_for(state, lock_wait, terminate_blockers)
    before, after = migrate.upgrade(url, revision, lock_wait=waiting)
    if before == after:
        state.say(f"Already at {_rev(after)}; nothing to do ({state.settings.masked_url}).")
    else:
        log.info("upgraded %s from %s to %s", state.settings.masked_url, _rev(before), _rev(after))
        state.say(f"Upgraded {state.settings.masked_url} from {_rev(before)} to {_rev(after)}.")
    if before is None and migrate.journal_mode(url) == "wal":
        state.say("SQLite journal mode: WAL (the planner app keeps writing while planctl reads).")


def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, '-1' or 'base'.")] = "-1",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    lock_wait: LockWaitOption = None,
    terminate_blockers: TerminateBlockersOption = False,
) -> None:
    """Undo migrations down to REVISION (default: one step). Drops data with the schema."""
    from planctl.db import migrate

    _check_revision_argument(revision)
    state = _state(ctx)
    url = state.settings.target
    if not yes:
        if not can_prompt():
            raise PlanctlError(
                "refusing to downgrade without confirmation", "pass --yes to run it unattended"
            )
        typer.confirm(
            f"Downgrade {state.settings.masked_url} to {revision}? Tables and data of the "
            "undone revisions are dropped",
            abort=True,
        )
    log = state.service_logger("migrations")
    waiting = lock_wait_for(state, lock_wait, terminate_blockers)
    before, after = migrate.downgrade(url, revision, lock_wait=waiting)
    log.info("downgraded %s from %s to %s", state.settings.masked_url, _rev(before), _rev(after))
    state.say(
        f"Downgraded {state.settings.masked_url} from {_rev(before)} to [bold]{_rev(after)}[/bold]."
    )


def db_current(ctx: typer.Context) -> None:
    """Show the database's current revision."""
    from planctl.db import migrate

    state = _state(ctx)
    current = migrate.current(state.settings.target)
    head = migrate.head_revision()
    if current is None:
        status = "[yellow]empty database, no revision[/yellow] (run planctl db-upgrade)"
    elif current == head:
        status = "[green](head)[/green]"
    else:
        status = f"[yellow](head is {head}; run planctl db-upgrade)[/yellow]"
    out_console().print(f"{_rev(current)} {status}", highlight=False)


def db_history(ctx: typer.Context) -> None:
    """List the migrations, newest first."""
    from planctl.cli.context import narrow_table
    from planctl.db import migrate
    from planctl.text import local_moment

    state = _state(ctx)
    try:
        current = migrate.current(state.settings.target, missing_ok=True)
    except PlanctlError:
        current = None  # history is readable without a database
    # 80 columns, terminal or pipe: ids and times whole, the message elided.
    table = narrow_table("Migrations")
    # newest first: each revision's parent is the row below it (planctl's history is linear)
    fixed = {"revision": 12, "created": 22, "": 12}
    for name, width in fixed.items():
        table.add_column(name, width=width, no_wrap=True)
    rest = out_console().width - sum(fixed.values()) - 2 * len(fixed) - 2
    table.add_column("message", width=max(rest, 10), no_wrap=True, overflow="ellipsis")
    for rev in migrate.history(current):
        marks = " ".join(m for m, on in (("head", rev.is_head), ("current", rev.is_current)) if on)
        created = local_moment(rev.created, state.settings.timezone) if rev.created else "—"
        table.add_row(rev.revision, created, marks, rev.message)
    out_console().print(table)


def db_check(ctx: typer.Context) -> None:
    """Exit 5 unless the database is at head and matches the models (for CI and cron)."""
    from planctl.db import migrate

    state = _state(ctx)
    result = migrate.check(state.settings.target)
    masked = state.settings.masked_url
    state.say(f"[green]OK[/green]: {masked} is at head {result.head} and matches the models.")


def db_revision(
    ctx: typer.Context,
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration does.")],
    autogenerate: Annotated[
        bool, typer.Option("--autogenerate", help="Diff the models against the database.")
    ] = False,
) -> None:
    """Write a new migration script (for developers working in a checkout)."""
    from planctl.db import migrate

    state = _state(ctx)
    log = state.service_logger("migrations")
    path = migrate.revision(state.settings.target, message, autogenerate=autogenerate)
    log.info("wrote revision %s", path)
    state.say(f"Wrote {path}")


def db_stamp(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Revision to record, e.g. head.")],
    lock_wait: LockWaitOption = None,
    terminate_blockers: TerminateBlockersOption = False,
) -> None:
    """Record REVISION as current without running any migration."""
    from planctl.db import migrate

    state = _state(ctx)
    log = state.service_logger("migrations")
    waiting = lock_wait_for(state, lock_wait, terminate_blockers)
    after = migrate.stamp(state.settings.target, revision, lock_wait=waiting)
    log.info("stamped %s at %s", state.settings.masked_url, _rev(after))
    state.say(f"Stamped {state.settings.masked_url} at [bold]{_rev(after)}[/bold].")


def db_seed(
    ctx: typer.Context,
    scale: Annotated[
        int | None,
        typer.Option(
            "--scale", min=1, help="Generate N sessions (with proportional clients and contracts)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the existing data of a non-empty database.")
    ] = False,
    if_empty: Annotated[
        bool,
        typer.Option("--if-empty", help="Do nothing (exit 0) when the database already has data."),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the generated data.")] = 2026,
) -> None:
    """Load a deterministic Spanish demo data set (or N generated sessions)."""
    from rich.table import Table

    from planctl.db import seed as seeding

    state = _state(ctx)
    started = time.perf_counter()
    counts = seeding.seed(
        state.settings.target, scale=scale, force=force, if_empty=if_empty, random_seed=seed
    )
    elapsed = time.perf_counter() - started
    if counts is None:
        state.say(f"{state.settings.masked_url} already has data; left as it is (--if-empty).")
        return
    if state.quiet:
        return
    state.say(f"Seeded {state.settings.masked_url} in {elapsed:.1f} s.")
    table = Table()
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    out_console().print(table)


def db_info(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the backend, masked URL, revision vs head and rows per table."""
    from rich.table import Table

    from planctl.db.status import database_info

    state = _state(ctx)
    info = database_info(state.settings.target)
    if as_json:
        print_json(info.as_dict())
        return
    console = out_console()
    console.print(f"[bold]backend[/bold]   {info.backend} ({info.server_version})", highlight=False)
    console.print(f"[bold]database[/bold]  {info.masked_url}", highlight=False)
    status = (
        "[green]at head[/green]"
        if info.at_head
        else "[yellow]not at head — run planctl db-upgrade[/yellow]"
    )
    console.print(
        f"[bold]revision[/bold]  {_rev(info.revision)} (head {_rev(info.head)}) {status}",
        highlight=False,
    )
    if info.journal_mode is not None:
        note = (
            "[green]the planner app keeps writing during exports and backups[/green]"
            if info.journal_mode == "wal"
            else "[yellow]exports and backups hold up the planner app's writes; switch with: "
            "sqlite3 DATABASE 'PRAGMA journal_mode=WAL'[/yellow]"
        )
        console.print(f"[bold]journal[/bold]   {info.journal_mode} {note}", highlight=False)
    table = Table(title="Rows per table", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in info.tables.items():
        table.add_row(name, "[dim]missing[/dim]" if count is None else f"{count:,}")
    console.print(table)


COMMANDS: dict[str, Callable[..., None]] = {
    "db-upgrade": db_upgrade,
    "db-downgrade": db_downgrade,
    "db-current": db_current,
    "db-history": db_history,
    "db-check": db_check,
    "db-revision": db_revision,
    "db-stamp": db_stamp,
    "db-seed": db_seed,
    "db-info": db_info,
}


# Relative revisions look like options ("-1"): let them through as arguments.
REVISION_ARGUMENT_SETTINGS = {"ignore_unknown_options": True}


def register(app: typer.Typer, only: str | None = None) -> None:
    """Add the ``db-*`` commands (or the one named *only*) to *app*."""
    for name, fn in COMMANDS.items():
        if only is not None and name != only:
            continue
        settings = REVISION_ARGUMENT_SETTINGS if name in ("db-upgrade", "db-downgrade") else {}
        app.command(name, rich_help_panel="Database", context_settings=settings)(fn)
