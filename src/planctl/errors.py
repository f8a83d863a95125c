"""Error types that the CLI turns into one line on stderr and an exit code.

Library code raises these with a message (what happened, to what) and a hint
(what to do). Only ``planctl.cli`` prints them; nothing else decides exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of docs/architecture.md#exit-codes, documented in the README."""

    OK = 0
    FAILED = 1
    USAGE = 2
    NOTHING_TO_DO = 3
    LOCKED = 4
    VERIFICATION_FAILED = 5
    #: A bug in planctl (an exception no code expected): sysexits.h's EX_SOFTWARE.
    INTERNAL = 70


class PlanctlError(Exception):
    """An expected failure: one-line message, optional hint, an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(PlanctlError):
    """An option value the command cannot work with (exit 2, like Click's usage errors)."""

    exit_code = ExitCode.USAGE


class ConfigError(PlanctlError):
    """A setting is missing or malformed (DATABASE_URL, time zone, …)."""


class DatabaseError(PlanctlError):
    """The database cannot be reached, opened or written."""

    #: What kind of failure it was (a :class:`planctl.failures.Failure`), when a driver
    #: error was described; callers branch on it, never on the message.
    failure: object = None


class MigrationError(PlanctlError):
    """An Alembic operation failed: unknown revision, below base, bad script."""


class SeedError(PlanctlError):
    """Demo data cannot be loaded (for instance into a non-empty database)."""


class UnknownTableError(PlanctlError):
    """A table name that is not part of the schema."""


class SyncError(PlanctlError):
    """Calendar sync failed: backend unreachable, credentials refused, calendar missing."""


class SyncConflictError(SyncError):
    """Sessions changed on both sides and the conflict policy is ``fail``."""


class NothingToDoError(PlanctlError):
    """The user asked for something specific that does not exist."""

    exit_code = ExitCode.NOTHING_TO_DO


class LockedError(PlanctlError):
    """Another run holds the lock."""

    exit_code = ExitCode.LOCKED


class VerificationError(PlanctlError):
    """A check failed: checksum, integrity, schema drift."""

    exit_code = ExitCode.VERIFICATION_FAILED


class EncryptionError(PlanctlError):
    """age encryption or decryption failed: bad recipient, identity, missing library, damage."""


class RemoteError(PlanctlError):
    """An offsite store (S3, SFTP) refused or could not be reached."""
