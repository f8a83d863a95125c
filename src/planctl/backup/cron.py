"""What cron runs and what monitoring reads: "back up, then ship" as one monitored run,
``backup status``, and the node_exporter metrics file."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from planctl.backup.catalog import ANYONE, Owner, load_set
from planctl.backup.offsite import open_store, push, remote_catalog
from planctl.backup.store import BackupInfo, utc_now
from planctl.errors import PlanctlError
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target

if TYPE_CHECKING:
    from planctl.backup.create import BackupResult
    from planctl.backup.monitor import LastRun
    from planctl.backup.options import BackupOptions


@dataclass
class ShippedBackup:
    """A backup run: the local result, and what happened remotely."""

    result: BackupResult
    uploaded: bool = False
    repaired: list[BackupInfo] = field(default_factory=list)
    remote_removed: list[BackupInfo] = field(default_factory=list)


def backup_and_ship(
    target: Target,
    backup_dir: Path,
    options: BackupOptions,
    *,
    hooks: Hooks = NO_HOOKS,
    recipients_text: str = "",
    remote_url: str = "",
    remote_keep: int | None = None,
    ping_url: str = "",
    metrics_file: Path | None = None,
    remote_timeout: float | None = None,
) -> ShippedBackup:
    """What ``planctl backup`` does from cron: ping start, take the backup (encrypted when
    recipients are configured: a bad recipient fails before anything is written), upload
    it (data first, metadata last), repair damaged remote copies and apply the remote
    retention, record the run's outcome in ``last-run.json`` (and *metrics_file*), ping
    success or failure. Pings never change the outcome.
    """
    import dataclasses
    import time

    from planctl.backup.create import create_backup
    from planctl.backup.crypto import parse_recipients
    from planctl.backup.monitor import LastRun, ping, write_last_run

    started = time.monotonic()
    ping(ping_url, "start")
    try:
        recipients = parse_recipients(recipients_text) if recipients_text else []
        store = open_store(remote_url, remote_timeout) if remote_url else None
        result = create_backup(
            target, backup_dir, dataclasses.replace(options, recipients=recipients), hooks
        )
        shipped = ShippedBackup(result)
        if store is not None:
            owner = Owner(result.info.database_id, target.engine)
            try:
                pushed = push(
                    Path(backup_dir), store, keep=remote_keep, lock_timeout=30, owner=owner
                )
                shipped.uploaded = any(i.name == result.info.name for i in pushed.uploaded)
                shipped.repaired = pushed.repaired
                shipped.remote_removed = pushed.removed
            finally:
                store.close()
    except BaseException as error:
        message = error.message if isinstance(error, PlanctlError) else str(error) or repr(error)
        with contextlib.suppress(OSError, PlanctlError):
            record = LastRun("failure", utc_now(), message, duration=time.monotonic() - started)
            write_last_run(Path(backup_dir), record)
            if metrics_file is not None:
                write_metrics(metrics_file, Path(backup_dir))
        ping(ping_url, "fail", message)
        raise
    with contextlib.suppress(OSError, PlanctlError):
        record = LastRun(
            "success",
            utc_now(),
            "",
            result.info.name,
            duration=time.monotonic() - started,
            size=result.info.size,
        )
        write_last_run(Path(backup_dir), record)
        if metrics_file is not None:
            write_metrics(metrics_file, Path(backup_dir), owner=Owner(result.info.database_id))
    ping(ping_url, "success")
    return shipped


# --- status -----------------------------------------------------------------------------------


@dataclass
class Status:
    newest_local: BackupInfo | None
    newest_remote: BackupInfo | None
    last_run: LastRun | None
    stale: bool
    failed: bool
    problems: list[str] = field(default_factory=list)
    #: Backups of other databases or engines in the same place (never counted).
    foreign: list[str] = field(default_factory=list)
    remote: bool = False

    @property
    def healthy(self) -> bool:
        return not self.stale and not self.failed


def backup_status(
    backup_dir: Path,
    *,
    max_age: str | None = None,
    remote_url: str = "",
    owner: Owner = ANYONE,
    now: dt.datetime | None = None,
    remote_timeout: float | None = None,
) -> Status:
    """The newest restorable backup of this database — local, or with *remote_url* the
    remote's alone — its age against *max_age*, and the last run's outcome: what cron and
    monitoring check. No restorable backup where asked is stale."""
    from planctl.backup.monitor import is_stale, parse_duration, read_last_run

    limit = parse_duration(max_age) if max_age else None
    backup_dir = Path(backup_dir)
    newest_local = newest_remote = None
    problems: list[str] = []
    foreign: list[str] = []
    if remote_url:
        store = open_store(remote_url, remote_timeout)
        try:
            with remote_catalog(store, owner=owner, backup_dir=backup_dir) as remote:
                newest_remote = remote.newest_restorable()
                problems = [p for i in remote.own() if (p := remote.problem(i))]
                foreign = [p for i in remote.infos if (p := remote.foreign(i))]
        finally:
            store.close()
        newest = newest_remote
    else:
        local = load_set(backup_dir, owner) if backup_dir.is_dir() else None
        if local is not None:
            newest_local = local.newest_restorable()
            problems = [p for i in local.own() if (p := local.problem(i))]
            foreign = [p for i in local.infos if (p := local.foreign(i))]
            local.cache.save()
        newest = newest_local
    last = read_last_run(backup_dir)
    moment = now or dt.datetime.now(dt.UTC)
    stale = newest is None or (limit is not None and is_stale(newest.created_at, limit, moment))
    failed = last is not None and last.outcome == "failure"
    return Status(
        newest_local, newest_remote, last, stale, failed, problems, foreign, bool(remote_url)
    )


# --- metrics ----------------------------------------------------------------------------------


def metrics_text(backup_dir: Path, *, owner: Owner = ANYONE, now: dt.datetime | None = None) -> str:
    """node_exporter textfile-collector lines for this database's backups in *backup_dir*."""
    from planctl.backup.monitor import read_last_run

    moment = now or dt.datetime.now(dt.UTC)
    backups = load_set(backup_dir, owner) if Path(backup_dir).is_dir() else None
    newest = backups.newest_restorable() if backups else None
    chains = backups.restorable_chains() if backups else 0
    if backups is not None:
        backups.cache.save()
    last = read_last_run(Path(backup_dir))
    label = str(backup_dir).replace("\\", "\\\\").replace('"', '\\"')
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, value: float | None) -> None:
        if value is None:
            return
        lines.append(f"# HELP planctl_backup_{name} {help_text}")
        lines.append(f"# TYPE planctl_backup_{name} {kind}")
        shown = str(int(value)) if float(value).is_integer() else f"{value:.3f}"
        lines.append(f'planctl_backup_{name}{{dir="{label}"}} {shown}')

    success = last is not None and last.outcome == "success"
    metric(
        "last_success_timestamp_seconds",
        "gauge",
        "End of the last successful backup run (Unix time).",
        last.finished.timestamp() if last is not None and success else None,
    )
    metric(
        "last_run_success",
        "gauge",
        "1 when the last backup run succeeded, 0 when it failed.",
        None if last is None else float(success),
    )
    metric(
        "last_run_duration_seconds",
        "gauge",
        "How long the last backup run took.",
        last.duration if last is not None else None,
    )
    metric(
        "newest_restorable_age_seconds",
        "gauge",
        "Age of the newest restorable backup of this database.",
        max(0.0, (moment - newest.created_at).total_seconds()) if newest else None,
    )
    metric(
        "newest_restorable_size_bytes",
        "gauge",
        "Size of the newest restorable backup's data file.",
        newest.size if newest else None,
    )
    metric(
        "restorable_chains",
        "gauge",
        "Restorable chains (a full backup and its deltas) of this database.",
        chains,
    )
    return "\n".join(lines) + "\n"


def write_metrics(
    path: Path, backup_dir: Path, *, owner: Owner = ANYONE, now: dt.datetime | None = None
) -> None:
    """Replace *path* atomically (node_exporter must never read half a file)."""
    from planctl.fsutil import atomic_write

    text = metrics_text(backup_dir, owner=owner, now=now)
    with atomic_write(Path(path)) as handle:
        handle.write(text.encode("utf-8"))
