"""What the ``planctl backup`` commands do, as functions a Python user can call.

``create_backup`` → ``list_backups`` → ``verify_backup`` → ``restore_backup``,
plus ``rotate`` and ``prune``. Every function takes the database URL and the
backup directory as arguments; none reads the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from planctl import __version__
from planctl.backup import delta, logical_engine, postgres_engine, sqlite_engine
from planctl.backup.retention import Chain, PrunePlan, prune_plan, rotate_plan
from planctl.backup.store import (
    BackupError,
    BackupInfo,
    PendingDigest,
    _maybe_crash,
    backup_lock,
    clean_leftovers,
    damaged_metadata,
    digest_and_sync,
    list_infos,
    new_name,
    prepare_dir,
    publish,
    remove_backup,
    sha256_file,
    temp_path,
    utc_now,
    write_metadata,
)
from planctl.config import mask_url
from planctl.db import changelog
from planctl.db.engine import parse_url
from planctl.errors import NothingToDoError, UsageError, VerificationError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger("planctl.backup")

PRE_RESTORE = "pre-restore"
#: Deltas per chain before ``--incremental`` takes a full backup again.
MAX_DELTAS = 10
#: More changed rows than this since the last backup: a full backup is cheaper to
#: write and to restore than a delta holding a good part of the database.
DELTA_MAX_CHANGES = 200_000


def engine_name(database_url: str) -> str:
    return parse_url(database_url).get_backend_name()


def _engine(name: str) -> ModuleType:
    return {"sqlite": sqlite_engine, "postgresql": postgres_engine, "logical": logical_engine}[name]


FORMATS = ("native", "logical")


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
    database_url: str,
    backup_dir: Path,
    *,
    keep: int | None = None,
    compress: bool = True,
    label: str | None = None,
    reason: str = "manual",
    lock_timeout: float = 0.0,
    pg_bindir: Path | None = None,
    verify: bool | None = None,
    fmt: str = "native",
    incremental: bool = False,
    max_deltas: int = MAX_DELTAS,
) -> BackupResult:
    """One backup, then rotation to the newest *keep* chains.

    A full backup (native or logical by *fmt*), or with *incremental* a delta
    on top of the newest backup when that is possible (see :func:`_delta_refusal`);
    otherwise a full one, with the reason in ``full_because``.

    The engine check (SQLite ``quick_check``, ``pg_restore --list``) runs when
    *verify* is true and, by default, whenever rotation is asked for: a backup
    must be proven readable before it may push older ones out. The sha256 is
    always recorded; ``verify_backup`` runs the full checks later.
    """
    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}", "keep at least the new backup")
    if fmt not in FORMATS:
        raise UsageError(f"unknown backup format '{fmt}'", "use native or logical")
    if max_deltas < 1:
        raise UsageError(f"--max-deltas must be at least 1, got {max_deltas}")
    if verify is None:
        verify = keep is not None
    backup_dir = prepare_dir(Path(backup_dir))
    with backup_lock(backup_dir, lock_timeout):
        cleaned = clean_leftovers(backup_dir)
        info, because = None, None
        if incremental:
            info, because = _create_delta_locked(
                database_url,
                backup_dir,
                compress=compress,
                label=label,
                reason=reason,
                max_deltas=max_deltas,
            )
            if info is None:
                log.info("full backup instead of a delta: %s", because)
        if info is None:
            info = _create_locked(
                database_url,
                backup_dir,
                compress=compress,
                label=label,
                reason=reason,
                pg_bindir=pg_bindir,
                verify=verify,
                fmt=fmt,
                anchor=True,
            )
        deltas = len(chain_of(backup_dir, info)) - 1
        removed = rotate_locked(backup_dir, keep) if keep is not None else []
    return BackupResult(info, removed, cleaned, because, deltas)


def _delta_refusal(
    anchor: tuple[str | None, str | None], infos: list[BackupInfo], max_deltas: int
) -> tuple[BackupInfo | None, str | None]:
    """The parent a delta can be taken on, or why a full backup is needed instead.

    A delta extends the newest backup of the directory, and only when the
    database's change log is relative to exactly that backup (the anchor).
    """
    regular = [i for i in infos if i.reason != PRE_RESTORE]
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
    try:
        chain = _resolve_chain(infos, newest)
    except VerificationError as error:
        return None, f"the newest chain is broken ({error.message})"
    if len(chain) - 1 >= max_deltas:
        return (
            None,
            f"{len(chain) - 1} deltas since the last full backup (--max-deltas {max_deltas})",
        )
    return newest, None


def _create_delta_locked(
    database_url: str,
    backup_dir: Path,
    *,
    compress: bool,
    label: str | None,
    reason: str,
    max_deltas: int,
) -> tuple[BackupInfo | None, str | None]:
    """Write a delta in one transaction that also empties the change log it consumed.

    SQLite: the transaction takes the write lock first (writers wait, the
    delta is small). PostgreSQL: REPEATABLE READ, so the rows read, the log
    read and the log rows deleted are the same snapshot; changes committed
    meanwhile stay in the log for the next delta.
    """
    from sqlalchemy import text

    from planctl.db.engine import connect

    with connect(database_url) as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        if not changelog.installed(connection):
            return None, "the database has no change log (run planctl db-upgrade)"
        changelog.lock_anchor(connection)
        parent, because = _delta_refusal(
            changelog.read_anchor(connection), list_infos(backup_dir), max_deltas
        )
        if parent is None:
            return None, because
        revision = delta.current_revision(connection)
        if revision != parent.revision:
            return None, f"the schema changed since {parent.name} ({parent.revision} → {revision})"
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
        name = new_name(created, "delta", label, backup_dir)
        log.info("delta %s of %s on top of %s started", name, mask_url(database_url), parent.name)
        tables = delta.collect(connection, changelog.changed_ids(connection))
        temp = temp_path(backup_dir, ".data")
        data_file = name + delta.data_suffix(compress)
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
                )
                sha, size = digest_and_sync(temp)
                publish(temp, backup_dir / data_file)
            except OSError as error:
                raise _disk_error(error, backup_dir) from None
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
                source=mask_url(database_url),
                revision=revision,
                row_counts={t: c["upserts"] + c["deletes"] for t, c in counts.items()},
                compressed=compress,
                parent=parent.name,
                label=label,
                reason=reason,
                planctl_version=__version__,
                extra={"parent_sha256": parent.sha256, "changes": counts, "base": parent.engine},
            )
            _record(backup_dir, info)
            _maybe_crash("delta-published")
        finally:
            temp.unlink(missing_ok=True)
        # Same transaction: the log rows this delta holds go, the anchor moves to it.
        changelog.move_anchor(connection, name, info.created)
    log.info(
        "delta %s written: %s changed rows, %s bytes", name, sum(info.row_counts.values()), size
    )
    return info, None


class _Anchor:
    """Moves the change-log anchor to a new full backup, consistently with its snapshot.

    PostgreSQL: inside the dump's own snapshot transaction (``in_snapshot``),
    so the log rows deleted are exactly those the dump contains. SQLite: the
    newest log id in the snapshot is noted, and after the backup is published
    the log is emptied up to that id (SQLite ids follow commit order). A
    database user without write access only gets a warning: the next
    ``--incremental`` run then takes a full backup again.
    """

    def __init__(self, database_url: str, name: str, created: str) -> None:
        self.database_url, self.name, self.created = database_url, name, created
        self.mark: int | None = None

    def in_snapshot(self, connection: Connection) -> None:
        if not changelog.installed(connection):
            return
        if connection.dialect.name != "postgresql":
            self.mark = changelog.last_change(connection)
            return
        try:
            with connection.begin_nested():
                changelog.move_anchor(connection, self.name, self.created)
        except Exception as error:
            log.warning(
                "%s: change log not reset (%s); the next delta will be a full", self.name, error
            )

    def after_publish(self) -> None:
        if self.mark is None:
            return
        from planctl.db.engine import connect

        try:
            with connect(self.database_url) as connection:
                changelog.lock_anchor(connection)
                changelog.move_anchor(connection, self.name, self.created, up_to=self.mark)
        except Exception as error:  # see the class docstring
            log.warning(
                "%s: change log not reset (%s); the next delta will be a full", self.name, error
            )


@contextlib.contextmanager
def _timed(what: str, name: str) -> Iterator[None]:
    """Log how long each phase of a backup took (backup.log; -v shows it)."""
    started = time.perf_counter()
    yield
    log.info("%s: %s took %.2f s", name, what, time.perf_counter() - started)


def _create_locked(
    database_url: str,
    backup_dir: Path,
    *,
    compress: bool,
    label: str | None,
    reason: str,
    pg_bindir: Path | None,
    verify: bool,
    fmt: str = "native",
    anchor: bool = False,
) -> BackupInfo:
    engine = "logical" if fmt == "logical" else engine_name(database_url)
    created = utc_now()
    name = new_name(created, "full", label, backup_dir)
    moves = _Anchor(database_url, name, created.isoformat()) if anchor else None
    in_snapshot = moves.in_snapshot if moves else None
    module = _engine(engine)
    data_file = name + module.data_suffix(compress)
    log.info("backup %s of %s started", name, mask_url(database_url))
    temp = temp_path(backup_dir, ".data")
    try:
        try:
            if engine == "logical":
                with _timed("logical dump", name):
                    revision, counts = logical_engine.dump(
                        database_url, temp, compress, in_snapshot
                    )
                if verify:
                    with _timed("logical check", name):
                        logical_engine.check(temp, compress, backup_dir, name)
                _maybe_crash("verified")
                with _timed("sha256", name):
                    sha, size = digest_and_sync(temp)
            elif engine == "sqlite":
                raw = temp_path(backup_dir, ".sqlite")
                try:
                    with _timed("snapshot (online backup API)", name):
                        revision, counts = sqlite_engine.snapshot(database_url, raw)
                    if moves:
                        moves.mark = sqlite_engine.change_log_mark(raw)
                    if verify:  # a gate before rotation may delete older backups
                        with _timed("quick_check", name):
                            sqlite_engine.integrity_check(raw, name, quick=True)
                    _maybe_crash("verified")
                    with _timed("compress + sha256" if compress else "sha256", name):
                        sha, size = sqlite_engine.write_data(raw, temp, compress)
                finally:
                    sqlite_engine.unlink_database(raw)
            else:
                digest = PendingDigest(temp)
                try:
                    with _timed("pg_dump", name):
                        revision, counts = postgres_engine.dump(
                            database_url, temp, compress, pg_bindir, in_snapshot, digest.start
                        )
                    if verify:  # the TOC here; `backup verify` also reads every data block
                        with _timed("pg_restore --list", name):
                            postgres_engine.check(
                                temp, compress, backup_dir, name, pg_bindir, full=False
                            )
                    _maybe_crash("verified")
                    with _timed("sha256 (the rest of it)", name):
                        sha, size = digest.result()
                finally:
                    digest.close()
        except OSError as error:
            raise _disk_error(error, backup_dir) from None
        _maybe_crash("data-written")
        with _timed("fsync + rename", name):
            publish(temp, backup_dir / data_file)
        _maybe_crash("data-published")
        now = utc_now().isoformat() if verify else None
        info = BackupInfo(
            name=name,
            kind="full",
            engine=engine,
            created=created.isoformat(),
            data_file=data_file,
            sha256=sha,
            size=size,
            source=mask_url(database_url),
            revision=revision,
            row_counts=counts,
            compressed=compress,
            label=label,
            reason=reason,
            verified_at=now,
            planctl_version=__version__,
        )
        _record(backup_dir, info)
        _maybe_crash("metadata-published")
        if moves:
            moves.after_publish()
    finally:
        temp.unlink(missing_ok=True)
    log.info("backup %s written: %s bytes, sha256 %s, revision %s", name, size, sha, revision)
    return info


def _record(backup_dir: Path, info: BackupInfo) -> None:
    """Write the metadata, the moment the backup starts to exist; if that fails,
    the published data file goes too (no orphan is left for the next run)."""
    try:
        write_metadata(backup_dir, info)
    except OSError as error:
        (backup_dir / info.data_file).unlink(missing_ok=True)
        raise _disk_error(error, backup_dir) from None


def _disk_error(error: OSError, directory: Path) -> BackupError:
    import errno

    if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return BackupError(
            f"backup to '{directory}' failed: {error.strerror} (disk full or file-size limit)",
            "free space in the backup directory and retry; nothing was kept or rotated",
        )
    return BackupError(f"backup to '{directory}' failed: {error.strerror or error}")


def list_backups(backup_dir: Path) -> list[BackupInfo]:
    """Every complete backup in *backup_dir*, newest first."""
    backup_dir = Path(backup_dir)
    if not backup_dir.exists():
        raise NothingToDoError(
            f"backup directory '{backup_dir}' does not exist",
            "run planctl backup first, or check --dir",
        )
    prepare_dir(backup_dir, create=False)
    return list(reversed(list_infos(backup_dir)))


def find_backup(
    backup_dir: Path, name: str = "latest", *, include_safety: bool = False
) -> BackupInfo:
    """A backup by name (or unique prefix), or ``latest``: the newest that is not a safety copy."""
    infos = list_backups(backup_dir)
    if not infos:
        raise NothingToDoError(f"no backups in '{backup_dir}'", "run planctl backup first")
    if name == "latest":
        candidates = [i for i in infos if include_safety or i.reason != PRE_RESTORE]
        if not candidates:
            raise NothingToDoError(
                f"no backups in '{backup_dir}' except safety copies",
                "name one explicitly (planctl backup list)",
            )
        return candidates[0]
    exact = [i for i in infos if i.name == name]
    matches = exact or [i for i in infos if i.name.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NothingToDoError(
            f"no backup named '{name}' in '{backup_dir}'", "planctl backup list shows the names"
        )
    raise UsageError(f"'{name}' matches {len(matches)} backups", "give more of the name")


def _resolve_chain(infos: list[BackupInfo], info: BackupInfo) -> list[BackupInfo]:
    """*info* and the backups it depends on, full first; VerificationError on a broken link."""
    by_name = {i.name: i for i in infos}
    links = [info]
    while links[0].kind == "delta":
        child = links[0]
        parent = by_name.get(child.parent or "")
        if parent is None:
            raise VerificationError(
                f"backup {child.name}: its parent {child.parent} is missing (broken chain)",
                "restore a backup taken before the gap (planctl backup list)",
            )
        if parent.sha256 != child.extra.get("parent_sha256"):
            raise VerificationError(
                f"backup {child.name}: its parent {parent.name} is not the backup it was "
                "taken on (checksum differs; broken chain)",
                "restore a backup taken before the gap (planctl backup list)",
            )
        if parent in links or len(links) > 100_000:
            raise VerificationError(f"backup {child.name}: its chain loops")
        links.insert(0, parent)
    return links


def chain_of(backup_dir: Path, info: BackupInfo) -> list[BackupInfo]:
    """The chain that restoring *info* needs: its full backup, then each delta up to it."""
    return _resolve_chain(list_infos(Path(backup_dir)), info)


def parse_moment(value: str, timezone: str = "UTC") -> dt.datetime:
    """``2026-11-20 14:05`` (in *timezone*) or ISO 8601 with an offset, as an aware datetime."""
    from zoneinfo import ZoneInfo

    text = value.strip()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"cannot read the moment '{value}'", "write it as 'YYYY-MM-DD HH:MM[:SS]'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def find_at(backup_dir: Path, moment: dt.datetime) -> BackupInfo:
    """The newest backup (full or delta, not a safety copy) taken at or before *moment*."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    infos = list_backups(backup_dir)
    for info in infos:  # newest first
        if info.reason != PRE_RESTORE and info.created_at <= moment:
            return info
    oldest = min((i.created_at for i in infos), default=None)
    raise NothingToDoError(
        f"no backup in '{backup_dir}' was taken at or before {moment.isoformat(' ', 'seconds')}",
        f"the oldest is from {oldest.isoformat(' ', 'seconds')}"
        if oldest
        else "run planctl backup first",
    )


@dataclass
class VerifyResult:
    info: BackupInfo
    ok: bool
    problem: str | None = None


def verify_checksum(backup_dir: Path, info: BackupInfo) -> Path:
    """The data file exists and matches its recorded size and sha256."""
    path = backup_dir / info.data_file
    if not path.is_file():
        raise VerificationError(
            f"backup {info.name}: data file {info.data_file} is missing",
            "restore another backup (planctl backup list)",
        )
    if path.stat().st_size != info.size or sha256_file(path) != info.sha256:
        raise VerificationError(
            f"backup {info.name}: checksum mismatch in {info.data_file}",
            "the file is damaged; restore another backup (planctl backup list)",
        )
    return path


def verify_info(backup_dir: Path, info: BackupInfo, pg_bindir: Path | None = None) -> None:
    """Checksum, then the engine's own full check; raise VerificationError naming the backup."""
    path = verify_checksum(backup_dir, info)
    if info.engine == "sqlite":
        sqlite_engine.check(path, info.compressed, backup_dir, info.name)
    elif info.engine == "postgresql":
        postgres_engine.check(path, info.compressed, backup_dir, info.name, pg_bindir)
    elif info.engine == "logical":
        logical_engine.check(path, info.compressed, backup_dir, info.name)
    elif info.engine == "delta":
        parsed = delta.read(path, info.name)
        if parsed.parent != info.parent or parsed.parent_sha256 != info.extra.get("parent_sha256"):
            raise VerificationError(
                f"backup {info.name}: its file and metadata name different parents"
            )
        chain_of(backup_dir, info)  # every link up to the full backup is present and matches
    else:
        raise VerificationError(f"backup {info.name}: unknown engine '{info.engine}'")


def verify_backup(
    backup_dir: Path,
    name: str | None = "latest",
    *,
    all_backups: bool = False,
    lock_timeout: float = 0.0,
    pg_bindir: Path | None = None,
) -> list[VerifyResult]:
    """Verify one backup (or all); records ``verified_at``. Failures are returned, not raised."""
    backup_dir = Path(backup_dir)
    if all_backups:
        infos = list_backups(backup_dir)
    else:  # one backup: and, for a delta, every backup its restore needs
        infos = _chain_or_self(
            backup_dir, find_backup(backup_dir, name or "latest", include_safety=True)
        )
    if not infos and not damaged_metadata(backup_dir):
        raise NothingToDoError(f"no backups in '{backup_dir}'", "run planctl backup first")
    results = []
    with backup_lock(backup_dir, lock_timeout):
        for info in infos:
            try:
                verify_info(backup_dir, info, pg_bindir)
            except VerificationError as error:
                log.error("verify %s failed: %s", info.name, error.message)
                results.append(VerifyResult(info, False, error.message))
                continue
            info = dataclasses.replace(info, verified_at=utc_now().isoformat())
            try:
                write_metadata(backup_dir, info)
            except OSError as error:  # read-only media: the check itself still counts
                log.warning("verify %s ok, but cannot record it: %s", info.name, error.strerror)
            log.info("verify %s ok", info.name)
            results.append(VerifyResult(info, True))
        if all_backups:
            for path in damaged_metadata(backup_dir):
                problem = f"backup {path.stem}: metadata file {path.name} is damaged or unreadable"
                log.error("verify %s failed: %s", path.stem, problem)
                results.append(VerifyResult(_placeholder(path.stem), False, problem))
    return results


def _chain_or_self(backup_dir: Path, info: BackupInfo) -> list[BackupInfo]:
    try:
        return chain_of(backup_dir, info)
    except VerificationError:
        return [info]  # verify_info reports the broken link by name


def _placeholder(name: str) -> BackupInfo:
    """Stands in for a backup whose metadata cannot be read."""
    return BackupInfo(
        name=name,
        kind="unknown",
        engine="unknown",
        created="",
        data_file="",
        sha256="",
        size=0,
        source="",
        revision=None,
    )


@dataclass
class RestoreResult:
    restored: BackupInfo
    safety: BackupInfo | None
    revision: str | None
    head: str | None
    #: The backups applied, full first (one element unless *restored* is a delta).
    chain: list[BackupInfo] = field(default_factory=list)
    rows_touched_by_deltas: int = 0

    @property
    def needs_upgrade(self) -> bool:
        return self.revision != self.head


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


def restore_backup(
    database_url: str,
    backup_dir: Path,
    name: str = "latest",
    *,
    at: dt.datetime | None = None,
    safety_backup: bool = True,
    lock_timeout: float = 0.0,
    pg_bindir: Path | None = None,
) -> RestoreResult:
    """Verify, refuse the wrong engine or a newer schema, take a safety backup, then restore.

    A delta restores its chain: the full backup, then each delta in order.
    With *at* (an aware datetime), the newest backup taken at or before it.
    Every link is checked (present, checksum, parent link, parseable) before
    the database is touched; a broken chain is refused naming the bad file.
    """
    backup_dir = Path(backup_dir)
    info = find_at(backup_dir, at) if at is not None else find_backup(backup_dir, name)
    links = chain_of(backup_dir, info)
    root = links[0]
    engine = engine_name(database_url)
    if root.engine not in (engine, "logical"):
        raise BackupError(
            f"backup {root.name} is a {root.engine} backup; the database is {engine}",
            "restore it into a database of the same engine (logical backups move between engines)",
        )
    head = _check_revision(info)
    if any(link.revision != root.revision for link in links):
        raise VerificationError(f"backup {info.name}: its chain spans schema revisions")
    if root.engine == "logical":
        _check_target_revision(database_url, root)
    with backup_lock(backup_dir, lock_timeout):
        # Checksums and deltas now; each engine checks the full backup itself before
        # it touches the live database (SQLite integrity_check, pg_restore TOC).
        for link in links:
            verify_checksum(backup_dir, link)
        deltas = [
            (link.name, delta.read(backup_dir / link.data_file, link.name)) for link in links[1:]
        ]
        safety = None
        if safety_backup and _has_database(database_url):
            safety = _create_locked(
                database_url,
                backup_dir,
                compress=True,
                label=PRE_RESTORE,
                reason=PRE_RESTORE,
                pg_bindir=pg_bindir,
                verify=False,
            )
            log.info("safety backup %s taken before restoring %s", safety.name, info.name)
        _maybe_crash("before-restore")
        module = _engine(root.engine)
        module.restore(
            database_url,
            backup_dir / root.data_file,
            root.compressed,
            backup_dir,
            root.name,
            **({"bindir": pg_bindir} if root.engine == "postgresql" else {}),
        )
        touched = delta.apply_deltas(database_url, deltas) if deltas else 0
        _restart_change_log(database_url)
    log.info(
        "restored %s into %s (revision %s%s)",
        info.name,
        mask_url(database_url),
        info.revision,
        f", {len(deltas)} deltas applied, {touched} rows" if deltas else "",
    )
    return RestoreResult(info, safety, info.revision, head, links, touched)


def _restart_change_log(database_url: str) -> None:
    """After a restore the log describes no backup: empty it; the next --incremental is a full."""
    from planctl.db.engine import connect

    with connect(database_url) as connection:
        if changelog.installed(connection):
            changelog.move_anchor(connection, None, None)


def _check_target_revision(database_url: str, info: BackupInfo) -> None:
    """A logical backup loads only into a schema at its own revision: refuse before any write."""
    from planctl.db.migrate import current

    revision = current(database_url, missing_ok=True)
    if revision != info.revision:
        raise BackupError(
            f"backup {info.name} is at schema revision {info.revision or '<none>'}; "
            f"{mask_url(database_url)} is at {revision or '<none>'}",
            f"run planctl db-upgrade {info.revision} on the target first",
        )


def _has_database(database_url: str) -> bool:
    if engine_name(database_url) == "sqlite":
        path = sqlite_engine.database_file(database_url)
        return path.is_file() and path.stat().st_size > 0
    return True


def rotate_locked(backup_dir: Path, keep: int) -> list[BackupInfo]:
    """Keep the newest *keep* chains; pre-restore safety copies count on their own,
    so trying restore points never pushes the real backups out."""
    infos = list_infos(backup_dir)
    regular = [i for i in infos if i.reason != PRE_RESTORE]
    safety = [i for i in infos if i.reason == PRE_RESTORE]
    removed: list[BackupInfo] = []
    for chain in rotate_plan(regular, keep) + rotate_plan(safety, keep):
        removed.extend(_remove_chain(backup_dir, chain))
    return removed


def _remove_chain(backup_dir: Path, chain: Chain) -> list[BackupInfo]:
    removed = list(reversed(chain.members))  # deltas before their full
    for info in removed:
        remove_backup(backup_dir, info)
        log.info("removed %s (%s)", info.name, info.kind)
    return removed


def rotate(backup_dir: Path, keep: int, *, lock_timeout: float = 0.0) -> list[BackupInfo]:
    """Keep the newest *keep* chains, delete the rest."""
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}", "keep at least one backup")
    backup_dir = prepare_dir(Path(backup_dir), create=False)
    with backup_lock(backup_dir, lock_timeout):
        return rotate_locked(backup_dir, keep)


def prune(
    backup_dir: Path,
    *,
    keep_last: int = 0,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
    timezone: str = "UTC",
    dry_run: bool = False,
    lock_timeout: float = 0.0,
) -> PrunePlan:
    """Calendar-bucket retention (restic semantics); with *dry_run* only the plan."""
    for option, value in (
        ("--keep-last", keep_last),
        ("--keep-daily", keep_daily),
        ("--keep-weekly", keep_weekly),
        ("--keep-monthly", keep_monthly),
    ):
        if value < 0:
            raise UsageError(f"{option} must be 0 or more, got {value}")
    if not any((keep_last, keep_daily, keep_weekly, keep_monthly)):
        raise UsageError(
            "prune needs at least one --keep-* rule",
            "e.g. --keep-daily 7 --keep-weekly 4 --keep-monthly 12",
        )
    backup_dir = prepare_dir(Path(backup_dir), create=False)
    with backup_lock(backup_dir, lock_timeout):
        plan = prune_plan(  # safety copies are rotated by --keep, not pruned
            [i for i in list_infos(backup_dir) if i.reason != PRE_RESTORE],
            keep_last=keep_last,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            timezone=timezone,
        )
        if not dry_run:
            for chain in plan.remove:
                _remove_chain(backup_dir, chain)
    return plan
