"""``BackupManager``: scheduled and change-driven backups in a background thread.

The scheduling rule, in one place (:meth:`BackupManager.next_due`):

- a backup every ``schedule.interval`` seconds after the previous one;
- sooner when the data changes (:meth:`notify_change`, or the change log
  growing, which the thread polls): at the change, but never less than
  ``schedule.min_interval`` after the previous backup;
- after a failure, retries back off from ``schedule.min_interval`` doubling
  up to ``schedule.interval``; each failure calls ``on_backup_failure(error,
  consecutive_failures)`` and the manager keeps going.

What each backup is (keep, format, compression, incremental, …) is one
:class:`~planctl.backup.options.BackupOptions`; when it runs, one
:class:`Schedule`.

Time comes from an injectable ``clock`` (``time.monotonic`` by default), so
the throttling is tested by moving a fake clock and calling
:meth:`run_pending`, not by sleeping. ``backup watch`` is this class plus
signal handling.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planctl.backup.create import create_backup
from planctl.backup.options import BackupOptions
from planctl.backup.store import BackupInfo
from planctl.errors import PlanctlError
from planctl.hooks import NO_HOOKS, Hooks
from planctl.target import Target

log = logging.getLogger("planctl.backup")

FailureCallback = Callable[[BaseException, int], Any]


@dataclass(frozen=True)
class Schedule:
    """When the manager backs up: every *interval* seconds, sooner after a change but
    never less than *min_interval* after the previous backup; with *watch_changes*, the
    change log is polled every *poll_interval* seconds."""

    interval: float = 300
    min_interval: float = 5.0
    poll_interval: float = 1.0
    watch_changes: bool = True


#: What ``backup watch`` takes by default: wait for the set's lock up to 30 s.
SCHEDULED = BackupOptions(reason="scheduled", lock_timeout=30.0)


@dataclass(frozen=True)
class Status:
    """What the manager shows: last backup, deltas since the full, consecutive failures."""

    last_backup: BackupInfo | None
    deltas_since_full: int
    consecutive_failures: int
    last_error: str | None
    next_due_in: float


class BackupManager:
    def __init__(
        self,
        target: Target,
        backup_dir: Path | str,
        options: BackupOptions = SCHEDULED,
        schedule: Schedule | None = None,
        *,
        on_backup: Callable[[BackupInfo], Any] | None = None,
        on_backup_failure: FailureCallback | None = None,
        on_failure_command: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        """*options*: what each backup is (its ``reason`` is always ``scheduled``);
        *schedule*: when. *on_backup(info)* runs after each backup, *on_backup_failure(error,
        consecutive_failures)* and the shell command *on_failure_command* after each
        failure. *clock* is injectable so the throttling is tested without sleeping."""
        schedule = schedule or Schedule()
        if schedule.interval <= 0 or schedule.min_interval < 0:
            raise ValueError("interval must be > 0 and min_interval >= 0")
        if options.max_deltas < 1:
            raise ValueError("max_deltas must be at least 1")
        self.target = target
        self.backup_dir = Path(backup_dir)
        self.backup_interval = float(schedule.interval)
        self.min_backup_interval = float(schedule.min_interval)
        self.on_backup_failure = on_backup_failure
        self.on_failure_command = on_failure_command
        self.hooks = hooks
        self._stopping = threading.Event()
        self.on_backup = on_backup
        self.incremental = options.incremental
        self.clock = clock
        self.poll_interval = schedule.poll_interval
        self.watch_changes = schedule.watch_changes
        self.options = dataclasses.replace(options, reason="scheduled")

        self.consecutive_failures = 0
        self.deltas_since_full = 0
        self.last_backup: BackupInfo | None = None
        self.last_error: str | None = None
        self._last_attempt: float | None = None
        self._change_at: float | None = None
        self._seen_log_id: int | None = None
        self._state = threading.Lock()  # guards the scheduling fields
        self._running = threading.Lock()  # one backup at a time
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- scheduling ------------------------------------------------------------------------

    def notify_change(self) -> None:
        """The data changed: back up soon (not sooner than min_backup_interval after the last)."""
        with self._state:
            if self._change_at is None:
                self._change_at = self.clock()
        self._wake.set()

    def next_due(self) -> float:
        """The clock time at which the next backup is due (now or earlier: due)."""
        with self._state:
            if self._last_attempt is None:
                return -math.inf  # nothing yet: the first backup is due at once
            if self.consecutive_failures:
                # capped exponent: 2 ** 1024 is no float (a failing run with --min-interval 0)
                backoff = self.min_backup_interval * 2.0 ** min(self.consecutive_failures - 1, 64)
                return self._last_attempt + min(max(backoff, 0.0), self.backup_interval)
            due = self._last_attempt + self.backup_interval
            if self._change_at is not None:
                soon = max(self._change_at, self._last_attempt + self.min_backup_interval)
                due = min(due, soon)
            return due

    def run_pending(self) -> BackupInfo | None:
        """Back up if one is due now; the new backup, or None (not due, or it failed)."""
        if self.clock() < self.next_due():
            return None
        return self.backup_now()

    # --- backups ---------------------------------------------------------------------------

    def backup_now(self) -> BackupInfo | None:
        """One backup now: a delta when ``incremental`` (and possible), else a full."""
        return self._backup(self.incremental)

    def backup_full(self) -> BackupInfo | None:
        return self._backup(False)

    def backup_delta(self) -> BackupInfo | None:
        """A delta on top of the newest backup, or a full when no delta is possible."""
        return self._backup(True)

    def _backup(self, incremental: bool) -> BackupInfo | None:
        with self._running:
            started = self.clock()
            with self._state:
                self._last_attempt = started
            try:
                result = create_backup(
                    self.target,
                    self.backup_dir,
                    dataclasses.replace(self.options, incremental=incremental),
                    self.hooks,
                )
            except Exception as error:  # keep going: count, report, retry later
                self._failed(error)
                return None
            with self._state:
                self.consecutive_failures = 0
                self.last_error = None
                self.last_backup = result.info
                self.deltas_since_full = result.deltas_since_full
                if self._change_at is not None and self._change_at <= started:
                    self._change_at = None  # later changes stay pending
            log.info(
                "backup %s (%s) done; deltas since full %d; consecutive failures 0",
                result.info.name,
                result.info.kind,
                self.deltas_since_full,
            )
            if self.on_backup is not None:
                self.on_backup(result.info)
            return result.info

    def _failed(self, error: BaseException) -> None:
        message = error.message if isinstance(error, PlanctlError) else f"{error}"
        with self._state:
            self.consecutive_failures += 1
            self.last_error = message
            count = self.consecutive_failures
        log.error("backup failed (%d in a row): %s", count, message)
        # The traceback (with its chained causes) goes to backup.log; the console's -v shows
        # it under --debug only.
        log.debug("backup failure %d in a row, traceback:", count, exc_info=error)
        if self.on_backup_failure is not None:
            try:
                self.on_backup_failure(error, count)
            except Exception as hook_error:  # a broken hook must not stop the backups
                log.error("on_backup_failure raised: %s", hook_error, exc_info=hook_error)
        if self.on_failure_command:
            run_failure_command(self.on_failure_command, message, count)

    def status(self) -> Status:
        due = self.next_due() - self.clock()
        with self._state:
            return Status(
                self.last_backup,
                self.deltas_since_full,
                self.consecutive_failures,
                self.last_error,
                max(due, 0.0),
            )

    # --- change detection ------------------------------------------------------------------

    def poll_changes(self) -> bool:
        """Look at the change log; call notify_change when it grew. True if it did."""
        from planctl.db import changelog
        from planctl.db.engine import connect

        try:
            with connect(self.target) as connection:  # never creates a SQLite file
                if not changelog.installed(connection):
                    self.watch_changes = False
                    log.warning(
                        "%s has no change log (run planctl db-upgrade): backing up on the "
                        "interval only",
                        self.target.masked,
                    )
                    return False
                newest = changelog.last_change(connection)
        except Exception as error:  # the backup itself reports database trouble
            log.debug("change poll failed: %s", error)
            return False
        previous, self._seen_log_id = self._seen_log_id, newest
        if previous is not None and newest > previous:
            self.notify_change()
            return True
        return False

    # --- thread ----------------------------------------------------------------------------

    def run_until_stopped(
        self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
    ) -> Status:
        """What ``planctl backup watch`` does, for any Python caller: back up in the
        background until one of *signals* arrives, finish the backup in progress, stop.

        Signal handlers can only be installed from the main thread; elsewhere the
        loop runs until :meth:`request_stop`. Raises PlanctlError if the backup
        thread dies unexpectedly.
        """
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def on_signal(signum: int, _frame: Any) -> None:
                log.info("signal %d: finishing the backup in progress, then stopping", signum)
                self.request_stop()

            previous = {sig: signal.signal(sig, on_signal) for sig in signals}
        try:
            self.start()
            while not self._stopping.wait(1.0):
                if not self.running:  # the thread died: say so instead of idling
                    raise PlanctlError("the backup thread stopped unexpectedly", "see backup.log")
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.status()

    def request_stop(self) -> None:
        """Ask :meth:`run_until_stopped` to finish (safe from a signal handler)."""
        self._stopping.set()

    def start(self) -> None:
        """Run in a background thread: the first backup at once, then by the schedule."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="planctl-backup", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; a backup in progress is finished first."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.watch_changes:
                self.poll_changes()
            self.run_pending()
            wait = self.next_due() - self.clock()
            if self.watch_changes:
                wait = min(wait, self.poll_interval)
            self._wake.wait(max(wait, 0.05))
            self._wake.clear()


def run_failure_command(command: str, message: str, count: int) -> None:
    """Run a shell command after a failed backup, with PLANCTL_BACKUP_ERROR and
    PLANCTL_BACKUP_FAILURES in its environment. Under bash (so ``<<<`` and friends
    work), /bin/sh where there is no bash; its own failure is logged, never fatal."""
    shell = shutil.which("bash") or "/bin/sh"
    env = dict(os.environ, PLANCTL_BACKUP_ERROR=message, PLANCTL_BACKUP_FAILURES=str(count))
    try:
        done = subprocess.run([shell, "-c", command], env=env, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        log.error("--on-failure command could not run: %s", error)
        return
    if done.returncode != 0:
        log.error("--on-failure command exited with status %d", done.returncode)
