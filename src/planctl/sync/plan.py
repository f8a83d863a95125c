"""Planning: read both sides and the state, and decide every session without writing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from planctl.calendar.sessions import SessionFilter, iter_sessions
from planctl.db.schema import sesiones
from planctl.sync import cursor
from planctl.sync import state as sync_state
from planctl.sync.backend import Backend, RemoteEvent
from planctl.sync.decide import decide, finalise
from planctl.sync.local import CANCELLED, LocalItem
from planctl.sync.options import SyncOptions
from planctl.sync.report import Action, Kind
from planctl.sync.safety import Exposure
from planctl.sync.state import StateRow


@dataclass
class Plan:
    actions: list[Action]
    foreign: list[RemoteEvent]
    duplicates: list[RemoteEvent]
    tracked: int = 0  # state rows of this backend
    vanished: int = 0  # of those, events the listing does not show at all
    planner_sessions: int = 0  # rows in sesiones (any date, any state)
    untouched: int = 0  # tracked sessions in sync on both sides: counted, no Action kept
    mark: int | None = None  # the change-log position a clean run may store
    why_full: str | None = None  # why the planner was read in full (None: incremental)

    def exposure(self) -> Exposure:
        """What this plan would remove on each side, for the safety guard."""
        return Exposure.of(
            self.actions,
            tracked=self.tracked,
            vanished=self.vanished,
            planner_sessions=self.planner_sessions,
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
        found.update(connection.execute(select(sesiones.c.id).where(sesiones.c.id.in_(part))).scalars())
    return found


def _remote_changed(
    remote: dict[int, RemoteEvent], states: dict[int, StateRow]
) -> set[int]:
    """Sessions whose event the calendar shows differently from the state: new, moved
    etag, another event, or gone."""
    changed = {sid for sid in states if sid not in remote}
    for session_id, event in remote.items():
        saved = states.get(session_id)
        if (
            saved is None
            or event.etag is None
            or saved.remote_id != event.id
            or saved.etag != event.etag
        ):
            changed.add(session_id)
    return changed


def _older_rows(states: dict[int, StateRow]) -> set[int]:
    """Sessions whose state row predates fingerprints (a content hash): read to upgrade it."""
    return {
        session_id
        for session_id, saved in states.items()
        if saved.hash_local != CANCELLED and not saved.hash_local.startswith("~")
    }


BATCH = 500  # sessions read and decided at a time


def _ids_in_range(connection: Connection, options: SyncOptions) -> list[int]:
    query = select(sesiones.c.id)
    if options.since is not None:
        query = query.where(sesiones.c.fecha >= options.since)
    if options.until is not None:
        query = query.where(sesiones.c.fecha <= options.until)
    return list(connection.execute(query).scalars())


def _read_local(
    connection: Connection, ids: Sequence[int], timezone: str
) -> dict[int, LocalItem]:
    if not ids:
        return {}
    filters = SessionFilter(session_ids=list(ids))
    return {v.id: LocalItem(v, timezone) for v in iter_sessions(connection, filters)}


def make_plan(connection: Connection, backend: Backend, options: SyncOptions) -> Plan:
    """Decide, without writing anything, what a run would do for every session in scope.

    With a trusted change-log position (:mod:`planctl.sync.cursor`) only the
    sessions changed since then on either side are read and decided; the
    other tracked ones are in sync and only counted.
    """
    scope = cursor.scope(connection, backend.name, options)
    states = sync_state.load_states(connection, backend.name)
    if scope.changed is None:  # the ids only: the sessions are read a batch at a time
        local_ids = set(_ids_in_range(connection, options))
    sessions = connection.execute(select(func.count()).select_from(sesiones)).scalar_one()
    connection.rollback()  # no transaction stays open while the calendar is listed
    remote, foreign, duplicates, vanished = remote_index(backend, states)
    if scope.changed is None:
        ids = local_ids | set(states) | set(remote)
    else:
        ids = set(scope.changed) | _remote_changed(remote, states) | _older_rows(states)
        local_ids = ids
    if options.since is not None or options.until is not None:
        elsewhere = _out_of_range(connection, sorted(ids - local_ids))
        ids -= elsewhere  # sessions outside --since/--until are not looked at
    untouched = 0 if scope.changed is None else sum(1 for s in states if s not in ids)
    actions = []
    ordered = sorted(ids)
    for start in range(0, len(ordered), BATCH):
        batch = ordered[start : start + BATCH]
        local = _read_local(connection, [i for i in batch if i in local_ids], options.timezone)
        for session_id in batch:
            action = decide(
                session_id,
                local.get(session_id),
                remote.get(session_id),
                states.get(session_id),
                options.policy,
            )
            if action.kind is Kind.UNCHANGED and action.state is None:
                continue  # nothing on any side (a cancelled session never synced)
            action = finalise(action, options)
            if action.kind is Kind.UNCHANGED and not action.note:
                untouched += 1  # in sync: counted, not kept (memory follows the changes)
                continue
            actions.append(action)
    connection.rollback()
    return Plan(
        actions,
        foreign,
        duplicates,
        tracked=len(states),
        vanished=vanished,
        planner_sessions=int(sessions),
        untouched=untouched,
        mark=scope.mark,
        why_full=scope.why_full,
    )
