"""Applying a plan: the calendar write first, then the state row, batch by batch.

No database transaction is open while the backend talks to its server: state
rows are kept in memory and written by :meth:`Applier.write_batch` in one short
transaction after the backend's ``flush()``; a session changed from the
calendar is written and committed at once (a transaction of one statement).
A run killed between a calendar write and its batch leaves that write without
state; the next run adopts it (same content on both sides: recorded).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from planctl.calendar.sessions import SessionFilter, iter_sessions
from planctl.db.schema import sesiones
from planctl.sync import state as sync_state
from planctl.sync.backend import Backend, RemoteEvent, StaleEtagError
from planctl.sync.content import EventContent, session_changes
from planctl.sync.decide import decide, finalise, remote_token, token_of
from planctl.sync.local import CANCELLED, LocalItem
from planctl.sync.options import SyncOptions
from planctl.sync.report import Action, Kind

MAX_RETRIES = 3


class Applier:
    def __init__(
        self, connection: Connection, backend: Backend, options: SyncOptions, logger: logging.Logger
    ) -> None:
        self.connection = connection
        self.backend = backend
        self.options = options
        self.log = logger
        self.remote_writes = 0
        self.local_writes = 0
        self._saves: dict[int, dict[str, Any]] = {}  # state rows to write with the next batch
        self._forgets: set[int] = set()  # state rows to delete with the next batch

    def write_batch(self) -> None:
        """Make the calendar writes durable, then record them in one short transaction."""
        self.backend.flush()
        sync_state.end_reads(self.connection)
        if self._saves or self._forgets:
            sync_state.save_states(self.connection, list(self._saves.values()))
            sync_state.delete_states(self.connection, self.backend.name, sorted(self._forgets))
        self.connection.commit()
        self._saves, self._forgets = {}, set()

    def _write_local(self, statement: Any) -> None:
        """One change to the planner, committed at once (never held across a network call)."""
        sync_state.end_reads(self.connection)
        self.connection.execute(statement)
        self.connection.commit()

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
                action = finalise(retried, self.options)
        raise AssertionError("unreachable")

    def _save(self, action: Action, remote: RemoteEvent, hash_local: str, hash_remote: str) -> None:
        self._forgets.discard(action.session_id)
        self._saves[action.session_id] = sync_state.state_values(
            self.backend.name,
            action.session_id,
            remote_id=remote.id,
            etag=remote.etag,
            hash_local=hash_local,
            hash_remote=hash_remote,
        )

    def _forget(self, action: Action) -> None:
        self._saves.pop(action.session_id, None)
        self._forgets.add(action.session_id)

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
                cancel = update(sesiones).where(sesiones.c.id == sid).values(estado="cancelada")
                self._write_local(cancel)
                action.wrote_local = True
                self.local_writes += 1
            self.log.info("session %d: cancelled (%s)", sid, action.reason)
            if remote is not None:  # the event still exists, cancelled: it stays tracked
                self._save(action, remote, CANCELLED, CANCELLED)
            else:
                self._forget(action)
        elif kind is Kind.RECORD:
            assert local is not None and remote is not None
            self._save(action, remote, local.state_token, token_of(remote, action.state))
        elif kind is Kind.FORGET:
            self._forget(action)
        elif kind is Kind.CONFLICT:
            self.log.warning("session %d: conflict, left as it is (%s)", sid, action.reason)
        elif kind is Kind.ERROR:
            self.log.error("session %d: %s", sid, action.detail)

    def _after_delete(self, action: Action, remote: RemoteEvent) -> None:
        """Keep tracking a cancelled session while its event exists (a tombstone)."""
        if action.local is None or not self.backend.keeps_deleted:
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
            self._write_local(update(sesiones).where(sesiones.c.id == sid).values(changes))
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
    connection.rollback()  # a read: no transaction stays open while the network is waited on
    return LocalItem(views[0], timezone) if views else None
