"""The decision table: what to do for one session, from its three sides. Pure.

Every session in scope is looked at on three sides: the planner (L: the
session row), the calendar (R: its listed event, live, CANCELLED or a
tombstone) and the state row (S: what the last run saw). A cancellation is
content (the token CANCELLED), not absence, so it travels both ways and the
state row stays while the event exists. "Changed" compares a side's token
with S: for L a fingerprint of the session's inputs first, the content hash
when that moved; for R the content hash, looked at only when the etag moved.
Nothing here reads a database or talks to a server (docs/sync.md#the-decision-table).
"""

from __future__ import annotations

from dataclasses import replace

from planctl.sync.backend import RemoteEvent
from planctl.sync.content import UnrepresentableEvent, missing_local_time, session_changes
from planctl.sync.local import CANCELLED, LocalItem
from planctl.sync.options import SyncOptions
from planctl.sync.report import LOCAL_WRITES, REMOTE_WRITES, Action, Kind
from planctl.sync.state import StateRow


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


def token_of(remote: RemoteEvent, saved: StateRow | None) -> str:
    """The token of *remote*; an unloaded event whose etag did not move has the saved one."""
    if not remote.loaded and _unmoved(remote, saved):
        assert saved is not None
        return saved.hash_remote
    return remote_token(remote)


def remote_changed(remote: RemoteEvent, saved: StateRow) -> bool:
    return not _unmoved(remote, saved) and token_of(remote, saved) != saved.hash_remote


def local_changed(local: LocalItem, saved: StateRow) -> bool:
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
    remote_token_ = token_of(remote, saved) if remote is not None else None
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
        if not remote_changed(remote, saved):
            return act(Kind.DELETE_REMOTE, "deleted in planner")
        return resolve(
            "deleted in planner, changed on calendar",
            local_wins=Kind.DELETE_REMOTE,
            remote_wins=Kind.FORGET,
        )

    here_changed = local_changed(local, saved)
    if remote is None:  # the event is gone altogether (not even a tombstone)
        if local_cancelled:
            return act(Kind.FORGET, "cancelled in planner, gone from the calendar")
        if not here_changed:
            return act(Kind.CANCEL_LOCAL, "deleted on calendar")
        return resolve(
            "deleted on calendar, changed in planner",
            local_wins=Kind.CREATE_REMOTE,
            remote_wins=Kind.CANCEL_LOCAL,
        )

    there_changed = remote_changed(remote, saved)
    if not here_changed and not there_changed:
        if remote.etag != saved.etag or remote.id != saved.remote_id:
            return act(Kind.RECORD, "etag moved, same content")
        if local.state_token != saved.hash_local:
            return act(Kind.RECORD, "session row touched, same content")
        return act(Kind.UNCHANGED, "in sync")
    if here_changed and not there_changed:
        if local_cancelled:
            return act(push, "cancelled in planner")
        return act(push, "changed in planner")
    if there_changed and not here_changed:
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


def finalise(action: Action, options: SyncOptions) -> Action:
    """Check what the run will do for real, and turn the other direction's work into PENDING."""
    # a push never writes the planner: what it cannot hold is a pull's problem
    action = _precheck(action, options.timezone, for_planner=options.mode != "push")
    return _directional(action, options.mode)
