"""``simulated``: the ``google`` backend talking to planctl's Calendar API emulator in-process.

The calendar lives in a local store (``PLANCTL_SYNC_STORE``, a SQLite file:
:class:`~planctl.sync.google.store.EmulatorStore`); the emulator
(:class:`~planctl.sync.google.emulator.Emulator`) answers the same requests,
with the same shapes, etags, sync tokens, batches and errors as Google, and
the client and backend are the ``google`` ones. So one code path runs
offline, in tests and against Google; no socket is opened. ``planctl sync
emulator`` serves the same store over HTTP.

What the simulated calendar adds: one process at a time holds the store (its
directory is ``flock``-ed, 10 s wait, exit 4), deleted events stay as
tombstones forever (``keeps_deleted``), and a store written by planctl before
the emulator (a JSON snapshot plus ``.journal``) is migrated on first use,
keeping event ids and etags (the old file stays as ``<store>.json-v1``). The
default store found under its former Spanish name (``calendario_simulado``)
is moved to the English one first (:func:`adopt_former_store`).

:class:`SimulatedCalendar` is the store seen as one calendar, with the
server's API (tests drive ``before_write`` and ``crash_after_writes``) and
the "phone" (:class:`~planctl.sync.google.phone.Phone`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from planctl.config import Settings
from planctl.errors import LockedError, SyncError
from planctl.sync.backends.google import ApiPhone, GoogleBackend
from planctl.sync.google.client import CalendarClient, InProcessTransport
from planctl.sync.google.emulator import Emulator
from planctl.sync.google.events import (  # noqa: F401  (the names this module always had)
    CATEGORIES_PROPERTY,
    SESSION_PROPERTY,
    STATUS_FROM_GOOGLE,
    STATUS_TO_GOOGLE,
    ListedEvent,
    Resource,
    content_from_resource,
    listed,
    remote_event,
    resource_from_payload,
)
from planctl.sync.google.mirror import Mirror
from planctl.sync.google.phone import SHORT_ID, Phone  # noqa: F401
from planctl.sync.google.store import EmulatorStore, InjectedFault, is_store_file  # noqa: F401
from planctl.text import plural

NAME = "simulated"
OLD_FORMAT = "planctl-simulated-calendar"
CALENDAR = "Planificador"
LOCK_WAIT_SECONDS = 10.0

logger = logging.getLogger("planctl.sync")


class SimulatedCalendar(Phone):
    """The store at *path* as one calendar (summary *calendar*), held by this process."""

    def __init__(
        self,
        path: Path,
        *,
        timezone: str = "Europe/Madrid",
        calendar: str = CALENDAR,
        migrate: bool = True,
        former: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.timezone = timezone
        self.summary = calendar
        self._lock = contextlib.ExitStack()
        self._acquire_lock()
        try:
            self.path = adopt_former_store(self.path, former, move=migrate)
            self.store = open_store(self.path, timezone, migrate=migrate)
        except BaseException:
            self._release_lock()
            raise
        self._calendar_id: str | None = None

    # -- file handling -------------------------------------------------------

    def _acquire_lock(self) -> None:
        """flock the store's directory (SQLite's own -wal and -shm files live there too)."""
        directory = self.path.parent if str(self.path.parent) else Path(".")
        if not directory.is_dir():
            raise SyncError(
                f"directory '{directory}' of the simulated calendar store does not exist",
                "create it or fix PLANCTL_SYNC_STORE",
            )
        from planctl.fsutil import OutputError, file_lock

        try:
            self._lock.enter_context(file_lock(directory, timeout=LOCK_WAIT_SECONDS))
        except OutputError as error:
            raise SyncError(
                f"cannot open the directory '{directory}' of the simulated calendar store: "
                f"{error.message}",
                "check PLANCTL_SYNC_STORE and the directory's permissions",
            ) from error
        except LockedError as error:
            raise LockedError(
                f"the simulated calendar {self.path} is in use by another planctl",
                "retry when it has finished",
            ) from error

    def _release_lock(self) -> None:
        with contextlib.suppress(OSError):
            self._lock.close()

    def flush(self) -> None:
        self.store.flush()

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            self._release_lock()

    # -- test hooks, on the store ---------------------------------------------

    @property
    def writes(self) -> int:
        return self.store.writes

    @property
    def crash_after_writes(self) -> int | None:
        return self.store.crash_after_writes

    @crash_after_writes.setter
    def crash_after_writes(self, value: int | None) -> None:
        self.store.crash_after_writes = value

    @property
    def before_write(self) -> Callable[[str, str | None], object] | None:
        return self.store.before_write

    @before_write.setter
    def before_write(self, value: Callable[[str, str | None], object] | None) -> None:
        self.store.before_write = value

    # -- the server's API, on this calendar ------------------------------------

    def calendar_id(self, *, create: bool) -> str | None:
        if self._calendar_id is None:
            named = [c for c in self.store.calendars() if c["summary"] == self.summary]
            if named:
                self._calendar_id = str(named[0]["id"])
            elif create:
                self._calendar_id = str(self.store.insert_calendar(self.summary)["id"])
        return self._calendar_id

    def where(self) -> str:
        return f"the simulated calendar {self.path}"

    @property
    def events(self) -> dict[str, Resource]:
        """Every event by id, tombstones included (a copy: tests read it)."""
        return {e["id"]: e for e in self.list_events(show_deleted=True)}

    def list_events(self, *, show_deleted: bool = True) -> list[Resource]:
        calendar_id = self.calendar_id(create=False)
        if calendar_id is None:
            return []
        return [
            e
            for _, e in self.store.events(calendar_id)
            if show_deleted or e.get("status") != "cancelled"
        ]

    def get_event(self, event_id: str) -> Resource | None:
        calendar_id = self.calendar_id(create=False)
        return None if calendar_id is None else self.store.get_event(calendar_id, event_id)

    def _id(self) -> str:
        calendar_id = self.calendar_id(create=True)
        assert calendar_id is not None
        return calendar_id

    def insert(self, body: Resource) -> Resource:
        return self.store.insert(self._id(), body)

    def update(self, event_id: str, body: Resource, *, if_match: str | None = None) -> Resource:
        return self.store.update(self._id(), event_id, body, if_match=if_match)

    def patch(self, event_id: str, changes: Resource, *, if_match: str | None = None) -> Resource:
        return self.store.patch(self._id(), event_id, changes, if_match=if_match)

    def delete(self, event_id: str, *, if_match: str | None = None) -> None:
        self.store.delete(self._id(), event_id, if_match=if_match)


#: The files named after a store (its name plus these): SQLite's journals, the JSON
#: store's journal, planctl's mirror of the listing, the JSON store kept after migrating.
COMPANIONS = ("-wal", "-shm", "-journal", ".journal", ".mirror", ".json-v1")


def adopt_former_store(path: Path, former: Path | None, *, move: bool = True) -> Path:
    """The store to open for *path*: *path* itself, unless there is none but a store at
    the default's former name *former* — then that one, moved to *path* with its
    companions (without *move*, a dry run: read where it is).

    The caller holds the directory's lock (both names share the directory). The
    companions move first and the store last: a crash in between leaves the store
    under its former name, and the next open finishes the move.
    """
    if former is None or path.exists():
        return path
    if not any(former.with_name(former.name + s).exists() for s in ("", ".journal")):
        return path
    if not move:
        return former
    from planctl.fsutil import fsync_dir

    try:
        for suffix in (*COMPANIONS, ""):
            source = former.with_name(former.name + suffix)
            if source.exists():
                os.replace(source, path.with_name(path.name + suffix))
        fsync_dir(path.parent)
    except OSError as error:
        raise SyncError(
            f"cannot move the simulated calendar {former} to {path}: {error.strerror or error}",
            "check the directory's permissions, or set PLANCTL_SYNC_STORE to the old file",
        ) from error
    logger.info("simulated calendar %s moved to %s", former, path)
    return path


def open_store(path: Path, timezone: str, *, migrate: bool = True) -> EmulatorStore:
    """The emulator's store at *path*; an old JSON store there is migrated (without
    *migrate*, read into memory: a dry run writes nothing). A new store is created on
    the first write: until then nothing is written."""
    journal = path.with_name(path.name + ".journal")
    for candidate in (path, journal):
        if candidate.exists() and not candidate.is_file():  # a FIFO would block
            raise SyncError(
                f"the simulated calendar store {candidate} is not a regular file",
                "point PLANCTL_SYNC_STORE at a file",
            )
    try:
        if path.exists() and is_store_file(path):
            return EmulatorStore(path, timezone=timezone)
        if not path.exists() and not journal.exists():
            return EmulatorStore(path, timezone=timezone, lazy=True)
        return _migrate(path, journal, timezone, in_place=migrate)
    except OSError as error:
        raise SyncError(
            f"cannot read the simulated calendar {path}: {error.strerror or error}",
            "check PLANCTL_SYNC_STORE and the file's permissions",
        ) from error
    except __import__("sqlite3").DatabaseError as error:
        raise SyncError(
            f"{path} is not a readable simulated calendar ({error})",
            "point PLANCTL_SYNC_STORE at another file or move this one away",
        ) from error


def _migrate(path: Path, journal: Path, timezone: str, *, in_place: bool) -> EmulatorStore:
    """Bring a store of the JSON format (snapshot + journal) into the emulator's store
    (*in_place*: the file becomes the new store, else a store in memory)."""
    events: dict[str, Resource] = {}
    next_etag = 1
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != OLD_FORMAT:
                raise ValueError("not a simulated calendar")
            events = dict(data["events"])
            next_etag = int(data["next_etag"])
            timezone = str(data.get("time_zone", timezone))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
            raise SyncError(
                f"{path} is not a readable simulated calendar ({error})",
                "point PLANCTL_SYNC_STORE at another file or move this one away",
            ) from error
    if journal.exists():
        with open(journal, encoding="utf-8") as lines:
            for line in lines:
                if not line.endswith("\n"):
                    break  # torn last write: it never happened
                try:
                    record = json.loads(line)
                except ValueError:
                    break
                events[record["event"]["id"]] = record["event"]
                next_etag = max(next_etag, int(record["next_etag"]))
    if not in_place:
        memory = EmulatorStore(None, timezone=timezone)
        memory.import_events(
            str(memory.insert_calendar(CALENDAR)["id"]), list(events.values()), next_etag
        )
        return memory
    migrating = path.with_name(f".{path.name}.{os.getpid()}.migrating")
    migrating.unlink(missing_ok=True)
    store = EmulatorStore(migrating, timezone=timezone)
    calendar_id = str(store.insert_calendar(CALENDAR)["id"])
    store.import_events(calendar_id, list(events.values()), next_etag)
    store.flush()
    store.close()
    from planctl.fsutil import publish

    if path.exists():
        # Moving the old file aside, kept for the user; not a publish: the publish below
        # fsyncs the directory after both renames.
        os.replace(path, path.with_name(path.name + ".json-v1"))
    publish(migrating, path)
    journal.unlink(missing_ok=True)
    return EmulatorStore(path, timezone=timezone)


class SimulatedBackend(GoogleBackend):
    """The ``google`` backend over the emulator, in-process, on a :class:`SimulatedCalendar`."""

    keeps_deleted = True  # the store keeps tombstones: a tracked event never vanishes
    exclusive = True  # one process at a time holds the store (its directory's flock)

    def __init__(self, calendar: SimulatedCalendar, *, create_calendar: bool = True) -> None:
        self.calendar = calendar
        emulator = Emulator(calendar.store, require_auth=False)
        mirror = Mirror(calendar.path.with_name(calendar.path.name + ".mirror"))
        super().__init__(
            CalendarClient(InProcessTransport(emulator)),
            calendar=calendar.summary,
            timezone=calendar.timezone,
            mirror=mirror,
            where=str(calendar.path),
            create_calendar=create_calendar,
            name=NAME,
        )

    def describe(self) -> str:
        return f"simulated calendar {self.calendar.path}"

    def check(self) -> str:
        live = len(self.calendar.list_events(show_deleted=False))
        state = "exists" if self.calendar.path.exists() else "will be created on the first sync"
        return f"{self.describe()} ({state}, {plural(live, 'event')})"

    def flush(self) -> None:
        super().flush()
        self.calendar.flush()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.calendar.close()


def open_calendar(settings: Settings, *, migrate: bool = True) -> SimulatedCalendar:
    """The store at PLANCTL_SYNC_STORE, or at the documented default (its directory made)."""
    if settings.sync_store_is_default:
        settings.sync_store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SimulatedCalendar(
        settings.sync_store,
        timezone=settings.timezone,
        migrate=migrate,
        former=settings.sync_store_former,
    )


def open_backend(settings: Settings, *, create_calendar: bool = True) -> SimulatedBackend:
    """The simulated calendar at PLANCTL_SYNC_STORE (the file appears on the first write)."""
    calendar = open_calendar(settings, migrate=create_calendar)  # a dry run migrates nothing
    return SimulatedBackend(calendar, create_calendar=create_calendar)


def open_phone(settings: Settings) -> ApiPhone:
    """The simulated calendar through the API (in-process), to change as a phone would."""
    calendar = open_calendar(settings)
    client = CalendarClient(InProcessTransport(Emulator(calendar.store, require_auth=False)))
    return ApiPhone(
        client,
        calendar=calendar.summary,
        timezone=calendar.timezone,
        where=calendar.where(),
        title=f"Simulated calendar {calendar.path}",
        on_close=calendar.close,
    )
