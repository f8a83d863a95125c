"""Where backup files live: one small ``Store`` interface (list, stat, read, write, delete)
in the spirit of restic's backends, with a local directory and an in-memory store here
and S3 and SFTP in :mod:`planctl.backup.remote`.

The catalog (:mod:`planctl.backup.catalog`) runs over any store and never
knows which one it has. What every store needs (retries with back-off) is one
wrapper, :class:`Retrying`, written once. A store reports, for each file, its
size and a *tag* that changes whenever the file is rewritten (local: size,
mtime, ctime, inode; S3: the ETag; SFTP: size and mtime); a checksum
recorded for a (name, tag) pair stays true until the file changes, so health
is never judged by size alone and gigabytes are not re-read on every run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from planctl.errors import NothingToDoError, RemoteError
from planctl.fsutil import atomic_write, fsync_dir, open_regular

CHUNK = 1 << 20


class TransientRemoteError(RemoteError):
    """A store could not be reached or lost its connection: worth a retry."""


@dataclass(frozen=True)
class StoredFile:
    """One file in a store: its size, a tag that changes when it is rewritten, and its
    sha256 when the store knows it without reading the file (None otherwise)."""

    name: str
    size: int
    tag: str
    sha256: str | None = None
    #: False for a FIFO, directory or symlink where a file should be (never read).
    regular: bool = True


@runtime_checkable
class Store(Protocol):
    """A flat directory of named files."""

    def list(self) -> list[StoredFile]:
        """Every complete, visible file, sorted by name (never a partial write)."""
        ...

    def stat(self, name: str) -> StoredFile | None:
        """One file, or None when it is not there."""
        ...

    def read(self, name: str) -> Iterator[bytes]:
        """The file's bytes in chunks (NothingToDoError when it is not there)."""
        ...

    def write(self, name: str, source: Path) -> StoredFile:
        """Copy the local file *source* to *name*, visible only once complete (0600 where
        the store has modes)."""
        ...

    def delete(self, name: str) -> None:
        """Remove *name*; a missing file is not an error."""
        ...

    def describe(self) -> str:
        """Where it is, for messages: no secret."""
        ...


def read_all(store: Store, name: str) -> bytes:
    return b"".join(store.read(name))


def sha256_of(store: Store, name: str) -> str:
    """Read *name* back and hash it."""
    digest = hashlib.sha256()
    for chunk in store.read(name):
        digest.update(chunk)
    return digest.hexdigest()


class LocalStore:
    """A local backup directory (hidden names and non-regular files are not listed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def describe(self) -> str:
        return str(self.directory)

    @staticmethod
    def _tag(info: os.stat_result) -> str:
        return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"

    def list(self) -> list[StoredFile]:
        found = []
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            info = entry.stat(follow_symlinks=False)
            regular = stat.S_ISREG(info.st_mode)
            found.append(StoredFile(entry.name, info.st_size, self._tag(info), regular=regular))
        return found

    def stat(self, name: str) -> StoredFile | None:
        try:
            info = (self.directory / name).lstat()
        except OSError:
            return None
        regular = stat.S_ISREG(info.st_mode)
        return StoredFile(name, info.st_size, self._tag(info), regular=regular)

    def read(self, name: str) -> Iterator[bytes]:
        try:
            handle = open_regular(self.directory / name)
        except FileNotFoundError as error:
            raise NothingToDoError(f"no file {name} in '{self.directory}'") from error
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def write(self, name: str, source: Path) -> StoredFile:
        with (
            open_regular(source, follow_symlinks=True) as src,
            atomic_write(self.directory / name) as out,
        ):
            shutil.copyfileobj(src, out, CHUNK)
        found = self.stat(name)
        assert found is not None
        return found

    def delete(self, name: str) -> None:
        try:
            (self.directory / name).unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.directory)


class MemoryStore:
    """A store in a dict: fast tests of the catalog, push and retention (restic's ``mem``)."""

    def __init__(self, name: str = "memory") -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.name = name
        self._versions: dict[str, int] = {}
        self._counter = 0

    def describe(self) -> str:
        return f"mem://{self.name}"

    def _entry(self, name: str) -> StoredFile:
        data = self.files[name]
        return StoredFile(name, len(data), str(self._versions[name]))

    def list(self) -> list[StoredFile]:
        return [self._entry(n) for n in sorted(self.files) if not n.startswith(".")]

    def stat(self, name: str) -> StoredFile | None:
        return self._entry(name) if name in self.files else None

    def read(self, name: str) -> Iterator[bytes]:
        if name not in self.files:
            raise NothingToDoError(f"no file {name} in {self.describe()}")
        data = self.files[name]
        for start in range(0, max(len(data), 1), CHUNK):
            yield data[start : start + CHUNK]

    def put(self, name: str, data: bytes) -> StoredFile:
        """Write bytes directly (tests: rot, foreign files)."""
        self._counter += 1
        self.files[name] = bytes(data)
        self.modes[name] = 0o600
        self._versions[name] = self._counter
        return self._entry(name)

    def write(self, name: str, source: Path) -> StoredFile:
        return self.put(name, Path(source).read_bytes())

    def delete(self, name: str) -> None:
        self.files.pop(name, None)
        self._versions.pop(name, None)


T = TypeVar("T")


class Retrying:
    """Any store with retries: a :class:`TransientRemoteError` (a lost connection, an
    unreachable endpoint, as the store translated it) is tried again with
    a doubling back-off; refused credentials, a missing file or damaged bytes are not."""

    def __init__(
        self,
        inner: Store,
        attempts: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep

    def _call(self, operation: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return operation()
            except TransientRemoteError:
                if attempt == self.attempts:
                    raise
                self.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def describe(self) -> str:
        return self.inner.describe()

    def list(self) -> list[StoredFile]:
        return self._call(self.inner.list)

    def stat(self, name: str) -> StoredFile | None:
        return self._call(lambda: self.inner.stat(name))

    def read(self, name: str) -> Iterator[bytes]:
        # A stream cannot be resumed half-way without buffering it: reads are not
        # retried (a read-back or download is simply run again by the next command).
        return self.inner.read(name)

    def write(self, name: str, source: Path) -> StoredFile:
        return self._call(lambda: self.inner.write(name, source))

    def delete(self, name: str) -> None:
        self._call(lambda: self.inner.delete(name))

    def __getattr__(self, attribute: str) -> object:
        return getattr(self.inner, attribute)
