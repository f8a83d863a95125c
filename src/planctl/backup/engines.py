"""One interface over the three backup engines: SQLite (online backup API), PostgreSQL
(pg_dump/pg_restore) and logical (JSON rows, either engine).

Each engine dumps a consistent snapshot into a file, checks a file (shallow:
enough to trust it before rotation; deep: every byte readable) and restores a
file, with a chain's deltas applied, into a target all or nothing. Check and
restore read a stream (a decrypted backup is a file without a name), never
a plaintext file that a kill -9 could leave behind. The engines
are the classes of ``sqlite_engine``, ``postgres_engine`` and ``logical_engine``;
their options (the PostgreSQL client directory, the lock waits, the test
checkpoint) are bound when :func:`engine_for` builds one, so callers never
branch on the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from planctl.backup.compress import Compression
from planctl.backup.logical_engine import LogicalEngine
from planctl.backup.postgres_engine import PostgresEngine
from planctl.backup.sqlite_engine import SqliteEngine
from planctl.backup.store import Dumped
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target

if TYPE_CHECKING:
    from planctl.backup.crypto import Recipient
    from planctl.backup.delta import Delta
    from planctl.db.lockwait import LockWait

InSnapshot = Callable[[Any], None]
Deltas = Sequence[tuple[str, "Delta"]]


class BackupEngine(Protocol):
    name: str

    def data_suffix(self, compressed: Compression) -> str: ...

    def dump(
        self,
        target: Target,
        into: Path,
        *,
        compressed: Compression,
        verify: bool,
        in_snapshot: InSnapshot | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> Dumped:
        """Write a snapshot into *into* (a temporary file in the backup directory),
        checked shallowly when *verify*, encrypted to *recipients* (no plaintext file),
        hashed and flushed."""
        ...

    def check(
        self,
        source: BinaryIO,
        compressed: Compression,
        name: str,
        *,
        deep: bool = True,
        workdir: Path | None = None,
    ) -> None:
        """Raise VerificationError naming *name* when the data *source* (a seekable stream
        of the file's plaintext, :func:`planctl.backup.pipeline.opened`) cannot be
        restored. Scratch copies go to *workdir* (else TMPDIR) and never have a name."""
        ...

    def restore(
        self,
        target: Target,
        source: BinaryIO,
        compressed: Compression,
        name: str,
        deltas: Deltas = (),
        *,
        workdir: Path | None = None,
    ) -> int:
        """Replace the target's data with *source*'s, *deltas* applied; all or nothing.
        Returns the rows the deltas touched."""
        ...


def engine_for(
    name: str,
    *,
    pg_bindir: Path | None = None,
    hooks: Hooks = NO_HOOKS,
    lock_wait: LockWait | None = None,
) -> BackupEngine:
    """The engine called *name* with its options and *hooks* bound (*lock_wait*: how it
    waits for the database's locks, planctl.db.lockwait)."""
    if name == SqliteEngine.name:
        return SqliteEngine(hooks, lock_wait=lock_wait)
    if name == PostgresEngine.name:
        return PostgresEngine(pg_bindir, hooks, lock_wait)
    if name == LogicalEngine.name:
        return LogicalEngine(hooks, lock_wait)
    raise ValueError(f"unknown backup engine {name!r}")


__all__ = [
    "BackupEngine",
    "Dumped",
    "LogicalEngine",
    "PostgresEngine",
    "SqliteEngine",
    "engine_for",
]
