"""Where backup files live: one small ``Store`` interface (list, stat, read, write, delete)
in the spirit of restic's backends, with a local directory and an in-memory store here
and S3 and SFTP in :mod:`planctl.backup.remote`.

The catalog (:mod:`planctl.backup.catalog`) runs over any store and never
knows which one it has. What every remote store needs is one wrapper,
:class:`GuardedStore`, written once: its library's errors translated into
planctl's one-line errors (classified by :func:`planctl.failures.classify_store`),
transient failures retried on a fresh connection, one :class:`StorePolicy` for
timeouts and attempts. The stores themselves raise their libraries' own
exceptions. A store reports, for each file, its
size and a *tag* that changes whenever the file is rewritten (local: size,
mtime, ctime, inode; S3: the ETag; SFTP: size and mtime); a checksum
recorded for a (name, tag) pair stays true until the file changes, so health
is never judged by size alone and gigabytes are not re-read on every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from planctl.errors import NothingToDoError, PlanctlError, RemoteError
from planctl.failures import StoreFailure, causes, classify_store, s3_code
from planctl.fsutil import atomic_write, fsync_dir, open_regular

if TYPE_CHECKING:
    from planctl.backup.remote import RemoteStore

CHUNK = 1 << 20


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


@dataclass(frozen=True)
class StorePolicy:
    """How hard every remote store tries, set here once: the network timeout of each
    connect and read (S3 and SFTP alike), the attempts and the doubling back-off."""

    timeout: float = 15.0
    attempts: int = 3
    backoff: float = 0.5


class StoreError(Exception):
    """A failure a store detects itself, that its library raises no type for (an SFTP
    host missing from known_hosts): the :class:`~planctl.failures.StoreFailure` it is."""

    def __init__(self, failure: StoreFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


#: (store scheme or "" for any, failure) -> (message, hint). Fields: action, where,
#: code (S3's error code), detail (the library's first line), timeout, and the store's
#: facts (S3: bucket; SFTP: host, port, hosts_key, known_hosts).
_MESSAGES: dict[tuple[str, StoreFailure], tuple[str, str | None]] = {
    ("s3", StoreFailure.NO_CREDENTIALS): (
        "no usable AWS credentials for {where}",
        "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
    ),
    ("", StoreFailure.NO_CREDENTIALS): ("{action} {where}: no usable credentials", None),
    ("s3", StoreFailure.AUTH_FAILED): (
        "{action} {where}: the credentials were refused ({code})",
        "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
    ),
    ("sftp", StoreFailure.AUTH_FAILED): (
        "key authentication refused by {where}",
        "install the backup key's public half in the server's authorized_keys",
    ),
    ("", StoreFailure.AUTH_FAILED): ("{action} {where}: the credentials were refused", None),
    ("", StoreFailure.KEY_LOCKED): (
        "the SSH key for {where} is passphrase-protected",
        "load it into the SSH agent (ssh-add) and unset the key path",
    ),
    ("", StoreFailure.UNKNOWN_HOST): (
        "host {hosts_key} is not in {known_hosts}: refusing to connect to {where}",
        "check its fingerprint, then: ssh-keyscan -p {port} {host} >> {known_hosts}",
    ),
    ("", StoreFailure.HOST_KEY_CHANGED): (
        "host key of {hosts_key} does NOT match {known_hosts}: refusing to connect to {where}",
        "if the server's key really changed, fix its line in known_hosts",
    ),
    ("s3", StoreFailure.NO_BUCKET): (
        "bucket {bucket!r} does not exist at {where}",
        "create it or fix PLANCTL_BACKUP_REMOTE / AWS_ENDPOINT_URL",
    ),
    ("", StoreFailure.NO_BUCKET): ("{action} {where}: the bucket does not exist", None),
    ("", StoreFailure.NOT_FOUND): ("{action} {where}: no such file", None),
    ("", StoreFailure.PERMISSION_DENIED): (
        "{action} {where}: permission denied",
        "check the remote account's rights on the directory",
    ),
    ("", StoreFailure.DISK_FULL): (
        "{action} {where}: the server is out of space (disk full, quota or file-size limit)",
        "free space on the server, then run planctl backup push",
    ),
    ("s3", StoreFailure.UNREACHABLE): (
        "{action} {where}: cannot reach the S3 endpoint ({detail})",
        "check AWS_ENDPOINT_URL and the network",
    ),
    ("", StoreFailure.UNREACHABLE): (
        "cannot reach {where}: {detail}",
        "check the host, the port and the network",
    ),
    ("", StoreFailure.TIMEOUT): (
        "{action} {where}: no answer within {timeout:g} s",
        "check the network, or raise PLANCTL_BACKUP_REMOTE_TIMEOUT",
    ),
    ("", StoreFailure.CONNECTION_LOST): (
        "{action} {where}: the connection was lost",
        "run the command again (it resumes)",
    ),
    ("", StoreFailure.BUSY): (
        "{action} {where}: the server is busy ({code})",
        "run the command again later",
    ),
    ("", StoreFailure.OTHER): ("{action} {where} failed: {detail}", None),
}


def _detail(error: BaseException) -> str:
    """The library's own words, one line (an OSError's strerror, an S3 code's message)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        body = response.get("Error", {})
        return str(body.get("Message") or body.get("Code") or error)
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def translate(
    error: BaseException, action: str, store: RemoteStore, policy: StorePolicy
) -> PlanctlError:
    """planctl's one line (and hint) for a store's library error, classified by
    :func:`planctl.failures.classify_store`: the one place that words store failures."""
    failure = classify_store(error)
    message, hint = _MESSAGES.get((store.scheme, failure)) or _MESSAGES[("", failure)]
    fields = {
        "action": action,
        "where": store.describe(),
        "code": next((c for e in causes(error) if (c := s3_code(e))), ""),
        "detail": _detail(error),
        "timeout": policy.timeout,
        **store.facts(),
    }
    kind = NothingToDoError if failure is StoreFailure.NOT_FOUND else RemoteError
    return kind(message.format(**fields), hint.format(**fields) if hint else None)


class GuardedStore:
    """Any remote store, wrapped once: its library's errors (and only those: a bug's
    KeyError stays a bug) become planctl's one-line errors; a transient failure
    (unreachable, timed out, connection lost, server busy) is tried again on a fresh
    connection with a doubling back-off; the timeout is :class:`StorePolicy`'s.
    Streamed reads are translated, not retried (a half-read stream cannot resume)."""

    def __init__(
        self,
        inner: RemoteStore,
        policy: StorePolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.policy = policy or StorePolicy()
        self.sleep = sleep
        self._connected = False

    def _call(self, action: str, operation: Callable[[], T]) -> T:
        attempts = max(1, self.policy.attempts)
        for attempt in range(1, attempts + 1):
            try:
                if not self._connected:
                    self.inner.connect()
                    self._connected = True
                return operation()
            except self.inner.library_errors as error:
                if classify_store(error).transient and attempt < attempts:
                    self._drop()
                    self.sleep(self.policy.backoff * 2 ** (attempt - 1))
                    continue
                raise translate(error, action, self.inner, self.policy) from error
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        """Forget the connection (quietly: it is already broken); the next call reconnects."""
        self._connected = False
        with contextlib.suppress(*self.inner.library_errors):
            self.inner.close()

    @property
    def scheme(self) -> str:
        return self.inner.scheme

    @property
    def library_errors(self) -> tuple[type[BaseException], ...]:
        return ()  # translated: only planctl's errors (and bugs) leave a guarded store

    def facts(self) -> dict[str, str]:
        return self.inner.facts()

    def connect(self) -> None:
        self._call("connecting to", lambda: None)

    def describe(self) -> str:
        return self.inner.describe()

    def list(self) -> list[StoredFile]:
        return self._call("listing", self.inner.list)

    def stat(self, name: str) -> StoredFile | None:
        return self._call(f"reading {name} from", lambda: self.inner.stat(name))

    def read(self, name: str) -> Iterator[bytes]:
        action = f"reading {name} from"
        self._call(action, lambda: None)
        try:
            yield from self.inner.read(name)
        except self.inner.library_errors as error:
            raise translate(error, action, self.inner, self.policy) from error

    def write(self, name: str, source: Path) -> StoredFile:
        return self.upload(source, name)

    def upload(self, local_path: Path, name: str) -> StoredFile:
        return self._call(f"uploading {name} to", lambda: self.inner.upload(local_path, name))

    def download(self, name: str, local_path: Path, expected_sha256: str | None = None) -> None:
        self._call(
            f"reading {name} from",
            lambda: self.inner.download(name, local_path, expected_sha256),
        )

    def sha256(self, name: str) -> str:
        return self._call(f"reading {name} from", lambda: self.inner.sha256(name))

    def delete(self, name: str) -> None:
        self._call(f"deleting {name} from", lambda: self.inner.delete(name))

    def cleanup_partial(self) -> int:
        return self._call("cleaning up interrupted uploads in", self.inner.cleanup_partial)

    def close(self) -> None:
        if self._connected:
            self._drop()
