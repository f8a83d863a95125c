"""The two-way sync engine: plan with vdirsyncer's decision table, then apply.

Every session in scope is looked at on three sides: the planner (L: the
session, *present* unless missing or ``cancelada``), the calendar (R: its
event, *present* unless missing, a tombstone or CANCELLED) and the state row
(S: what the last run saw). "Changed" means the content hash differs from the
one in S (for R only looked at when the etag moved). See docs/sync.md.

Crash safety: a remote write comes first, then the state row, and state rows
are committed in batches. A run killed at any point leaves at worst remote
writes without state; the next run finds those events by session id and, as
their content equals the session's, only records them (no duplicates).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum

from icalendar import Event
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from planctl.config import mask_url
from planctl.db.engine import check_sqlite_target, make_engine, parse_url, translate_db_errors
from planctl.db.models import Sesion
from planctl.errors import UsageError
from planctl.export.ical import session_uid, zone_info
from planctl.export.sessions import SessionFilter, SessionView, iter_sessions
from planctl.sync import state as sync_state
from planctl.sync.backend import Backend, EventPayload, RemoteEvent, StaleEtagError
from planctl.sync.content import (
    EventContent,
    UnrepresentableEvent,
    session_changes,
    session_event,
)
from planctl.sync.state import RunRecord, StateRow

MODES = ("sync", "push", "pull")
POLICIES = ("local", "remote", "fail")
MAX_RETRIES = 3
COMMIT_EVERY = 100

log = logging.getLogger("planctl.sync")


class Kind(StrEnum):
    """What the engine does (or would do) for one session."""

    CREATE_REMOTE = "create on calendar"
    UPDATE_REMOTE = "update on calendar"
    DELETE_REMOTE = "delete on calendar"
    UPDATE_LOCAL = "update in planner"
    CANCEL_LOCAL = "cancel in planner"
    RECORD = "record (already equal)"
    FORGET = "forget (gone on both sides)"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    PENDING = "pending (other direction)"
    ORPHAN = "left alone (not in this planner's state)"
    ERROR = "error"


REMOTE_WRITES = {Kind.CREATE_REMOTE, Kind.UPDATE_REMOTE, Kind.DELETE_REMOTE}
LOCAL_WRITES = {Kind.UPDATE_LOCAL, Kind.CANCEL_LOCAL}
WRITES = REMOTE_WRITES | LOCAL_WRITES


@dataclass
class LocalItem:
    """A session in scope; its event and hash are computed once, when active."""

    view: SessionView
    timezone: str
    _event: tuple[Event, EventContent] | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.view.estado != "cancelada"

    def _built(self) -> tuple[Event, EventContent]:
        if self._event is None:
            self._event = session_event(self.view, self.timezone)
        return self._event

    @property
    def content(self) -> EventContent:
        return self._built()[1]

    @property
    def digest(self) -> str:
        return self.content.digest()

    def payload(self) -> EventPayload:
        event, content = self._built()
        return EventPayload(
            session_id=self.view.id,
            uid=session_uid(self.view.id),
            content=content,
            vevent=event,
            timezone=self.timezone,
        )


@dataclass
class Action:
    """One row of the plan: the decision for one session, and why."""

    kind: Kind
    session_id: int
    reason: str
    local: LocalItem | None = None
    remote: RemoteEvent | None = None
    state: StateRow | None = None
    then: Kind | None = None  # PENDING: what the other direction would do
    detail: str = ""

    @property
    def label(self) -> str:
        """Date, time and title, from whichever side has them."""
        if self.local is not None:
            v = self.local.view
            return f"{v.fecha} {v.hora_inicio:%H:%M} {v.formacion} — {v.cliente}"
        if self.remote is not None and self.remote.content is not None:
            c = self.remote.content
            return f"{c.start:%Y-%m-%d %H:%M} {c.summary}"
        return f"sesión {self.session_id}"


@dataclass
class SyncReport:
    """The plan (dry run) or what was done, with the calendar's other events."""

    backend: str
    calendar: str
    mode: str
    policy: str
    dry_run: bool
    actions: list[Action]
    foreign: list[RemoteEvent] = field(default_factory=list)
    duplicates: list[RemoteEvent] = field(default_factory=list)
    remote_writes: int = 0
    local_writes: int = 0

    def count(self, *kinds: Kind) -> int:
        return sum(1 for a in self.actions if a.kind in kinds)

    @property
    def conflicts(self) -> list[Action]:
        return [a for a in self.actions if a.kind is Kind.CONFLICT]

    @property
    def errors(self) -> list[Action]:
        return [a for a in self.actions if a.kind is Kind.ERROR]

    @property
    def orphans(self) -> list[Action]:
        return [a for a in self.actions if a.kind is Kind.ORPHAN]

    def summary(self) -> dict[str, int]:
        """The counts the CLI shows and the run log keeps."""
        return {
            "calendar_created": self.count(Kind.CREATE_REMOTE),
            "calendar_updated": self.count(Kind.UPDATE_REMOTE),
            "calendar_deleted": self.count(Kind.DELETE_REMOTE),
            "planner_updated": self.count(Kind.UPDATE_LOCAL),
            "planner_cancelled": self.count(Kind.CANCEL_LOCAL),
            "unchanged": self.count(Kind.UNCHANGED, Kind.RECORD),
            "conflicts": self.count(Kind.CONFLICT),
            "pending": self.count(Kind.PENDING),
            "errors": self.count(Kind.ERROR),
        }

    def run_counts(self) -> dict[str, int]:
        s = self.summary()
        return {
            "creados": s["calendar_created"],
            "actualizados": s["calendar_updated"] + s["planner_updated"],
            "eliminados": s["calendar_deleted"] + s["planner_cancelled"],
            "sin_cambios": s["unchanged"],
            "conflictos": s["conflicts"],
            "errores": s["errors"],
        }


@dataclass(frozen=True)
class SyncOptions:
    timezone: str
    mode: str = "sync"
    policy: str = "local"
    since: dt.date | None = None
    until: dt.date | None = None

    def check(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown sync mode '{self.mode}'", f"use one of {', '.join(MODES)}")
        if self.policy not in POLICIES:
            raise UsageError(
                f"unknown conflict policy '{self.policy}'", f"use one of {', '.join(POLICIES)}"
            )
        if self.since and self.until and self.since > self.until:
            raise UsageError(f"--since {self.since} is after --until {self.until}")
        zone_info(self.timezone)


# -- the decision table ---------------------------------------------------------


def _present_remote(remote: RemoteEvent | None) -> RemoteEvent | None:
    if remote is None or remote.deleted:
        return None
    if remote.content is not None and remote.content.cancelled:
        return None
    return remote


def _remote_changed(remote: RemoteEvent, saved: StateRow) -> bool:
    if remote.etag is not None and remote.etag == saved.etag:
        return False
    assert remote.content is not None, "changed etags are loaded before deciding"
    return remote.content.digest() != saved.hash_remote


def decide(
    session_id: int,
    local: LocalItem | None,
    remote: RemoteEvent | None,
    saved: StateRow | None,
    policy: str,
) -> Action:
    """The action for one session: vdirsyncer's two-way table plus planctl's rules."""
    live_local = local if local is not None and local.active else None
    live_remote = _present_remote(remote)

    def act(kind: Kind, reason: str) -> Action:
        return Action(kind, session_id, reason, local, remote, saved)

    def resolve(reason: str, *, local_wins: Kind, remote_wins: Kind) -> Action:
        chosen = {"local": local_wins, "remote": remote_wins, "fail": Kind.CONFLICT}[policy]
        return act(chosen, f"{reason}; policy {policy}")

    if saved is None:
        if live_local and live_remote:  # e.g. a run killed before it saved its state
            assert live_remote.content is not None
            if live_local.digest == live_remote.content.digest():
                return act(Kind.RECORD, "already on the calendar")
            return resolve(
                "on both sides, never synced, different",
                local_wins=Kind.UPDATE_REMOTE,
                remote_wins=Kind.UPDATE_LOCAL,
            )
        if live_local:
            return act(Kind.CREATE_REMOTE, "new session")
        if live_remote:
            return act(Kind.ORPHAN, "planctl event this planner never synced")
        return act(Kind.UNCHANGED, "nothing to sync")

    local_changed = live_local is not None and live_local.digest != saved.hash_local
    if live_local and live_remote:
        remote_changed = _remote_changed(live_remote, saved)
        if not local_changed and not remote_changed:
            if live_remote.etag != saved.etag or live_remote.id != saved.remote_id:
                return act(Kind.RECORD, "etag moved, same content")
            return act(Kind.UNCHANGED, "in sync")
        if local_changed and not remote_changed:
            return act(Kind.UPDATE_REMOTE, "changed in planner")
        if remote_changed and not local_changed:
            return act(Kind.UPDATE_LOCAL, "changed on calendar")
        assert live_remote.content is not None
        if live_local.digest == live_remote.content.digest():
            return act(Kind.RECORD, "changed alike on both sides")
        return resolve(
            "changed on both sides", local_wins=Kind.UPDATE_REMOTE, remote_wins=Kind.UPDATE_LOCAL
        )
    if live_local:  # the event is gone
        if not local_changed:
            return act(Kind.CANCEL_LOCAL, "deleted on calendar")
        return resolve(
            "deleted on calendar, changed in planner",
            local_wins=Kind.CREATE_REMOTE,
            remote_wins=Kind.CANCEL_LOCAL,
        )
    if live_remote:  # the session is gone or cancelled
        if not _remote_changed(live_remote, saved):
            return act(Kind.DELETE_REMOTE, "deleted or cancelled in planner")
        return resolve(
            "deleted or cancelled in planner, changed on calendar",
            local_wins=Kind.DELETE_REMOTE,
            remote_wins=Kind.UPDATE_LOCAL if local is not None else Kind.FORGET,
        )
    return act(Kind.FORGET, "gone on both sides")


def _directional(action: Action, mode: str) -> Action:
    """push/pull: work for the other direction is reported, not done."""
    if (mode == "push" and action.kind in LOCAL_WRITES) or (
        mode == "pull" and action.kind in REMOTE_WRITES
    ):
        return replace(action, kind=Kind.PENDING, then=action.kind)
    return action


def _precheck(action: Action, timezone: str) -> Action:
    """A remote change the planner cannot hold is an error in the plan already."""
    if action.kind is Kind.UPDATE_LOCAL and action.local and action.remote:
        assert action.remote.content is not None
        try:
            session_changes(action.local.view, action.remote.content, timezone)
        except UnrepresentableEvent as error:
            return replace(action, kind=Kind.ERROR, detail=str(error))
    return action


# -- planning ---------------------------------------------------------------


@dataclass
class Plan:
    actions: list[Action]
    foreign: list[RemoteEvent]
    duplicates: list[RemoteEvent]


def _pick(current: RemoteEvent | None, candidate: RemoteEvent, saved: StateRow | None) -> bool:
    """Whether *candidate* should replace *current* as the session's event."""
    if current is None:
        return True
    if saved is not None and current.id == saved.remote_id:
        return False
    if saved is not None and candidate.id == saved.remote_id:
        return True
    return current.deleted and not candidate.deleted


def remote_index(
    backend: Backend, states: dict[int, StateRow]
) -> tuple[dict[int, RemoteEvent], list[RemoteEvent], list[RemoteEvent]]:
    """The calendar's events by session id, plus others' events and duplicates.

    Only events whose content is needed are loaded: unknown ones (to read
    their identity) and those whose etag moved since the last run.
    """
    by_remote_id = {s.remote_id: s for s in states.values()}
    events = backend.list()
    wanted = [
        e.id
        for e in events
        if not e.loaded
        and (e.id not in by_remote_id or e.etag is None or by_remote_id[e.id].etag != e.etag)
    ]
    if wanted:
        loaded = backend.get(wanted)
        events = [loaded.get(e.id, e) for e in events]
    by_session: dict[int, RemoteEvent] = {}
    foreign: list[RemoteEvent] = []
    duplicates: list[RemoteEvent] = []
    for event in events:
        known = by_remote_id.get(event.id)
        session_id = known.session_id if known is not None else event.session_id
        if session_id is None:
            if not event.deleted:
                foreign.append(event)
            continue
        current = by_session.get(session_id)
        if _pick(current, event, states.get(session_id)):
            if current is not None and not current.deleted:
                duplicates.append(current)
            by_session[session_id] = event
        elif not event.deleted:
            duplicates.append(event)
    return by_session, foreign, duplicates


def _out_of_range(connection: Connection, ids: Sequence[int]) -> set[int]:
    """Which of *ids* are sessions that exist (outside the requested dates)."""
    found: set[int] = set()
    chunk = 500
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        found.update(connection.execute(select(Sesion.id).where(Sesion.id.in_(part))).scalars())
    return found


def make_plan(connection: Connection, backend: Backend, options: SyncOptions) -> Plan:
    """Decide, without writing anything, what a run would do for every session in scope."""
    states = sync_state.load_states(connection, backend.name)
    filters = SessionFilter(since=options.since, until=options.until, include_cancelled=True)
    local = {v.id: LocalItem(v, options.timezone) for v in iter_sessions(connection, filters)}
    remote, foreign, duplicates = remote_index(backend, states)
    ids = set(local) | set(states) | set(remote)
    if options.since is not None or options.until is not None:
        elsewhere = _out_of_range(connection, sorted(ids - set(local)))
        ids -= elsewhere  # sessions outside --since/--until are not looked at
    actions = []
    for session_id in sorted(ids):
        action = decide(
            session_id,
            local.get(session_id),
            remote.get(session_id),
            states.get(session_id),
            options.policy,
        )
        if action.kind is Kind.UNCHANGED and action.state is None:
            continue  # nothing on any side (a cancelled session never synced)
        actions.append(_directional(_precheck(action, options.timezone), options.mode))
    return Plan(actions, foreign, duplicates)


# -- applying ---------------------------------------------------------------


class _Applier:
    def __init__(
        self, connection: Connection, backend: Backend, options: SyncOptions, logger: logging.Logger
    ) -> None:
        self.connection = connection
        self.backend = backend
        self.options = options
        self.log = logger
        self.remote_writes = 0
        self.local_writes = 0

    def run(self, action: Action) -> Action:
        for attempt in range(MAX_RETRIES + 1):
            try:
                self.apply(action)
                return action
            except StaleEtagError as error:
                self.log.info(
                    "session %d: %s; re-reading the event (attempt %d)",
                    action.session_id,
                    error,
                    attempt + 1,
                )
                if action.remote is None or attempt == MAX_RETRIES:
                    return replace(
                        action,
                        kind=Kind.ERROR,
                        detail=f"the event kept changing on the calendar ({error}); run sync again",
                    )
                fresh = self.backend.get([action.remote.id]).get(action.remote.id)
                action = decide(
                    action.session_id, action.local, fresh, action.state, self.options.policy
                )
                action = _directional(_precheck(action, self.options.timezone), self.options.mode)
        raise AssertionError("unreachable")

    def _save(self, action: Action, remote: RemoteEvent, hash_local: str, hash_remote: str) -> None:
        sync_state.save_state(
            self.connection,
            self.backend.name,
            action.session_id,
            remote_id=remote.id,
            etag=remote.etag,
            hash_local=hash_local,
            hash_remote=hash_remote,
        )

    def _forget(self, action: Action) -> None:
        sync_state.delete_state(self.connection, self.backend.name, action.session_id)

    def apply(self, action: Action) -> None:
        kind, sid, local, remote = action.kind, action.session_id, action.local, action.remote
        if kind is Kind.CREATE_REMOTE:
            assert local is not None
            created = self.backend.create(local.payload())
            self.remote_writes += 1
            self.log.info("session %d: created event %s (%s)", sid, created.id, action.reason)
            self._save(action, created, local.digest, local.digest)
        elif kind is Kind.UPDATE_REMOTE:
            assert local is not None and remote is not None
            updated = self.backend.update(remote.id, local.payload(), remote.etag)
            self.remote_writes += 1
            self.log.info("session %d: updated event %s (%s)", sid, remote.id, action.reason)
            self._save(action, updated, local.digest, local.digest)
        elif kind is Kind.DELETE_REMOTE:
            assert remote is not None
            self.backend.delete(remote.id, remote.etag)
            self.remote_writes += 1
            self.log.info("session %d: deleted event %s (%s)", sid, remote.id, action.reason)
            self._forget(action)
        elif kind is Kind.UPDATE_LOCAL:
            assert local is not None and remote is not None and remote.content is not None
            changes = session_changes(local.view, remote.content, self.options.timezone)
            if changes:
                self.connection.execute(update(Sesion).where(Sesion.id == sid).values(changes))
                self.local_writes += 1
            fresh = reread(self.connection, sid, self.options.timezone)
            self.log.info(
                "session %d: updated from event %s: %s (%s)",
                sid,
                remote.id,
                ", ".join(f"{k}={v}" for k, v in changes.items()) or "nothing the planner keeps",
                action.reason,
            )
            self._save(action, remote, fresh.digest, remote.content.digest())
        elif kind is Kind.CANCEL_LOCAL:
            self.connection.execute(
                update(Sesion).where(Sesion.id == sid).values(estado="cancelada")
            )
            self.local_writes += 1
            self.log.info("session %d: cancelled, its event was deleted (%s)", sid, action.reason)
            self._forget(action)
        elif kind is Kind.RECORD:
            assert local is not None and remote is not None and remote.content is not None
            self._save(action, remote, local.digest, remote.content.digest())
        elif kind is Kind.FORGET:
            self._forget(action)
        elif kind is Kind.CONFLICT:
            self.log.warning("session %d: conflict, left as it is (%s)", sid, action.reason)
        elif kind is Kind.ERROR:
            self.log.error("session %d: %s", sid, action.detail)


def reread(connection: Connection, session_id: int, timezone: str) -> LocalItem:
    views = list(iter_sessions(connection, SessionFilter(session_ids=[session_id])))
    assert len(views) == 1
    return LocalItem(views[0], timezone)


# -- entry points -----------------------------------------------------------


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
) -> SyncReport:
    """Sync (or with *dry_run*, only plan) the sessions in scope with *backend*.

    Conflicts under policy ``fail`` and per-session errors are in the report
    (the CLI turns them into exit 1); everything else that goes wrong raises.
    """
    options.check()
    logger = logger or log
    with _connection(database_url) as connection:
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
        )
        connection.rollback()  # planning only read
        if dry_run:
            logger.info("dry run (%s, %s): %s", options.mode, backend.describe(), _describe(report))
            return report
        run_id = sync_state.start_run(connection, backend.name, options.mode)
        connection.commit()
        applier = _Applier(connection, backend, options, logger)
        done = []
        for number, action in enumerate(plan.actions, 1):
            done.append(applier.run(action))
            if number % commit_every == 0:
                connection.commit()
        report.actions = done
        report.remote_writes, report.local_writes = applier.remote_writes, applier.local_writes
        result = "errores" if report.errors else "conflictos" if report.conflicts else "ok"
        sync_state.finish_run(connection, run_id, result, report.run_counts())
        connection.commit()
    logger.info("%s with %s: %s", options.mode, backend.describe(), _describe(report))
    return report


def _describe(report: SyncReport) -> str:
    return ", ".join(f"{k} {v}" for k, v in report.summary().items() if v) or "nothing to do"


@dataclass
class SyncStatus:
    """``planctl sync status``: how the planner and the calendar compare right now."""

    backend: str
    calendar: str
    in_sync: int
    pending: int
    conflicting: int
    errors: int
    last_run: RunRecord | None
    report: SyncReport

    def as_dict(self) -> dict[str, object]:
        last = self.last_run
        return {
            "backend": self.backend,
            "calendar": self.calendar,
            "in_sync": self.in_sync,
            "pending": self.pending,
            "conflicting": self.conflicting,
            "errors": self.errors,
            "last_run": None
            if last is None
            else {
                "mode": last.mode,
                "started": _iso(last.started),
                "finished": _iso(last.finished),
                "result": last.result,
                "counts": dict(last.counts),
            },
            "pending_sessions": [
                {"session": a.session_id, "action": str(a.kind), "reason": a.reason}
                for a in self.report.actions
                if a.kind in WRITES
            ],
            "conflicts": [
                {"session": a.session_id, "reason": a.reason} for a in self.report.conflicts
            ],
            "others": [
                {
                    "id": e.id,
                    "summary": e.content.summary if e.content else None,
                    "start": _iso(e.content.start) if e.content else None,
                }
                for e in self.report.foreign
            ],
            "orphans": [
                {"session": a.session_id, "id": a.remote.id if a.remote else None}
                for a in self.report.orphans
            ],
            "duplicates": [{"session": e.session_id, "id": e.id} for e in self.report.duplicates],
        }


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


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
        in_sync=tally[Kind.UNCHANGED] + tally[Kind.RECORD],
        pending=sum(tally[k] for k in WRITES),
        conflicting=tally[Kind.CONFLICT],
        errors=tally[Kind.ERROR],
        last_run=last,
        report=report,
    )
