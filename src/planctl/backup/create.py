"""Taking a backup: a full one through an engine, or a delta from the change log.

Crash safety is an ordering: the data file is written to a temporary file,
checked, hashed, fsynced and renamed; the metadata is written last (the
moment the backup starts to exist); rotation runs only after that, over the
catalog's restorable chains. A kill -9 anywhere leaves the old set, or the old
set plus one complete new backup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from planctl import __version__
from planctl.backup import delta
from planctl.backup.catalog import (
    PRE_RESTORE,
    BackupSet,
    Owner,
    clean_leftovers,
    load_set,
    remove_chain,
    rotate_plan,
)
from planctl.backup.compress import Compression
from planctl.backup.engines import engine_for
from planctl.backup.options import (
    DEFAULT_COMPRESSION,
    FORMATS,
    MAX_DELTAS,
    BackupOptions,
    RestoreOptions,
)
from planctl.backup.pipeline import ENCRYPTED_SUFFIX
from planctl.backup.store import (
    BackupError,
    BackupInfo,
    backup_lock,
    digest_and_sync,
    disk_error,
    new_name,
    prepare_dir,
    publish,
    temp_path,
    utc_now,
    write_metadata,
)
from planctl.db import changelog
from planctl.errors import DatabaseError, UsageError
from planctl.failures import Failure
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target
from planctl.text import plural

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from planctl.db.lockwait import LockWait

log = logging.getLogger("planctl.backup")

#: More changed rows than this since the last backup: a full backup is cheaper to
#: write and to restore than a delta holding a good part of the database.
DELTA_MAX_CHANGES = 200_000
#: A delta on a SQLite database whose app holds the write lock: attempts, each
#: waiting up to the busy timeout, with a random backoff between them.
BUSY_ATTEMPTS = 4


@dataclass
class BackupResult:
    info: BackupInfo
    removed: list[BackupInfo] = field(default_factory=list)
    cleaned: list[Path] = field(default_factory=list)
    #: With ``incremental``: why a full backup was taken instead of a delta.
    full_because: str | None = None
    #: Deltas in the new backup's chain after it (0 for a full).
    deltas_since_full: int = 0


def create_backup(
    target: Target,
    backup_dir: Path,
    options: BackupOptions | None = None,
    hooks: Hooks = NO_HOOKS,
) -> BackupResult:
    """One backup, then rotation to the newest ``options.keep`` restorable chains.

    A full backup (native or logical by ``fmt``), or with ``incremental`` a
    delta on top of the newest backup when that is possible; otherwise a full
    one, with the reason in ``full_because``. When ``keep`` is given the new
    backup is always checked (SQLite ``quick_check``, ``pg_restore --list``, a
    delta parsed back) before anything may be rotated out. With ``recipients``,
    the data file is encrypted with age as it is written (no plaintext file).
    """
    options = resolved(options or BackupOptions())
    backup_dir = prepare_dir(Path(backup_dir))
    with backup_lock(backup_dir, options.lock_timeout):
        backups = load_set(backup_dir)
        cleaned = clean_leftovers(backups)
        info, because = None, None
        if options.incremental:
            info, because = _delta_with_retries(target, backups, options, hooks)
            if info is None:
                log.info("full backup instead of a delta: %s", because)
        if info is None:
            info = create_full_locked(target, backups, options, hooks, anchor=True)
        # Rotation counts this database's chains only (its id, its engine).
        backups = load_set(backup_dir, Owner(info.database_id, target.engine))
        deltas = len(backups.chain_of(backups.by_name[info.name])) - 1
        keep = options.keep
        removed = rotate_locked(backups, keep) if keep is not None else []
        backups.cache.save()
    return BackupResult(info, removed, cleaned, because, deltas)


def resolved(options: BackupOptions) -> BackupOptions:
    """*options* checked, with ``verify`` decided: a
    backup must be proven readable before it pushes others out (``keep``)."""
    if options.keep is not None and options.keep < 1:
        raise UsageError(
            f"--keep must be at least 1, got {options.keep}", "keep at least the new backup"
        )
    if options.fmt not in FORMATS:
        raise UsageError(f"unknown backup format '{options.fmt}'", "use native or logical")
    if options.max_deltas < 1:
        raise UsageError(f"--max-deltas must be at least 1, got {options.max_deltas}")
    verify = True if options.keep is not None else bool(options.verify)
    return dataclasses.replace(options, verify=verify)


def rotate_locked(backups: BackupSet, keep: int) -> list[BackupInfo]:
    """Remove the chains older than the newest *keep* restorable ones (under the lock)."""
    removed: list[BackupInfo] = []
    for chain in rotate_plan(backups, keep):
        removed.extend(remove_chain(backups, chain))
    return removed


# --- deltas -----------------------------------------------------------------------------------


def _delta_refusal(
    anchor: tuple[str | None, str | None], backups: BackupSet, max_deltas: int
) -> tuple[BackupInfo | None, str | None]:
    """The parent a delta can be taken on, or why a full backup is needed instead.

    A delta extends the newest backup of the set, only when the change log is
    relative to exactly that backup (the anchor) and its whole chain is
    restorable: checksums of every data file, parents, identity.
    """
    regular = backups.regular()
    if not regular:
        return None, "no full backup yet"
    newest = regular[-1]
    if anchor[0] is None:
        return None, "the change log has no starting point yet (first backup, or after a restore)"
    if anchor != (newest.name, newest.created):
        return None, (
            f"the change log is relative to {anchor[0]}, not to the newest backup {newest.name} "
            "(another backup directory, a restore or an interrupted run)"
        )
    problem = backups.problem(newest)
    if problem:
        return None, f"the newest chain is not restorable ({problem})"
    chain = backups.chain_of(newest)
    if len(chain) - 1 >= max_deltas:
        return (
            None,
            f"{len(chain) - 1} deltas since the last full backup (--max-deltas {max_deltas})",
        )
    return newest, None


def _delta_with_retries(
    target: Target, backups: BackupSet, options: BackupOptions, hooks: Hooks
) -> tuple[BackupInfo | None, str | None]:
    """A SQLite app that commits every few ms can hold the lock past one busy timeout:
    try again with a random backoff, then say what happened."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            return _create_delta_locked(target, backups, options, hooks)
        except DatabaseError as error:
            if error.failure is not Failure.LOCKED or attempt == BUSY_ATTEMPTS:
                raise
            log.warning("delta: the database is busy (attempt %d), retrying", attempt)
            time.sleep(random.uniform(0.05, 0.25) * attempt)
    raise AssertionError("unreachable")


def _create_delta_locked(
    target: Target, backups: BackupSet, options: BackupOptions, hooks: Hooks
) -> tuple[BackupInfo | None, str | None]:
    """Write a delta in one transaction that also empties the change log it consumed.

    SQLite: BEGIN IMMEDIATE takes the write lock first (writers wait, the
    delta is small). PostgreSQL: REPEATABLE READ, so the rows read, the log
    read and the log rows deleted are the same snapshot; changes committed
    meanwhile stay in the log for the next delta.
    """
    from planctl.db import identity
    from planctl.db.engine import connect

    backup_dir = backups.path
    compress, recipients, verify = options.compress, options.recipients, bool(options.verify)
    with connect(target, immediate=True, snapshot=True) as connection:
        if not changelog.installed(connection):
            return None, "the database has no change log (run planctl db-upgrade)"
        changelog.lock_anchor(connection)
        unlogged = [
            t for t in _present_sync_tables(connection) if not changelog.covers(connection, t)
        ]
        if unlogged:
            return None, f"the change log does not cover {', '.join(unlogged)} (run db-upgrade)"
        parent, because = _delta_refusal(
            changelog.read_anchor(connection), backups, options.max_deltas
        )
        if parent is None:
            return None, because
        revision = delta.current_revision(connection)
        if revision != parent.revision:
            return None, f"the schema changed since {parent.name} ({parent.revision} → {revision})"
        database_id = identity.read(connection)
        if database_id != parent.database_id:
            return None, f"{parent.name} is a backup of another database"
        changed, truncated = changelog.pending(connection)
        if truncated:
            return None, "whole tables were replaced since the last backup (TRUNCATE or db-seed)"
        if changed > DELTA_MAX_CHANGES:
            return (
                None,
                f"{changed} rows changed since the last backup "
                f"(a delta holds up to {DELTA_MAX_CHANGES})",
            )
        created = utc_now()
        name = new_name(created, "delta", options.label, backup_dir)
        log.info("delta %s of %s on top of %s started", name, target.masked, parent.name)
        tables = delta.collect(connection, changelog.changed_ids(connection))
        temp = temp_path(backup_dir, ".data")
        data_file = name + delta.data_suffix(compress) + (ENCRYPTED_SUFFIX if recipients else "")
        try:
            try:
                delta.write(
                    temp,
                    compress,
                    timestamp=created.isoformat(),
                    parent=parent.name,
                    parent_sha256=parent.sha256,
                    revision=revision,
                    engine=connection.dialect.name,
                    tables=tables,
                    recipients=recipients,
                )
                if verify and not recipients:
                    delta.read(temp, name)  # parses back completely before rotation
                sha, size = digest_and_sync(temp)
                publish(temp, backup_dir / data_file)
            except OSError as error:
                raise disk_error(error, backup_dir) from error
            counts = {
                table: {"upserts": len(t["upserts"]), "deletes": len(t["deletes"])}
                for table, t in tables.items()
            }
            info = BackupInfo(
                name=name,
                kind="delta",
                engine="delta",
                created=created.isoformat(),
                data_file=data_file,
                sha256=sha,
                size=size,
                source=target.masked,
                revision=revision,
                row_counts={t: c["upserts"] + c["deletes"] for t, c in counts.items()},
                compressed=compress,
                parent=parent.name,
                label=options.label,
                reason=options.reason,
                verified_at=created.isoformat() if verify else None,
                planctl_version=__version__,
                sequence=backups.next_sequence(),
                database_id=database_id,
                encrypted_for=[r.fingerprint for r in recipients],
                extra={"parent_sha256": parent.sha256, "changes": counts, "base": parent.engine},
            )
            record(backup_dir, info)
            hooks.checkpoint("delta-published")
        finally:
            temp.unlink(missing_ok=True)
        # Same transaction: the log rows this delta holds go, the anchor moves to it.
        changelog.move_anchor(connection, name, info.created)
    log.info(
        "delta %s written: %s, %s",
        name,
        plural(sum(info.row_counts.values()), "changed row"),
        plural(size, "byte"),
    )
    return info, None


def _present_sync_tables(connection: Connection) -> list[str]:
    from sqlalchemy import inspect

    existing = set(inspect(connection).get_table_names())
    return [t for t in changelog.sync_tables() if t in existing]


# --- full backups -----------------------------------------------------------------------------


class _Anchor:
    """Moves the change-log anchor to a new full backup, consistently with its snapshot.

    PostgreSQL: inside the dump's own snapshot transaction (``in_snapshot``),
    so the log rows deleted are exactly those the dump contains. SQLite: the
    newest log id in the snapshot is noted, and after the backup is published
    the log is emptied up to that id (SQLite ids follow commit order). A
    database user without write access only gets a warning: the next
    ``--incremental`` run then takes a full backup again.
    """

    def __init__(
        self, target: Target, name: str, created: str, lock_wait: LockWait | None = None
    ) -> None:
        self.target, self.name, self.created = target, name, created
        self.lock_wait = lock_wait
        self.mark: int | None = None

    def in_snapshot(self, connection: Connection) -> None:
        if not changelog.installed(connection):
            return
        if connection.dialect.name != "postgresql":
            self.mark = changelog.last_change(connection)
            return
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with connection.begin_nested():
                changelog.move_anchor(connection, self.name, self.created)
        except SQLAlchemyError as error:
            log.warning(
                "%s: change log not reset (%s); the next delta will be a full", self.name, error
            )

    def after_publish(self, mark: int | None) -> None:
        mark = self.mark if mark is None else mark
        if mark is None:
            return
        from sqlalchemy.exc import SQLAlchemyError

        from planctl.db import lockwait
        from planctl.db.engine import connect
        from planctl.errors import PlanctlError

        def attempt(seconds: float) -> None:
            with connect(self.target, immediate=True, lock_timeout=seconds) as connection:
                changelog.lock_anchor(connection)
                changelog.move_anchor(connection, self.name, self.created, up_to=mark)

        subject = lockwait.subject_for(self.target)
        try:  # short attempts within the budget (planctl.db.lockwait), like every strong lock
            lockwait.retry(
                self.lock_wait or lockwait.LockWait(), subject, "change-log anchor", attempt
            )
        except (PlanctlError, SQLAlchemyError) as error:  # see the class docstring
            log.warning(
                "%s: change log not reset (%s); the next delta will be a full", self.name, error
            )


@contextlib.contextmanager
def _timed(what: str, name: str) -> Iterator[None]:
    """Log how long each phase of a backup took (backup.log; -v shows it)."""
    started = time.perf_counter()
    yield
    log.info("%s: %s took %.2f s", name, what, time.perf_counter() - started)


def create_full_locked(
    target: Target,
    backups: BackupSet,
    options: BackupOptions,
    hooks: Hooks = NO_HOOKS,
    *,
    anchor: bool = False,
    lock_wait: LockWait | None = None,
) -> BackupInfo:
    """A full backup into the set (its lock held by the caller) by *options* as
    :func:`resolved` returns them.

    With *lock_wait*, the dump's waits for the database's locks are short attempts
    within its budget (planctl.db.lockwait); without, each engine's own default."""
    backup_dir = backups.path
    compress, recipients, verify = options.compress, options.recipients, bool(options.verify)
    name_of_engine = "logical" if options.fmt == "logical" else target.engine
    engine = engine_for(
        name_of_engine, pg_bindir=options.pg_bindir, hooks=hooks, lock_wait=lock_wait
    )
    if engine.name == "postgresql" and compress is not Compression.NONE:
        compress = Compression.GZIP  # pg_dump's own compression
    created = utc_now()
    name = new_name(created, "full", options.label, backup_dir)
    moves = _Anchor(target, name, created.isoformat(), lock_wait) if anchor else None
    data_file = name + engine.data_suffix(compress) + (ENCRYPTED_SUFFIX if recipients else "")
    log.info("backup %s of %s started", name, target.masked)
    try:
        temp = temp_path(backup_dir, ".data")
    except OSError as error:
        raise disk_error(error, backup_dir) from error
    try:
        try:
            with _timed(f"{engine.name} dump", name):
                dumped = engine.dump(
                    target,
                    temp,
                    compressed=compress,
                    verify=verify,
                    in_snapshot=moves.in_snapshot if moves else None,
                    recipients=recipients,
                )
            sha, size = dumped.sha256, dumped.size
            hooks.checkpoint("data-written")
            with _timed("fsync + rename", name):
                publish(temp, backup_dir / data_file)
        except OSError as error:
            raise disk_error(error, backup_dir) from error
        hooks.checkpoint("data-published")
        info = BackupInfo(
            name=name,
            kind="full",
            engine=engine.name,
            created=created.isoformat(),
            data_file=data_file,
            sha256=sha,
            size=size,
            source=target.masked,
            revision=dumped.result.revision,
            row_counts=dumped.result.row_counts,
            compressed=compress,
            label=options.label,
            reason=options.reason,
            verified_at=utc_now().isoformat() if verify else None,
            planctl_version=__version__,
            sequence=backups.next_sequence(),
            database_id=dumped.result.database_id,
            encrypted_for=[r.fingerprint for r in recipients],
        )
        record(backup_dir, info)
        hooks.checkpoint("metadata-published")
        if moves:
            moves.after_publish(dumped.result.log_mark)
    finally:
        temp.unlink(missing_ok=True)
    log.info(
        "backup %s written: %s, sha256 %s, revision %s",
        name,
        plural(info.size, "byte"),
        info.sha256,
        info.revision,
    )
    return info


def record(backup_dir: Path, info: BackupInfo) -> None:
    """Write the metadata, the moment the backup starts to exist; if that fails,
    the published data file goes too (no orphan is left for the next run)."""
    try:
        write_metadata(backup_dir, info)
    except OSError as error:
        (backup_dir / info.data_file).unlink(missing_ok=True)
        raise disk_error(error, backup_dir) from error


def pre_restore_copy(
    target: Target,
    backups: BackupSet,
    restoring: RestoreOptions | None = None,
    hooks: Hooks = NO_HOOKS,
) -> BackupInfo:
    """The safety copy of the current state taken before a restore (never rotated out),
    with the restore's client tools and recipients; its lock waits are bounded by the
    restore's own ``lock_wait`` budget."""
    restoring = restoring or RestoreOptions()
    options = BackupOptions(
        compress=DEFAULT_COMPRESSION,  # like every other backup
        label=PRE_RESTORE,
        reason=PRE_RESTORE,
        pg_bindir=restoring.pg_bindir,
        verify=True,
        recipients=restoring.recipients,
    )
    return create_full_locked(target, backups, options, hooks, lock_wait=restoring.lock_wait)


__all__ = [
    "FORMATS",
    "MAX_DELTAS",
    "BackupError",
    "BackupOptions",
    "BackupResult",
    "create_backup",
]
