"""The entry points: :func:`run_sync` (a run or a dry run) and :func:`sync_status`.

Crash safety: a remote write comes first, then the state row, and state rows
are committed in batches, each after the backend's ``flush()``. A run killed
at any point leaves at worst remote writes without state; the next run finds
those events by session id and, as their content equals the session's, only
records them (no duplicates).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace

from sqlalchemy.engine import Connection

from planctl.config import mask_url
from planctl.db.engine import check_sqlite_target, make_engine, parse_url, translate_db_errors
from planctl.sync import cursor
from planctl.sync import state as sync_state
from planctl.sync.apply import Applier
from planctl.sync.backend import Backend
from planctl.sync.lock import SyncLock, sync_lock
from planctl.sync.options import SyncOptions
from planctl.sync.plan import make_plan
from planctl.sync.report import WRITES, Kind, SyncReport, SyncStatus
from planctl.sync.safety import refusal
from planctl.text import plural

COMMIT_EVERY = 100

log = logging.getLogger("planctl.sync")


@contextmanager
def _connection(database_url: str) -> Iterator[Connection]:
    url = parse_url(database_url)
    if url.get_backend_name() == "sqlite":
        check_sqlite_target(url, create=False)
    engine = make_engine(database_url)
    try:
        with translate_db_errors(database_url), engine.connect() as connection:
            sync_state.require_sync_tables(connection, mask_url(database_url))
            yield connection
    finally:
        engine.dispose()


def run_sync(
    database_url: str,
    backend: Backend,
    options: SyncOptions,
    *,
    dry_run: bool = False,
    logger: logging.Logger | None = None,
    commit_every: int = COMMIT_EVERY,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    lock: SyncLock | None = None,
    lock_timeout: float = 0.0,
) -> SyncReport:
    """Sync (or with *dry_run*, only plan) the sessions in scope with *backend*.

    A real run holds the sync lock of the database and backend (*lock* when the
    caller took it already, else taken here, waiting up to *lock_timeout*
    seconds: LockedError, exit 4). Conflicts under policy ``fail`` and
    per-session errors are in the report (the CLI turns them into exit 1);
    everything else that goes wrong raises.
    """
    options.check()
    logger = logger or log
    with _connection(database_url) as connection:
        if dry_run:
            return _plan(connection, backend, options, logger, dry_run=True)
        with ExitStack() as held:
            if lock is None:
                lock = held.enter_context(
                    sync_lock(database_url, backend.name, timeout=lock_timeout)
                )
            assert (lock.database_url, lock.backend) == (database_url, backend.name)
            sync_state.end_reads(connection)
            interrupted = sync_state.mark_interrupted(connection, backend.name)
            connection.commit()
            if interrupted:
                logger.warning(
                    "%s left by a killed run marked interrupted", plural(interrupted, "run")
                )
            report = _plan(connection, backend, options, logger, dry_run=False)
            _apply(connection, backend, options, report, logger, commit_every, on_progress)
    logger.info("%s with %s: %s", options.mode, backend.describe(), _describe(report))
    return report


def _plan(
    connection: Connection,
    backend: Backend,
    options: SyncOptions,
    logger: logging.Logger,
    *,
    dry_run: bool,
) -> SyncReport:
    """Plan and ask the guard; a real run it refuses raises, a dry run reports it."""
    plan = make_plan(connection, backend, options)
    report = SyncReport(
        backend=backend.name,
        calendar=backend.describe(),
        mode=options.mode,
        policy=options.policy,
        dry_run=dry_run,
        actions=plan.actions,
        foreign=plan.foreign,
        duplicates=plan.duplicates,
        untouched=plan.untouched,
        log_mark=plan.mark,
    )
    if plan.why_full is not None:
        logger.debug("planner read in full: %s", plan.why_full)
    refused = refusal(
        plan.exposure(), options, calendar=backend.describe(), keeps_deleted=backend.keeps_deleted
    )
    if refused is not None:
        if not dry_run:
            raise refused
        report.refusal = refused.message
        report.refusal_override = refused.override
    if dry_run:
        logger.info("dry run (%s, %s): %s", options.mode, backend.describe(), _describe(report))
    return report


def _apply(
    connection: Connection,
    backend: Backend,
    options: SyncOptions,
    report: SyncReport,
    logger: logging.Logger,
    commit_every: int,
    on_progress: Callable[[int, int], None],
) -> None:
    """Apply the plan in batches; a run that fails halfway is logged as interrupted."""
    backend.prepare()  # only now may a missing calendar be created
    sync_state.end_reads(connection)
    run_id = sync_state.start_run(connection, backend.name, options.mode)
    if options.mode != "sync":  # a push or pull may leave state rows out of step with a side
        cursor.forget(connection, backend.name)
    connection.commit()
    applier = Applier(connection, backend, options, logger)
    done = []
    total = len(report.actions)
    try:
        for number, action in enumerate(report.actions, 1):
            applied = applier.run(action)
            if applied.local is not None:
                applied.local.release()
            done.append(applied)
            if number % commit_every == 0:
                applier.write_batch()
            on_progress(number, total)
        applier.write_batch()
    except BaseException:
        _record_interrupted(connection, run_id)
        raise
    report.actions = done
    report.remote_writes, report.local_writes = applier.remote_writes, applier.local_writes
    result = "errors" if report.errors else "conflicts" if report.conflicts else "ok"
    sync_state.end_reads(connection)
    sync_state.finish_run(connection, run_id, result, report.run_counts())
    if result == "ok" and options.mode == "sync" and report.log_mark is not None:
        cursor.advance(connection, backend.name, options, report.log_mark)
    connection.commit()


def _record_interrupted(connection: Connection, run_id: int) -> None:
    """Best effort after a failure: close the run row (the next run adopts the writes
    whose state was not recorded, as after a kill)."""
    try:
        connection.rollback()
        sync_state.finish_run(connection, run_id, "interrupted", {})
        connection.commit()
    except Exception:
        log.debug("could not record the interrupted run", exc_info=True)


def _describe(report: SyncReport) -> str:
    return ", ".join(f"{k} {v}" for k, v in report.summary().items() if v) or "nothing to do"


def sync_status(
    database_url: str,
    backend: Backend,
    options: SyncOptions,
) -> SyncStatus:
    """Compare both sides without writing: in sync, pending, conflicting; and the last run."""
    options = replace(options, mode="sync", policy="fail")
    report = run_sync(database_url, backend, options, dry_run=True)
    with _connection(database_url) as connection:
        last = sync_state.last_run(connection, backend.name)
    tally = Counter(a.kind for a in report.actions)
    return SyncStatus(
        backend=backend.name,
        calendar=backend.describe(),
        in_sync=tally[Kind.UNCHANGED] + tally[Kind.RECORD] + report.untouched,
        pending=sum(tally[k] for k in WRITES),
        conflicting=tally[Kind.CONFLICT],
        errors=tally[Kind.ERROR],
        last_run=last,
        report=report,
    )
