"""Restoring a backup: checks first, a safety copy, then one all-or-nothing replacement.

Every link of the chain is checked (metadata, checksums, parents, identity,
engine, schema revision) before the database is touched. The engine then
restores the full backup with the chain's deltas applied in one step: the
target ends in its old state or exactly the requested one, whatever fails or
is killed (SQLite: the deltas go into a scratch copy whose pages replace the
live ones in one transaction; PostgreSQL: a scratch database whose dump is
restored in one transaction; logical: one transaction on either engine).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from planctl.backup import delta
from planctl.backup.catalog import BackupSet, Owner, load_set
from planctl.backup.create import pre_restore_copy
from planctl.backup.engines import engine_for
from planctl.backup.options import RestoreOptions
from planctl.backup.owner import has_database, live_identity
from planctl.backup.pipeline import opened
from planctl.backup.store import (
    BackupError,
    BackupInfo,
    backup_lock,
    prepare_dir,
)
from planctl.db import changelog
from planctl.errors import UsageError, VerificationError
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target
from planctl.text import plural

if TYPE_CHECKING:
    from planctl.db.lockwait import LockWait

log = logging.getLogger("planctl.backup")


@dataclass
class RestoreResult:
    restored: BackupInfo
    safety: BackupInfo | None
    revision: str | None
    head: str | None
    #: The backups applied, full first (one element unless *restored* is a delta).
    chain: list[BackupInfo] = field(default_factory=list)
    rows_touched_by_deltas: int = 0
    #: With ``latest``: the newer backups passed over, and why (damaged, foreign).
    skipped: list[tuple[BackupInfo, str]] = field(default_factory=list)
    #: Why no safety copy was taken (None: one was, or it was not asked for).
    no_safety_because: str | None = None

    @property
    def needs_upgrade(self) -> bool:
        return self.revision != self.head


def parse_moment(value: str, timezone: str = "UTC") -> dt.datetime:
    """``2026-11-20 14:05`` (in *timezone*) or ISO 8601 with an offset, as an aware datetime."""
    from zoneinfo import ZoneInfo

    text = value.strip()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise UsageError(
            f"cannot read the moment '{value}'", "write it as 'YYYY-MM-DD HH:MM[:SS]'"
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def _check_revision(info: BackupInfo) -> str | None:
    from planctl.db.migrate import head_revision, script_directory

    head = head_revision()
    if info.revision is None:
        return head
    known = {script.revision for script in script_directory().walk_revisions()}
    if info.revision not in known:
        raise BackupError(
            f"backup {info.name} is from a newer or unknown schema revision {info.revision} "
            f"(this planctl knows up to {head})",
            "upgrade planctl before restoring it",
        )
    return head


def check_identity(
    target: Target,
    links: list[BackupInfo],
    *,
    allow_foreign: bool,
    lock_wait: LockWait | None = None,
) -> None:
    """Refuse a backup of another database (unless *allow_foreign*)."""
    if allow_foreign:
        return
    live = live_identity(target, lock_wait)
    for link in links:
        if live is not None and link.database_id is not None and link.database_id != live:
            raise BackupError(
                f"backup {link.name} is of another database (id {link.database_id[:8]}…; "
                f"{target.masked} is {live[:8]}…)",
                "restore a backup of this database, pass --force-foreign to replace it anyway, "
                "or move data across databases with a logical backup and --target",
            )


def restore_backup(
    target: Target,
    backup_dir: Path,
    name: str = "latest",
    options: RestoreOptions | None = None,
    hooks: Hooks = NO_HOOKS,
) -> RestoreResult:
    """Verify, refuse the wrong engine, database or a newer schema, take a safety backup,
    then restore the backup (a delta: its whole chain) all or nothing.

    Waits for the database's locks follow ``options.lock_wait`` (planctl.db.lockwait:
    short attempts within a budget, blockers named; default 2 s attempts within 60 s).

    With ``options.at`` (an aware datetime), the newest restorable backup taken at or
    before it. Encrypted backups are decrypted with ``options.identity``; the safety
    copy goes to ``options.safety_dir`` (default: the backup's own set), encrypted to
    ``options.recipients`` when given.
    """
    options = options or RestoreOptions()
    at, lock_wait, allow_foreign = options.at, options.lock_wait, options.allow_foreign
    backup_dir = Path(backup_dir)
    _existing_set(backup_dir)
    engine = target.engine
    with backup_lock(backup_dir, options.lock_timeout):
        live = None if allow_foreign else live_identity(target, lock_wait)
        backups = load_set(backup_dir, Owner(live, engine))
        info = backups.find_at(at) if at is not None else backups.find(name)
        skipped = backups.skipped_newer(info) if at is None and name == "latest" else []
        links = backups.chain_of(info)  # checksums, parents, identity: names the bad file
        root = links[0]
        if root.engine not in (engine, "logical"):
            raise BackupError(
                f"backup {root.name} is a {root.engine} backup; the database is {engine}",
                "restore it into a database of the same engine "
                "(logical backups move between engines)",
            )
        head = _check_revision(info)
        if any(link.revision != root.revision for link in links):
            raise VerificationError(f"backup {info.name}: its chain spans schema revisions")
        check_identity(target, links, allow_foreign=allow_foreign, lock_wait=lock_wait)
        if root.engine == "logical":
            _check_target_revision(target, root)
        with contextlib.ExitStack() as stack:
            # Decrypted (if need be) into files without a name: nothing readable is left
            # behind by a kill -9 at any instant.
            sources = [
                stack.enter_context(opened(backup_dir, link, options.identity)) for link in links
            ]
            deltas = [
                (link.name, delta.parse(source, link.name))
                for link, source in zip(links[1:], sources[1:], strict=True)
            ]
            restorer = engine_for(
                root.engine, pg_bindir=options.pg_bindir, hooks=hooks, lock_wait=lock_wait
            )
            restorer.check(sources[0], root.compressed, root.name, deep=False, workdir=backup_dir)
            safety, no_safety = None, None
            if options.safety_backup and not _holds_data(target):
                no_safety = "the target database is empty: no safety copy of nothing"
                log.info("no safety backup before restoring %s: %s", info.name, no_safety)
            elif options.safety_backup:
                safety = _safety_copy(target, backups, options, hooks)
                log.info("safety backup %s taken before restoring %s", safety.name, info.name)
            hooks.checkpoint("before-restore")
            touched = restorer.restore(
                target, sources[0], root.compressed, root.name, deltas, workdir=backup_dir
            )
        _restart_change_log(target, lock_wait)
        backups.cache.save()
    log.info(
        "restored %s into %s (revision %s%s)",
        info.name,
        target.masked,
        info.revision,
        f", {plural(len(deltas), 'delta')} applied, {plural(touched, 'row')}" if deltas else "",
    )
    return RestoreResult(info, safety, info.revision, head, links, touched, skipped, no_safety)


def _safety_copy(
    target: Target, backups: BackupSet, options: RestoreOptions, hooks: Hooks
) -> BackupInfo:
    """The pre-restore copy, in the backup's own set or (a restore from a remote) in
    ``options.safety_dir``, under that set's lock; its lock waits within the restore's
    budget."""
    safety_dir = options.safety_dir
    if safety_dir is None or Path(safety_dir).resolve() == backups.path.resolve():
        return pre_restore_copy(target, backups, options, hooks)
    directory = prepare_dir(Path(safety_dir))
    with backup_lock(directory):
        return pre_restore_copy(target, load_set(directory), options, hooks)


def chain_of(backup_dir: Path, info: BackupInfo) -> list[BackupInfo]:
    """The chain that restoring *info* needs: its full backup, then each delta up to it."""
    return load_set(Path(backup_dir)).chain_of(info)


def _restart_change_log(target: Target, lock_wait: LockWait | None = None) -> None:
    """After a restore the log describes no backup: empty it; the next --incremental is a full.

    A separate transaction after the restore: if it is lost (kill -9), the
    anchor still names a backup of the restored state's past, which the next
    --incremental refuses (it is not the newest backup), taking a full.
    """
    from planctl.db import lockwait
    from planctl.db.engine import connect

    def attempt(seconds: float) -> None:
        with connect(target, immediate=True, lock_timeout=seconds) as connection:
            if changelog.installed(connection):
                changelog.move_anchor(connection, None, None)

    subject = lockwait.subject_for(target)
    lockwait.retry(lock_wait or lockwait.LockWait(), subject, "change-log restart", attempt)


def _check_target_revision(target: Target, info: BackupInfo) -> None:
    """A logical backup loads only into a schema at its own revision: refuse before any write."""
    from planctl.db.migrate import current, revision_hint

    revision = current(target, missing_ok=True)
    if revision != info.revision:
        raise BackupError(
            f"backup {info.name} is at schema revision {info.revision or '<none>'}; "
            f"{target.masked} is at {revision or '<none>'}",
            revision_hint(info.revision, revision),
        )


def _holds_data(target: Target) -> bool:
    """Whether the target holds anything a safety copy would keep: a SQLite file with
    content, a PostgreSQL database with at least one table of its own."""
    if not has_database(target):
        return False
    if target.engine == "sqlite":
        return True
    from sqlalchemy import text

    from planctl.db.engine import connect

    with connect(target) as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname NOT IN "
                    "('pg_catalog', 'information_schema'))"
                )
            ).scalar()
        )


def find_backup(
    backup_dir: Path, name: str = "latest", *, include_safety: bool = False
) -> BackupInfo:
    """A backup by name (or unique prefix), or ``latest``: the newest restorable one."""
    return _existing_set(backup_dir).find(name, include_safety=include_safety)


def find_at(backup_dir: Path, moment: dt.datetime) -> BackupInfo:
    """The newest restorable backup taken at or before *moment*."""
    return _existing_set(backup_dir).find_at(moment)


def _existing_set(backup_dir: Path) -> BackupSet:
    from planctl.errors import NothingToDoError

    backup_dir = Path(backup_dir)
    if not backup_dir.exists():
        raise NothingToDoError(
            f"backup directory '{backup_dir}' does not exist",
            "run planctl backup first, or check --dir",
        )
    return load_set(backup_dir)
