"""Bounded lock waits: a short wait per attempt, retries with backoff up to a budget,
and the sessions that block named.

PostgreSQL queues lock requests: a statement waiting for an ACCESS EXCLUSIVE
lock (``ALTER TABLE``, ``DROP TRIGGER``, ``pg_restore --clean``) makes every
later statement on that table wait behind it, however weak its own lock. One
such statement stuck behind the planner app's idle transaction freezes the
app. So every statement of planctl that needs a strong lock runs with a short
``lock_timeout`` (one *attempt*); a timed-out attempt rolls its transaction
back (nothing changed), and the next comes after a jittered backoff, until
the *budget* is spent (strong_migrations, GitLab's ``with_lock_retries``).
SQLite gets the same rule through its busy timeout.

:func:`retry` is the one place this rule is written; every caller (migrations,
restores, the change log's anchor and triggers) hands it one attempt.
Decisions: docs/lock-waits.md.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from planctl.errors import LockedError
from planctl.failures import Failure, classify

if TYPE_CHECKING:
    from planctl.target import Target

log = logging.getLogger("planctl.locks")

T = TypeVar("T")

#: Seconds one attempt may wait for a lock: the longest the planner app's own queries
#: wait behind planctl's pending lock.
ATTEMPT_SECONDS = 2.0
#: Seconds all attempts together may wait (``--lock-wait`` / ``PLANCTL_LOCK_WAIT``).
BUDGET_SECONDS = 60.0
#: The shortest attempt worth making when the budget is nearly spent.
MIN_ATTEMPT = 0.2
#: Backoff between attempts: FIRST_PAUSE, doubled each time up to MAX_PAUSE, ±50 % jitter.
FIRST_PAUSE = 0.5
MAX_PAUSE = 5.0
#: Blockers named one a line, then a count of the others.
SHOWN_BLOCKERS = 5
#: How often a PostgreSQL server checks that planctl's socket is still there while a
#: statement runs or waits (PostgreSQL 14+): a killed planctl's backend leaves the lock
#: queue within this time instead of staying until its lock_timeout.
CLIENT_CHECK_MS = 1000
#: PostgreSQL's lock_not_available, as client tools print it.
LOCK_SQLSTATE = "55P03"


class LockTimedOut(Exception):
    """One attempt waited its full time for a lock (raised by attempts that cannot say it
    with a driver error code: a client tool's exit, SQLite's backup API)."""


def _warn(message: str) -> None:
    log.warning("%s", message)


@dataclass(frozen=True)
class LockWait:
    """How long planctl waits for locks, and what it may do about who holds them."""

    budget: float = BUDGET_SECONDS
    attempt: float = ATTEMPT_SECONDS
    #: End blocking sessions that are idle in a transaction (never a running query).
    terminate_blockers: bool = False
    #: Where "waiting for …" lines go while the wait lasts (the CLI prints them).
    report: Callable[[str], None] = _warn
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default_factory=lambda: random.Random().random)

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number *attempt* (1-based)."""
        base = min(MAX_PAUSE, FIRST_PAUSE * 2 ** min(attempt - 1, 16))
        return base * (0.5 + self.jitter())


def retry(lock_wait: LockWait, subject: LockSubject, what: str, attempt: Callable[[float], T]) -> T:
    """Run ``attempt(seconds)`` until it does not time out on a lock; each call may wait at
    most *seconds* for a lock and must leave nothing changed when it does.

    After the first timed-out attempt the blocking sessions are reported (and, with
    ``terminate_blockers``, those idle in a transaction are ended). When the budget is
    spent: :class:`LockedError` naming them. Any other error passes through untouched.
    """
    deadline = lock_wait.clock() + lock_wait.budget
    number = 0
    while True:
        number += 1
        seconds = max(MIN_ATTEMPT, min(lock_wait.attempt, deadline - lock_wait.clock()))
        try:
            return attempt(seconds)
        except Exception as error:
            if not is_lock_timeout(error):
                raise
            last = error
        blockers = subject.blockers()
        if lock_wait.terminate_blockers and deadline - lock_wait.clock() >= MIN_ATTEMPT:
            ended = subject.terminate_idle(blockers)
            if ended:
                lock_wait.report(
                    f"{what}: ended {_sessions(len(ended))} idle in transaction: "
                    + "; ".join(b.describe() for b in ended)
                )
                log.warning("%s: terminated blockers %s", what, [b.pid for b in ended])
                continue
        pause = lock_wait.pause(number)
        remaining = deadline - lock_wait.clock()
        if remaining < MIN_ATTEMPT:
            raise LockedError(
                f"{what}: gave up after waiting {lock_wait.budget:g} s for a lock on "
                f"{subject.name}; the database is unchanged{_held_by(blockers)}",
                subject.hint(blockers, lock_wait.terminate_blockers),
            ) from last
        if number == 1:
            lock_wait.report(
                f"{what}: waiting for a lock on {subject.name} (up to {lock_wait.budget:g} s)"
                + _held_by(blockers).rstrip()
            )
        log.info("%s: attempt %d timed out; next in %.1f s", what, number, pause)
        lock_wait.sleep(min(pause, max(0.0, remaining - MIN_ATTEMPT)))


def is_lock_timeout(error: BaseException) -> bool:
    """Whether *error* (or what it was raised from) is a lock wait that gave up."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, LockTimedOut):
            return True
        if getattr(seen, "failure", None) is Failure.LOCKED or classify(seen) is Failure.LOCKED:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _sessions(count: int) -> str:
    return f"{count} session" + ("" if count == 1 else "s")


def _held_by(blockers: list[Blocker]) -> str:
    if not blockers:
        return ""
    lines = [b.describe() for b in blockers[:SHOWN_BLOCKERS]]
    more = len(blockers) - SHOWN_BLOCKERS
    if more > 0:
        lines.append(f"and {_sessions(more)} more")
    return "; held by:\n  " + "\n  ".join(lines) + "\n"


# --- who holds the lock --------------------------------------------------------------------


@dataclass(frozen=True)
class Blocker:
    """A session (PostgreSQL) or process (SQLite) holding a lock planctl needs."""

    pid: int
    what: str  # "app 'planner' user app from 127.0.0.1" / "python3"
    state: str  # "idle in transaction", "active", "holds the write lock"
    seconds: float | None = None
    query: str = ""

    @property
    def idle_in_transaction(self) -> bool:
        return self.state.startswith("idle in transaction")

    def describe(self) -> str:
        since = f" for {duration(self.seconds)}" if self.seconds is not None else ""
        query = f": {self.query}" if self.query else ""
        return f"pid {self.pid} {self.what}, {self.state}{since}{query}"


def duration(seconds: float) -> str:
    """``14 min``, ``3 s``, ``2 h 5 min``: how long a blocker has been in its state."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    hours, minutes = divmod(whole // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


class LockSubject:
    """The database whose locks are waited for: it names and (optionally) ends blockers."""

    name = "the database"

    def blockers(self) -> list[Blocker]:
        return []

    def terminate_idle(self, blockers: list[Blocker]) -> list[Blocker]:
        return []

    def hint(self, blockers: list[Blocker], terminate_blockers: bool) -> str:
        """What to do about *blockers* (the final error's hint)."""
        if any(b.idle_in_transaction for b in blockers) and not terminate_blockers:
            return (
                "close those sessions (commit or roll back in the app), or run again with "
                "--terminate-blockers to end the ones idle in a transaction; "
                "--lock-wait SECONDS waits longer"
            )
        return "wait for those sessions to finish and run again, or give --lock-wait SECONDS"


_PG_BLOCKERS = """
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename, ''),
       coalesce(host(a.client_addr), 'local socket'), coalesce(a.state, ''),
       extract(epoch FROM clock_timestamp() - coalesce(a.state_change, a.backend_start)),
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 60)
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
  AND a.pid IN (
    SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.granted AND l.locktype = 'relation'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND c.relnamespace = to_regnamespace(current_schema())
    UNION
    SELECT unnest(pg_blocking_pids(w.pid)) FROM pg_stat_activity w
    WHERE w.application_name = 'planctl' AND w.wait_event_type = 'Lock'
  )
ORDER BY a.state_change NULLS LAST, a.pid
"""

_PG_TERMINATE = """
SELECT pid FROM pg_stat_activity
WHERE pid = ANY(%(pids)s) AND state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND pg_terminate_backend(pid)
"""


@dataclass
class PostgresSubject(LockSubject):
    """A PostgreSQL database: blockers are the other sessions holding a lock on a table
    of its schema (the tables planctl's strong locks are for), or blocking a waiting
    planctl session (``pg_blocking_pids``)."""

    target: Target
    name: str = "the database"

    def __post_init__(self) -> None:
        self.name = self.target.masked

    def blockers(self) -> list[Blocker]:
        from planctl.db.engine import connect
        from planctl.errors import PlanctlError

        try:
            with connect(self.target) as connection:
                rows = connection.exec_driver_sql(_PG_BLOCKERS).fetchall()
        except PlanctlError as error:  # naming them is a courtesy; the timeout still stands
            log.warning("cannot list the sessions holding locks: %s", error)
            return []
        return [
            Blocker(
                pid=int(pid),
                what=f"app '{app or '?'}' user {user or '?'} from {address}",
                state=state or "unknown state",
                seconds=float(seconds) if seconds is not None else None,
                query=query.strip(),
            )
            for pid, app, user, address, state, seconds, query in rows
        ]

    def terminate_idle(self, blockers: list[Blocker]) -> list[Blocker]:
        from planctl.db.engine import connect

        idle = {b.pid: b for b in blockers if b.idle_in_transaction}
        if not idle:
            return []
        with connect(self.target) as connection:
            ended = connection.exec_driver_sql(_PG_TERMINATE, {"pids": list(idle)}).scalars()
            return [idle[int(pid)] for pid in ended]


# SQLite's locks are POSIX byte-range locks (os_unix.c); the kernel lists their holders.
_PENDING_BYTE = 0x40000000
_RESERVED_BYTE = _PENDING_BYTE + 1
_WAL_WRITE_LOCK = 120  # in the -shm file
_WAL_READ_LOCKS = range(123, 128)


@dataclass
class SqliteSubject(LockSubject):
    """A SQLite file: blockers are the processes holding its write lock (or, for a
    restore, a read lock), as the kernel's lock table (/proc/locks) tells."""

    path: Path
    name: str = "the database"
    locks_file: Path = Path("/proc/locks")

    def __post_init__(self) -> None:
        self.name = f"'{self.path}'"

    def hint(self, blockers: list[Blocker], terminate_blockers: bool) -> str:
        return (
            "let the planner app finish its write (end its long transaction) and run again, "
            "or give --lock-wait SECONDS"
        )

    def blockers(self) -> list[Blocker]:
        try:
            table = self.locks_file.read_text(encoding="ascii", errors="replace")
        except OSError:
            return []
        files = {"db": _inode(self.path), "shm": _inode(Path(f"{self.path}-shm"))}
        roles: dict[int, str] = {}
        wal = files["shm"] is not None  # WAL: a connection's locks on the file itself say nothing
        for kind, pid, start, end in _parse_locks(table, {v for v in files.values() if v}):
            on_shm = pid[1] == files["shm"]
            if wal and not on_shm:
                continue
            role = _role(kind, start, end, "shm" if on_shm else "db")
            if role and pid[0] != os.getpid() and roles.get(pid[0]) != "holds the write lock":
                roles[pid[0]] = role
        return [
            Blocker(pid=pid, what=f"({_command(pid)})", state=role)
            for pid, role in sorted(
                roles.items(), key=lambda item: item[1] != "holds the write lock"
            )
        ]


def _inode(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)


def _parse_locks(
    table: str, inodes: set[tuple[int, int, int]]
) -> Iterable[tuple[str, tuple[int, tuple[int, int, int]], int, int]]:
    """(READ/WRITE, (pid, file), first byte, last byte) of POSIX locks on *inodes*."""
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a request waiting for a lock, not a holder
            continue
        try:
            position = fields.index("POSIX")
            kind, pid, where, start, end = fields[position + 2 : position + 7]
            major, minor, inode = where.split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
            first, last = int(start), (1 << 62 if end == "EOF" else int(end))
        except (ValueError, IndexError):
            continue
        if key in inodes:
            yield kind, (int(pid), key), first, last


def _role(kind: str, first: int, last: int, file: str) -> str | None:
    if file == "shm":
        if kind == "WRITE" and first <= _WAL_WRITE_LOCK <= last:
            return "holds the write lock"
        if first <= _WAL_READ_LOCKS[-1] and last >= _WAL_READ_LOCKS[0]:
            return "reads an older snapshot"
        return None
    if kind == "WRITE" and first <= _RESERVED_BYTE <= last:
        return "holds the write lock"
    if kind == "WRITE" and first > _RESERVED_BYTE:
        return "holds the write lock"
    if first > _RESERVED_BYTE:
        return "reads the database"
    return None


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "?"


def subject_for(target: Target) -> LockSubject:
    """What a lock wait on *target* is about: its SQLite file or its PostgreSQL database."""
    if target.sqlite_file is not None:
        return SqliteSubject(target.sqlite_file.resolve())
    return PostgresSubject(target)


def pg_settings(seconds: float, server_major: int) -> dict[str, str]:
    """The server settings of one attempt: its lock waits end after *seconds*, and (14+)
    its backend notices a killed planctl while it waits instead of keeping its place in
    the lock queue."""
    settings = {"lock_timeout": str(max(1, int(seconds * 1000)))}
    if server_major >= 14:
        settings["client_connection_check_interval"] = str(CLIENT_CHECK_MS)
    return settings
