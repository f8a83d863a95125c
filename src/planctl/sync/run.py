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

from planctl.db.engine import check_sqlite_target, make_engine, translate_db_errors
from planctl.sync import cursor
from planctl.sync import state as sync_state
from planctl.sync.apply import Applier
from planctl.sync.backend import Backend
from planctl.sync.lock import SyncLock, sync_lock
from planctl.sync.options import SyncOptions
from planctl.sync.plan import Plan, in_sync, make_plan
from planctl.sync.report import WRITES, Kind, SyncReport, SyncStatus
from planctl.sync.safety import Removals, UnsafeRunError, refusal
from planctl.target import Target
from planctl.text import plural

COMMIT_EVERY = 100

log = logging.getLogger("planctl.sync")


@contextmanager
def _connection(target: Target) -> Iterator[Connection]:
    if target.is_sqlite:
        check_sqlite_target(target, create=False)
    engine = make_engine(target)
    try:
        with translate_db_errors(target), engine.connect() as connection:
            sync_state.require_sync_tables(connection, target.masked)
            yield connection
    finally:
        engine.dispose()


def run_sync(
    target: Target,
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
    with _connection(target) as connection:
        if dry_run:
            return _dry_run(connection, backend, options, logger)
        with ExitStack() as held:
            if lock is None:
                lock = held.enter_context(sync_lock(target, backend.name, timeout=lock_timeout))
            assert (lock.target, lock.backend) == (target, backend.name)
            sync_state.end_reads(connection)
            interrupted = sync_state.mark_interrupted(connection, backend.name)
            connection.commit()
            if interrupted:
                logger.warning(
                    "%s left by a killed run marked interrupted", plural(interrupted, "run")
                )
            plan = _plan(connection, backend, options, logger)
            report = _report(plan, backend, options, dry_run=False)
            approved, total = _guard(plan, backend, options)
            _apply(plan, backend, report, approved, logger, commit_every, on_progress, total)
    logger.info("%s with %s: %s", options.mode, backend.describe(), _describe(report))
    return report


def _plan(
    connection: Connection, backend: Backend, options: SyncOptions, logger: logging.Logger
) -> Plan:
    plan = make_plan(connection, backend, options)
    if plan.why_full is not None:
        logger.debug("planner read in full: %s", plan.why_full)
    return plan


def _report(plan: Plan, backend: Backend, options: SyncOptions, *, dry_run: bool) -> SyncReport:
    return SyncReport(
        backend=backend.name,
        calendar=backend.describe(),
        mode=options.mode,
        policy=options.policy,
        dry_run=dry_run,
        foreign=plan.foreign,
        duplicates=plan.duplicates,
        untouched=plan.unread,
        log_mark=plan.mark,
    )


def _refusal(
    plan: Plan, removals: Removals, backend: Backend, options: SyncOptions
) -> UnsafeRunError | None:
    return refusal(
        plan.exposure(removals),
        options,
        calendar=backend.describe(),
        keeps_deleted=backend.keeps_deleted,
    )


def _dry_run(
    connection: Connection, backend: Backend, options: SyncOptions, logger: logging.Logger
) -> SyncReport:
    """Plan in one pass: every action counted, the guard asked, nothing written."""
    plan = _plan(connection, backend, options, logger)
    report = _report(plan, backend, options, dry_run=True)
    removals = Removals()
    for batch in plan.batches():
        for action in batch:
            removals.count(action)
            if in_sync(action):
                report.untouched += 1
            else:
                report.add(action)
    refused = _refusal(plan, removals, backend, options)
    if refused is not None:
        report.refusal = refused.message
        report.refusal_override = refused.override
    logger.info("dry run (%s, %s): %s", options.mode, backend.describe(), _describe(report))
    return report


def _guard(plan: Plan, backend: Backend, options: SyncOptions) -> tuple[Removals, int]:
    """The first pass: count what the run would remove (nothing kept), ask the guard.

    Raises UnsafeRunError before any change; returns the removals it approved and
    how many sessions have something to do."""
    removals = Removals()
    to_do = 0
    for batch in plan.batches():
        for action in batch:
            removals.count(action)
            to_do += not in_sync(action)
    refused = _refusal(plan, removals, backend, options)
    if refused is not None:
        raise refused
    return removals, to_do


def _apply(
    plan: Plan,
    backend: Backend,
    report: SyncReport,
    approved: Removals,
    logger: logging.Logger,
    commit_every: int,
    on_progress: Callable[[int, int], None],
    total: int,
) -> None:
    """The second pass: decide a batch, apply it, write its state back; a run that fails
    halfway is logged as interrupted.

    A session that would remove more on one side than the first pass counted (the
    planner changed in between) is an error for this run, never a removal the
    guard did not see."""
    connection, options = plan.connection, plan.options
    backend.prepare()  # only now may a missing calendar be created
    sync_state.end_reads(connection)
    run_id = sync_state.start_run(connection, backend.name, options.mode)
    if options.mode != "sync":  # a push or pull may leave state rows out of step with a side
        cursor.forget(connection, backend.name)
    connection.commit()
    applier = Applier(connection, backend, options, logger)
    removals = Removals()
    number = 0
    try:
        for batch in plan.batches():
            for action in batch:
                if in_sync(action):
                    report.untouched += 1
                    continue
                side = removals.count(action)
                if side is not None and removals.beyond(approved, side):
                    action = replace(
                        action,
                        kind=Kind.ERROR,
                        detail="the planner changed while this run was planned; run sync again",
                    )
                applied = applier.run(action)
                if applied.local is not None:
                    applied.local.release()
                report.add(applied)
                number += 1
                if number % commit_every == 0:
                    applier.write_batch()
                on_progress(number, max(total, number))
        applier.write_batch()
    except BaseException:
        _record_interrupted(connection, run_id)
        raise
    report.remote_writes, report.local_writes = applier.remote_writes, applier.local_writes
    result = "errors" if report.errors else "conflicts" if report.conflicts else "ok"
    sync_state.end_reads(connection)
    sync_state.finish_run(connection, run_id, result, report.run_counts())
    clean = result == "ok" and options.mode == "sync" and report.log_mark is not None
    if clean:
        assert report.log_mark is not None
        cursor.advance(connection, backend.name, options, report.log_mark)
    key = plan.listing_key(sync_state.count_states(connection, backend.name)) if clean else None
    connection.commit()
    if key is not None:
        # after the position is committed: a crash in between leaves the calendar's older
        # key, so the next run lists more than changed, never less
        backend.confirm(key)


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
    target: Target,
    backend: Backend,
    options: SyncOptions,
) -> SyncStatus:
    """Compare both sides without writing: in sync, pending, conflicting; and the last run."""
    options = replace(options, mode="sync", policy="fail")
    report = run_sync(target, backend, options, dry_run=True)
    with _connection(target) as connection:
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
