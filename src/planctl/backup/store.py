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
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from planctl.backup.compress import Compression
from planctl.errors import LockedError, NothingToDoError, PlanctlError
from planctl.failures import is_disk_full
from planctl.fsutil import atomic_write, fsync_file, open_regular
from planctl.fsutil import publish as fsutil_publish

#: 2 adds ``sequence`` and ``database_id``; version 1 metadata still reads.
FORMAT_VERSION = 2
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
    #: Stored as ``compressed``: ``true`` (gzip), ``false`` (none) or ``"zstd"``.
    compressed: Compression = Compression.NONE
    parent: str | None = None
    label: str | None = None
    reason: str = "manual"  # manual | scheduled | pre-restore
    verified_at: str | None = None
    #: Position in the backup set (1, 2, …): what decides newest and oldest. The
    #: wall clock (``created``) is only shown; it can step back or come from
    #: another machine. None for backups of planctl before sequences.
    sequence: int | None = None
    #: The id of the database it was taken from (``planctl_database``).
    database_id: str | None = None
    #: Fingerprints of the age recipients the data file is encrypted to (empty: plain).
    encrypted_for: list[str] = field(default_factory=list)
    planctl_version: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def created_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.created)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "compressed": self.compressed.stored}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupInfo:
        """The metadata *data* holds (a ValueError when ``compressed`` is no compression)."""
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        if "compressed" in fields:
            fields["compressed"] = Compression.from_stored(fields["compressed"])
        return cls(**fields)


@dataclass
class DumpResult:
    """What an engine read in the snapshot it dumped."""

    revision: str | None
    row_counts: dict[str, int]
    database_id: str | None = None
    #: SQLite: the newest change-log id in the snapshot (the log is emptied up to it).
    log_mark: int | None = None


@dataclass
class Dumped:
    """A finished data file: what its snapshot held, its sha256 and size."""

    result: DumpResult
    sha256: str
    size: int


def disk_error(error: OSError, directory: Path, what: str = "the backup") -> BackupError:
    """An OSError while writing *what* into *directory*, as one line naming the place."""
    if is_disk_full(error):
        return BackupError(
            f"writing {what} to '{directory}' failed: {error.strerror} "
            "(disk full or file-size limit)",
            f"free space in '{directory}' and retry; nothing was changed",
        )
    return BackupError(f"writing {what} to '{directory}' failed: {error.strerror or error}")


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
            ) from error
    if not os.access(directory, os.R_OK | os.X_OK):
        raise BackupError(f"cannot read backup directory '{directory}'", "check its permissions")
    if create:
        with contextlib.suppress(PermissionError):
            os.chmod(directory, 0o700)
    return directory


@contextlib.contextmanager
def backup_lock(directory: Path, timeout: float = 0.0) -> Iterator[None]:
    """Exclusive lock on a backup set (:func:`planctl.fsutil.file_lock`); waits up to
    *timeout* seconds, then LockedError naming the set.

    flock is released by the kernel when the holder dies, so a kill -9 never
    leaves a stale lock behind. On read-only media (restoring from a mounted
    archive) the directory itself is locked.
    """
    from planctl.fsutil import OutputError, file_lock

    path = directory / LOCK_NAME
    with contextlib.ExitStack() as stack:
        writable = True
        try:
            try:
                fd = stack.enter_context(file_lock(path, timeout=max(timeout, 0.0), poll=0.1))
            except OutputError:  # read-only media: lock the directory itself
                writable = False
                fd = stack.enter_context(file_lock(directory, timeout=max(timeout, 0.0), poll=0.1))
        except LockedError as error:
            raise LockedError(
                f"another planctl backup holds the lock on '{directory}'",
                "wait for it to finish or pass --lock-timeout SECONDS",
            ) from error
        if writable:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
        yield


def temp_path(directory: Path, suffix: str) -> Path:
    """A fresh temporary file name inside *directory* (same filesystem: rename is atomic)."""
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=directory)
    os.close(fd)
    os.chmod(name, 0o600)
    return Path(name)


def publish(temp: Path, final: Path) -> None:
    """Make *temp* the backup file *final*, readable by its owner only: the durable steps
    (fsync, rename, directory fsync) are :func:`planctl.fsutil.publish`'s."""
    os.chmod(temp, 0o600)
    fsutil_publish(temp, final)


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


#: No metadata or checksum cache is larger: a bigger file is not planctl's.
MAX_METADATA_BYTES = 16 << 20


def read_small_file(path: Path) -> str:
    """A metadata-sized UTF-8 file, read through :func:`open_regular`."""
    with open_regular(path) as handle:
        data = handle.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(f"{path} is larger than any metadata file")
    return data.decode("utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomically(final: Path, document: object) -> None:
    """Write a JSON file through :func:`planctl.fsutil.atomic_write`: the old one or the
    new one, never half."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    with atomic_write(final) as handle:
        handle.write(text.encode("utf-8"))


def write_metadata(directory: Path, info: BackupInfo) -> Path:
    """Atomically write ``<name>.json``: the moment the backup starts to exist."""
    final = directory / f"{info.name}{METADATA_SUFFIX}"
    write_json_atomically(final, info.as_dict())
    return final


def read_metadata(path: Path) -> BackupInfo | None:
    """The metadata in *path*, or None when it cannot be read as a backup's metadata."""
    try:
        return parse_metadata(path.name, read_small_file(path).encode("utf-8"))
    except (OSError, ValueError):
        return None


def parse_metadata(file_name: str, data: bytes) -> BackupInfo | None:
    """The metadata file *file_name* holding *data*, or None when it is not a backup's
    well-typed metadata."""
    try:
        info = BackupInfo.from_dict(json.loads(data.decode("utf-8")))
    except (ValueError, TypeError, AttributeError):
        return None
    if info.name != file_name.removesuffix(METADATA_SUFFIX) or not _well_typed(info):
        return None
    return info


#: The engines a full backup can name; a delta's engine is always ``delta``.
FULL_ENGINES = ("sqlite", "postgresql", "logical")


def _well_typed(info: BackupInfo) -> bool:
    texts = (info.name, info.kind, info.engine, info.created, info.data_file, info.sha256)
    if not all(isinstance(v, str) and v for v in texts) or not isinstance(info.size, int):
        return False
    if info.sequence is not None and type(info.sequence) is not int:
        return False
    if not isinstance(info.extra, dict) or "/" in info.data_file or info.data_file.startswith("."):
        return False
    if (info.kind, info.engine in FULL_ENGINES) not in (("full", True), ("delta", False)):
        return False
    if info.kind == "delta" and info.engine != "delta":
        return False
    if info.database_id is not None and not isinstance(info.database_id, str):
        return False
    if not isinstance(info.encrypted_for, list) or not isinstance(info.reason, str):
        return False
    try:
        info.created_at  # noqa: B018
    except (TypeError, ValueError):
        return False
    return True


DATA_SUFFIXES = (
    *(
        base + packed
        for base in (".sqlite", ".jsonl", ".delta.json")
        for packed in ("", ".gz", ".zst")
    ),
    ".dump",
)
