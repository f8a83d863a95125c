"""Planning: read both sides and the state, and decide every session without writing."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from planctl.calendar.sessions import SessionFilter, iter_sessions
from planctl.db.schema import sesiones
from planctl.sync import cursor
from planctl.sync import state as sync_state
from planctl.sync.backend import Backend, Listing, RemoteEvent
from planctl.sync.decide import decide, finalise
from planctl.sync.local import CANCELLED, FINGERPRINT, LocalItem
from planctl.sync.options import SyncOptions
from planctl.sync.report import Action, Kind
from planctl.sync.safety import Exposure, Removals
from planctl.sync.state import StateRow

BATCH = 500  # sessions read and decided at a time


@dataclass
class Plan:
    """What a run looks at, fixed once; its actions are decided batch by batch, on demand.

    Nothing here holds one object per session: the ids to decide (integers),
    the state rows and the listing are what planning keeps. :meth:`batches`
    reads and decides :data:`BATCH` sessions at a time and can run twice: once
    to count what the run would remove (the guard needs the totals before any
    change), once to apply (docs/sync.md#safety-no-mass-cancellation).
    """

    connection: Connection
    options: SyncOptions
    ids: list[int]  # the sessions to decide, in order
    local_ids: set[int]  # of those, the ones to read from the planner
    remote: dict[int, RemoteEvent]
    states: dict[int, StateRow]
    foreign: list[RemoteEvent]
    duplicates: list[RemoteEvent]
    tracked: int = 0  # state rows of this backend
    vanished: int = 0  # of those, events the listing does not show at all
    planner_sessions: int = 0  # rows in sesiones (any date, any state)
    unread: int = 0  # tracked sessions in sync on both sides, not even read
    mark: int | None = None  # the change-log position a clean run may store
    why_full: str | None = None  # why the planner was read in full (None: incremental)
    #: what the calendar remembers a clean run's listing by, given the state rows then
    listing_key: Callable[[int], str | None] = lambda tracked: None

    def batches(self) -> Iterator[list[Action]]:
        """The decided actions, :data:`BATCH` sessions at a time; no transaction stays open
        between batches (the caller may talk to the calendar meanwhile)."""
        for start in range(0, len(self.ids), BATCH):
            batch = self.ids[start : start + BATCH]
            wanted = [i for i in batch if i in self.local_ids]
            local = _read_local(self.connection, wanted, self.options.timezone)
            self.connection.rollback()
            actions = []
            for session_id in batch:
                action = decide(
                    session_id,
                    local.get(session_id),
                    self.remote.get(session_id),
                    self.states.get(session_id),
                    self.options.policy,
                )
                if action.kind is Kind.UNCHANGED and action.state is None:
                    continue  # nothing on any side (a cancelled session never synced)
                actions.append(finalise(action, self.options))
            yield actions

    def exposure(self, removals: Removals) -> Exposure:
        """What this plan would remove on each side, for the safety guard."""
        return removals.exposure(
            tracked=self.tracked, vanished=self.vanished, planner_sessions=self.planner_sessions
        )


def in_sync(action: Action) -> bool:
    """A tracked session in sync on both sides: counted as unchanged, never kept."""
    return action.kind is Kind.UNCHANGED and not action.note


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
    backend: Backend,
    states: dict[int, StateRow],
    events: list[RemoteEvent] | None = None,
    *,
    complete: bool = True,
) -> tuple[dict[int, RemoteEvent], list[RemoteEvent], list[RemoteEvent], int]:
    """The calendar's events by session id, plus others' events and duplicates.

    *events* is the listing (None: ``backend.list()``); *complete* when it is the
    whole calendar. Only events whose content is needed are loaded: unknown ones
    (to read their identity) and those whose etag moved since the last run. The
    last value is how many tracked events a complete listing lacks altogether.
    """
    by_remote_id = {s.remote_id: s for s in states.values()}
    if events is None:
        events = backend.list()
    vanished = 0
    if complete:
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
        found.update(connection.execute(select(sesiones.c.id).where(sesiones.c.id.in_(part))).scalars())
    return found


def _remote_changed(remote: dict[int, RemoteEvent], states: dict[int, StateRow]) -> set[int]:
    """Sessions whose event the calendar shows differently from the state: new, moved
    etag, another event, or gone."""
    changed = {sid for sid in states if sid not in remote}
    changed.update(sid for sid, event in remote.items() if _differs(event, states.get(sid)))
    return changed


def _older_rows(states: dict[int, StateRow]) -> set[int]:
    """Sessions whose state row predates fingerprints (a content hash): read to upgrade it."""
    return {
        session_id
        for session_id, saved in states.items()
        if saved.hash_local != CANCELLED and not saved.hash_local.startswith(FINGERPRINT)
    }


def _ids_in_range(connection: Connection, options: SyncOptions) -> list[int]:
    query = select(sesiones.c.id)
    if options.since is not None:
        query = query.where(sesiones.c.fecha >= options.since)
    if options.until is not None:
        query = query.where(sesiones.c.fecha <= options.until)
    return list(connection.execute(query).scalars())


def _read_local(connection: Connection, ids: Sequence[int], timezone: str) -> dict[int, LocalItem]:
    if not ids:
        return {}
    filters = SessionFilter(session_ids=list(ids))
    return {v.id: LocalItem(v, timezone) for v in iter_sessions(connection, filters)}


def make_plan(connection: Connection, backend: Backend, options: SyncOptions) -> Plan:
    """Fix what a run looks at, without writing anything (see :class:`Plan`).

    With a trusted change-log position (:mod:`planctl.sync.cursor`) only the
    sessions changed since then on either side are read and decided; the
    other tracked ones are in sync and only counted. The calendar is then asked
    only for what changed since the same clean run (``Backend.list_changes``);
    a backend that cannot tell lists everything and every state row is compared.
    """
    scope = cursor.scope(connection, backend.name, options)
    tracked = sync_state.count_states(connection, backend.name)
    sessions = connection.execute(select(func.count()).select_from(sesiones)).scalar_one()
    if scope.changed is None:  # the ids only: the sessions are read a batch at a time
        local_ids = set(_ids_in_range(connection, options))
    connection.rollback()  # no transaction stays open while the calendar is listed
    since = None
    if scope.changed is not None:
        since = scope.listing_key(backend.name, scope.since, tracked)
    listing = backend.list_changes(since)
    if listing.complete:
        states = sync_state.load_states(connection, backend.name)
        connection.rollback()
        remote, foreign, duplicates, vanished = remote_index(backend, states, listing.events)
        if scope.changed is None:
            ids = local_ids | set(states) | set(remote)
        else:
            ids = set(scope.changed) | _remote_changed(remote, states) | _older_rows(states)
            local_ids = ids
        unread = 0 if scope.changed is None else sum(1 for s in states if s not in ids)
    else:
        assert scope.changed is not None
        ids, states, remote, foreign, duplicates, vanished = _changes_only(
            connection, backend, scope.changed, listing
        )
        local_ids = ids
        unread = tracked - sum(1 for s in states if s in ids)
    if options.since is not None or options.until is not None:
        elsewhere = _out_of_range(connection, sorted(ids - local_ids))
        ids -= elsewhere  # sessions outside --since/--until are not looked at
    connection.rollback()
    return Plan(
        connection,
        options,
        sorted(ids),
        local_ids,
        remote,
        states,
        foreign,
        duplicates,
        tracked=tracked,
        vanished=vanished,
        planner_sessions=int(sessions),
        unread=unread,
        mark=scope.mark,
        why_full=scope.why_full,
        listing_key=functools.partial(scope.listing_key, backend.name, scope.mark),
    )


def _changes_only(
    connection: Connection, backend: Backend, changed: frozenset[int], listing: Listing
) -> tuple[
    set[int], dict[int, StateRow], dict[int, RemoteEvent], list[RemoteEvent], list[RemoteEvent], int
]:
    """Both sides read incrementally: the sessions logged since the position, the events
    changed since the same clean run, and the state rows of those only.

    Every other tracked session was in sync on both sides at that run and nothing
    changed since on either: it is counted, not read. A session read for its
    planner-side change whose event did not change gets its event from its state
    row (id and etag; the token is the state's)."""
    events = listing.events
    gone = set(listing.gone)
    states = sync_state.load_states(
        connection,
        backend.name,
        session_ids=set(changed) | {e.session_id for e in events if e.session_id is not None},
        remote_ids=[e.id for e in events] + sorted(gone),
    )
    older = sync_state.states_where_local_is_not(connection, backend.name, CANCELLED, FINGERPRINT)
    if older:
        states.update(sync_state.load_states(connection, backend.name, session_ids=older))
    connection.rollback()
    # The tracked events that did not change, as their state rows saw them: a new event
    # claiming one of these sessions is then a duplicate, not the session's event.
    listed = {e.id for e in events} | gone
    events = events + [
        RemoteEvent(row.remote_id, row.etag, session_id)
        for session_id, row in states.items()
        if row.remote_id not in listed
    ]
    remote, foreign, duplicates, _ = remote_index(backend, states, events, complete=False)
    vanished = {s for s, row in states.items() if row.remote_id in gone and s not in remote}
    moved = {s for s, event in remote.items() if _differs(event, states.get(s))}
    ids = set(changed) | vanished | moved | set(older)
    return ids, states, remote, foreign, duplicates, len(vanished)


def _differs(event: RemoteEvent, saved: StateRow | None) -> bool:
    """Whether the calendar shows *event* otherwise than the state row saw it."""
    return (
        saved is None
        or event.etag is None
        or saved.remote_id != event.id
        or saved.etag != event.etag
    )
