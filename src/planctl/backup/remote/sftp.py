"""SFTP offsite store through paramiko: key authentication, known_hosts enforced.

An upload goes to the hidden name ``.NAME.partial`` (never listed; a retry
overwrites what a killed upload left), is read back and hashed, and only then
renamed over NAME. The URL's path is absolute on the server:
``sftp://backup@nas.example:2222/srv/planctl``. A password in the URL is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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
from planctl.backup.stores import TransientRemoteError
from planctl.errors import (
    NothingToDoError,
    PlanctlError,
    RemoteError,
    VerificationError,
)
from planctl.failures import connection_lost


def _library_errors() -> tuple[type[BaseException], ...]:
    """paramiko's own exception types, and the socket's."""
    try:
        import paramiko
    except ImportError:
        return (OSError, EOFError)
    return (paramiko.SSHException, OSError, EOFError)


_ERRORS = _library_errors()


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError as error:
        raise RemoteError(
            "an sftp:// remote needs the paramiko library", hint="pip install paramiko"
        ) from error
    return paramiko


class SFTPStore:
    """A directory on an SFTP server."""

    def __init__(
        self,
        client: Any,
        user: str,
        host: str,
        port: int,
        path: str,
        on_progress: Callable[[int], None] = lambda sent: None,
    ) -> None:
        self._client = client
        self._sftp = client.open_sftp()
        self.user, self.host, self.port, self.path = user, host, port, path
        self._on_progress = on_progress

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
        port = parts.port or 22
        user, host = unquote(parts.username or ""), parts.hostname or ""
        path = posixpath.normpath(unquote(parts.path) or "/")
        where = f"sftp://{user}@{host}:{port}{path}"
        client = _connect(user, host, port, key_path, known_hosts, timeout, where)
        try:
            return cls(client, user, host, port, path, on_progress)
        except _ERRORS as error:
            client.close()
            raise _sftp_error(error, "opening", where) from error

    def describe(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.path}"

    def _remote(self, name: str) -> str:
        return posixpath.join(self.path, check_name(name))

    def list(self) -> list[RemoteObject]:
        try:
            entries = self._sftp.listdir_attr(self.path)
        except FileNotFoundError:
            return []
        except _ERRORS as error:
            raise _sftp_error(error, "listing", self.describe()) from error
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
        except (OSError, EOFError, _paramiko().SSHException) as error:
            raise _sftp_error(error, f"reading {name} from", self.describe()) from error
        if not stat.S_ISREG(attrs.st_mode or 0):
            return None
        return RemoteObject(name, int(attrs.st_size or 0), _tag(attrs))

    def read(self, name: str) -> Iterator[bytes]:
        return self._guarded(name)

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
        where = self.describe()
        try:
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
            remote = self._hash(partial)
            if remote != local.hexdigest():
                self._sftp.remove(partial)
                raise VerificationError(
                    f"upload of {name} to {where} is damaged: the read-back sha256 differs; "
                    "removed it",
                    hint="retry the upload",
                )
            self._rename(partial, final)
            attrs = self._sftp.stat(final)
        except PlanctlError:
            raise
        except _ERRORS as error:
            raise _sftp_error(error, f"uploading {name} to", where) from error
        return RemoteObject(name, int(attrs.st_size or 0), _tag(attrs), local.hexdigest())

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

    def _guarded(self, name: str) -> Iterator[bytes]:
        try:
            yield from self._read(self._remote(name))
        except FileNotFoundError as error:
            raise NothingToDoError(f"no file {name} in {self.describe()}") from error
        except PlanctlError:
            raise
        except _ERRORS as error:
            raise _sftp_error(error, f"reading {name} from", self.describe()) from error

    def download(self, name: str, local_path: Path, expected_sha256: str | None = None) -> None:
        write_atomically(
            local_path, self._guarded(name), expected_sha256, f"{self.describe()}/{name}"
        )

    def sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        for chunk in self._guarded(name):
            digest.update(chunk)
        return digest.hexdigest()

    def delete(self, name: str) -> None:
        try:
            self._sftp.remove(self._remote(name))
        except FileNotFoundError:
            pass
        except _ERRORS as error:
            raise _sftp_error(error, f"deleting {name} from", self.describe()) from error

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
        except _ERRORS as error:
            where = self.describe()
            raise _sftp_error(error, "cleaning up interrupted uploads in", where) from error
        return removed

    def close(self) -> None:
        self._sftp.close()
        self._client.close()


def _tag(attrs: Any) -> str:
    """What changes when a file is rewritten, as far as SFTP shows it."""
    return f"{attrs.st_size}:{attrs.st_mtime}"


def _connect(
    user: str,
    host: str,
    port: int,
    key_path: Path | None,
    known_hosts: Path | None,
    timeout: float,
    where: str,
) -> Any:
    paramiko = _paramiko()
    client = paramiko.SSHClient()
    hosts_file = Path(known_hosts) if known_hosts else Path.home() / ".ssh" / "known_hosts"
    try:
        client.load_host_keys(str(hosts_file))
    except FileNotFoundError:
        pass  # no known host: every server is refused below
    except _ERRORS as error:
        raise RemoteError(f"cannot read known_hosts file {hosts_file}: {error}") from error
    policy = _RecordingReject(paramiko)
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=str(key_path) if key_path else None,
            look_for_keys=key_path is None,
            allow_agent=key_path is None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except _ERRORS as error:
        client.close()
        raise _connect_error(error, where, hosts_file, host, port, policy.rejected) from error
    return client


class _RecordingReject:
    """paramiko's RejectPolicy, remembering that it rejected: paramiko says "not found in
    known_hosts" only in an SSHException's text, the policy knows it for sure."""

    def __init__(self, paramiko: Any) -> None:
        self._paramiko = paramiko
        self.rejected = False

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.rejected = True
        raise self._paramiko.SSHException(f"Server {hostname!r} not found in known_hosts")


def _connect_error(
    error: BaseException,
    where: str,
    hosts_file: Path,
    host: str,
    port: int,
    unknown_host: bool = False,
) -> RemoteError:
    paramiko = _paramiko()
    hosts_key = host if port == 22 else f"[{host}]:{port}"
    if isinstance(error, paramiko.BadHostKeyException):
        return RemoteError(
            f"host key of {hosts_key} does NOT match {hosts_file}: refusing to connect to {where}",
            hint="if the server's key really changed, fix its line in known_hosts",
        )
    if unknown_host:
        return RemoteError(
            f"host {hosts_key} is not in {hosts_file}: refusing to connect to {where}",
            hint=f"check its fingerprint, then: ssh-keyscan -p {port} {host} >> {hosts_file}",
        )
    if isinstance(error, paramiko.AuthenticationException):
        return RemoteError(
            f"key authentication refused by {where}",
            hint="install the backup key's public half in the server's authorized_keys",
        )
    if isinstance(error, paramiko.PasswordRequiredException):
        return RemoteError(f"the SSH key for {where} is passphrase-protected; use the SSH agent")
    if isinstance(error, socket.timeout | TimeoutError):
        return RemoteError(f"cannot reach {where}: timed out")
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return RemoteError(f"cannot reach {where}: {reason}")
    return RemoteError(f"SSH connection to {where} failed: {error}")


def _sftp_error(error: BaseException, action: str, where: str) -> RemoteError:
    if isinstance(error, PermissionError) or getattr(error, "errno", None) == errno.EACCES:
        return RemoteError(f"{action} {where}: permission denied")
    text = str(error) or type(error).__name__
    if connection_lost(error):
        return TransientRemoteError(f"{action} {where}: the connection was lost", hint="retry")
    return RemoteError(f"{action} {where} failed: {text}")
