"""One interface over the three backup engines: SQLite (online backup API), PostgreSQL
(pg_dump/pg_restore) and logical (JSON rows, either engine).

Each engine dumps a consistent snapshot into a file, checks a file (shallow:
enough to trust it before rotation; deep: every byte readable) and restores a
file, with a chain's deltas applied, into a target all or nothing. Engine
options (the PostgreSQL client directory, the test checkpoint) are bound when
the engine is built, so callers never branch on the engine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from planctl.backup import logical_engine, postgres_engine, sqlite_engine
from planctl.backup.compress import Compression
from planctl.backup.pipeline import alongside, sealed
from planctl.backup.store import (
    Checkpoint,
    DumpResult,
    PendingDigest,
    digest_and_sync,
    no_checkpoint,
    temp_path,
)

if TYPE_CHECKING:
    from planctl.backup.crypto import Recipient
    from planctl.backup.delta import Delta
    from planctl.db.lockwait import LockWait

InSnapshot = Callable[[Any], None]
Deltas = Sequence[tuple[str, "Delta"]]


@dataclass
class Dumped:
    """A finished data file: what its snapshot held, its sha256 and size."""

    result: DumpResult
    sha256: str
    size: int


class BackupEngine(Protocol):
    name: str

    def data_suffix(self, compressed: bool | str) -> str: ...

    def dump(
        self,
        database_url: str,
        target: Path,
        *,
        compressed: bool | str,
        verify: bool,
        in_snapshot: InSnapshot | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> Dumped:
        """Write a snapshot into *target* (a temporary file in the backup directory),
        checked shallowly when *verify*, encrypted to *recipients* (no plaintext file),
        hashed and flushed."""
        ...

    def check(self, path: Path, compressed: bool | str, name: str, *, deep: bool = True) -> None:
        """Raise VerificationError naming *name* when the file cannot be restored."""
        ...

    def restore(
        self, database_url: str, path: Path, compressed: bool | str, name: str, deltas: Deltas = ()
    ) -> int:
        """Replace the target's data with the file's, *deltas* applied; all or nothing.
        Returns the rows the deltas touched."""
        ...


class SqliteEngine:
    name = "sqlite"

    def __init__(
        self,
        checkpoint: Checkpoint = no_checkpoint,
        lock_deadline: float | None = None,
        lock_wait: LockWait | None = None,
    ) -> None:
        from planctl.db.lockwait import LockWait

        self.checkpoint = checkpoint
        #: A dump's lock waits: short attempts within this budget (None: one wait of
        #: sqlite_engine.LOCK_DEADLINE, as a scheduled backup has always waited).
        self.dump_wait = lock_wait
        if lock_wait is None:  # *lock_deadline*: the budget of a default wait
            lock_wait = LockWait() if lock_deadline is None else LockWait(budget=lock_deadline)
        self.lock_wait = lock_wait

    def _waiting(self, database_url: str, attempt: Callable[[float], Any]) -> Any:
        """*attempt(seconds)*: once with the default wait, or retried within the budget."""
        from planctl.db import lockwait

        if self.dump_wait is None:
            return attempt(sqlite_engine.LOCK_DEADLINE)
        target = lockwait.target_for(database_url)
        return lockwait.retry(self.dump_wait, target, "backup of the current state", attempt)

    def data_suffix(self, compressed: bool | str) -> str:
        return sqlite_engine.data_suffix(compressed)

    def dump(
        self,
        database_url: str,
        target: Path,
        *,
        compressed: bool | str,
        verify: bool,
        in_snapshot: InSnapshot | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> Dumped:
        if recipients:
            return self._dump_sealed(database_url, target, compressed, verify, recipients)
        raw = temp_path(target.parent, ".sqlite")
        try:
            result = self._waiting(
                database_url,
                lambda seconds: sqlite_engine.snapshot(database_url, raw, self.checkpoint, seconds),
            )
            # The gate before rotation (which may delete older backups) reads the copy
            # in a thread while write_data compresses it: one pass's worth of wall time.
            with contextlib.ExitStack() as gate:
                if verify:
                    checker = gate.enter_context(sqlite_engine.reader(raw))
                    gate.enter_context(
                        alongside(
                            lambda: sqlite_engine.check_rows(checker, target.name, quick=True)
                        )
                    )
                sha, size = sqlite_engine.write_data(raw, target, compressed)
            self.checkpoint("verified")
        finally:
            sqlite_engine.unlink_database(raw)
        return Dumped(result, sha, size)

    def _dump_sealed(
        self,
        database_url: str,
        target: Path,
        compressed: bool | str,
        verify: bool,
        recipients: Sequence[Recipient],
    ) -> Dumped:
        """The snapshot in a file without a name, streamed through compression into the
        encryptor: the plaintext never has a name on disk."""
        from planctl.backup.compress import compressing, method_of

        method = method_of(compressed)
        level = sqlite_engine.GZIP_LEVEL if method is Compression.GZIP else None

        def snapshot(seconds: float) -> tuple[contextlib.ExitStack, Any]:
            stack = contextlib.ExitStack()
            opened = stack.enter_context(
                sqlite_engine.unnamed_snapshot(
                    database_url, target.parent, self.checkpoint, seconds
                )
            )
            return stack, opened

        stack, (result, copy, fd) = self._waiting(database_url, snapshot)
        gate = (lambda: sqlite_engine.check_rows(copy, target.name, quick=True)) if verify else None
        with stack:
            with (
                alongside(gate),  # in a thread, reading the copy while it is streamed
                os.fdopen(os.dup(fd), "rb") as plain,
                sealed(target, recipients) as out,
                compressing(out, method, level) as packed,
            ):
                plain.seek(0)
                shutil.copyfileobj(plain, packed, 1 << 20)
            self.checkpoint("verified")
        sha, size = digest_and_sync(target)
        return Dumped(result, sha, size)

    def check(self, path: Path, compressed: bool | str, name: str, *, deep: bool = True) -> None:
        with sqlite_engine.plain_copy(path, compressed, path.parent) as plain:
            sqlite_engine.integrity_check(plain, name, quick=not deep)

    def restore(
        self, database_url: str, path: Path, compressed: bool | str, name: str, deltas: Deltas = ()
    ) -> int:
        return sqlite_engine.restore(
            database_url,
            path,
            compressed,
            path.parent,
            name,
            deltas,
            self.checkpoint,
            self.lock_wait,
        )


class PostgresEngine:
    name = "postgresql"

    def __init__(
        self,
        bindir: Path | None = None,
        checkpoint: Checkpoint = no_checkpoint,
        lock_wait: LockWait | None = None,
    ) -> None:
        self.bindir = bindir
        self.checkpoint = checkpoint
        self.lock_wait = lock_wait

    def data_suffix(self, compressed: bool | str) -> str:
        return postgres_engine.data_suffix(bool(compressed))

    def dump(
        self,
        database_url: str,
        target: Path,
        *,
        compressed: bool | str,
        verify: bool,
        in_snapshot: InSnapshot | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> Dumped:
        if recipients:  # pg_dump's stdout straight into the encryptor
            with sealed(target, recipients) as out:
                result = postgres_engine.dump(
                    database_url,
                    target,
                    compressed,
                    self.bindir,
                    in_snapshot,
                    None,
                    self.checkpoint,
                    out=out,
                    verify=verify,
                    lock_wait=self.lock_wait,
                )
            self.checkpoint("verified")
            sha, size = digest_and_sync(target)
            return Dumped(result, sha, size)
        digest = PendingDigest(target)
        try:
            result = postgres_engine.dump(
                database_url,
                target,
                compressed,
                self.bindir,
                in_snapshot,
                digest.start,
                self.checkpoint,
                lock_wait=self.lock_wait,
            )
            if verify:  # the TOC here; `backup verify` also reads every data block
                postgres_engine.check(
                    target, compressed, target.parent, target.name, self.bindir, full=False
                )
            self.checkpoint("verified")
            sha, size = digest.result()
        finally:
            digest.close()
        return Dumped(result, sha, size)

    def check(self, path: Path, compressed: bool | str, name: str, *, deep: bool = True) -> None:
        postgres_engine.check(path, compressed, path.parent, name, self.bindir, full=deep)

    def restore(
        self, database_url: str, path: Path, compressed: bool | str, name: str, deltas: Deltas = ()
    ) -> int:
        return postgres_engine.restore(
            database_url,
            path,
            compressed,
            path.parent,
            name,
            self.bindir,
            deltas,
            self.checkpoint,
            self.lock_wait,
        )


class LogicalEngine:
    name = "logical"

    def __init__(
        self, checkpoint: Checkpoint = no_checkpoint, lock_wait: LockWait | None = None
    ) -> None:
        self.checkpoint = checkpoint
        self.lock_wait = lock_wait

    def data_suffix(self, compressed: bool | str) -> str:
        return logical_engine.data_suffix(compressed)

    def dump(
        self,
        database_url: str,
        target: Path,
        *,
        compressed: bool | str,
        verify: bool,
        in_snapshot: InSnapshot | None = None,
        recipients: Sequence[Recipient] = (),
    ) -> Dumped:
        result = logical_engine.dump(
            database_url, target, compressed, in_snapshot, self.checkpoint, recipients
        )
        if verify and not recipients:  # encrypted: the writer's own end marker and sha256
            logical_engine.check(target, compressed, target.parent, target.name)
        self.checkpoint("verified")
        sha, size = digest_and_sync(target)
        return Dumped(result, sha, size)

    def check(self, path: Path, compressed: bool | str, name: str, *, deep: bool = True) -> None:
        logical_engine.check(path, compressed, path.parent, name)

    def restore(
        self, database_url: str, path: Path, compressed: bool | str, name: str, deltas: Deltas = ()
    ) -> int:
        return logical_engine.restore(
            database_url, path, compressed, name, deltas, self.checkpoint, self.lock_wait
        )


def engine_for(
    name: str,
    *,
    pg_bindir: Path | None = None,
    checkpoint: Checkpoint = no_checkpoint,
    lock_wait: LockWait | None = None,
) -> BackupEngine:
    """The engine called *name* with its options bound (*lock_wait*: how a restore waits
    for the target's locks, planctl.db.lockwait)."""
    if name == "sqlite":
        return SqliteEngine(checkpoint, lock_wait=lock_wait)
    if name == "postgresql":
        return PostgresEngine(pg_bindir, checkpoint, lock_wait)
    if name == "logical":
        return LogicalEngine(checkpoint, lock_wait)
    raise ValueError(f"unknown backup engine {name!r}")
