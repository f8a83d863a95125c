"""Backups: native (SQLite online backup API, pg_dump) or logical, full or incremental
(deltas from the change log), checksummed, rotated by health, verified, restored to any
point all or nothing.

The public API mirrors the ``planctl backup`` commands one to one.
"""

from planctl.backup.catalog import BackupSet, Chain, PrunePlan, load_set
from planctl.backup.create import BackupResult, create_backup
from planctl.backup.delta import apply_delta
from planctl.backup.manager import BackupManager, Schedule
from planctl.backup.options import BackupOptions, RestoreOptions
from planctl.backup.restore import (
    RestoreResult,
    chain_of,
    find_at,
    find_backup,
    live_identity,
    parse_moment,
    restore_backup,
)
from planctl.backup.retention import list_backups, open_set, prune, rotate
from planctl.backup.store import BackupInfo
from planctl.backup.verify import VerifyResult, verify_backup

__all__ = [
    "BackupInfo",
    "BackupManager",
    "BackupOptions",
    "BackupResult",
    "BackupSet",
    "Chain",
    "PrunePlan",
    "RestoreOptions",
    "RestoreResult",
    "Schedule",
    "VerifyResult",
    "apply_delta",
    "chain_of",
    "create_backup",
    "find_at",
    "find_backup",
    "list_backups",
    "live_identity",
    "load_set",
    "open_set",
    "parse_moment",
    "prune",
    "restore_backup",
    "rotate",
    "verify_backup",
]
