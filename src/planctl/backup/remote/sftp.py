"""SFTP offsite store through paramiko: key authentication, known_hosts enforced.

An upload goes to the hidden name ``.NAME.partial`` (never listed; a retry
overwrites what a killed upload left), is read back and hashed, and only then
renamed over NAME. The URL's path is absolute on the server:
``sftp://backup@nas.example:2222/srv/planctl``. A password in the URL is refused.

Failures are paramiko's own exceptions (and the socket's); a host missing from
known_hosts is a :class:`~planctl.backup.stores.StoreError`. The store's wrapper
(:class:`~planctl.backup.stores.GuardedStore`) retries and words them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from planctl.backup.remote import (
    CHUNK,
    RemoteObject,
    check_local_file,
    check_name,
    write_atomically,
)
from planctl.backup.stores import StoreError
from planctl.errors import RemoteError, VerificationError
from planctl.failures import StoreFailure


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError as error:
        raise RemoteError(
            "an sftp:// remote needs the paramiko library", hint="pip install paramiko"
        ) from error
    # paramiko's transport thread logs what it then raises: without a handler of its own,
    # logging's last resort would print each failure (with a traceback) to stderr.
    library_log = logging.getLogger("paramiko")
    if not library_log.handlers:
        library_log.addHandler(logging.NullHandler())
    return paramiko


class SFTPStore:
    """A directory on an SFTP server (connected by :meth:`connect`)."""

    scheme = "sftp"

    def __init__(
        self,
        user: str,
        host: str,
        port: int,
        path: str,
        *,
        key_path: Path | None = None,
        known_hosts: Path | None = None,
        timeout: float = 15.0,
        on_progress: Callable[[int], None] = lambda sent: None,
    ) -> None:
        paramiko = _paramiko()
        self.library_errors = (paramiko.SSHException, OSError, EOFError, StoreError)
        self.user, self.host, self.port, self.path = user, host, port, path
        self._key_path = key_path
        self._known_hosts = (
            Path(known_hosts) if known_hosts else Path.home() / ".ssh" / "known_hosts"
        )
        self._timeout = timeout
        self._on_progress = on_progress
        self._client: Any = None
        self._sftp: Any = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_path: Path | None = None,
        known_hosts: Path | None = None,
        timeout: float = 15.0,
        on_progress: Callable[[int], None] = lambda sent: None,
    ) -> SFTPStore:
        parts = urlsplit(url)  # checked by planctl.config.check_remote_url (open_remote)
        return cls(
            unquote(parts.username or ""),
            parts.hostname or "",
            parts.port or 22,
            posixpath.normpath(unquote(parts.path) or "/"),
            key_path=key_path,
            known_hosts=known_hosts,
            timeout=timeout,
            on_progress=on_progress,
        )

    def connect(self) -> None:
        self._client = _connect(self, self._key_path, self._known_hosts, self._timeout)
        self._sftp = self._client.open_sftp()
        # Every later read of the channel (a stalled server) waits at most the timeout too.
        self._sftp.get_channel().settimeout(self._timeout)

    def facts(self) -> dict[str, str]:
        hosts_key = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return {
            "host": self.host,
            "port": str(self.port),
            "hosts_key": hosts_key,
            "known_hosts": str(self._known_hosts),
        }

    def describe(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.path}"

    def _remote(self, name: str) -> str:
        return posixpath.join(self.path, check_name(name))

    def list(self) -> list[RemoteObject]:
        try:
            entries = self._sftp.listdir_attr(self.path)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            name = entry.filename
            if name.startswith(".") or not stat.S_ISREG(entry.st_mode or 0):
                continue
            found.append(RemoteObject(name, int(entry.st_size or 0), _tag(entry)))
        return sorted(found, key=lambda o: o.name)

    def stat(self, name: str) -> RemoteObject | None:
        try:
            attrs = self._sftp.stat(self._remote(name))
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(attrs.st_mode or 0):
            return None
        return RemoteObject(name, int(attrs.st_size or 0), _tag(attrs))

    def read(self, name: str) -> Iterator[bytes]:
        return self._read(self._remote(name))

    def write(self, name: str, source: Path) -> RemoteObject:
        return self.upload(source, name)

    def _makedirs(self) -> None:
        missing: list[str] = []
        path = self.path
        while path not in ("/", ""):
            try:
                self._sftp.stat(path)
                break
            except FileNotFoundError:
                missing.append(path)
                path = posixpath.dirname(path)
        for directory in reversed(missing):
            self._sftp.mkdir(directory, 0o700)

    def upload(self, local_path: Path, name: str) -> RemoteObject:
        final = self._remote(name)
        check_local_file(local_path)
        partial = posixpath.join(self.path, f".{name}.partial")
        self._makedirs()
        local = hashlib.sha256()
        sent = 0
        with open(local_path, "rb") as source, self._sftp.open(partial, "wb") as target:
            target.chmod(0o600)  # backups are private on the server too
            target.set_pipelined(True)
            while chunk := source.read(CHUNK):
                target.write(chunk)
                local.update(chunk)
                sent += len(chunk)
                self._on_progress(sent)
            self._wait_for_writes(target)
        remote = self._hash(partial)
        if remote != local.hexdigest():
            self._sftp.remove(partial)
            raise VerificationError(
                f"upload of {name} to {self.describe()} is damaged: the read-back sha256 "
                "differs; removed it",
                hint="retry the upload",
            )
        self._rename(partial, final)
        attrs = self._sftp.stat(final)
        return RemoteObject(name, int(attrs.st_size or 0), _tag(attrs), local.hexdigest())

    def _wait_for_writes(self, handle: Any) -> None:
        """Read the server's answer to every pipelined write still outstanding. paramiko
        reads them only while more than 100 are in flight and drops the rest at close, so
        the last writes' failure (a full disk, a quota) would otherwise be lost and look
        like a damaged upload. (paramiko's private queue: it offers no public way.)"""
        handle.flush()  # what paramiko still buffers becomes write requests first
        while handle._reqs:
            self._sftp._read_response(handle._reqs.popleft())  # raises the write's error

    def _rename(self, source: str, target: str) -> None:
        try:
            self._sftp.posix_rename(source, target)  # atomic replace (OpenSSH extension)
        except OSError:
            # Servers without posix-rename refuse to rename over an existing file.
            with contextlib.suppress(FileNotFoundError):
                self._sftp.remove(target)
            self._sftp.rename(source, target)

    def _read(self, remote_path: str) -> Iterator[bytes]:
        with self._sftp.open(remote_path, "rb") as handle:
            handle.prefetch()
            while chunk := handle.read(CHUNK):
                yield chunk

    def _hash(self, remote_path: str) -> str:
        digest = hashlib.sha256()
        for chunk in self._read(remote_path):
            digest.update(chunk)
        return digest.hexdigest()

    def download(self, name: str, local_path: Path, expected_sha256: str | None = None) -> None:
        write_atomically(local_path, self.read(name), expected_sha256, f"{self.describe()}/{name}")

    def sha256(self, name: str) -> str:
        return self._hash(self._remote(name))

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._sftp.remove(self._remote(name))

    def cleanup_partial(self) -> int:
        """Remove the ``.NAME.partial`` files of killed uploads."""
        removed = 0
        try:
            for name in self._sftp.listdir(self.path):
                if name.startswith(".") and name.endswith(".partial"):
                    self._sftp.remove(posixpath.join(self.path, name))
                    removed += 1
        except FileNotFoundError:
            return 0
        return removed

    def close(self) -> None:
        sftp, client, self._sftp, self._client = self._sftp, self._client, None, None
        if sftp is not None:
            sftp.close()
        if client is not None:
            client.close()


def _tag(attrs: Any) -> str:
    """What changes when a file is rewritten, as far as SFTP shows it."""
    return f"{attrs.st_size}:{attrs.st_mtime}"


def _connect(store: SFTPStore, key_path: Path | None, hosts_file: Path, timeout: float) -> Any:
    """An SSH client connected to *store*'s server by key, the host checked against
    *hosts_file* (paramiko's own exceptions; an unknown host is a StoreError)."""
    paramiko = _paramiko()
    client = paramiko.SSHClient()
    with contextlib.suppress(FileNotFoundError):  # no known host: every server is refused
        client.load_host_keys(str(hosts_file))
    client.set_missing_host_key_policy(_RejectUnknown())
    sock = socket.create_connection((store.host, store.port), timeout)
    try:
        client.connect(
            store.host,
            port=store.port,
            username=store.user,
            key_filename=str(key_path) if key_path else None,
            look_for_keys=key_path is None,
            allow_agent=key_path is None,
            sock=sock,
            # paramiko stops waiting for the handshake after *timeout* and then fails with a
            # bare "No existing session", racing its own banner timeout (which says
            # "timed out"): the banner's comes first.
            timeout=2 * timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
        )
    except BaseException:
        client.close()
        sock.close()
        raise
    return client


class _RejectUnknown:
    """paramiko's RejectPolicy, saying so in a type: paramiko's own rejection is an
    SSHException whose only sign is its text."""

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        raise StoreError(StoreFailure.UNKNOWN_HOST, f"server {hostname!r} not in known_hosts")
