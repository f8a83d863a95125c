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


class StaleEtagError(Exception):
    """A conditional write failed: the event changed on the server since it was read."""


class Backend(Protocol):
    """One calendar. Writes are conditional on the etag the engine last saw."""

    name: str

    def describe(self) -> str:
        """Where the calendar is, for humans (never with a password)."""
        ...

    def check(self) -> str:
        """Check settings, server, credentials and calendar; raise SyncError or ConfigError."""
        ...

    def list(self) -> list[RemoteEvent]:
        """Every event of the calendar, tombstones included where the server keeps them."""
        ...

    def get(self, ids: Sequence[str]) -> dict[str, RemoteEvent]:
        """Load events by id (missing ones are left out of the result)."""
        ...

    def create(self, payload: EventPayload) -> RemoteEvent:
        """Create an event; returns its id and etag."""
        ...

    def update(self, event_id: str, payload: EventPayload, etag: str | None) -> RemoteEvent:
        """Replace an event if its etag is still *etag*; StaleEtagError otherwise."""
        ...

    def delete(self, event_id: str, etag: str | None) -> None:
        """Delete an event if its etag is still *etag*; an already deleted event is fine."""
        ...

    def close(self) -> None:
        """Release connections, locks and files."""
        ...


BACKENDS_PACKAGE = "planctl.sync.backends"


def backend_names() -> list[str]:
    """The backends this planctl has: the modules of ``planctl.sync.backends``."""
    from planctl.sync import backends

    return sorted(m.name for m in pkgutil.iter_modules(backends.__path__) if not m.ispkg)


def open_backend(settings: Settings, *, create_calendar: bool = True) -> Backend:
    """The backend PLANCTL_SYNC_BACKEND names, configured from *settings*.

    With *create_calendar* false (dry runs, status) nothing is created on the
    server; a missing calendar then looks empty.
    """
    name = settings.sync_backend.strip().lower()
    names = backend_names()
    if name not in names:
        raise ConfigError(
            f"unknown sync backend '{settings.sync_backend}' (PLANCTL_SYNC_BACKEND)",
            f"use one of {', '.join(names)}",
        )
    module = importlib.import_module(f"{BACKENDS_PACKAGE}.{name}")
    backend: Backend = module.open_backend(settings, create_calendar=create_calendar)
    return backend
