"""Verifying backups: every byte read back, every link checked, every bad file named."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from planctl.backup import delta
from planctl.backup.catalog import ANYONE, BackupSet, Owner, load_set
from planctl.backup.engines import engine_for
from planctl.backup.pipeline import opened
from planctl.backup.store import (
    BackupInfo,
    backup_lock,
    utc_now,
    write_metadata,
)
from planctl.errors import EncryptionError, NothingToDoError, VerificationError
from planctl.fsutil import OutputError

log = logging.getLogger("planctl.backup")


@dataclass
class VerifyResult:
    info: BackupInfo
    ok: bool
    problem: str | None = None
    note: str | None = None
    #: Not this database's (another database or engine): named, not checked, not a failure.
    foreign: str | None = None


def verify_info(
    backups: BackupSet,
    info: BackupInfo,
    pg_bindir: Path | None = None,
    database_id: str | None = None,
    identity: Path | None = None,
) -> str | None:
    """Checksum (read now, not from the cache), the engine's full check, the chain
    and the database identity; raise VerificationError naming the backup. Returns a
    note when a check could not run (an encrypted file and no age identity)."""
    backups.cache.forget(info.data_file)  # read the bytes again
    problem = backups.data_problem(info)
    if problem:
        raise VerificationError(problem, "the file is damaged; restore another backup")
    note = None
    if info.kind == "delta":
        backups.chain_of(info)  # every link up to the full backup is restorable
    if info.encrypted_for and identity is None:
        note = "checksum only: encrypted, no PLANCTL_BACKUP_IDENTITY for the deep check"
    elif info.kind == "delta":
        with opened(backups.path, info, identity) as source:
            parsed = delta.parse(source, info.name)
        if parsed.parent != info.parent or parsed.parent_sha256 != info.extra.get("parent_sha256"):
            raise VerificationError(
                f"backup {info.name}: its file and metadata name different parents"
            )
    elif info.engine in ("sqlite", "postgresql", "logical"):
        engine = engine_for(info.engine, pg_bindir=pg_bindir)
        with opened(backups.path, info, identity) as source:  # decrypted: without a name
            engine.check(source, info.compressed, info.name, workdir=backups.path)
    else:
        raise VerificationError(f"backup {info.name}: unknown engine '{info.engine}'")
    if database_id is not None and info.database_id not in (None, database_id):
        raise VerificationError(
            f"backup {info.name} is of another database (id {info.database_id[:8]}…, "
            f"this database is {database_id[:8]}…)",
            "move it out of the backup directory; restore refuses it",
        )
    return note


def verify_backup(
    backup_dir: Path,
    name: str | None = "latest",
    *,
    all_backups: bool = False,
    lock_timeout: float = 0.0,
    pg_bindir: Path | None = None,
    database_id: str | None = None,
    identity: Path | None = None,
    owner: Owner = ANYONE,
) -> list[VerifyResult]:
    """Verify one backup (a delta: its whole chain) or all; records ``verified_at``.

    With *database_id*, a named backup of another database fails too; under
    *all_backups* the backups of another database or engine (*owner*) are
    named as foreign and not failed. Failures are returned, not raised;
    damaged metadata is a failure under *all_backups*.
    """
    if database_id is not None and owner.database_id is None:
        owner = Owner(database_id, owner.engine)
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        raise NothingToDoError(
            f"backup directory '{backup_dir}' does not exist",
            "run planctl backup first, or check --dir",
        )
    results = []
    with backup_lock(backup_dir, lock_timeout):
        backups = load_set(backup_dir, owner)
        if all_backups:
            infos = list(reversed(backups.infos))
        else:
            found = backups.find(name or "latest", include_safety=True)
            infos = backups.lineage(found)  # verify_info names each broken link
        if not infos and not backups.damaged:
            raise NothingToDoError(f"no backups in '{backup_dir}'", "run planctl backup first")
        for info in infos:
            foreign = backups.foreign(info) if all_backups else None
            if foreign is not None:
                log.info("verify %s skipped: %s", info.name, foreign)
                results.append(VerifyResult(info, True, foreign=foreign))
                continue
            try:
                note = verify_info(backups, info, pg_bindir, database_id, identity)
            except (VerificationError, EncryptionError) as error:
                log.error("verify %s failed: %s", info.name, error.message)
                results.append(VerifyResult(info, False, error.message))
                continue
            info = dataclasses.replace(info, verified_at=utc_now().isoformat())
            try:
                write_metadata(backup_dir, info)
            except (OSError, OutputError) as error:  # read-only media: the check still counts
                reason = error.message if isinstance(error, OutputError) else error.strerror
                log.warning("verify %s ok, but cannot record it: %s", info.name, reason)
            log.info("verify %s ok%s", info.name, f" ({note})" if note else "")
            results.append(VerifyResult(info, True, note=note))
        if all_backups:
            for path in backups.damaged:
                problem = f"backup {path.stem}: metadata file {path.name} is damaged or unreadable"
                log.error("verify %s failed: %s", path.stem, problem)
                results.append(VerifyResult(_placeholder(path.stem), False, problem))
        backups.cache.save()
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
