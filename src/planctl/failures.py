"""One classifier of low-level failures, by the codes the drivers and the kernel give.

Every module that turns a driver or OS error into a message asks :func:`classify`
instead of searching the message text: sqlite3's result code
(``sqlite_errorcode``), psycopg's SQLSTATE, an ``OSError``'s errno. Message text is
read only where the driver gives no code at all: libpq's connection failures
(psycopg has no SQLSTATE before a session exists) and SQLite's generic
``SQLITE_ERROR`` for a missing table. SQLAlchemy's wrappers are unwrapped first.

Cheap to import: neither SQLAlchemy nor psycopg is loaded here.
"""

from __future__ import annotations

import errno
import sqlite3
from enum import Enum


class Failure(Enum):
    """What went wrong, as far as the user can act on it."""

    DISK_FULL = "disk full or file-size limit"
    LOCKED = "locked or busy"
    NOT_A_DATABASE = "not a database"
    CORRUPT = "damaged"
    READ_ONLY = "read-only"
    CANNOT_OPEN = "cannot open"
    NO_TABLE = "missing table"
    AUTH_FAILED = "authentication failed"
    NO_DATABASE = "no such database"
    UNREACHABLE = "server unreachable"
    OTHER = "other"


_SQLITE_CODES = {
    sqlite3.SQLITE_FULL: Failure.DISK_FULL,
    # A short write (file-size limit, failing disk) is an I/O error to SQLite.
    sqlite3.SQLITE_IOERR: Failure.DISK_FULL,
    sqlite3.SQLITE_BUSY: Failure.LOCKED,
    sqlite3.SQLITE_LOCKED: Failure.LOCKED,
    sqlite3.SQLITE_NOTADB: Failure.NOT_A_DATABASE,
    sqlite3.SQLITE_CORRUPT: Failure.CORRUPT,
    sqlite3.SQLITE_READONLY: Failure.READ_ONLY,
    sqlite3.SQLITE_CANTOPEN: Failure.CANNOT_OPEN,
}

#: SQLSTATEs (exact, then by their two-character class).
_SQLSTATES = {
    "53100": Failure.DISK_FULL,  # disk_full
    "42P01": Failure.NO_TABLE,  # undefined_table
    "28000": Failure.AUTH_FAILED,  # invalid_authorization_specification
    "28P01": Failure.AUTH_FAILED,  # invalid_password
    "3D000": Failure.NO_DATABASE,  # invalid_catalog_name
    "25006": Failure.READ_ONLY,  # read_only_sql_transaction
    "55P03": Failure.LOCKED,  # lock_not_available
    "40P01": Failure.LOCKED,  # deadlock_detected
    "XX001": Failure.CORRUPT,  # data_corrupted
    "XX002": Failure.CORRUPT,  # index_corrupted
    "57P01": Failure.UNREACHABLE,  # admin_shutdown
    "57P02": Failure.UNREACHABLE,  # crash_shutdown
    "57P03": Failure.UNREACHABLE,  # cannot_connect_now
}
_SQLSTATE_CLASSES = {"08": Failure.UNREACHABLE, "53": Failure.DISK_FULL}

_ERRNOS = {
    errno.ENOSPC: Failure.DISK_FULL,
    errno.EDQUOT: Failure.DISK_FULL,
    errno.EFBIG: Failure.DISK_FULL,
    errno.EROFS: Failure.READ_ONLY,
}

#: libpq's connection failures carry no SQLSTATE: the only text planctl reads.
_LIBPQ_TEXT = (
    ("password authentication failed", Failure.AUTH_FAILED),
    ("no password supplied", Failure.AUTH_FAILED),
    ("does not exist", Failure.NO_DATABASE),  # FATAL: database "x" does not exist
    ("connection refused", Failure.UNREACHABLE),
    ("could not connect", Failure.UNREACHABLE),
    ("timeout expired", Failure.UNREACHABLE),
    ("name or service not known", Failure.UNREACHABLE),
    ("could not translate host", Failure.UNREACHABLE),
    ("server closed the connection", Failure.UNREACHABLE),
)


def driver_error(error: BaseException) -> BaseException:
    """The driver's own exception behind a SQLAlchemy wrapper (or *error* itself)."""
    return getattr(error, "orig", None) or error


def classify(error: BaseException) -> Failure:
    """What kind of failure *error* is, from its code (see the module docstring)."""
    error = driver_error(error)
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int):
            found = _SQLITE_CODES.get(code & 0xFF)  # the primary result code
            if found is not None:
                return found
            if code & 0xFF == sqlite3.SQLITE_ERROR and "no such table" in str(error):
                return Failure.NO_TABLE
        return Failure.OTHER
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return _SQLSTATES.get(sqlstate) or _SQLSTATE_CLASSES.get(sqlstate[:2], Failure.OTHER)
    if isinstance(error, OSError):
        return _ERRNOS.get(error.errno or 0, Failure.OTHER)
    if type(error).__module__.startswith("psycopg"):  # a connection failure: no SQLSTATE
        text = " ".join(str(error).split()).lower()
        for needle, failure in _LIBPQ_TEXT:
            if needle in text:
                return failure
    return Failure.OTHER


def is_disk_full(error: BaseException) -> bool:
    return classify(error) is Failure.DISK_FULL


class MigrationFailure(Enum):
    """Why Alembic refused a revision, from the type of the error behind its CommandError."""

    UNKNOWN_REVISION = "no such revision"
    OUT_OF_RANGE = "a relative step past the first or last revision"
    OTHER = "other"


def classify_migration(error: BaseException) -> MigrationFailure:
    """Alembic wraps its revision errors in a ``CommandError`` raised ``from`` them: the
    cause's type says what went wrong (ResolutionError: an unknown revision; a plain
    RevisionError: a relative step that ran out of revisions)."""
    from alembic.script.revision import ResolutionError, RevisionError

    cause = error.__cause__
    if isinstance(cause, ResolutionError):
        return MigrationFailure.UNKNOWN_REVISION
    if type(cause) is RevisionError:
        return MigrationFailure.OUT_OF_RANGE
    return MigrationFailure.OTHER


def causes(error: BaseException) -> list[BaseException]:
    """*error* and every exception behind it: ``__cause__``, ``__context__``, urllib3's
    ``reason``, exceptions passed as arguments (requests wraps urllib3's error, which
    wraps the socket's) and paramiko's per-address ``errors`` (NoValidConnectionsError).
    Each once, nearest first."""
    found: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(arg for arg in current.args if isinstance(arg, BaseException))
        per_address = getattr(current, "errors", None)
        if isinstance(per_address, dict):
            linked.extend(per_address.values())
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return found


#: A connection that went away mid-session (worth a retry).
_LOST_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ECONNABORTED}
#: paramiko says a channel is closed only in the text of a plain ``socket.error`` or
#: ``SSHException`` with no errno ("Socket is closed", "Channel closed.", "SSH session not
#: active"): like libpq's, the only paramiko text planctl reads.
_PARAMIKO_CLOSED_TEXT = ("socket is closed", "channel closed", "session not active")


def connection_lost(error: BaseException) -> bool:
    """The server's connection dropped: an EOF (paramiko's "Server connection dropped" is
    raised while handling one), a reset or broken pipe, or paramiko's closed channel."""
    for cause in causes(error):
        if isinstance(cause, EOFError | ConnectionResetError | BrokenPipeError):
            return True
        if isinstance(cause, OSError) and cause.errno in _LOST_ERRNOS:
            return True
        from_paramiko = type(cause).__module__.startswith("paramiko")
        if (from_paramiko or type(cause) is OSError) and getattr(cause, "errno", None) is None:
            text = str(cause).lower()
            if any(needle in text for needle in _PARAMIKO_CLOSED_TEXT):
                return True
    return False


def connection_refused(error: BaseException) -> bool:
    """Nothing listens at the address: ECONNREFUSED anywhere behind *error*."""
    return any(
        isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED for cause in causes(error)
    )


def oauth_error(error: BaseException) -> str | None:
    """The OAuth error code (RFC 6749 §5.2: ``invalid_grant``, ``invalid_client`` …) of a
    google-auth ``RefreshError``: the token endpoint's JSON, its second argument."""
    data = error.args[1] if len(error.args) > 1 else None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None


#: pyrage raises one ``DecryptError`` type for every failure; only its text says the
#: identity matched no recipient ("No matching keys found").
_AGE_NO_MATCH_TEXT = ("no matching keys", "no identity matched")


def age_identity_mismatch(error: BaseException) -> bool:
    """pyrage could not decrypt because the identity is not a recipient of the file."""
    text = str(error).lower()
    return any(needle in text for needle in _AGE_NO_MATCH_TEXT)


def tool_out_of_space(returncode: int, stderr: str) -> bool:
    """A client tool (pg_dump, psql, pg_restore) stopped on a full disk or a file-size
    limit: killed by SIGXFSZ, or its stderr quoting the C library's message for ENOSPC,
    EDQUOT or EFBIG (a child process passes on no errno: ``strerror``'s text is the code)."""
    import os
    import signal

    if returncode == -signal.SIGXFSZ:
        return True
    text = " ".join(stderr.split())
    return any(os.strerror(code) in text for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))


class StoreFailure(Enum):
    """What went wrong talking to a backup store (S3, SFTP), as far as the user can act."""

    NO_CREDENTIALS = "no credentials"
    AUTH_FAILED = "credentials refused"
    KEY_LOCKED = "the SSH key needs a passphrase"
    UNKNOWN_HOST = "host not in known_hosts"
    HOST_KEY_CHANGED = "host key changed"
    NO_BUCKET = "no such bucket"
    NOT_FOUND = "no such file"
    PERMISSION_DENIED = "permission denied"
    DISK_FULL = "disk full or file-size limit"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timed out"
    CONNECTION_LOST = "connection lost"
    BUSY = "server busy"
    OTHER = "other"

    @property
    def transient(self) -> bool:
        """Worth another attempt (on a fresh connection)."""
        return self in _TRANSIENT


_TRANSIENT = frozenset(
    {
        StoreFailure.UNREACHABLE,
        StoreFailure.TIMEOUT,
        StoreFailure.CONNECTION_LOST,
        StoreFailure.BUSY,
    }
)

#: S3 error codes (the ``Code`` of the XML error body; HEAD answers carry only the status).
_S3_CODES = {
    "NoSuchBucket": StoreFailure.NO_BUCKET,
    "NoSuchKey": StoreFailure.NOT_FOUND,
    "NotFound": StoreFailure.NOT_FOUND,
    "404": StoreFailure.NOT_FOUND,
    "InvalidAccessKeyId": StoreFailure.AUTH_FAILED,
    "SignatureDoesNotMatch": StoreFailure.AUTH_FAILED,
    "AccessDenied": StoreFailure.AUTH_FAILED,
    "InvalidToken": StoreFailure.AUTH_FAILED,
    "ExpiredToken": StoreFailure.AUTH_FAILED,
    "Forbidden": StoreFailure.AUTH_FAILED,
    "403": StoreFailure.AUTH_FAILED,
    "SlowDown": StoreFailure.BUSY,
    "ServiceUnavailable": StoreFailure.BUSY,
    "InternalError": StoreFailure.BUSY,
    "503": StoreFailure.BUSY,
    "500": StoreFailure.BUSY,
    "RequestTimeout": StoreFailure.TIMEOUT,
    "EntityTooLarge": StoreFailure.DISK_FULL,
    "QuotaExceeded": StoreFailure.DISK_FULL,
}

_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EADDRNOTAVAIL,
    errno.EHOSTDOWN,
}


def s3_code(error: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` ("" for anything else)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def classify_store(error: BaseException) -> StoreFailure:
    """What kind of store failure *error* is: by the exception types of botocore and
    paramiko, S3's error codes and the socket's errno, nearest cause first. A store's own
    :class:`~planctl.backup.stores.StoreError` says it in its ``failure``."""
    for cause in causes(error):
        found = _classify_one(cause)
        if found is not StoreFailure.OTHER:
            return found
    return StoreFailure.OTHER


def _classify_one(error: BaseException) -> StoreFailure:
    failure = getattr(error, "failure", None)
    if isinstance(failure, StoreFailure):
        return failure
    module = type(error).__module__ or ""
    if module.startswith(("botocore", "boto3", "s3transfer")):
        return _classify_boto(error)
    if module.startswith("paramiko"):
        return _classify_paramiko(error)
    if isinstance(error, TimeoutError):
        return StoreFailure.TIMEOUT
    if connection_lost(error):
        return StoreFailure.CONNECTION_LOST
    if isinstance(error, OSError):
        return _classify_os(error)
    return StoreFailure.OTHER


def _classify_boto(error: BaseException) -> StoreFailure:
    from botocore import exceptions as bex

    if isinstance(error, bex.ClientError):
        return _S3_CODES.get(s3_code(error), StoreFailure.OTHER)
    if isinstance(error, bex.NoCredentialsError | bex.PartialCredentialsError):
        return StoreFailure.NO_CREDENTIALS
    if isinstance(error, bex.ConnectTimeoutError | bex.ReadTimeoutError):
        return StoreFailure.TIMEOUT
    if isinstance(error, bex.ConnectionClosedError):
        return StoreFailure.CONNECTION_LOST
    if isinstance(error, bex.EndpointConnectionError):
        return StoreFailure.UNREACHABLE
    return StoreFailure.OTHER


def _classify_paramiko(error: BaseException) -> StoreFailure:
    import paramiko

    if isinstance(error, paramiko.BadHostKeyException):
        return StoreFailure.HOST_KEY_CHANGED
    if isinstance(error, paramiko.PasswordRequiredException):
        return StoreFailure.KEY_LOCKED
    if isinstance(error, paramiko.AuthenticationException):
        return StoreFailure.AUTH_FAILED
    if connection_lost(error):
        return StoreFailure.CONNECTION_LOST
    return StoreFailure.OTHER


#: SFTP version 3 (paramiko) has no status code for a full disk: the server's status text is
#: its C library's message (asyncssh sends ``strerror``; OpenSSH only "Failure").
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _classify_os(error: OSError) -> StoreFailure:
    code = error.errno
    if code in _DISK_FULL_ERRNOS:
        return StoreFailure.DISK_FULL
    if code in (errno.EACCES, errno.EPERM):
        return StoreFailure.PERMISSION_DENIED
    if code == errno.ENOENT:
        return StoreFailure.NOT_FOUND
    if code == errno.ETIMEDOUT:
        return StoreFailure.TIMEOUT
    if code in _UNREACHABLE_ERRNOS:
        return StoreFailure.UNREACHABLE
    import socket

    if isinstance(error, socket.gaierror):  # the host name does not resolve
        return StoreFailure.UNREACHABLE
    if code is None and error.args:
        import os

        text = str(error.args[0])
        if any(text == os.strerror(c) for c in _DISK_FULL_ERRNOS):
            return StoreFailure.DISK_FULL
    return StoreFailure.OTHER
