"""The protocol a calendar backend implements, and the registry that finds backends.

A backend is one module ``planctl.sync.backends.<name>`` with a function
``open_backend(settings, *, create_calendar) -> Backend``. Nothing else needs
to change to add one: the engine only talks to this protocol.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from planctl.errors import ConfigError

if TYPE_CHECKING:
    from icalendar import Event

    from planctl.config import Settings
    from planctl.sync.content import EventContent


@dataclass(frozen=True)
class RemoteEvent:
    """An event as the backend lists or returns it.

    ``content`` is None when the listing did not include it (CalDAV lists only
    hrefs and etags); :meth:`Backend.get` loads it. ``session_id`` is the
    planctl session the event belongs to, None for events planctl did not
    create (or whose identity is not known until loaded).
    """

    id: str
    etag: str | None
    session_id: int | None = None
    content: EventContent | None = None
    deleted: bool = False  # a tombstone: the event was deleted on the server

    @property
    def loaded(self) -> bool:
        return self.content is not None or self.deleted


@dataclass(frozen=True)
class EventPayload:
    """What the engine asks a backend to write for one session."""

    session_id: int
    uid: str
    content: EventContent
    vevent: Event  # the iCalendar export's VEVENT (CalDAV writes it as is)
    timezone: str


@dataclass(frozen=True)
class Listing:
    """What :meth:`Backend.list_changes` found.

    *complete*: every event of the calendar (tombstones included where the
    server keeps them). Otherwise only the events changed since the clean run
    that confirmed the key asked for, plus every event planctl did not make;
    *gone* names events removed since then that left no tombstone.
    """

    events: list[RemoteEvent]
    complete: bool
    gone: tuple[str, ...] = ()


class StaleEtagError(Exception):
    """A conditional write failed: the event changed on the server since it was read."""


class Backend(Protocol):
    """One calendar: everything the sync engine uses, and nothing else.

    The engine never reads an attribute or calls a method that is not declared
    here (no ``getattr`` probing): a new backend implements exactly this.

    Writes are conditional on the etag the engine last saw. Network calls may
    take seconds: the engine holds no database transaction while it waits on
    any of them (docs/sync.md#the-backend-protocol).
    """

    #: The backend's name: PLANCTL_SYNC_BACKEND, the state rows' ``backend`` column.
    name: str
    #: True when deleted events stay listed as tombstones (``deleted=True``), as
    #: Google's API and the simulated store do: a tracked event missing from a
    #: listing then means the view is broken. False for CalDAV (a delete is gone).
    keeps_deleted: bool

    def describe(self) -> str:
        """Where the calendar is, for humans (never with a password)."""
        ...

    def check(self) -> str:
        """Check settings, server, credentials and calendar; raise SyncError or ConfigError.

        Never creates anything (the calendar included)."""
        ...

    def list(self) -> list[RemoteEvent]:
        """Every event of the calendar, tombstones included where the server keeps them.

        A listing may leave ``content`` out (ids and etags only); the engine
        loads with :meth:`get` only the events whose etag moved. A calendar
        that does not exist yet lists as empty (nothing is created by a listing).
        """
        ...

    def list_changes(self, since: str | None) -> Listing:
        """The events changed since the clean run that confirmed *since*
        (:meth:`confirm`), or every event (``complete``) when *since* is None or the
        backend cannot tell. A no-op run costs what changed, not the calendar."""
        ...

    def confirm(self, key: str) -> None:
        """The run ended clean: every event listed or written so far is in the sync state.
        A later :meth:`list_changes` with *key* lists only what changed after now."""
        ...

    def get(self, ids: Sequence[str]) -> dict[str, RemoteEvent]:
        """Load events by id, with content (missing ones are left out of the result)."""
        ...

    def prepare(self) -> None:
        """Make the calendar ready for writes (create it if missing and allowed).

        Called once, after the safety guards passed and before the first write:
        a refused run or a dry run never creates a calendar."""
        ...

    def create(self, payload: EventPayload) -> RemoteEvent:
        """Create an event; returns its id and etag."""
        ...

    def update(self, event_id: str, payload: EventPayload, etag: str | None) -> RemoteEvent:
        """Replace an event if its etag is still *etag*; StaleEtagError otherwise.

        A full update of a deleted (tombstoned) event restores it."""
        ...

    def delete(self, event_id: str, etag: str | None) -> None:
        """Delete an event if its etag is still *etag*; an already deleted event is fine."""
        ...

    def flush(self) -> None:
        """Make the writes so far durable (a no-op for a server that acknowledges each write).

        The engine calls it before it commits the state rows naming those writes."""
        ...

    def close(self) -> None:
        """Release connections, locks and files."""
        ...


BACKENDS_PACKAGE = "planctl.sync.backends"


def backend_names() -> list[str]:
    """The backends this planctl has: the modules of ``planctl.sync.backends``."""
    from planctl.sync import backends

    return sorted(m.name for m in pkgutil.iter_modules(backends.__path__) if not m.ispkg)


def backend_name(settings: Settings) -> str:
    """The backend PLANCTL_SYNC_BACKEND names, checked (ConfigError when there is none)."""
    name = settings.sync_backend.strip().lower()
    names = backend_names()
    if name not in names:
        raise ConfigError(
            f"unknown sync backend '{settings.sync_backend}' (PLANCTL_SYNC_BACKEND)",
            f"use one of {', '.join(names)}",
        )
    return name


def open_backend(settings: Settings, *, create_calendar: bool = True) -> Backend:
    """The backend PLANCTL_SYNC_BACKEND names, configured from *settings*.

    With *create_calendar* false (dry runs, status) nothing is created on the
    server; a missing calendar then looks empty.
    """
    name = backend_name(settings)
    module = importlib.import_module(f"{BACKENDS_PACKAGE}.{name}")
    backend: Backend = module.open_backend(settings, create_calendar=create_calendar)
    return backend
