"""The backup set on disk: metadata, atomic writes, checksums, permissions, lock.

A backup set is a directory (0700). Each backup is a data file plus a JSON
metadata file beside it (0600). Listing reads the metadata; nothing depends on
parsing file names. A backup exists only once its metadata file has been
renamed into place, and that happens last, after the data file is complete,
fsynced, verified and renamed: a crash leaves either the old set or the old set
plus one complete new backup. Leftover temporary files and data files without
metadata are ignored, and removed by the next run under the lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from planctl.errors import LockedError, NothingToDoError, PlanctlError

FORMAT_VERSION = 1
METADATA_SUFFIX = ".json"
TEMP_PREFIX = ".tmp-"
LOCK_NAME = ".planctl-backup.lock"
CHUNK = 1024 * 1024


class BackupError(PlanctlError):
    """A backup could not be written, read or restored."""


@dataclass
class BackupInfo:
    """The metadata of one backup, as stored in ``<name>.json``."""

    name: str
    kind: str  # full | delta
    engine: str  # sqlite | postgresql | logical
    created: str  # UTC ISO 8601 with microseconds
    data_file: str
    sha256: str
    size: int
    source: str  # masked URL
    revision: str | None
    row_counts: dict[str, int] = field(default_factory=dict)
    compressed: bool = False
    parent: str | None = None
    label: str | None = None
    reason: str = "manual"  # manual | scheduled | pre-restore
    verified_at: str | None = None
    planctl_version: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def created_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.created)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupInfo:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _maybe_crash(stage: str) -> None:
    """Test hook: die with SIGKILL (or pause) at a named stage of a backup.

    ``PLANCTL_TEST_CRASH_AT=stage`` kills the process there, as a power cut
    would; ``PLANCTL_TEST_PAUSE_AT=stage:seconds`` sleeps there. Reliability
    tests use them to hit exact points; nothing else sets them.
    """
    if os.environ.get("PLANCTL_TEST_CRASH_AT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("PLANCTL_TEST_PAUSE_AT", "")
    if pause.partition(":")[0] == stage:
        time.sleep(float(pause.partition(":")[2] or "1"))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_name(
    created: dt.datetime, kind: str, label: str | None = None, directory: Path | None = None
) -> str:
    """A short, sortable, filesystem-safe name, unique within *directory*.

    The metadata keeps the exact time (microseconds); the name only has to be
    readable and unique, so a second backup in the same second gets ``-2``.
    """
    name = f"{created:%Y%m%d-%H%M%S}-{kind}"
    if label:
        slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in label.lower()).strip("-")
        if slug:
            name += f"-{slug[:40]}"
    if directory is None:
        return name
    candidate, counter = name, 1
    while any(directory.glob(f"{candidate}.*")):
        counter += 1
        candidate = f"{name}-{counter}"
    return candidate


def prepare_dir(directory: Path, *, create: bool = True) -> Path:
    """Make sure the backup directory exists (0700) and is usable."""
    if directory.exists() and not directory.is_dir():
        raise BackupError(
            f"backup directory '{directory}' is not a directory", "fix --dir or PLANCTL_BACKUP_DIR"
        )
    if not directory.exists():
        if not create:
            raise NothingToDoError(
                f"backup directory '{directory}' does not exist",
                "check --dir or PLANCTL_BACKUP_DIR",
            )
        try:
            directory.mkdir(mode=0o700, parents=True)
        except OSError as error:
            raise BackupError(
                f"cannot create backup directory '{directory}': {error.strerror}",
                "check the path and its permissions",
            ) from None
    if not os.access(directory, os.R_OK | os.X_OK):
        raise BackupError(f"cannot read backup directory '{directory}'", "check its permissions")
    if create:
        with contextlib.suppress(PermissionError):
            os.chmod(directory, 0o700)
    return directory


@contextlib.contextmanager
def backup_lock(directory: Path, timeout: float = 0.0) -> Iterator[None]:
    """Exclusive lock on a backup set; waits up to *timeout* seconds, then LockedError.

    flock is released by the kernel when the holder dies, so a kill -9 never
    leaves a stale lock behind.
    """
    path = directory / LOCK_NAME
    writable = True
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # read-only media (restoring from a mounted archive): lock the directory
        fd, writable = os.open(directory, os.O_RDONLY), False
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"another planctl backup holds the lock on '{directory}'",
                        "wait for it to finish or pass --lock-timeout SECONDS",
                    ) from None
                time.sleep(0.1)
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(directory: Path, suffix: str) -> Path:
    """A fresh temporary file name inside *directory* (same filesystem: rename is atomic)."""
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=directory)
    os.close(fd)
    os.chmod(name, 0o600)
    return Path(name)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def publish(temp: Path, final: Path) -> None:
    """fsync *temp*, rename it to *final*, fsync the directory."""
    os.chmod(temp, 0o600)
    fsync_file(temp)
    os.replace(temp, final)
    fsync_dir(final.parent)


def digest_and_sync(path: Path) -> tuple[str, int]:
    """(sha256, size) of *path*, hashed while its pages are flushed to disk."""
    digest = PendingDigest(path)
    try:
        return digest.result()
    finally:
        digest.close()


class PendingDigest:
    """sha256 and size of a finished file, computed in the background.

    Hashing is CPU, fsync is I/O, and both release the GIL: side by side they
    take the longer of the two instead of the sum (the later fsync in
    :func:`publish` then finds nothing left to write). :meth:`start` lets the
    caller begin as soon as the file is complete and do other work meanwhile
    (pg_dump's row counts); :meth:`result` starts it if nobody did.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool: Any = None
        self._hash: Any = None
        self._sync: Any = None

    def start(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="planctl-sha256")
            self._hash = self._pool.submit(sha256_file, self.path)
            self._sync = self._pool.submit(fsync_file, self.path)

    def result(self) -> tuple[str, int]:
        self.start()
        self._sync.result()
        return self._hash.result(), self.path.stat().st_size

    def close(self) -> None:
        """Wait for the threads (on every path: a failed backup must not leave them reading)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_metadata(directory: Path, info: BackupInfo) -> Path:
    """Atomically write ``<name>.json``: the moment the backup starts to exist."""
    final = directory / f"{info.name}{METADATA_SUFFIX}"
    temp = temp_path(directory, METADATA_SUFFIX)
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(info.as_dict(), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        publish(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return final


def read_metadata(path: Path) -> BackupInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        info = BackupInfo.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None
    return info if info.name == path.name.removesuffix(METADATA_SUFFIX) else None


def list_infos(directory: Path) -> list[BackupInfo]:
    """Every complete backup in the set, oldest first (by the metadata's timestamp)."""
    if not directory.is_dir():
        return []
    try:
        entries = list(directory.iterdir())
    except PermissionError:
        raise BackupError(
            f"cannot read backup directory '{directory}'", "check its permissions"
        ) from None
    infos = []
    for path in entries:
        if path.name.startswith(TEMP_PREFIX) or path.suffix != METADATA_SUFFIX:
            continue
        info = read_metadata(path)
        if info is not None:
            infos.append(info)
    return sorted(infos, key=lambda i: (i.created, i.name))


def remove_backup(directory: Path, info: BackupInfo) -> None:
    """Remove the metadata first (the backup stops existing), then the data."""
    (directory / f"{info.name}{METADATA_SUFFIX}").unlink(missing_ok=True)
    fsync_dir(directory)
    (directory / info.data_file).unlink(missing_ok=True)


def clean_leftovers(directory: Path) -> list[Path]:
    """Remove temp files and orphaned data files of crashed runs (call under the lock)."""
    known = {i.data_file for i in list_infos(directory)} | {
        f"{i.name}{METADATA_SUFFIX}" for i in list_infos(directory)
    }
    removed = []
    for path in directory.iterdir():
        if path.name == LOCK_NAME or path.name in known or path.is_dir():
            continue
        if path.name.startswith(TEMP_PREFIX):
            path.unlink(missing_ok=True)
            removed.append(path)
        elif _looks_like_backup_data(path.name) and not _metadata_path(directory, path).exists():
            # Only a data file whose metadata was never published is an orphan. One
            # with damaged metadata is evidence: list/verify report it, nobody deletes it.
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _metadata_path(directory: Path, data: Path) -> Path:
    name = data.name
    for suffix in sorted(DATA_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return directory / f"{name}{METADATA_SUFFIX}"


def damaged_metadata(directory: Path) -> list[Path]:
    """Metadata files that exist but cannot be read as a backup's metadata."""
    if not directory.is_dir():
        return []
    return sorted(
        path
        for path in directory.iterdir()
        if path.suffix == METADATA_SUFFIX
        and not path.name.startswith(TEMP_PREFIX)
        and read_metadata(path) is None
    )


DATA_SUFFIXES = (".sqlite", ".sqlite.gz", ".dump", ".jsonl", ".jsonl.gz")


def _looks_like_backup_data(name: str) -> bool:
    return name[:8].isdigit() and name[8:9] == "-" and name.endswith(DATA_SUFFIXES)
