"""What the ``planctl backup`` commands do, as functions a Python user can call.

``create_backup`` → ``list_backups`` → ``verify_backup`` → ``restore_backup``,
plus ``rotate`` and ``prune``. Every function takes the database URL and the
backup directory as arguments; none reads the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from planctl import __version__
from planctl.backup import logical_engine, postgres_engine, sqlite_engine
from planctl.backup.retention import Chain, PrunePlan, prune_plan, rotate_plan
from planctl.backup.store import (
    BackupError,
    BackupInfo,
    _maybe_crash,
    backup_lock,
    clean_leftovers,
    damaged_metadata,
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
from planctl.db.engine import parse_url
from planctl.errors import NothingToDoError, UsageError, VerificationError

log = logging.getLogger("planctl.backup")

PRE_RESTORE = "pre-restore"


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
) -> BackupResult:
    """One full native backup, then rotation to the newest *keep* chains.

    The engine check (SQLite ``quick_check``, ``pg_restore --list``) runs when
    *verify* is true and, by default, whenever rotation is asked for: a backup
    must be proven readable before it may push older ones out. The sha256 is
    always recorded; ``verify_backup`` runs the full checks later.
    """
    if keep is not None and keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}", "keep at least the new backup")
    if fmt not in FORMATS:
        raise UsageError(f"unknown backup format '{fmt}'", "use native or logical")
    if verify is None:
        verify = keep is not None
    backup_dir = prepare_dir(Path(backup_dir))
    with backup_lock(backup_dir, lock_timeout):
        cleaned = clean_leftovers(backup_dir)
        info = _create_locked(
            database_url,
            backup_dir,
            compress=compress,
            label=label,
            reason=reason,
            pg_bindir=pg_bindir,
            verify=verify,
            fmt=fmt,
        )
        removed = rotate_locked(backup_dir, keep) if keep is not None else []
    return BackupResult(info, removed, cleaned)


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
) -> BackupInfo:
    engine = "logical" if fmt == "logical" else engine_name(database_url)
    created = utc_now()
    name = new_name(created, "full", label, backup_dir)
    module = _engine(engine)
    data_file = name + module.data_suffix(compress)
    log.info("backup %s of %s started", name, mask_url(database_url))
    temp = temp_path(backup_dir, ".data")
    try:
        try:
            if engine == "logical":
                with _timed("logical dump", name):
                    revision, counts = logical_engine.dump(database_url, temp, compress)
                if verify:
                    with _timed("logical check", name):
                        logical_engine.check(temp, compress, backup_dir, name)
                _maybe_crash("verified")
                with _timed("sha256", name):
                    sha, size = sha256_file(temp), temp.stat().st_size
            elif engine == "sqlite":
                raw = temp_path(backup_dir, ".sqlite")
                try:
                    with _timed("snapshot (online backup API)", name):
                        revision, counts = sqlite_engine.snapshot(database_url, raw)
                    if verify:  # a gate before rotation may delete older backups
                        with _timed("quick_check", name):
                            sqlite_engine.integrity_check(raw, name, quick=True)
                    _maybe_crash("verified")
                    with _timed("compress + sha256" if compress else "sha256", name):
                        sha, size = sqlite_engine.write_data(raw, temp, compress)
                finally:
                    sqlite_engine.unlink_database(raw)
            else:
                with _timed("pg_dump", name):
                    revision, counts = postgres_engine.dump(database_url, temp, compress, pg_bindir)
                if verify:  # the TOC here; `backup verify` also reads every data block
                    with _timed("pg_restore --list", name):
                        postgres_engine.check(
                            temp, compress, backup_dir, name, pg_bindir, full=False
                        )
                _maybe_crash("verified")
                with _timed("sha256", name):
                    sha, size = sha256_file(temp), temp.stat().st_size
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
        try:
            write_metadata(backup_dir, info)
        except OSError as error:
            (backup_dir / data_file).unlink(missing_ok=True)
            raise _disk_error(error, backup_dir) from None
        _maybe_crash("metadata-published")
    finally:
        temp.unlink(missing_ok=True)
    log.info("backup %s written: %s bytes, sha256 %s, revision %s", name, size, sha, revision)
    return info


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
    infos = (
        list_backups(backup_dir)
        if all_backups
        else [find_backup(backup_dir, name or "latest", include_safety=True)]
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
    safety_backup: bool = True,
    lock_timeout: float = 0.0,
    pg_bindir: Path | None = None,
) -> RestoreResult:
    """Verify, refuse the wrong engine or a newer schema, take a safety backup, then restore."""
    backup_dir = Path(backup_dir)
    info = find_backup(backup_dir, name)
    engine = engine_name(database_url)
    if info.engine not in (engine, "logical"):
        raise BackupError(
            f"backup {info.name} is a {info.engine} backup; the database is {engine}",
            "restore it into a database of the same engine (logical backups move between engines)",
        )
    head = _check_revision(info)
    if info.engine == "logical":
        _check_target_revision(database_url, info)
    with backup_lock(backup_dir, lock_timeout):
        # The checksum now; each engine checks the archive itself before it
        # touches the live database (SQLite integrity_check, pg_restore TOC).
        verify_checksum(backup_dir, info)
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
        module = _engine(info.engine)
        module.restore(
            database_url,
            backup_dir / info.data_file,
            info.compressed,
            backup_dir,
            info.name,
            **({"bindir": pg_bindir} if info.engine == "postgresql" else {}),
        )
    log.info("restored %s into %s (revision %s)", info.name, mask_url(database_url), info.revision)
    return RestoreResult(info, safety, info.revision, head)


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
    for info in reversed(chain.members):  # deltas before their full
        remove_backup(backup_dir, info)
        log.info("removed %s (%s)", info.name, info.kind)
    return list(chain.members)


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
