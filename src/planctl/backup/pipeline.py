"""The write pipeline every backup goes through: engine → compress → encrypt → hash →
publish, and its reverse for reading a data file back.

With age recipients set, no readable plaintext of the database ever has a name
on disk: the engines write into :func:`sealed` (an age encryptor over the
temporary data file), pg_dump and the logical dump stream into it, and
SQLite's backup API writes into a file whose name is unlinked before the
first page is copied (:func:`planctl.backup.sqlite_engine.unnamed_snapshot`).
A kill -9 at any instant leaves at most ciphertext or an empty scratch file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from planctl.backup.store import BackupInfo, temp_path
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
def plaintext(directory: Path, info: BackupInfo, identity: Path | None) -> Iterator[Path]:
    """The data file of *info* as plaintext: the file itself, or decrypted into a temp file
    beside it (removed afterwards) with the identity."""
    path = directory / info.data_file
    if not info.encrypted_for:
        yield path
        return
    from planctl.backup.crypto import decrypt_to

    if identity is None:
        raise ConfigError(
            f"backup {info.name} is encrypted and no identity is configured",
            "set PLANCTL_BACKUP_IDENTITY to the age identity file",
        )
    workdir = directory if os.access(directory, os.W_OK) else Path(tempfile.gettempdir())
    temp = temp_path(workdir, ".plain")
    try:
        with open(path, "rb") as sealed_file, open(temp, "wb") as out:
            decrypt_to(sealed_file, identity, out)
        plain = temp.with_name(temp.name.removesuffix(".plain") + _plain_suffix(info))
        # Renaming a scratch file for its suffix, removed below: nothing durable to publish.
        os.replace(temp, plain)
        temp = plain
        yield plain
    finally:
        temp.unlink(missing_ok=True)


def _plain_suffix(info: BackupInfo) -> str:
    """The data file's own suffix without ``.age`` (engines recognise some by it)."""
    name = info.data_file.removesuffix(ENCRYPTED_SUFFIX)
    stem = info.name
    return name[len(stem) :] if name.startswith(stem) else ""
