"""Backups off the machine: the remote copy of a set, judged by the same catalog.

The remote catalog is :func:`~planctl.backup.catalog.load_catalog` over the
remote store, with the same owner and the same health rule as the local one:
a remote data file is healthy only when its sha256 matches — the checksum
recorded when planctl uploaded (or last read back) exactly that version of the
object (by its tag: S3 ETag, SFTP size and mtime), else a read-back; never its
size alone. Uploads go data first, metadata last: a remote backup exists only
once complete. ``push`` uploads what the remote lacks and repairs what does
not match its good local copy, then applies the remote retention.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from planctl.backup.catalog import (
    ANYONE,
    REMOTE_CHECKSUMS,
    BackupSet,
    ChecksumCache,
    Owner,
    load_catalog,
    load_set,
    rotate_plan,
)
from planctl.backup.store import METADATA_SUFFIX, BackupInfo, backup_lock
from planctl.errors import ConfigError, EncryptionError, NothingToDoError, VerificationError

if TYPE_CHECKING:
    from planctl.backup.remote import RemoteStore
    from planctl.backup.stores import Store, StoredFile

log = logging.getLogger("planctl.backup")


# --- the remote catalog -----------------------------------------------------------------------


def receipts_for(store: Store, backup_dir: Path | None) -> ChecksumCache:
    """The checksums recorded for *store*'s objects (kept in the local backup directory
    when there is one; otherwise for this run only)."""
    if backup_dir is not None and Path(backup_dir).is_dir():
        return ChecksumCache(Path(backup_dir) / REMOTE_CHECKSUMS, section=store.describe())
    return ChecksumCache()


def remote_set(store: Store, *, owner: Owner = ANYONE, backup_dir: Path | None = None) -> BackupSet:
    """The catalog of a remote store: the local rules over the remote's files."""
    return load_catalog(store, owner=owner, cache=receipts_for(store, backup_dir))


@contextlib.contextmanager
def remote_catalog(
    store: Store, *, owner: Owner = ANYONE, backup_dir: Path | None = None
) -> Iterator[BackupSet]:
    backups = remote_set(store, owner=owner, backup_dir=backup_dir)
    try:
        yield backups
    finally:
        backups.cache.save()


# --- upload, push, retention ------------------------------------------------------------------


def upload_backup(
    store: Store, local: BackupSet, info: BackupInfo, receipts: ChecksumCache
) -> None:
    """Data first, metadata last: the remote backup exists only once complete."""
    sent = _copy(local, info.data_file, store)
    receipts.record(sent, sent.sha256 or info.sha256)
    _copy(local, f"{info.name}{METADATA_SUFFIX}", store)
    log.info("uploaded %s to %s", info.name, store.describe())


def _copy(local: BackupSet, name: str, store: Store) -> StoredFile:
    """One file from the local set's store to *store* (through a private temp file when
    the local set is not a directory, as in the in-memory tests)."""
    if local.directory is not None:
        return store.write(name, local.directory / name)
    with tempfile.TemporaryDirectory(prefix="planctl-copy-") as tmp:
        path = Path(tmp) / name
        with open(path, "wb") as out:
            for chunk in local.store.read(name):
                out.write(chunk)
        return store.write(name, path)


@dataclass
class PushResult:
    uploaded: list[BackupInfo] = field(default_factory=list)
    #: Remote copies that were missing data or did not match the good local copy.
    repaired: list[BackupInfo] = field(default_factory=list)
    removed: list[BackupInfo] = field(default_factory=list)
    partial_cleaned: int = 0


def push_set(local: BackupSet, store: Store, *, keep: int | None = None) -> PushResult:
    """Upload every restorable local backup the remote lacks and repair every remote copy
    that is missing its data or does not match the local one (oldest first; resumes after
    a failure or a kill), then ``keep`` on the remote with the same rules."""
    result = PushResult()
    remote = load_catalog(store, owner=local.owner, cache=local_receipts(local, store))
    receipts = remote.cache
    try:
        for info in local.infos:
            if not local.restorable(info):
                continue
            theirs = remote.by_name.get(info.name)
            if theirs is None:
                upload_backup(store, local, info, receipts)
                result.uploaded.append(info)
            elif (theirs.sha256, theirs.data_file) != (info.sha256, info.data_file) or (
                remote.data_problem(theirs)
            ):
                log.warning(
                    "remote copy of %s is damaged or differs: uploading it again", info.name
                )
                upload_backup(store, local, info, receipts)
                result.repaired.append(info)
        if keep is not None:
            result.removed = rotate_remote(store, keep, owner=local.owner, cache=receipts)
    finally:
        receipts.save()
    return result


def local_receipts(local: BackupSet, store: Store) -> ChecksumCache:
    return receipts_for(store, local.directory)


def push(
    backup_dir: Path,
    store: RemoteStore,
    *,
    keep: int | None = None,
    lock_timeout: float = 0.0,
    owner: Owner = ANYONE,
) -> PushResult:
    """:func:`push_set` for a local backup directory, under its lock, after removing what
    killed uploads left on the remote."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        raise NothingToDoError(f"no backup directory '{backup_dir}'", "run planctl backup")
    with backup_lock(backup_dir, lock_timeout):
        cleaned = store.cleanup_partial()
        local = load_set(backup_dir, owner)
        result = push_set(local, store, keep=keep)
        result.partial_cleaned = cleaned
        local.cache.save()
    return result


def rotate_remote(
    store: Store, keep: int, *, owner: Owner = ANYONE, cache: ChecksumCache | None = None
) -> list[BackupInfo]:
    """``--keep`` on the remote: the same plan as locally (this database's restorable
    chains only; nothing foreign); metadata removed before data."""
    from planctl.backup.catalog import remove_chain

    remote = load_catalog(store, owner=owner, cache=cache or ChecksumCache())
    removed: list[BackupInfo] = []
    for chain in rotate_plan(remote, keep):
        removed.extend(remove_chain(remote, chain))
    return removed


# --- verify and restore from the remote -------------------------------------------------------


@dataclass
class RemoteVerify:
    info: BackupInfo
    ok: bool
    problem: str | None = None
    foreign: str | None = None


def verify_remote(
    store: RemoteStore,
    name: str | None = "latest",
    *,
    all_backups: bool = False,
    identity: Path | None = None,
    pg_bindir: Path | None = None,
    owner: Owner = ANYONE,
) -> list[RemoteVerify]:
    """Read remote data back and compare its sha256 with the metadata; with an identity,
    also download, decrypt and run the engine's full check."""
    from planctl.backup.verify import verify_info

    results = []
    remote = load_catalog(store, owner=owner, cache=ChecksumCache())
    if all_backups:
        infos = list(reversed(remote.infos))
    else:
        infos = remote.lineage(remote.find(name or "latest", include_safety=True))
    if not infos and not remote.damaged:
        raise NothingToDoError(f"no backups in {store.describe()}", "run planctl backup push")
    with tempfile.TemporaryDirectory(prefix="planctl-verify-") as tmp:
        workdir = Path(tmp)
        for info in infos:
            foreign = remote.foreign(info) if all_backups else None
            if foreign is not None:
                results.append(RemoteVerify(info, True, foreign=foreign))
                continue
            problem = remote.problem(info)  # a fresh cache: every byte read back
            if problem is None and (identity is not None or not info.encrypted_for):
                try:
                    for link in remote.chain_of(info):
                        meta = f"{link.name}{METADATA_SUFFIX}"
                        store.download(meta, workdir / meta)
                        store.download(link.data_file, workdir / link.data_file, link.sha256)
                    local = load_set(workdir)
                    verify_info(local, local.by_name[info.name], pg_bindir, identity=identity)
                except (VerificationError, EncryptionError) as error:
                    problem = error.message
                finally:
                    for leftover in workdir.iterdir():
                        leftover.unlink(missing_ok=True)
            results.append(RemoteVerify(info, problem is None, problem))
    for path in remote.damaged if all_backups else []:
        problem = f"backup {path.stem}: remote metadata {path.name} is damaged"
        results.append(RemoteVerify(_placeholder(path.stem), False, problem))
    return results


def _placeholder(name: str) -> BackupInfo:
    return BackupInfo(name, "unknown", "unknown", "", "", "", 0, "", None)


@contextlib.contextmanager
def fetch_chain(
    store: RemoteStore, name: str, *, owner: Owner = ANYONE
) -> Iterator[tuple[Path, str]]:
    """Download a backup and the chain it needs into a temp directory (each file checked
    against its metadata's sha256): (directory, backup name) to restore from.
    ``latest`` is this database's newest restorable remote backup."""
    with tempfile.TemporaryDirectory(prefix="planctl-fetch-") as tmp:
        directory = Path(tmp)
        remote = load_catalog(store, owner=owner, cache=ChecksumCache())
        info = remote.find(name)
        for link in remote.chain_of(info):
            meta = f"{link.name}{METADATA_SUFFIX}"
            store.download(meta, directory / meta)
            store.download(link.data_file, directory / link.data_file, link.sha256)
        yield directory, info.name
        shutil.rmtree(directory, ignore_errors=True)


def open_store(remote_url: str, timeout: float | None = None) -> RemoteStore:
    """The configured remote, connected, wrapped once in
    :class:`~planctl.backup.stores.GuardedStore` (*timeout*: PLANCTL_BACKUP_REMOTE_TIMEOUT)."""
    from planctl.backup.remote import open_remote

    if not remote_url:
        raise ConfigError(
            "no remote configured", "set PLANCTL_BACKUP_REMOTE to s3://bucket/prefix or sftp://…"
        )
    return open_remote(remote_url, timeout=timeout)
