"""The write pipeline every backup goes through: engine → compress → encrypt → hash →
publish, and its reverse for reading a data file back.

With age recipients set, no readable plaintext of the database ever has a name
on disk: the engines write into :func:`sealed` (an age encryptor over the
temporary data file), pg_dump and the logical dump stream into it, and
SQLite's backup API writes into a file whose name is unlinked before the
first page is copied (``SqliteEngine._unnamed_snapshot``).
A kill -9 at any instant leaves at most ciphertext or an empty scratch file.

Reading back is the same in reverse (:func:`opened`): an encrypted data file
is decrypted into a file without a name, and the engines read that stream
(pg_restore and psql on their stdin, the logical loader line by line, SQLite
through another unnamed file: ``SqliteEngine._unnamed_copy``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from planctl.backup.store import TEMP_PREFIX, BackupInfo, disk_error
from planctl.errors import ConfigError

if TYPE_CHECKING:
    from planctl.backup.crypto import Recipient

ENCRYPTED_SUFFIX = ".age"


@contextlib.contextmanager
def sealed(target: Path, recipients: Sequence[Recipient] = ()) -> Iterator[BinaryIO]:
    """A writable stream into the temporary data file *target*: age-encrypted to
    *recipients* when there are any, the file itself otherwise."""
    with open(target, "wb") as raw:
        if not recipients:
            yield raw
            return
        from planctl.backup.crypto import encrypting

        with encrypting(raw, recipients) as sink:
            yield sink


@contextlib.contextmanager
def alongside(check: Callable[[], None] | None) -> Iterator[None]:
    """Run *check* in a thread while the body runs, then raise its failure (the body's own
    error comes first). A backup's gate (SQLite's quick_check) reads the fresh copy while
    the compress → encrypt → hash pass reads it too: the pages are in cache once, and the
    check costs no wall time where a core is free. Both release the GIL while they work.
    """
    if check is None:
        yield
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            check()
        except BaseException as error:  # raised in the caller's thread below
            failure.append(error)

    worker = threading.Thread(target=run, name="backup-check", daemon=True)
    worker.start()
    try:
        yield
    finally:
        worker.join()
    if failure:
        raise failure[0]


@contextlib.contextmanager
def opened(directory: Path, info: BackupInfo, identity: Path | None) -> Iterator[BinaryIO]:
    """The data file of *info* as a seekable stream of its plaintext (compressed as it was
    written): the file itself, or, encrypted, decrypted with *identity* into a file that
    never has a name (:func:`unnamed_file`): a kill -9 at any instant leaves nothing
    readable behind."""
    path = directory / info.data_file
    if not info.encrypted_for:
        with open(path, "rb") as data:
            yield data
        return
    from planctl.backup.crypto import decrypt_to

    if identity is None:
        raise ConfigError(
            f"backup {info.name} is encrypted and no identity is configured",
            "set PLANCTL_BACKUP_IDENTITY to the age identity file",
        )
    workdir = scratch_dir(directory)
    with open(path, "rb") as sealed_file, unnamed_file(workdir) as plain:
        try:
            decrypt_to(sealed_file, identity, plain)
        except OSError as error:  # writing the plaintext: the scratch place is full
            raise disk_error(error, workdir, "the decrypted backup") from error
        plain.seek(0)
        yield plain


def scratch_dir(directory: Path) -> Path:
    """Where scratch copies of a backup go: its own directory, else TMPDIR."""
    return directory if os.access(directory, os.W_OK) else Path(tempfile.gettempdir())


@contextlib.contextmanager
def unnamed_file(directory: Path) -> Iterator[BinaryIO]:
    """A read-write file without a name in *directory*: ``O_TMPFILE`` where the file
    system has it (Python's ``TemporaryFile``), else created and unlinked at once, before
    a byte is written. Its blocks are freed when it is closed, or the process dies."""
    try:
        handle = tempfile.TemporaryFile(dir=directory, prefix=TEMP_PREFIX)  # noqa: SIM115
    except OSError as error:
        raise disk_error(error, directory, "a scratch copy of the backup") from error
    with handle:
        yield handle


def rewound(source: BinaryIO) -> int:
    """The descriptor of *source* at its start, for a child process's stdin. Readers share
    the offset (pg_restore runs several times over one archive): each one rewinds."""
    source.flush()
    os.lseek(source.fileno(), 0, os.SEEK_SET)
    return source.fileno()


@contextlib.contextmanager
def reading(source: BinaryIO) -> Iterator[BinaryIO]:
    """A fresh buffered reader of *source* from its start (over a duplicate of its
    descriptor: no stale buffer after a child process moved the shared offset)."""
    handle = open(os.dup(rewound(source)), "rb")  # noqa: SIM115 - closed below
    with handle:
        yield handle
