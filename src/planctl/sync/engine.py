"""The two-way sync engine: plan with vdirsyncer's decision table, then apply.

Every session in scope is looked at on three sides: the planner (L: the
session row), the calendar (R: its listed event, live, CANCELLED or a
tombstone) and the state row (S: what the last run saw). A cancellation is
content (the token CANCELLED), not absence, so it travels both ways and the
state row stays while the event exists. "Changed" compares a side's token
with S: for L a fingerprint of the session's inputs first, the content hash
when that moved; for R the content hash, looked at only when the etag moved.
Before any write, :func:`check_safe` refuses a run built on a view that lost
known events or that would cancel sessions en masse. See docs/sync.md#safety-no-mass-cancellation.

Crash safety: a remote write comes first, then the state row, and state rows
are committed in batches, each after the backend's ``flush()``. A run killed
at any point leaves at worst remote writes without state; the next run finds
those events by session id and, as their content equals the session's, only
records them (no duplicates).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum

from icalendar import Event
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from planctl import __version__
from planctl.calendar.events import session_uid
from planctl.calendar.sessions import SessionFilter, SessionView, iter_sessions
from planctl.calendar.zones import zone_info
from planctl.config import mask_url
from planctl.db.engine import check_sqlite_target, make_engine, parse_url, translate_db_errors
from planctl.db.models import Sesion
from planctl.errors import SyncError, UsageError
from planctl.sync import state as sync_state
from planctl.sync.backend import Backend, EventPayload, RemoteEvent, StaleEtagError
from planctl.sync.content import (
    EventContent,
    UnrepresentableEvent,
    missing_local_time,
    session_changes,
    session_event,
)
from planctl.sync.state import RunRecord, StateRow
from planctl.text import local_moment, plural

MODES = ("sync", "push", "pull")
POLICIES = ("local", "remote", "fail")
MAX_RETRIES = 3
COMMIT_EVERY = 100
# The mass-cancellation guard: a run may cancel at most this many sessions, or
# this share of the sessions it tracks on the backend, whichever is larger.
MASS_CANCEL_MIN = 5
MASS_CANCEL_SHARE = 0.10
# The consistency guard: known events missing from a listing (not even a
# tombstone) beyond this many and this share mean the view is not trustworthy.
VANISHED_MIN = 5
VANISHED_SHARE = 0.5
# What a session's event is made of: every field of the view but its timestamps.
FINGERPRINT_FIELDS = tuple(
    f.name for f in fields(SessionView) if f.name not in ("created_at", "updated_at")
)
CANCELLED = "cancelled"  # the token of a cancelled session or event, whatever its content

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
    _fingerprint: str | None = field(default=None, repr=False)

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

    @property
    def token(self) -> str:
        """The event's content hash, or CANCELLED (builds the event: about a millisecond)."""
        return self.digest if self.active else CANCELLED

    @property
    def fingerprint(self) -> str:
        """A hash of everything the session's event is made from (microseconds, no event built).

        ``~`` marks it apart from the content hashes older state rows hold.
        The planctl version is part of it: a new export format is a change.
        """
        if self._fingerprint is None:
            values = [getattr(self.view, name) for name in FINGERPRINT_FIELDS]
            data = repr((__version__, self.timezone, values)).encode("utf-8")
            self._fingerprint = "~" + hashlib.sha256(data).hexdigest()[:63]
        return self._fingerprint

    @property
    def state_token(self) -> str:
        """What the state row keeps for the planner's side: the fingerprint, or CANCELLED."""
        return self.fingerprint if self.active else CANCELLED

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
    wrote_local: bool = False  # set when applied: the session row really changed
    wrote_remote: bool = False  # set when applied: the calendar really changed
    note: str = ""  # what the user should know (e.g. fields the planner cannot keep)

    @property
    def label(self) -> str:
        """Date, time with its UTC offset, and title, from whichever side has them."""
        if self.local is not None:
            v = self.local.view
            # the wall-clock time as the planner holds it (even one a DST change skips)
            start = dt.datetime.combine(v.fecha, v.hora_inicio, zone_info(self.local.timezone))
            return f"{v.fecha} {v.hora_inicio:%H:%M} {start:%z} {v.formacion} — {v.cliente}"
        if self.remote is not None and self.remote.content is not None:
            c = self.remote.content
            zone = str(getattr(c.start.tzinfo, "key", "UTC"))
            return f"{local_moment(c.start, zone)} {c.summary}"
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
    refusal: str | None = None  # dry run: why the real run would be refused (safety guard)

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

    @property
    def noted(self) -> list[Action]:
        return [a for a in self.actions if a.note]

    def _done(self, kind: Kind, *, remote: bool) -> int:
        """Planned actions of *kind* (dry run), or those that really wrote (a run)."""
        if self.dry_run:
            return self.count(kind)
        if remote:
            return sum(1 for a in self.actions if a.kind is kind and a.wrote_remote) + (
                sum(1 for a in self.actions if a.kind is Kind.UPDATE_LOCAL and a.wrote_remote)
                if kind is Kind.UPDATE_REMOTE
                else 0
            )
        return sum(1 for a in self.actions if a.kind is kind and a.wrote_local)

    def summary(self) -> dict[str, int]:
        """The counts the CLI shows and the run log keeps: what changed on each side."""
        unchanged = self.count(Kind.UNCHANGED, Kind.RECORD, Kind.FORGET)
        if not self.dry_run:  # a phone edit of a field the planner does not keep
            unchanged += sum(
                1
                for a in self.actions
                if a.kind is Kind.UPDATE_LOCAL and not a.wrote_local and not a.wrote_remote
            )
        return {
            "calendar_created": self._done(Kind.CREATE_REMOTE, remote=True),
            "calendar_updated": self._done(Kind.UPDATE_REMOTE, remote=True),
            "calendar_deleted": self._done(Kind.DELETE_REMOTE, remote=True),
            "planner_updated": self._done(Kind.UPDATE_LOCAL, remote=False),
            "planner_cancelled": self._done(Kind.CANCEL_LOCAL, remote=False),
            "unchanged": unchanged,
            "conflicts": self.count(Kind.CONFLICT),
            "pending": self.count(Kind.PENDING),
            "errors": self.count(Kind.ERROR),
        }

    def as_dict(self, *, all_actions: bool = False) -> dict[str, object]:
        """The report for ``--json``: English keys, one entry per session acted on."""
        quiet = (Kind.UNCHANGED, Kind.RECORD, Kind.FORGET)
        return {
            "backend": self.backend,
            "calendar": self.calendar,
            "mode": self.mode,
            "policy": self.policy,
            "dry_run": self.dry_run,
            "summary": self.summary(),
            "actions": [
                {
                    "session": a.session_id,
                    "action": a.kind.name.lower(),
                    "pending": a.then.name.lower() if a.then is not None else None,
                    "reason": a.reason,
                    "detail": a.detail or None,
                    "note": a.note or None,
                }
                for a in self.actions
                if all_actions or a.kind not in quiet or a.note
            ],
            "others": len(self.foreign),
            "duplicates": len(self.duplicates),
            "refused": self.refusal,
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
    allow_mass_cancel: bool = False

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


def remote_token(remote: RemoteEvent) -> str:
    """The content hash of a listed event, or CANCELLED for a tombstone or a CANCELLED event."""
    if remote.deleted:
        return CANCELLED
    assert remote.content is not None, "events are loaded before deciding"
    return CANCELLED if remote.content.cancelled else remote.content.digest()


def _unmoved(remote: RemoteEvent, saved: StateRow | None) -> bool:
    """Whether the event is the one the state row saw, with the same etag."""
    return (
        saved is not None
        and remote.etag is not None
        and remote.etag == saved.etag
        and remote.id == saved.remote_id
    )


def _token(remote: RemoteEvent, saved: StateRow | None) -> str:
    """The token of *remote*; an unloaded event whose etag did not move has the saved one."""
    if not remote.loaded and _unmoved(remote, saved):
        assert saved is not None
        return saved.hash_remote
    return remote_token(remote)


def _remote_changed(remote: RemoteEvent, saved: StateRow) -> bool:
    return not _unmoved(remote, saved) and _token(remote, saved) != saved.hash_remote


def _local_changed(local: LocalItem, saved: StateRow) -> bool:
    """Whether the session differs from what the last run synced.

    The fingerprint answers for the untouched majority without building an
    event. When it differs (the row was touched, an older state row, a new
    planctl), the content hash decides: equal to what was synced is no change.
    """
    cheap = local.state_token
    if cheap == saved.hash_local:
        return False
    if CANCELLED in (cheap, saved.hash_local):
        return True
    return local.token not in (saved.hash_local, saved.hash_remote)


def decide(
    session_id: int,
    local: LocalItem | None,
    remote: RemoteEvent | None,
    saved: StateRow | None,
    policy: str,
) -> Action:
    """The action for one session: vdirsyncer's two-way table plus planctl's rules.

    *local* is None when the session row does not exist, *remote* when the
    calendar lists no event for it at all. A cancelled session and a cancelled
    (or deleted, tombstoned) event both exist, with the token CANCELLED: a
    cancellation is a change like any other and travels both ways.
    """

    def act(kind: Kind, reason: str) -> Action:
        return Action(kind, session_id, reason, local, remote, saved)

    def resolve(reason: str, *, local_wins: Kind, remote_wins: Kind) -> Action:
        chosen = {"local": local_wins, "remote": remote_wins, "fail": Kind.CONFLICT}[policy]
        return act(chosen, f"{reason}; policy {policy}")

    local_cancelled = local is None or not local.active
    remote_token_ = _token(remote, saved) if remote is not None else None
    # what writing each side's version onto the other means
    push = Kind.DELETE_REMOTE if local_cancelled else Kind.UPDATE_REMOTE
    pull = Kind.CANCEL_LOCAL if remote_token_ == CANCELLED else Kind.UPDATE_LOCAL

    if saved is None:
        if local is None:
            if remote_token_ not in (None, CANCELLED):
                return act(Kind.ORPHAN, "planctl event this planner never synced")
            return act(Kind.UNCHANGED, "nothing to sync")
        if remote is None:
            if local_cancelled:
                return act(Kind.UNCHANGED, "nothing to sync")
            return act(Kind.CREATE_REMOTE, "new session")
        # on both sides without state: a run killed before it saved, or a lost state
        if local.token == remote_token_:
            return act(Kind.RECORD, "already on the calendar")
        return resolve("on both sides, never synced, different", local_wins=push, remote_wins=pull)

    if local is None:  # the session row was deleted from the planner
        if remote_token_ in (None, CANCELLED):
            return act(Kind.FORGET, "gone on both sides")
        assert remote is not None
        if not _remote_changed(remote, saved):
            return act(Kind.DELETE_REMOTE, "deleted in planner")
        return resolve(
            "deleted in planner, changed on calendar",
            local_wins=Kind.DELETE_REMOTE,
            remote_wins=Kind.FORGET,
        )

    local_changed = _local_changed(local, saved)
    if remote is None:  # the event is gone altogether (not even a tombstone)
        if local_cancelled:
            return act(Kind.FORGET, "cancelled in planner, gone from the calendar")
        if not local_changed:
            return act(Kind.CANCEL_LOCAL, "deleted on calendar")
        return resolve(
            "deleted on calendar, changed in planner",
            local_wins=Kind.CREATE_REMOTE,
            remote_wins=Kind.CANCEL_LOCAL,
        )

    remote_changed = _remote_changed(remote, saved)
    if not local_changed and not remote_changed:
        if remote.etag != saved.etag or remote.id != saved.remote_id:
            return act(Kind.RECORD, "etag moved, same content")
        if local.state_token != saved.hash_local:
            return act(Kind.RECORD, "session row touched, same content")
        return act(Kind.UNCHANGED, "in sync")
    if local_changed and not remote_changed:
        if local_cancelled:
            return act(push, "cancelled in planner")
        return act(push, "changed in planner")
    if remote_changed and not local_changed:
        if remote_token_ == CANCELLED:
            return act(pull, "cancelled or deleted on calendar")
        return act(pull, "changed on calendar")
    if local.token == remote_token_:
        return act(Kind.RECORD, "changed alike on both sides")
    return resolve("changed on both sides", local_wins=push, remote_wins=pull)


def _directional(action: Action, mode: str) -> Action:
    """push/pull: work for the other direction is reported, not done."""
    if (mode == "push" and action.kind in LOCAL_WRITES) or (
        mode == "pull" and action.kind in REMOTE_WRITES
    ):
        return replace(action, kind=Kind.PENDING, then=action.kind)
    return action


def _precheck(action: Action, timezone: str, *, for_planner: bool = True) -> Action:
    """A change the other side cannot hold is an error in the plan already."""
    if action.kind in (Kind.CREATE_REMOTE, Kind.UPDATE_REMOTE) and action.local is not None:
        view = action.local.view
        for what, time in (("starts", view.hora_inicio), ("ends", view.hora_fin)):
            if missing_local_time(view.fecha, time, timezone):
                return replace(
                    action,
                    kind=Kind.ERROR,
                    detail=f"the session {what} at {view.fecha} {time:%H:%M}, a time that does "
                    f"not exist in {timezone} (the clocks go forward); fix it in the planner",
                )
    if for_planner and action.kind is Kind.UPDATE_LOCAL and action.local and action.remote:
        assert action.remote.content is not None
        try:
            session_changes(action.local.view, action.remote.content, timezone)
        except UnrepresentableEvent as error:
            return replace(action, kind=Kind.ERROR, detail=str(error))
    return action


def _finalise(action: Action, options: SyncOptions) -> Action:
    """Check what the run will do for real, and turn the other direction's work into PENDING."""
    # a push never writes the planner: what it cannot hold is a pull's problem
    action = _precheck(action, options.timezone, for_planner=options.mode != "push")
    return _directional(action, options.mode)


# -- planning ---------------------------------------------------------------


@dataclass
class Plan:
    actions: list[Action]
    foreign: list[RemoteEvent]
    duplicates: list[RemoteEvent]
    tracked: int = 0  # state rows of this backend
    vanished: int = 0  # of those, events the listing does not show at all


class UnsafeRunError(SyncError):
    """A run would cancel sessions en masse, or the calendar's listing is not trustworthy."""


def check_safe(plan: Plan, calendar: str, *, keeps_deleted: bool) -> None:
    """Refuse, before any change, a run built on a view that lost most known events
    or that would cancel more than a small share of the tracked sessions."""
    hint = (
        "nothing was changed; check the calendar and PLANCTL_SYNC_STORE "
        "(planctl sync --dry-run lists the sessions); if this is intended, "
        "run again with --allow-mass-cancel"
    )
    vanished, tracked = plan.vanished, plan.tracked
    too_many_gone = vanished > 0 and (
        vanished == tracked
        or (keeps_deleted and vanished > 0)
        or (vanished >= VANISHED_MIN and vanished > VANISHED_SHARE * tracked)
    )
    if too_many_gone:
        raise UnsafeRunError(
            f"{calendar} does not list {vanished:,} of the {plural(tracked, 'event')} "
            "planctl synced to it (not even as deleted): it looks missing, replaced or unreadable",
            hint,
        )
    cancels = sum(
        1
        for a in plan.actions
        if a.kind is Kind.CANCEL_LOCAL and a.local is not None and a.local.active
    )
    limit = max(MASS_CANCEL_MIN, int(MASS_CANCEL_SHARE * tracked))
    if cancels > limit:
        raise UnsafeRunError(
            f"this run would cancel {cancels:,} of the {tracked:,} synced sessions at once "
            f"(events deleted or cancelled on {calendar}; the limit is {limit:,})",
            hint,
        )


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
) -> tuple[dict[int, RemoteEvent], list[RemoteEvent], list[RemoteEvent], int]:
    """The calendar's events by session id, plus others' events and duplicates.

    Only events whose content is needed are loaded: unknown ones (to read
    their identity) and those whose etag moved since the last run. The last
    value is how many tracked events the listing lacks altogether.
    """
    by_remote_id = {s.remote_id: s for s in states.values()}
    events = backend.list()
    listed = {e.id for e in events}
    vanished = sum(1 for remote_id in by_remote_id if remote_id not in listed)
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
    return by_session, foreign, duplicates, vanished


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
    remote, foreign, duplicates, vanished = remote_index(backend, states)
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
        actions.append(_finalise(action, options))
    return Plan(actions, foreign, duplicates, tracked=len(states), vanished=vanished)


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
        # A backend one process holds at a time (the simulated store's lock): no
        # other run can add a state row between planning and saving.
        self.fresh_rows = bool(getattr(backend, "exclusive", False))

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
                local = reread(self.connection, action.session_id, self.options.timezone)
                retried = decide(action.session_id, local, fresh, action.state, self.options.policy)
                retried.wrote_local = action.wrote_local
                action = _finalise(retried, self.options)
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
            new=action.state is None and self.fresh_rows,  # planning read no row
        )

    def _forget(self, action: Action) -> None:
        sync_state.delete_state(self.connection, self.backend.name, action.session_id)

    def _wrote_remote(self, action: Action, what: str, event_id: str) -> None:
        action.wrote_remote = True
        self.remote_writes += 1
        self.log.info(
            "session %d: %s event %s (%s)", action.session_id, what, event_id, action.reason
        )

    def apply(self, action: Action) -> None:
        kind, sid, local, remote = action.kind, action.session_id, action.local, action.remote
        if kind is Kind.CREATE_REMOTE:
            assert local is not None
            created = self.backend.create(local.payload())
            self._wrote_remote(action, "created", created.id)
            self._save(action, created, local.state_token, local.token)
        elif kind is Kind.UPDATE_REMOTE:
            assert local is not None and remote is not None
            updated = self.backend.update(remote.id, local.payload(), remote.etag)
            self._wrote_remote(action, "updated", remote.id)
            self._save(action, updated, local.state_token, local.token)
        elif kind is Kind.DELETE_REMOTE:
            assert remote is not None
            self.backend.delete(remote.id, remote.etag)
            self._wrote_remote(action, "deleted", remote.id)
            self._after_delete(action, remote)
        elif kind is Kind.UPDATE_LOCAL:
            self._update_local(action)
        elif kind is Kind.CANCEL_LOCAL:
            assert local is not None
            if local.active:
                self.connection.execute(
                    update(Sesion).where(Sesion.id == sid).values(estado="cancelada")
                )
                action.wrote_local = True
                self.local_writes += 1
            self.log.info("session %d: cancelled (%s)", sid, action.reason)
            if remote is not None:  # the event still exists, cancelled: it stays tracked
                self._save(action, remote, CANCELLED, CANCELLED)
            else:
                self._forget(action)
        elif kind is Kind.RECORD:
            assert local is not None and remote is not None
            self._save(action, remote, local.state_token, _token(remote, action.state))
        elif kind is Kind.FORGET:
            self._forget(action)
        elif kind is Kind.CONFLICT:
            self.log.warning("session %d: conflict, left as it is (%s)", sid, action.reason)
        elif kind is Kind.ERROR:
            self.log.error("session %d: %s", sid, action.detail)

    def _after_delete(self, action: Action, remote: RemoteEvent) -> None:
        """Keep tracking a cancelled session while its event exists (a tombstone)."""
        if action.local is None or not getattr(self.backend, "keeps_deleted", False):
            self._forget(action)
            return
        tombstone = self.backend.get([remote.id]).get(remote.id)
        if tombstone is None:
            self._forget(action)
        else:
            self._save(action, tombstone, CANCELLED, CANCELLED)

    def _update_local(self, action: Action) -> None:
        """Copy the event into the session; rewrite on the calendar what the planner cannot keep."""
        sid, local, remote = action.session_id, action.local, action.remote
        assert local is not None and remote is not None and remote.content is not None
        changes = session_changes(local.view, remote.content, self.options.timezone)
        if changes:
            self.connection.execute(update(Sesion).where(Sesion.id == sid).values(changes))
            action.wrote_local = True
            self.local_writes += 1
        self.log.info(
            "session %d: updated from event %s: %s (%s)",
            sid,
            remote.id,
            ", ".join(f"{k}={v}" for k, v in changes.items()) or "nothing the planner keeps",
            action.reason,
        )
        fresh = reread(self.connection, sid, self.options.timezone)
        assert fresh is not None
        theirs = remote_token(remote)
        if fresh.token == theirs:
            self._save(action, remote, fresh.state_token, theirs)
            return
        # The calendar shows something the planner will not export (a title, a
        # cleared place that falls back to the contract's address, …).
        fields = differing_fields(fresh.content, remote.content)
        action.note = f"the calendar's {', '.join(fields)} cannot be kept by the planner; " + (
            "the event was rewritten from the planner"
            if self.options.mode != "pull"
            else "push or sync will rewrite the event from the planner"
        )
        if self.options.mode == "pull":
            # remember the calendar's version as the planner's last one: the next
            # push or sync sees a planner change and rewrites the event
            self._save(action, remote, theirs, theirs)
            return
        updated = self.backend.update(remote.id, fresh.payload(), remote.etag)
        self._wrote_remote(action, "rewrote", remote.id)
        self._save(action, updated, fresh.state_token, fresh.token)


def differing_fields(ours: EventContent, theirs: EventContent) -> list[str]:
    """The names of the synced fields in which two contents differ."""
    names = (
        "start", "end", "summary", "location", "description", "status", "url", "categories",
        "recurring",
    )  # fmt: skip
    return [n for n in names if getattr(ours, n) != getattr(theirs, n)] or ["content"]


def reread(connection: Connection, session_id: int, timezone: str) -> LocalItem | None:
    """The session as it is now in the database (None when its row is gone)."""
    views = list(iter_sessions(connection, SessionFilter(session_ids=[session_id])))
    return LocalItem(views[0], timezone) if views else None


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
    on_progress: Callable[[int, int], None] = lambda done, total: None,
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
        if not options.allow_mass_cancel:
            try:
                check_safe(
                    plan, backend.describe(), keeps_deleted=getattr(backend, "keeps_deleted", False)
                )
            except UnsafeRunError as refused:
                if not dry_run:
                    raise
                report.refusal = refused.message
        if dry_run:
            logger.info("dry run (%s, %s): %s", options.mode, backend.describe(), _describe(report))
            return report
        run_id = sync_state.start_run(connection, backend.name, options.mode)
        connection.commit()
        applier = _Applier(connection, backend, options, logger)
        done = []
        total = len(plan.actions)
        for number, action in enumerate(plan.actions, 1):
            done.append(applier.run(action))
            if number % commit_every == 0:
                _commit(connection, backend)
            on_progress(number, total)
        report.actions = done
        report.remote_writes, report.local_writes = applier.remote_writes, applier.local_writes
        result = "errores" if report.errors else "conflictos" if report.conflicts else "ok"
        sync_state.finish_run(connection, run_id, result, report.run_counts())
        _commit(connection, backend)
    logger.info("%s with %s: %s", options.mode, backend.describe(), _describe(report))
    return report


def _commit(connection: Connection, backend: Backend) -> None:
    """Commit state rows only after the calendar writes they name are durable."""
    flush = getattr(backend, "flush", None)
    if flush is not None:
        flush()
    connection.commit()


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
                "result": RESULT_NAMES.get(last.result, last.result),
                "counts": {COUNT_NAMES[k]: v for k, v in last.counts.items()},
            },
            "refused": self.report.refusal,
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


# The run log's Spanish columns and results, as JSON output names them (English).
COUNT_NAMES = {
    "creados": "created",
    "actualizados": "updated",
    "eliminados": "deleted",
    "sin_cambios": "unchanged",
    "conflictos": "conflicts",
    "errores": "errors",
}
RESULT_NAMES = {"ok": "ok", "errores": "errors", "conflictos": "conflicts", "en_curso": "running"}


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
