"""Backups: native (SQLite online backup API, pg_dump) or logical, full or incremental
(deltas from the change log), checksummed, rotated, verified, restored to any point.

The public API mirrors the ``planctl backup`` commands one to one.
"""

from planctl.backup.delta import apply_delta
from planctl.backup.manager import BackupManager
from planctl.backup.retention import PrunePlan
from planctl.backup.service import (
    BackupResult,
    RestoreResult,
    VerifyResult,
    chain_of,
    create_backup,
    find_at,
    find_backup,
    list_backups,
    parse_moment,
    prune,
    restore_backup,
    rotate,
    verify_backup,
)
from planctl.backup.store import BackupInfo

__all__ = [
    "BackupInfo",
    "BackupManager",
    "BackupResult",
    "PrunePlan",
    "RestoreResult",
    "VerifyResult",
    "apply_delta",
    "chain_of",
    "create_backup",
    "find_at",
    "find_backup",
    "list_backups",
    "parse_moment",
    "prune",
    "restore_backup",
    "rotate",
    "verify_backup",
]
