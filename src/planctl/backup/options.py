"""How to take and how to restore a backup, each as one typed value.

``planctl backup``, ``backup watch``, ``backup restore`` and a Python caller
build these once and pass them down; the test hooks travel apart, as one
:class:`planctl.hooks.Hooks`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from planctl.backup.compress import Compression

if TYPE_CHECKING:
    from planctl.backup.crypto import Recipient
    from planctl.db.lockwait import LockWait

#: Deltas per chain before ``--incremental`` takes a full backup again.
MAX_DELTAS = 10
FORMATS = ("native", "logical")
#: The compression of a backup unless told otherwise: zstd, faster and smaller than gzip
#: on the benchmark database (bench/RESULTS.md), where the engine can write it (pg_dump
#: 15 writes gzip: see :func:`planctl.backup.create.create_full_locked`).
DEFAULT_COMPRESSION = Compression.ZSTD


@dataclass(frozen=True)
class BackupOptions:
    """How to take one backup (see :func:`planctl.backup.create.create_backup`).

    *keep*: rotate to the newest N restorable chains afterwards (the new backup
    is then always verified). *compress*: the method (zstd by default). *fmt*:
    native or logical. *incremental*: a delta when possible.
    *recipients*: encrypt with age as it is written. *lock_timeout*: how long to
    wait for the backup set's lock. *pg_bindir*: the PostgreSQL client tools.
    """

    keep: int | None = None
    compress: Compression = DEFAULT_COMPRESSION
    label: str | None = None
    reason: str = "manual"
    lock_timeout: float = 0.0
    pg_bindir: Path | None = None
    verify: bool | None = None
    fmt: str = "native"
    incremental: bool = False
    max_deltas: int = MAX_DELTAS
    recipients: Sequence[Recipient] = ()


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore (see :func:`planctl.backup.restore.restore_backup`).

    *at*: the newest restorable backup taken at or before this aware datetime,
    instead of a name. *safety_backup*: take a pre-restore copy of the current
    state first, into *safety_dir* (default: the backup's own set), encrypted to
    *recipients*. *allow_foreign*: restore a backup of another database.
    *identity*: the age identity that decrypts encrypted backups. *lock_wait*:
    how the database's locks are waited for (planctl.db.lockwait).
    """

    at: dt.datetime | None = None
    safety_backup: bool = True
    lock_timeout: float = 0.0
    pg_bindir: Path | None = None
    allow_foreign: bool = False
    identity: Path | None = None
    recipients: Sequence[Recipient] = ()
    safety_dir: Path | None = None
    lock_wait: LockWait | None = None
