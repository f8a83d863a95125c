"""Backups: native (SQLite online backup API, pg_dump), checksummed, rotated, verified.

The public API mirrors the ``planctl backup`` commands one to one.
"""

from planctl.backup.retention import PrunePlan
from planctl.backup.service import (
    BackupResult,
    RestoreResult,
    VerifyResult,
    create_backup,
    find_backup,
    list_backups,
    prune,
    restore_backup,
    rotate,
    verify_backup,
)
from planctl.backup.store import BackupInfo

__all__ = [
    "BackupInfo",
    "BackupResult",
    "PrunePlan",
    "RestoreResult",
    "VerifyResult",
    "create_backup",
    "find_backup",
    "list_backups",
    "prune",
    "restore_backup",
    "rotate",
    "verify_backup",
]
