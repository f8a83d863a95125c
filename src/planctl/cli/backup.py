"""``planctl backup`` and its sub-commands: list, verify, restore, prune."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from planctl.cli.context import (
    State,
    can_prompt,
    err_console,
    narrow_table,
    out_console,
    print_json,
    route_group_options,
    seconds,
)
from planctl.cli.context import path as cli_path
from planctl.cli.context import state_of as _state
from planctl.cli.lock_options import LockWaitOption, TerminateBlockersOption, lock_wait_for
from planctl.errors import PlanctlError, UsageError, VerificationError
from planctl.text import local_moment, plural

if TYPE_CHECKING:
    from planctl.backup import BackupInfo
    from planctl.db.lockwait import LockWait
    from planctl.target import Target

app = typer.Typer(
    rich_markup_mode=None,
    name="backup",
    help="Consistent native backups with rotation, verification and safe restore.",
    invoke_without_command=True,
    no_args_is_help=False,
)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        parser=cli_path("--dir"),
        help="Backup directory (default: PLANCTL_BACKUP_DIR, 'backups').",
    ),
]
LockTimeout = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        parser=seconds("--lock-timeout"),
        help="Seconds to wait for another run's lock (then exit 4).",
    ),
]


def _given_on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _dir(state: State, directory: Path | None) -> Path:
    """--dir (written before or after the sub-command), else PLANCTL_BACKUP_DIR."""
    return directory if directory is not None else state.settings.backup_dir


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _local(state: State, iso: str | None) -> str:
    if not iso:
        return "—"
    return local_moment(dt.datetime.fromisoformat(iso), state.settings.timezone)


@app.callback()
def backup(
    ctx: typer.Context,
    keep: Annotated[
        int | None,
        typer.Option("--keep", help="After the backup, keep only the newest N backups (chains)."),
    ] = None,
    directory: DirOption = None,
    compress: Annotated[
        str,
        typer.Option("--compress", help="Compression of the data file: zstd, gzip or none."),
    ] = "zstd",
    no_compress: Annotated[
        bool, typer.Option("--no-compress", help="The same as --compress none.")
    ] = False,
    label: Annotated[
        str | None, typer.Option("--label", help="A note kept with the backup.")
    ] = None,
    lock_timeout: LockTimeout = 0.0,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="native (sqlite backup API / pg_dump) or logical (JSON rows)."
        ),
    ] = "native",
    verify: Annotated[
        bool | None,
        typer.Option(
            "--verify/--no-verify", help="Engine check of the new backup (default: with --keep)."
        ),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="A delta of the rows changed since the newest backup (a full one when "
            "there is none yet, or after --max-deltas deltas).",
        ),
    ] = False,
    max_deltas: Annotated[
        int,
        typer.Option("--max-deltas", help="Deltas before --incremental takes a full again."),
    ] = 10,
    remote_keep: Annotated[
        int | None,
        typer.Option(
            "--remote-keep", min=1, help="Chains to keep on the remote (default: --keep)."
        ),
    ] = None,
    ping_url: Annotated[
        str | None,
        typer.Option("--ping", help="healthchecks-style URL pinged at start, success, failure."),
    ] = None,
) -> None:
    """Take one backup of the configured database; with --keep, verify it and rotate."""
    if ctx.invoked_subcommand is not None:
        route_group_options(ctx)
        return
    from planctl.backup.compress import Compression, parse_compression
    from planctl.backup.cron import backup_and_ship
    from planctl.backup.options import BackupOptions

    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}", "keep at least the new backup")
    compression, _ = parse_compression(compress)
    if (
        no_compress
        and compression is not Compression.NONE
        and _given_on_command_line(ctx, "compress")
    ):
        raise UsageError(
            f"--no-compress and --compress {compress} contradict each other",
            "give one of them (--no-compress is --compress none)",
        )
    if max_deltas < 1:
        raise UsageError(f"--max-deltas must be at least 1, got {max_deltas}")
    state = _state(ctx)
    log = state.service_logger("backup")
    settings = state.settings
    options = BackupOptions(
        keep=keep,
        compress=Compression.NONE if no_compress else compression,
        label=label,
        lock_timeout=lock_timeout,
        pg_bindir=state.settings.pg_bindir,
        verify=verify,
        fmt=fmt,
        incremental=incremental,
        max_deltas=max_deltas,
    )
    shipped = backup_and_ship(
        settings.target,
        _dir(state, directory),
        options,
        hooks=state.hooks,
        recipients_text=settings.backup_recipients,
        remote_url=settings.backup_remote,
        remote_keep=remote_keep if remote_keep is not None else keep,
        ping_url=ping_url or settings.backup_ping_url,
        remote_timeout=settings.backup_remote_timeout,
    )
    result = shipped.result
    info = result.info
    if info.kind == "delta":
        changed = sum(info.row_counts.values())
        log.info("delta %s done (%s, %s)", info.name, _size(info.size), plural(changed, "row"))
        state.say(
            f"Delta [bold]{info.name}[/bold] ({plural(changed, 'changed row')}, "
            f"{_size(info.size)}) "
            f"on top of {info.parent}; {result.deltas_since_full} of at most {max_deltas} "
            f"deltas since the full backup, written to {_dir(state, directory)}."
        )
    else:
        log.info(
            "backup %s done (%s, %s in sesiones)",
            info.name,
            _size(info.size),
            plural(info.row_counts.get("sesiones", 0), "row"),
        )
        state.say(
            f"Backup [bold]{info.name}[/bold] ({info.engine}, {_size(info.size)}, "
            f"revision {info.revision or '<none>'}) {'verified and ' if info.verified_at else ''}"
            f"written to {_dir(state, directory)}."
        )
        if result.full_because:
            state.say(f"A full backup, not a delta: {result.full_because}.")
    for removed in result.removed:
        state.say(f"Rotated out {removed.name}.")
    if shipped.uploaded:
        state.say(f"Uploaded to {_masked_remote(settings.backup_remote)}.")
    for repaired in shipped.repaired:
        state.say(f"Repaired the remote copy of {repaired.name} (uploaded again).")
    for removed in shipped.remote_removed:
        state.say(f"Rotated out {removed.name} from the remote.")


def _recipients(state: State) -> list[Any]:
    from planctl.backup.crypto import parse_recipients

    text = state.settings.backup_recipients
    return parse_recipients(text) if text else []


def _masked_remote(url: str) -> str:
    from planctl.config import mask_url

    return mask_url(url)


RemoteFlag = Annotated[
    bool, typer.Option("--remote", help="The copy in PLANCTL_BACKUP_REMOTE instead of --dir.")
]


def _store(state: State) -> Any:
    from planctl.backup.offsite import open_store

    return open_store(state.settings.backup_remote, state.settings.backup_remote_timeout)


def _owner(state: State) -> Any:
    """This database (its id when readable, its engine): whose backups count."""
    from planctl.backup.owner import this_database

    return this_database(state.settings.target)


@app.command("push")
def push_command(
    ctx: typer.Context,
    directory: DirOption = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=1, help="Then keep only the newest N chains remotely."),
    ] = None,
    lock_timeout: LockTimeout = 0.0,
) -> None:
    """Upload the local backups the remote lacks (resumes after a failure or a kill)."""
    from planctl.backup.offsite import push

    state = _state(ctx)
    log = state.service_logger("backup")
    store = _store(state)
    try:
        result = push(
            _dir(state, directory),
            store,
            keep=keep,
            lock_timeout=lock_timeout,
            owner=_owner(state),
        )
    finally:
        store.close()
    for info in result.uploaded:
        log.info("pushed %s", info.name)
        state.say(f"Uploaded {info.name}.")
    for info in result.repaired:
        log.warning("repaired remote copy of %s", info.name)
        state.say(f"Repaired {info.name} (the remote copy was missing or damaged).")
    for info in result.removed:
        state.say(f"Rotated out {info.name} from the remote.")
    if not result.uploaded and not result.repaired:
        state.say(f"Nothing to upload: {store.describe()} has every restorable backup.")


@app.command("status")
def status_command(
    ctx: typer.Context,
    directory: DirOption = None,
    max_age: Annotated[
        str | None,
        typer.Option("--max-age", help="Fail (exit 5) when the newest backup is older, e.g. 26h."),
    ] = None,
    remote: RemoteFlag = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    metrics: Annotated[
        Path | None,
        typer.Option(
            "--metrics",
            parser=cli_path("--metrics"),
            help="Also write node_exporter textfile metrics to this file (replaced atomically).",
        ),
    ] = None,
) -> None:
    """The newest restorable backup (with --remote: the remote's alone), its age and the
    last run: exit 5 when stale or failed."""
    from planctl.backup.cron import backup_status, write_metrics

    state = _state(ctx)
    owner = _owner(state)
    if metrics is not None:
        write_metrics(metrics, _dir(state, directory), owner=owner)
    status = backup_status(
        _dir(state, directory),
        max_age=max_age,
        remote_url=state.settings.backup_remote if remote else "",
        owner=owner,
        remote_timeout=state.settings.backup_remote_timeout,
    )
    last = status.last_run
    if as_json:
        print_json(
            {
                "newest_local": status.newest_local.as_dict() if status.newest_local else None,
                "newest_remote": status.newest_remote.as_dict() if status.newest_remote else None,
                "last_run": last.to_json() if last is not None else None,
                "stale": status.stale,
                "failed": status.failed,
                "problems": status.problems,
                "foreign": status.foreign,
            }
        )
    else:
        for label, info in (("local", status.newest_local), ("remote", status.newest_remote)):
            if info is not None:
                when = _local(state, info.created)
                state.say(f"Newest restorable {label} backup: {info.name} ({when}).")
        if status.newest_local is None and status.newest_remote is None:
            state.say("No restorable remote backup." if status.remote else "No restorable backup.")
        if status.foreign:
            state.say(
                f"{plural(len(status.foreign), 'backup')} of other databases or engines "
                "(not counted)."
            )
        if last is not None:
            state.say(
                f"Last run: {last.outcome} at {_local(state, last.finished.isoformat())}"
                + (f" — {last.message}" if last.message else "")
            )
        for problem in status.problems:
            err_console().print(f"[yellow]warning:[/yellow] {problem}", highlight=False)
    if status.failed:
        raise VerificationError("the last backup run failed", "see backup.log")
    if status.stale:
        raise VerificationError(
            ("no restorable remote backup" if status.remote else "no restorable backup")
            if status.newest_local is None and status.newest_remote is None
            else f"the newest restorable backup is older than {max_age}",
            "check the cron job and backup.log",
        )


@app.command("list")
def list_command(
    ctx: typer.Context,
    directory: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    remote: RemoteFlag = False,
) -> None:
    """List the backups, newest first."""
    import contextlib

    from planctl.backup import open_set
    from planctl.backup.offsite import remote_catalog

    state = _state(ctx)
    with contextlib.ExitStack() as stack:
        owner = _owner(state)
        if remote:
            store = _store(state)
            stack.callback(store.close)
            backups: Any = stack.enter_context(
                remote_catalog(store, owner=owner, backup_dir=_dir(state, directory))
            )
        else:
            backups = open_set(_dir(state, directory), owner)
        _print_list(state, backups, as_json, store.describe() if remote else None, directory)


def _print_list(
    state: State, backups: Any, as_json: bool, where: str | None, directory: Path | None
) -> None:

    infos = list(reversed(backups.infos))
    if as_json:
        rows = [
            {
                **i.as_dict(),
                "restorable": backups.restorable(i),
                "problem": backups.problem(i),
                "foreign": backups.foreign(i),
            }
            for i in infos
        ]
        rows += [
            {"name": p.stem, "restorable": False, "problem": "damaged metadata"}
            for p in backups.damaged
        ]
        print_json(rows)
        backups.cache.save()
        return
    engines = ", ".join(sorted({i.engine for i in infos} - {"delta"})) or "empty"
    revisions = {i.revision for i in infos}
    one_revision = len(revisions) == 1
    if one_revision:
        engines += f", revision {next(iter(revisions)) or '<none>'}"
    # Short cells; a long labelled name folds rather than truncating what it says.
    table = narrow_table(f"Backups in {where or _dir(state, directory)} ({engines})")
    table.add_column("name", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    if not one_revision:
        table.add_column("rev", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for info in infos:
        problem = backups.problem(info)
        if backups.foreign(info) is not None:
            health = "[yellow]foreign[/yellow]"
        elif problem is not None:
            health = "[red]DAMAGED[/red]"
        else:
            health = "verified" if info.verified_at else "ok"
        revision = [] if one_revision else [(info.revision or "—")[:7]]
        table.add_row(
            info.name,
            _short_kind(info),
            _local(state, info.created),
            _size(info.size),
            *revision,
            health,
        )
    for path in backups.damaged:
        blanks = ["—"] * (3 if one_revision else 4)
        table.add_row(path.stem, "?", *blanks, "[red]DAMAGED[/red]")
    backups.cache.save()
    out_console().print(table)
    for info in infos:
        problem = backups.foreign(info) or backups.problem(info)
        if problem:
            err_console().print(f"[yellow]warning:[/yellow] {problem}", highlight=False)
    if not infos:
        state.say("No backups yet: run planctl backup.")


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Backup name (or prefix), or 'latest'.")] = "latest",
    all_backups: Annotated[bool, typer.Option("--all", help="Verify every backup.")] = False,
    directory: DirOption = None,
    lock_timeout: LockTimeout = 0.0,
    remote: RemoteFlag = False,
) -> None:
    """Check a backup's checksum and integrity (exit 5 on any failure)."""
    from planctl.backup import verify_backup
    from planctl.backup.offsite import verify_remote

    state = _state(ctx)
    log = state.service_logger("backup")
    results: list[Any]
    if remote:
        store = _store(state)
        try:
            results = verify_remote(
                store,
                name,
                all_backups=all_backups,
                identity=state.settings.backup_identity,
                pg_bindir=state.settings.pg_bindir,
                owner=_owner(state),
            )
        finally:
            store.close()
    else:
        results = verify_backup(
            _dir(state, directory),
            name,
            all_backups=all_backups,
            lock_timeout=lock_timeout,
            pg_bindir=state.settings.pg_bindir,
            database_id=_live_identity(state),
            identity=state.settings.backup_identity,
            owner=_owner(state),
        )
    for result in results:
        if result.foreign:
            state.say(
                f"[yellow]FOREIGN[/yellow] {result.info.name}: {result.foreign} "
                "(not checked, not counted)"
            )
        elif result.ok:
            note = getattr(result, "note", None)
            state.say(f"[green]OK[/green]      {result.info.name}" + (f" ({note})" if note else ""))
        else:
            out_console().print(
                f"[red]FAILED[/red]  {result.info.name}: {result.problem}", highlight=False
            )
    bad = [r for r in results if not r.ok]
    if bad:
        log.error("verification failed for %s", ", ".join(r.info.name for r in bad))
        first = bad[0].problem or bad[0].info.name
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise VerificationError(first + more, "do not restore it; planctl backup list shows others")


def _live_identity(state: State) -> str | None:
    """The configured database's id, when it can be read (verify works without a database)."""
    return _owner(state).database_id


@app.command("restore")
def restore_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Backup name (or prefix), or 'latest'.")] = "latest",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    directory: DirOption = None,
    lock_timeout: LockTimeout = 0.0,
    safety_backup: Annotated[
        bool,
        typer.Option(
            "--safety-backup/--no-safety-backup",
            help="Back up the current database first (default). Skip it only if you have one.",
        ),
    ] = True,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Restore the newest state at or before this moment, e.g. '2026-11-20 14:05' "
            "(PLANCTL_TIMEZONE unless it has an offset).",
        ),
    ] = None,
    force_foreign: Annotated[
        bool,
        typer.Option(
            "--force-foreign",
            help="Restore even a backup of another database (its identity replaces this one's).",
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Restore into this database instead of DATABASE_URL (a logical backup: "
            "any engine). Keep the password out of it: use ~/.pgpass or PGPASSWORD.",
        ),
    ] = None,
    remote: RemoteFlag = False,
    lock_wait: LockWaitOption = None,
    terminate_blockers: TerminateBlockersOption = False,
) -> None:
    """Verify a backup, take a safety backup, then replace the database with it."""
    import contextlib

    if target is not None and not target.strip():
        raise UsageError(
            "--target is empty (an unset variable?); refusing to restore into the configured "
            "database instead",
            "give a database URL, or leave --target out to restore into DATABASE_URL",
        )
    with contextlib.ExitStack() as stack:
        state = _state(ctx)
        backup_dir, safety_dir = _dir(state, directory), None
        if remote:
            from planctl.backup.offsite import fetch_chain

            if at is not None:
                raise UsageError("--at reads the local set; name the remote backup instead")
            store = _store(state)
            stack.callback(store.close)
            safety_dir = backup_dir  # the safety copy of the current state stays local
            owner = _owner(state)
            backup_dir, name = stack.enter_context(fetch_chain(store, name, owner=owner))
        _restore(
            ctx,
            state,
            backup_dir,
            safety_dir,
            name,
            yes,
            lock_timeout,
            safety_backup,
            at,
            force_foreign,
            target,
            lock_wait_for(state, lock_wait, terminate_blockers),
        )


def _restore(
    ctx: typer.Context,
    state: State,
    backup_dir: Path,
    safety_dir: Path | None,
    name: str,
    yes: bool,
    lock_timeout: float,
    safety_backup: bool,
    at: str | None,
    force_foreign: bool,
    target: str | None,
    lock_wait: LockWait,
) -> None:
    from planctl.backup import open_set, parse_moment, restore_backup
    from planctl.backup.options import RestoreOptions

    if at is not None and name != "latest":
        raise UsageError("give either a backup name or --at, not both")
    into = _restore_target(state, target)
    # The set is the configured database's: its backups decide `latest`, even when
    # --target sends the data elsewhere (restore_backup checks the target itself).
    backups = open_set(backup_dir, _owner(state))
    if at is not None:
        info = backups.find_at(parse_moment(at, state.settings.timezone))
    else:
        info = backups.find(name)
    if name == "latest" and at is None:
        for newer, why in backups.skipped_newer(info):
            err_console().print(
                f"[yellow]skipped[/yellow] {newer.name} (newer): {why}",
                highlight=False,
                soft_wrap=True,
            )
    chain = backups.chain_of(info)  # a broken chain is refused before any question
    backups.cache.save()
    masked = into.masked
    if target and into.secrets:
        err_console().print(
            "[yellow]warning:[/yellow] the password in --target is visible to other users "
            "in the process list; prefer ~/.pgpass or PGPASSWORD",
            highlight=False,
            soft_wrap=True,
        )
    if not yes:
        if not can_prompt():
            raise PlanctlError(
                "refusing to restore without confirmation", "pass --yes to run it unattended"
            )
        deltas = plural(len(chain) - 1, "delta")
        applies = f", applying {deltas} on {chain[0].name}" if len(chain) > 1 else ""
        typer.confirm(
            f"Replace {masked} with backup {info.name} "
            f"(taken {_local(state, info.created)}{applies})?"
            + (" A safety backup is taken first" if safety_backup else " No safety backup"),
            abort=True,
        )
    log = state.service_logger("backup")
    options = RestoreOptions(
        lock_timeout=lock_timeout,
        pg_bindir=state.settings.pg_bindir,
        safety_backup=safety_backup,
        allow_foreign=force_foreign or (target is not None and chain[0].engine == "logical"),
        identity=state.settings.backup_identity,
        recipients=_recipients(state),
        safety_dir=safety_dir,
        lock_wait=lock_wait,
    )
    result = restore_backup(into, backup_dir, info.name, options, state.hooks)
    log.info("restore of %s done", info.name)
    if result.safety:
        state.say(f"Safety backup of the previous state: {result.safety.name}")
    elif result.no_safety_because:
        state.say(f"No safety backup: {result.no_safety_because}.")
    if len(result.chain) > 1:
        applied = plural(len(result.chain) - 1, "delta")
        rows = plural(result.rows_touched_by_deltas, "row")
        state.say(f"Restored {result.chain[0].name}, then applied {applied} ({rows}).")
    state.say(
        f"Restored [bold]{info.name}[/bold] into {masked}; "
        f"schema revision {result.revision or '<none>'}."
    )
    if result.needs_upgrade:
        state.say(
            f"[yellow]The schema is behind head {result.head}: run planctl db-upgrade.[/yellow]"
        )
    else:
        state.say("The schema is at head; no db-upgrade needed.")


def _restore_target(state: State, url: str | None) -> Target:
    """The database a restore writes into: --target's URL, checked like DATABASE_URL,
    or the configured one."""
    if not url:
        return state.settings.target
    from planctl.target import Target

    return Target.parse(url, pg_bindir=state.settings.pg_bindir)


@app.command("watch")
def watch_command(
    ctx: typer.Context,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", parser=seconds("--interval", 1), help="Seconds between scheduled backups."
        ),
    ] = 300,
    min_interval: Annotated[
        float,
        typer.Option(
            "--min-interval",
            parser=seconds("--min-interval"),
            help="Never back up more often than this.",
        ),
    ] = 5.0,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Deltas between full backups.")
    ] = False,
    max_deltas: Annotated[
        int, typer.Option("--max-deltas", min=1, help="Deltas before a full backup again.")
    ] = 10,
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="Keep only the newest N chains.")
    ] = None,
    on_failure: Annotated[
        str | None,
        typer.Option(
            "--on-failure",
            help="Command run by bash after each failed backup, with PLANCTL_BACKUP_ERROR and "
            "PLANCTL_BACKUP_FAILURES in its environment.",
        ),
    ] = None,
    directory: DirOption = None,
    fmt: Annotated[
        str, typer.Option("--format", help="Format of the full backups: native or logical.")
    ] = "native",
) -> None:
    """Back up every --interval and soon after the data changes, until SIGTERM or Ctrl-C."""
    from planctl.backup import BackupManager
    from planctl.backup.manager import Schedule
    from planctl.backup.options import FORMATS, BackupOptions

    if fmt not in FORMATS:
        raise UsageError(f"unknown backup format '{fmt}'", "use native or logical")
    state = _state(ctx)
    log = state.service_logger("backup")
    backup_dir = _dir(state, directory)

    def now() -> str:
        return local_moment(dt.datetime.now(dt.UTC), state.settings.timezone, seconds=True)

    def on_backup(info: BackupInfo) -> None:
        kind = describe_kind(info)
        deltas = f"{manager.deltas_since_full}/{max_deltas}" if incremental else "—"
        state.say(
            f"{now()} backup {info.name}: {kind}, {_size(info.size)} · "
            f"deltas since full {deltas} · consecutive failures 0"
        )

    def on_backup_failure(error: BaseException, count: int) -> None:
        message = error.message if isinstance(error, PlanctlError) else str(error)
        err_console().print(
            f"{now()} [red]backup failed[/red] ({count} in a row): {message}",
            highlight=False,
            soft_wrap=True,
        )

    options = BackupOptions(
        keep=keep,
        lock_timeout=30.0,
        pg_bindir=state.settings.pg_bindir,
        fmt=fmt,
        incremental=incremental,
        max_deltas=max_deltas,
    )
    manager = BackupManager(
        state.settings.target,
        backup_dir,
        options,
        Schedule(interval=interval, min_interval=min_interval),
        on_backup=on_backup,
        on_backup_failure=on_backup_failure,
        on_failure_command=on_failure,
        hooks=state.hooks,
    )
    log.info(
        "watch started: %s every %ss (min %ss)%s into %s",
        "incremental" if incremental else "full",
        interval,
        min_interval,
        f", keep {keep}" if keep else "",
        backup_dir,
    )
    what = "delta" if incremental else "full"
    state.say(
        f"Watching {state.settings.masked_url}: a {what} backup every "
        f"{interval:g} s and after changes (at most every {min_interval:g} s) into {backup_dir}. "
        "Ctrl-C or SIGTERM to stop."
    )
    status = manager.run_until_stopped()
    log.info(
        "watch stopped: last backup %s, deltas since full %d, consecutive failures %d",
        status.last_backup.name if status.last_backup else "none",
        status.deltas_since_full,
        status.consecutive_failures,
    )
    state.say("Stopped.")


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    keep_last: Annotated[int, typer.Option("--keep-last", help="Keep the N newest.")] = 0,
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Keep the newest of each of the last D days.")
    ] = 0,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", help="… of the last W ISO weeks.")
    ] = 0,
    keep_monthly: Annotated[
        int, typer.Option("--keep-monthly", help="… of the last M months.")
    ] = 0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan, delete nothing.")
    ] = False,
    directory: DirOption = None,
    lock_timeout: LockTimeout = 0.0,
) -> None:
    """Calendar-bucket retention with restic's semantics; never deletes the newest backup."""
    from rich.table import Table

    from planctl.backup import prune

    state = _state(ctx)
    log = state.service_logger("backup")
    plan = prune(
        _dir(state, directory),
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        timezone=state.settings.timezone,
        dry_run=dry_run,
        lock_timeout=lock_timeout,
        owner=_owner(state),
    )
    table = Table(title="Prune plan" + (" (dry run)" if dry_run else ""), title_justify="left")
    table.add_column("backup")
    table.add_column("created")
    table.add_column("decision")
    rows: list[tuple[Any, str]] = [(c, "keep: " + ", ".join(r)) for c, r in plan.keep]
    rows += [
        (c, "[red]remove[/red]" if not dry_run else "[yellow]would remove[/yellow]")
        for c in plan.remove
    ]
    for chain, decision in sorted(rows, key=lambda r: r[0].created, reverse=True):
        table.add_row(
            chain.root.name + (f" (+{len(chain.members) - 1})" if len(chain.members) > 1 else ""),
            _local(state, chain.created),
            decision,
        )
    if not state.quiet:
        out_console().print(table)
    removed, kept = sum(len(c.members) for c in plan.remove), len(plan.keep)
    if not dry_run:
        log.info("prune removed %s, kept %s", plural(removed, "backup"), plural(kept, "chain"))
    state.say(
        f"{'Would remove' if dry_run else 'Removed'} {plural(removed, 'backup')}; kept {kept:,}."
    )


def describe(info: BackupInfo) -> str:
    return f"{info.name} ({info.engine}, {info.kind})"


def _short_kind(info: BackupInfo) -> str:
    if info.reason == "pre-restore":
        return "safety"
    return info.kind


def describe_kind(info: BackupInfo) -> str:
    if info.kind == "delta":
        return f"delta ({plural(sum(info.row_counts.values()), 'row')})"
    return f"{info.kind} ({info.engine})"
