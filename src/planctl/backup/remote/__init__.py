"""Offsite stores for backup files: one small protocol, S3-compatible and SFTP.

A store is a flat directory of named files. ``upload`` never leaves a partial
object visible under its final name (S3: a PUT or multipart upload appears
only when complete; SFTP: a hidden temporary name, checked, then renamed) and
checks the bytes that arrived (S3 checksums, or a read-back hash).
``download`` writes a temporary file beside the target and renames it only
once complete and, when asked, hash-checked. A store raises its library's own
exceptions (boto3/botocore, paramiko, the socket's); :func:`open_remote` wraps it
once in :class:`~planctl.backup.stores.GuardedStore`, which retries what is
transient and translates the rest into one-line :class:`~planctl.errors.RemoteError`
(``NothingToDoError`` for a missing file). A damaged transfer is planctl's own
``VerificationError``. ``describe()`` never shows a secret.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from planctl.backup.stores import GuardedStore, Store, StoredFile, StorePolicy
from planctl.errors import ConfigError, RemoteError, VerificationError

CHUNK = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")


#: One file in a remote store: name, size, and a tag that changes when it is rewritten.
RemoteObject = StoredFile


@runtime_checkable
class RemoteStore(Store, Protocol):
    """A :class:`~planctl.backup.stores.Store` off the machine, plus what push and
    restore use: checked uploads and downloads, and cleanup of killed uploads; and what
    :class:`~planctl.backup.stores.GuardedStore` needs to connect and word failures."""

    @property
    def scheme(self) -> str:
        """``s3`` or ``sftp``: which messages and hints fit."""

    @property
    def library_errors(self) -> tuple[type[BaseException], ...]:
        """The exception types its library raises (never a bare ``Exception``)."""

    def connect(self) -> None:
        """Open the connection (again, after :meth:`close`)."""

    def facts(self) -> dict[str, str]:
        """Names for messages (bucket; host, port, known_hosts): no secret."""

    def list(self) -> list[RemoteObject]:
        """The complete files in the store (never a partial upload), sorted by name."""

    def upload(self, local_path: Path, name: str) -> RemoteObject:
        """Copy *local_path* to *name*; checked, then visible at once. Overwrites *name*."""

    def download(self, name: str, local_path: Path, expected_sha256: str | None = None) -> None:
        """Copy *name* to *local_path* (temp file + rename); hash-checked when asked."""

    def sha256(self, name: str) -> str:
        """Read *name* back and return its sha256 (hex): what ``verify --remote`` uses."""

    def cleanup_partial(self) -> int:
        """Remove what killed uploads left (never listed anyway); returns how many.

        Call it under the backup set's lock only: it would also cut short an
        upload running right now in another process.
        """

    def close(self) -> None:
        """Release the connection."""


def check_name(name: str) -> str:
    """A remote file name is one flat, plain component (no path, no hidden name)."""
    if not _NAME.match(name):
        raise RemoteError(
            f"invalid remote file name {name!r}",
            hint="use letters, digits and . _ + - (no slashes, not starting with a dot)",
        )
    return name


def check_local_file(path: Path) -> None:
    """Uploads take regular files only (a FIFO would be read twice, a directory not at all)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise RemoteError(f"cannot upload {path}: {error.strerror}") from error
    if not stat.S_ISREG(mode):
        raise RemoteError(f"cannot upload {path}: not a regular file")


def write_atomically(
    local_path: Path, chunks: Iterable[bytes], expected_sha256: str | None, source: str
) -> None:
    """Write *chunks* to *local_path* through :func:`planctl.fsutil.atomic_write`, checked
    against *expected_sha256* before the rename."""
    from planctl.fsutil import atomic_write

    digest = hashlib.sha256()
    with atomic_write(Path(local_path)) as handle:
        for chunk in chunks:
            handle.write(chunk)
            digest.update(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise VerificationError(
                f"{source}: sha256 {digest.hexdigest()[:16]}… does not match the expected "
                f"{expected_sha256[:16]}…: the remote copy is damaged",
                hint="nothing was restored; use another backup or re-push this one",
            )


def open_remote(
    url: str,
    *,
    s3_session: Any = None,
    s3_endpoint_url: str | None = None,
    s3_multipart_mb: int = 64,
    ssh_key: Path | None = None,
    known_hosts: Path | None = None,
    timeout: float | None = None,
    policy: StorePolicy | None = None,
    on_upload_progress: Callable[[int], None] = lambda sent: None,
) -> RemoteStore:
    """Open ``s3://bucket/prefix`` or ``sftp://user@host[:port]/path``.

    S3 takes endpoint, region and credentials from the standard AWS variables
    and files through boto3 (or an explicit *s3_session*/*s3_endpoint_url*).
    SFTP uses key authentication (*ssh_key*, else the SSH agent and
    ``~/.ssh/id_*``) and refuses hosts not in *known_hosts*
    (default ``~/.ssh/known_hosts``). *on_upload_progress* (a test hook) gets the
    bytes sent so far. The store comes connected, wrapped once in
    :class:`~planctl.backup.stores.GuardedStore` with *policy* (*timeout* overrides its
    timeout).
    """
    import dataclasses

    from planctl.config import check_remote_url

    problem = check_remote_url(url)
    if problem:
        raise ConfigError(*problem)
    policy = policy or StorePolicy()
    if timeout is not None:
        policy = dataclasses.replace(policy, timeout=timeout)
    scheme = url.partition("://")[0].lower()
    store: RemoteStore
    if scheme == "s3":
        from planctl.backup.remote.s3 import S3Store

        store = S3Store.from_url(
            url,
            session=s3_session,
            endpoint_url=s3_endpoint_url,
            multipart_mb=s3_multipart_mb,
            timeout=policy.timeout,
            on_progress=on_upload_progress,
        )
    elif scheme == "sftp":
        from planctl.backup.remote.sftp import SFTPStore

        store = SFTPStore.from_url(
            url,
            key_path=ssh_key,
            known_hosts=known_hosts,
            timeout=policy.timeout,
            on_progress=on_upload_progress,
        )
    else:
        raise AssertionError(scheme)  # check_remote_url admits s3 and sftp only
    guarded = GuardedStore(store, policy)
    guarded.connect()
    return guarded
