"""The set-level commands around the catalog: list, rotate (``--keep``) and prune."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from planctl.backup.catalog import (
    ANYONE,
    BackupSet,
    Owner,
    PrunePlan,
    load_set,
    prune_plan,
    remove_chain,
)
from planctl.backup.create import rotate_locked
from planctl.backup.store import BackupInfo, backup_lock, prepare_dir
from planctl.errors import NothingToDoError, UsageError


def list_backups(backup_dir: Path) -> list[BackupInfo]:
    """Every backup in *backup_dir* whose metadata reads, newest first (by sequence)."""
    return list(reversed(open_set(backup_dir).infos))


def open_set(backup_dir: Path, owner: Owner = ANYONE) -> BackupSet:
    """The catalog of an existing backup directory (NothingToDoError if there is none)."""
    backup_dir = Path(backup_dir)
    if not backup_dir.exists():
        raise NothingToDoError(
            f"backup directory '{backup_dir}' does not exist",
            "run planctl backup first, or check --dir",
        )
    prepare_dir(backup_dir, create=False)
    return load_set(backup_dir, owner)


def rotate(
    backup_dir: Path, keep: int, *, lock_timeout: float = 0.0, owner: Owner = ANYONE
) -> list[BackupInfo]:
    """Keep the newest *keep* restorable chains of *owner*, delete older ones of it."""
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}", "keep at least one backup")
    backup_dir = prepare_dir(Path(backup_dir), create=False)
    with backup_lock(backup_dir, lock_timeout):
        backups = load_set(backup_dir, owner)
        removed = rotate_locked(backups, keep)
        backups.cache.save()
    return removed


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
    owner: Owner = ANYONE,
    now: dt.datetime | None = None,
) -> PrunePlan:
    """Calendar-bucket retention (restic semantics) over *owner*'s restorable chains."""
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
        backups = load_set(backup_dir, owner)
        plan = prune_plan(
            backups,
            keep_last=keep_last,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            timezone=timezone,
            now=now,
        )
        if not dry_run:
            for chain in plan.remove:
                remove_chain(backups, chain)
        backups.cache.save()
    return plan
