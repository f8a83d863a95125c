"""Backups off the machine: age encryption of data files, a remote copy of the set
(S3-compatible or SFTP) under the same catalog rules, and restore from it.

- **Encryption** happens before a data file is published: the engine's output
  (checked in plaintext first) is encrypted into the file that is hashed,
  published and uploaded, so the recorded sha256 is the ciphertext's and
  checksum verification, rotation and upload need no identity. The plaintext
  temp file never leaves the backup directory and is unlinked at once.
- **Remote copies** are uploaded data first, metadata last: a remote backup
  exists (the remote catalog reads metadata) only once complete. The remote
  catalog is the local one's logic over downloaded metadata, with a data file's
  health judged by its presence and size in the listing (its bytes were checked
  when uploaded; ``verify --remote`` reads them back).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planctl.backup.catalog import BackupSet, load_set, rotate_plan
from planctl.backup.store import (
    METADATA_SUFFIX,
    BackupInfo,
    backup_lock,
    digest_and_sync,
    temp_path,
)
from planctl.errors import ConfigError, NothingToDoError, VerificationError

if TYPE_CHECKING:
    from planctl.backup.create import BackupResult
    from planctl.backup.crypto import Recipient
    from planctl.backup.monitor import LastRun
    from planctl.backup.remote import RemoteObject, RemoteStore

log = logging.getLogger("planctl.backup")

ENCRYPTED_SUFFIX = ".age"


# --- encryption -------------------------------------------------------------------------------


def encrypt_in_place(temp: Path, recipients: Sequence[Recipient]) -> tuple[str, int]:
    """Replace the plaintext *temp* by its age encryption; (sha256, size) of the ciphertext.

    Fail closed: on any error the plaintext is removed and nothing is published.
    """
    from planctl.backup.crypto import encrypt_file

    sealed = temp_path(temp.parent, ".age")
    try:
        with open(sealed, "wb") as out:
            encrypt_file(temp, out, recipients)
        os.replace(sealed, temp)
    except BaseException:
        sealed.unlink(missing_ok=True)
        temp.unlink(missing_ok=True)
        raise
    return digest_and_sync(temp)


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
        with open(path, "rb") as sealed, open(temp, "wb") as out:
            decrypt_to(sealed, identity, out)
        plain = temp.with_name(temp.name.removesuffix(".plain") + _plain_suffix(info))
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


# --- the remote catalog -----------------------------------------------------------------------


class RemoteSet(BackupSet):
    """The catalog of a remote copy: metadata downloaded into *directory*, data judged by
    the listing (present, right size)."""

    def __init__(
        self, directory: Path, infos: list[BackupInfo], damaged: list[Path], objects: dict
    ) -> None:
        super().__init__(directory, infos, damaged)
        self.objects: dict[str, RemoteObject] = objects

    def data_problem(self, info: BackupInfo) -> str | None:
        found = self.objects.get(info.data_file)
        if found is None:
            return f"backup {info.name}: data file {info.data_file} is missing remotely"
        if found.size != info.size:
            return f"backup {info.name}: remote data file {info.data_file} has the wrong size"
        return None


def load_remote_set(store: RemoteStore, workdir: Path) -> RemoteSet:
    """Download every metadata file of the remote into *workdir* and build its catalog."""
    objects = {o.name: o for o in store.list()}
    for name in objects:
        if name.endswith(METADATA_SUFFIX):
            store.download(name, workdir / name)
    local = load_set(workdir)
    return RemoteSet(workdir, local.infos, local.damaged, objects)


@contextlib.contextmanager
def remote_catalog(store: RemoteStore) -> Iterator[RemoteSet]:
    with tempfile.TemporaryDirectory(prefix="planctl-remote-") as tmp:
        yield load_remote_set(store, Path(tmp))


# --- upload, push, retention ------------------------------------------------------------------


def upload_backup(store: RemoteStore, directory: Path, info: BackupInfo) -> None:
    """Data first, metadata last: the remote backup exists only once complete."""
    store.upload(directory / info.data_file, info.data_file)
    store.upload(directory / f"{info.name}{METADATA_SUFFIX}", f"{info.name}{METADATA_SUFFIX}")
    log.info("uploaded %s to %s", info.name, store.describe())


@dataclass
class PushResult:
    uploaded: list[BackupInfo] = field(default_factory=list)
    removed: list[BackupInfo] = field(default_factory=list)
    partial_cleaned: int = 0


def push(
    backup_dir: Path,
    store: RemoteStore,
    *,
    keep: int | None = None,
    lock_timeout: float = 0.0,
) -> PushResult:
    """Upload every restorable local backup the remote lacks (oldest first; resumes after
    a failure or a kill), then apply ``--keep`` to the remote with the same rules."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        raise NothingToDoError(f"no backup directory '{backup_dir}'", "run planctl backup")
    result = PushResult()
    with backup_lock(backup_dir, lock_timeout):
        result.partial_cleaned = store.cleanup_partial()
        local = load_set(backup_dir)
        with remote_catalog(store) as remote:
            have = set(remote.by_name)
            for info in local.infos:
                if info.name in have or not local.restorable(info):
                    continue
                upload_backup(store, backup_dir, info)
                result.uploaded.append(info)
        if keep is not None:
            result.removed = rotate_remote(store, keep)
        local.cache.save()
    return result


def rotate_remote(store: RemoteStore, keep: int) -> list[BackupInfo]:
    """``--keep`` on the remote: the same plan as locally; metadata removed before data."""
    removed: list[BackupInfo] = []
    with remote_catalog(store) as remote:
        for chain in rotate_plan(remote, keep):
            for info in reversed(chain.members):
                store.delete(f"{info.name}{METADATA_SUFFIX}")
                store.delete(info.data_file)
                removed.append(info)
                log.info("removed %s from %s", info.name, store.describe())
    return removed


# --- verify and restore from the remote -------------------------------------------------------


@dataclass
class RemoteVerify:
    info: BackupInfo
    ok: bool
    problem: str | None = None


def verify_remote(
    store: RemoteStore,
    name: str | None = "latest",
    *,
    all_backups: bool = False,
    identity: Path | None = None,
    pg_bindir: Path | None = None,
) -> list[RemoteVerify]:
    """Read remote data back and compare its sha256 with the metadata; with an identity,
    also download, decrypt and run the engine's full check."""
    from planctl.backup.verify import verify_info

    results = []
    with remote_catalog(store) as remote:
        if all_backups:
            infos = list(reversed(remote.infos))
        else:
            infos = remote.lineage(remote.find(name or "latest", include_safety=True))
        if not infos and not remote.damaged:
            raise NothingToDoError(f"no backups in {store.describe()}", "run planctl backup push")
        for info in infos:
            problem = remote.problem(info)
            if problem is None and store.sha256(info.data_file) != info.sha256:
                problem = f"backup {info.name}: checksum mismatch in remote {info.data_file}"
            if problem is None and (identity is not None or not info.encrypted_for):
                try:
                    store.download(info.data_file, remote.directory / info.data_file, info.sha256)
                    local = load_set(remote.directory)
                    verify_info(local, local.by_name[info.name], pg_bindir, identity=identity)
                except VerificationError as error:
                    problem = error.message
                finally:
                    (remote.directory / info.data_file).unlink(missing_ok=True)
            results.append(RemoteVerify(info, problem is None, problem))
        for path in remote.damaged if all_backups else []:
            problem = f"backup {path.stem}: remote metadata {path.name} is damaged"
            results.append(RemoteVerify(_placeholder(path.stem), False, problem))
    return results


def _placeholder(name: str) -> BackupInfo:
    return BackupInfo(name, "unknown", "unknown", "", "", "", 0, "", None)


@contextlib.contextmanager
def fetch_chain(store: RemoteStore, name: str) -> Iterator[tuple[Path, str]]:
    """Download a backup and the chain it needs into a temp directory (each file checked
    against its metadata's sha256): (directory, backup name) to restore from."""
    with tempfile.TemporaryDirectory(prefix="planctl-fetch-") as tmp:
        directory = Path(tmp)
        remote = load_remote_set(store, directory)
        info = remote.find(name)
        for link in remote.chain_of(info):
            store.download(link.data_file, directory / link.data_file, link.sha256)
        yield directory, info.name
        shutil.rmtree(directory, ignore_errors=True)


# --- one monitored run ------------------------------------------------------------------------


@dataclass
class ShippedBackup:
    """A backup run: the local result, and what happened remotely."""

    result: BackupResult
    uploaded: bool = False
    remote_removed: list[BackupInfo] = field(default_factory=list)


def open_store(remote_url: str) -> RemoteStore:
    from planctl.backup.remote import open_remote

    if not remote_url:
        raise ConfigError(
            "no remote configured", "set PLANCTL_BACKUP_REMOTE to s3://bucket/prefix or sftp://…"
        )
    return open_remote(remote_url)


def backup_and_ship(
    database_url: str,
    backup_dir: Path,
    *,
    recipients_text: str = "",
    remote_url: str = "",
    remote_keep: int | None = None,
    ping_url: str = "",
    **create_options: Any,
) -> ShippedBackup:
    """What ``planctl backup`` does from cron: ping start, take the backup (encrypted when
    recipients are configured: a bad recipient fails before anything is written), upload
    it (data first, metadata last) and apply the remote retention, record the run's
    outcome in ``last-run.json``, ping success or failure. Pings never change the outcome.
    """
    from planctl.backup.create import create_backup
    from planctl.backup.crypto import parse_recipients
    from planctl.backup.monitor import LastRun, ping, write_last_run
    from planctl.backup.store import utc_now
    from planctl.errors import PlanctlError

    ping(ping_url, "start")
    try:
        recipients = parse_recipients(recipients_text) if recipients_text else []
        store = open_store(remote_url) if remote_url else None
        result = create_backup(
            database_url,
            backup_dir,
            recipients=recipients,
            **create_options,
        )
        shipped = ShippedBackup(result)
        if store is not None:
            try:
                pushed = push(Path(backup_dir), store, keep=remote_keep, lock_timeout=30)
                shipped.uploaded = any(i.name == result.info.name for i in pushed.uploaded)
                shipped.remote_removed = pushed.removed
            finally:
                store.close()
    except BaseException as error:
        message = error.message if isinstance(error, PlanctlError) else str(error) or repr(error)
        with contextlib.suppress(OSError):
            write_last_run(Path(backup_dir), LastRun("failure", utc_now(), message))
        ping(ping_url, "fail", message)
        raise
    with contextlib.suppress(OSError):
        write_last_run(Path(backup_dir), LastRun("success", utc_now(), "", result.info.name))
    ping(ping_url, "success")
    return shipped


# --- status -----------------------------------------------------------------------------------


@dataclass
class Status:
    newest_local: BackupInfo | None
    newest_remote: BackupInfo | None
    last_run: LastRun | None
    stale: bool
    failed: bool
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.stale and not self.failed


def backup_status(backup_dir: Path, *, max_age: str | None = None, remote_url: str = "") -> Status:
    """The newest restorable backup (local, and remote when asked), its age against
    *max_age*, and the last run's outcome: what cron and monitoring check."""
    import datetime as dt

    from planctl.backup.monitor import is_stale, parse_duration, read_last_run

    limit = parse_duration(max_age) if max_age else None
    local = load_set(Path(backup_dir)) if Path(backup_dir).is_dir() else None
    newest_local = local.newest_restorable() if local else None
    problems = [p for i in local.infos if (p := local.problem(i))] if local else []
    newest_remote = None
    if remote_url:
        store = open_store(remote_url)
        try:
            with remote_catalog(store) as remote:
                newest_remote = remote.newest_restorable()
        finally:
            store.close()
    last = read_last_run(Path(backup_dir))
    candidates = [i for i in (newest_local, newest_remote) if i is not None]
    newest = max((i.created_at for i in candidates), default=None)
    now = dt.datetime.now(dt.UTC)
    stale = newest is None or (limit is not None and is_stale(newest, limit, now))
    failed = last is not None and last.outcome == "failure"
    return Status(newest_local, newest_remote, last, stale, failed, problems)
