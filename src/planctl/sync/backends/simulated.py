"""``simulated``: an offline calendar in a local file that behaves like Google Calendar.

The store plays the server: it assigns event ids, changes an event's etag on
every write, stamps ``updated``, keeps deleted events as ``cancelled``
tombstones, carries planctl's session id in private extended properties, and
refuses a conditional write whose etag is stale (HTTP 412 in Google's API).

The file is a JSON snapshot plus a journal beside it (``<store>.journal``):
each write appends one complete JSON line, so a write is atomic and survives
the process being killed at any point (a torn last line is ignored on load),
and the cost of a write does not grow with the calendar. The journal is
fsynced by :meth:`SimulatedCalendar.flush` (the engine calls it before it
commits state rows) and on close, so a power loss cannot leave a durable state
row that names a lost event. Closing the
store folds the journal into a new snapshot (temporary file, fsync, rename).
One process at a time holds the store (``<store>.lock``).

:class:`SimulatedCalendar` also has the "phone" side (:meth:`~SimulatedCalendar.edit`,
:meth:`~SimulatedCalendar.remove`, :meth:`~SimulatedCalendar.add`) that tests
and ``planctl sync remote …`` use to change events as a user would.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from planctl.calendar.zones import zone_info
from planctl.config import Settings
from planctl.errors import LockedError, NothingToDoError, SyncError, UsageError
from planctl.sync.backend import EventPayload, RemoteEvent, StaleEtagError
from planctl.sync.content import EventContent, clean_text, session_id_from_uid
from planctl.text import plural

NAME = "simulated"
FORMAT = "planctl-simulated-calendar"
SESSION_PROPERTY = "planctlSessionId"
CATEGORIES_PROPERTY = "planctlCategories"
STATUS_TO_GOOGLE = {"CONFIRMED": "confirmed", "TENTATIVE": "tentative"}
STATUS_FROM_GOOGLE = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE"}
LOCK_WAIT_SECONDS = 10.0
#: How many leading characters of an event id ``sync remote list`` shows (and ``find`` takes).
SHORT_ID = 8

Resource = dict[str, Any]


class InjectedFault(RuntimeError):
    """Raised by the store after a chosen number of writes (tests of interrupted runs)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SimulatedCalendar:
    """The simulated server: a Google-Calendar-like event store in one file."""

    def __init__(self, path: Path, *, timezone: str = "Europe/Madrid") -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.timezone = timezone
        self.events: dict[str, Resource] = {}
        self.next_etag = 1
        self.writes = 0  # successful writes since opening (tests count them)
        self.crash_after_writes: int | None = None
        self.before_write: Callable[[str, str | None], object] | None = None
        self._journal: IO[str] | None = None
        self._journal_lines = 0
        self._unsynced = False
        self._lock = contextlib.ExitStack()
        self._acquire_lock()
        try:
            self._load()
        except BaseException:
            self._release_lock()
            raise

    # -- file handling -------------------------------------------------------

    def _acquire_lock(self) -> None:
        """flock the store's directory (the store file itself is replaced by rename)."""
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
            ) from None
        except LockedError:
            raise LockedError(
                f"the simulated calendar {self.path} is in use by another planctl",
                "retry when it has finished",
            ) from None

    def _release_lock(self) -> None:
        with contextlib.suppress(OSError):
            self._lock.close()

    def _load(self) -> None:
        try:
            self._read()
        except OSError as error:
            raise SyncError(
                f"cannot read the simulated calendar {self.path}: {error.strerror or error}",
                "check PLANCTL_SYNC_STORE and the file's permissions",
            ) from None

    def _read(self) -> None:
        for path in (self.path, self.journal_path):
            if path.exists() and not path.is_file():  # a FIFO would block, a directory fails
                raise SyncError(
                    f"the simulated calendar store {path} is not a regular file",
                    "point PLANCTL_SYNC_STORE at a file",
                )
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if not isinstance(data, dict) or data.get("format") != FORMAT:
                    raise ValueError("not a simulated calendar")
                self.events = dict(data["events"])
                self.next_etag = int(data["next_etag"])
                self.timezone = str(data.get("time_zone", self.timezone))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise SyncError(
                    f"{self.path} is not a readable simulated calendar ({error})",
                    "point PLANCTL_SYNC_STORE at another file or move this one away",
                ) from None
        if self.journal_path.exists():
            with open(self.journal_path, encoding="utf-8") as journal:
                for line in journal:
                    if not line.endswith("\n"):
                        break  # torn last write: it never happened
                    try:
                        record = json.loads(line)
                    except ValueError:
                        break
                    self.events[record["event"]["id"]] = record["event"]
                    self.next_etag = max(self.next_etag, int(record["next_etag"]))
                    self._journal_lines += 1

    def _append(self, event: Resource) -> None:
        if self._journal is None:
            self._journal = open(self.journal_path, "a", encoding="utf-8")  # noqa: SIM115
            os.chmod(self.journal_path, 0o600)
        line = json.dumps({"event": event, "next_etag": self.next_etag}, ensure_ascii=False)
        self._journal.write(line + "\n")
        self._journal.flush()  # in the kernel: survives the process being killed
        self._unsynced = True
        self._journal_lines += 1

    def flush(self) -> None:
        """fsync the journal: the writes so far survive a power loss too.

        The sync engine calls this before it commits the state rows that point
        at those writes, so a durable state row never names a lost event.
        """
        if self._journal is not None and self._unsynced:
            os.fsync(self._journal.fileno())
            self._unsynced = False

    def compact(self) -> None:
        """Fold the journal into a new snapshot, atomically (temporary file, fsync, rename)."""
        self.flush()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._journal_lines == 0:
            return  # nothing written: a dry run leaves no file behind
        data = {
            "format": FORMAT,
            "version": 1,
            "time_zone": self.timezone,
            "next_etag": self.next_etag,
            "events": self.events,
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            os.chmod(temporary, 0o600)
            json.dump(data, out, ensure_ascii=False, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent if str(self.path.parent) else ".", os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        # A crash here replays the journal over the new snapshot: harmless,
        # every journal record is a whole event.
        self.journal_path.unlink(missing_ok=True)
        self._journal_lines = 0

    def close(self) -> None:
        try:
            self.compact()
        finally:
            self._release_lock()

    # -- the server's API (Google Calendar's events resource, simplified) ----

    def _arrive(self, operation: str, event_id: str | None) -> None:
        """A request arrives: the test hook may let "the phone" write first (one shot)."""
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(operation, event_id)

    def _write(self, event: Resource) -> Resource:
        event["etag"] = f'"{self.next_etag}"'
        self.next_etag += 1
        event["updated"] = _now()
        self.events[event["id"]] = event
        self._append(event)
        self.writes += 1
        if self.crash_after_writes is not None and self.writes >= self.crash_after_writes:
            raise InjectedFault(f"injected fault after {self.writes} writes")
        return copy.deepcopy(event)

    def list_events(self, *, show_deleted: bool = True) -> list[Resource]:
        return [
            copy.deepcopy(e)
            for e in self.events.values()
            if show_deleted or e.get("status") != "cancelled"
        ]

    def get_event(self, event_id: str) -> Resource | None:
        found = self.events.get(event_id)
        return copy.deepcopy(found) if found is not None else None

    def insert(self, body: Resource) -> Resource:
        self._arrive("insert", None)
        created = _now()
        event = {
            **copy.deepcopy(body),
            "kind": "calendar#event",
            "id": uuid.uuid4().hex,
            "created": created,
            "sequence": 0,
        }
        event.setdefault("status", "confirmed")
        event.setdefault("iCalUID", f"{event['id']}@simulated.calendar")
        return self._write(event)

    def _current(self, event_id: str, if_match: str | None) -> Resource:
        current = self.events.get(event_id)
        if current is None:
            raise KeyError(event_id)  # 404
        if if_match is not None and current.get("etag") != if_match:
            raise StaleEtagError(f"event {event_id}: etag {if_match} is stale")  # 412
        return current

    def update(self, event_id: str, body: Resource, *, if_match: str | None = None) -> Resource:
        self._arrive("update", event_id)
        # Like Google's API, a full update of a deleted (cancelled) event restores it.
        current = self._current(event_id, if_match)
        event = {
            **copy.deepcopy(body),
            "kind": "calendar#event",
            "id": event_id,
            "created": current.get("created"),
            "iCalUID": current.get("iCalUID"),
            "sequence": int(current.get("sequence", 0)) + 1,
        }
        event.setdefault("status", "confirmed")
        return self._write(event)

    def patch(self, event_id: str, changes: Resource, *, if_match: str | None = None) -> Resource:
        self._arrive("patch", event_id)
        current = self._current(event_id, if_match)
        if current.get("status") == "cancelled":
            raise KeyError(event_id)
        event = copy.deepcopy(current)
        event.update(copy.deepcopy(changes))
        event["sequence"] = int(current.get("sequence", 0)) + 1
        return self._write(event)

    def delete(self, event_id: str, *, if_match: str | None = None) -> None:
        self._arrive("delete", event_id)
        current = self._current(event_id, if_match)
        if current.get("status") == "cancelled":
            return  # 410 Gone: already deleted
        tombstone = {
            "kind": "calendar#event",
            "id": event_id,
            "status": "cancelled",
            "iCalUID": current.get("iCalUID"),
        }
        self._write(tombstone)

    # -- the "phone" side ----------------------------------------------------

    def find(self, reference: str) -> Resource:
        """An event by id (or the first :data:`SHORT_ID` or more characters of one, as
        ``sync remote list`` shows it), by UID, or by session id (``12`` or ``sesion-12``)."""
        wanted = reference.strip()
        if wanted in self.events:
            return self.events[wanted]
        if len(wanted) >= SHORT_ID:
            matches = [key for key in self.events if key.startswith(wanted)]
            if len(matches) == 1:
                return self.events[matches[0]]
        number = wanted.removeprefix("sesion-").split("@")[0]
        for event in self.events.values():
            if event.get("status") == "cancelled":
                continue
            if event.get("iCalUID") == wanted:
                return event
            if number.isdigit() and _session_property(event) == number:
                return event
        raise NothingToDoError(
            f"no event '{reference}' in the simulated calendar {self.path}",
            "planctl sync remote list shows the events",
        )

    def edit(
        self,
        reference: str,
        *,
        date: dt.date | None = None,
        start_time: dt.time | None = None,
        end_time: dt.time | None = None,
        location: str | None = None,
        summary: str | None = None,
        status: str | None = None,
    ) -> Resource:
        """Change an event as a phone would: unconditionally, only what is given.

        Times are wall-clock times in the calendar's time zone; a new *date*
        keeps the times. ``status="cancelled"`` deletes the event (Google's way).
        """
        if status is not None and status.lower() not in (*STATUS_TO_GOOGLE.values(), "cancelled"):
            raise UsageError(f"unknown status '{status}'", "use confirmed, tentative or cancelled")
        event = self.find(reference)
        if status is not None and status.lower() == "cancelled":
            self.delete(event["id"])
            return copy.deepcopy(self.events[event["id"]])
        zone = zone_info(self.timezone)
        start = _parse_when(event["start"], self.timezone).astimezone(zone)
        end = _parse_when(event["end"], self.timezone).astimezone(zone)
        day = date or start.date()
        new_start = dt.datetime.combine(day, start_time or start.time().replace(tzinfo=None), zone)
        with _within_calendar_dates():
            new_end = dt.datetime.combine(
                day + (end.date() - start.date()), end_time or end.time().replace(tzinfo=None), zone
            )
            if end_time is not None and new_end == new_start:
                raise UsageError(
                    f"the event would start and end at {new_start:%H:%M}",
                    "give an --end after --start",
                )
            if end_time is not None and new_end < new_start:  # 22:00–01:00: ends the next day
                new_end = dt.datetime.combine(
                    new_start.date() + dt.timedelta(days=1), end_time, zone
                )
            _when(new_end, self.timezone)  # in UTC too
        if new_end <= new_start:
            raise UsageError(
                f"the event would end at {new_end:%H:%M}, before it starts at {new_start:%H:%M}",
                "give an --end too",
            )
        changes: Resource = {}
        if new_start != start:
            changes["start"] = _when(new_start, self.timezone)
        if new_end != end:
            changes["end"] = _when(new_end, self.timezone)
        if location is not None:
            changes["location"] = location
        if summary is not None:
            changes["summary"] = summary
        if status is not None:
            changes["status"] = status.lower()
        return self.patch(event["id"], changes)

    def remove(self, reference: str) -> str:
        """Delete an event as a phone would; its id."""
        event_id = str(self.find(reference)["id"])
        self.delete(event_id)
        return event_id

    def add(self, summary: str, date: dt.date, start_time: dt.time, end_time: dt.time) -> Resource:
        """An event of the user's own (planctl must leave it alone)."""
        if end_time == start_time:
            raise UsageError(
                f"the event starts and ends at {start_time:%H:%M}", "give an --end after --start"
            )
        zone = zone_info(self.timezone)
        with _within_calendar_dates():
            # an end before the start is the next day's, as a phone reads 22:00–01:00
            end_day = date if end_time > start_time else date + dt.timedelta(days=1)
            start = _when(dt.datetime.combine(date, start_time, zone), self.timezone)
            end = _when(dt.datetime.combine(end_day, end_time, zone), self.timezone)
        return self.insert({"summary": summary, "start": start, "end": end})

    def listing(self, *, include_deleted: bool = False) -> list[ListedEvent]:
        """The events as a person reads them (``sync remote list``), ordered by start."""
        return [
            listed(e, self.timezone) for e in self.describe_events(include_deleted=include_deleted)
        ]

    def describe_events(self, *, include_deleted: bool = False) -> list[Resource]:
        """The events, ordered by start, for listing (tombstones last)."""
        events = self.list_events(show_deleted=include_deleted)

        def key(event: Resource) -> tuple[int, str]:
            start = (event.get("start") or {}).get("dateTime") or ""
            return (event.get("status") == "cancelled", str(start))

        return sorted(events, key=key)


@dataclass(frozen=True)
class ListedEvent:
    """One simulated event as a person reads it; ``start`` is None for a tombstone."""

    id: str
    session_id: int | None
    status: str
    etag: str | None
    summary: str
    start: dt.datetime | None
    end: dt.datetime | None


def listed(event: Resource, timezone: str) -> ListedEvent:
    """*event* (Google Calendar's resource shape) as a :class:`ListedEvent`."""
    remote = remote_event(event, timezone)
    content = remote.content
    return ListedEvent(
        id=str(event["id"]),
        session_id=remote.session_id,
        status=str(event.get("status") or "confirmed"),
        etag=event.get("etag"),
        summary=content.summary if content else "",
        start=content.start if content else None,
        end=content.end if content else None,
    )


def _when(moment: dt.datetime, timezone: str) -> Resource:
    return {"dateTime": moment.isoformat(), "timeZone": timezone}


def _session_property(event: Resource) -> str | None:
    private = (event.get("extendedProperties") or {}).get("private") or {}
    value = private.get(SESSION_PROPERTY)
    return str(value) if value is not None else None


def resource_from_payload(payload: EventPayload) -> Resource:
    """The Google-style event body for a session."""
    content = payload.content
    body: Resource = {
        "iCalUID": payload.uid,
        "summary": content.summary,
        "start": _when(content.start, payload.timezone),
        "end": _when(content.end, payload.timezone),
        "status": STATUS_TO_GOOGLE.get(content.status, "confirmed"),
        "extendedProperties": {
            "private": {
                SESSION_PROPERTY: str(payload.session_id),
                CATEGORIES_PROPERTY: json.dumps(list(content.categories), ensure_ascii=False),
            }
        },
    }
    if content.location is not None:
        body["location"] = content.location
    if content.description is not None:
        body["description"] = content.description
    if content.url is not None:
        body["source"] = {"url": content.url, "title": "planctl"}
    return body


def _parse_when(value: Resource, timezone: str) -> dt.datetime:
    if "dateTime" in value:
        moment = dt.datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone_info(str(value.get("timeZone") or timezone)))
        return moment
    day = dt.date.fromisoformat(str(value["date"]))  # all-day event
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone_info(timezone))


def content_from_resource(event: Resource, timezone: str) -> EventContent:
    private = (event.get("extendedProperties") or {}).get("private") or {}
    try:
        categories = tuple(json.loads(private.get(CATEGORIES_PROPERTY) or "[]"))
    except ValueError:
        categories = ()
    return EventContent(
        start=_parse_when(event["start"], timezone),
        end=_parse_when(event["end"], timezone),
        summary=clean_text(event.get("summary")) or "",
        location=clean_text(event.get("location")),
        description=clean_text(event.get("description")),
        status=STATUS_FROM_GOOGLE.get(str(event.get("status", "confirmed")), "CANCELLED"),
        url=clean_text((event.get("source") or {}).get("url")),
        categories=categories,
        recurring=bool(event.get("recurrence")),
    )


def remote_event(event: Resource, timezone: str, *, with_content: bool = True) -> RemoteEvent:
    property_value = _session_property(event)
    session_id = (
        int(property_value)
        if property_value is not None and property_value.isdigit()
        else session_id_from_uid(event.get("iCalUID"))
    )
    deleted = event.get("status") == "cancelled"
    return RemoteEvent(
        id=str(event["id"]),
        etag=event.get("etag"),
        session_id=session_id,
        content=None if deleted or not with_content else content_from_resource(event, timezone),
        deleted=deleted,
    )


class SimulatedBackend:
    """The sync protocol over a :class:`SimulatedCalendar`."""

    name = NAME
    keeps_deleted = True  # deleted events stay as tombstones: a tracked event never vanishes
    exclusive = True  # one process at a time holds the store (its directory's flock)

    def __init__(self, calendar: SimulatedCalendar) -> None:
        self.calendar = calendar

    def describe(self) -> str:
        return f"simulated calendar {self.calendar.path}"

    def check(self) -> str:
        live = sum(1 for e in self.calendar.events.values() if e.get("status") != "cancelled")
        state = "exists" if self.calendar.path.exists() else "will be created on the first sync"
        return f"{self.describe()} ({state}, {plural(live, 'event')})"

    def list(self) -> list[RemoteEvent]:
        """Ids, etags and session ids, like a CalDAV listing: the engine loads what moved."""
        tz = self.calendar.timezone
        return [remote_event(e, tz, with_content=False) for e in self.calendar.events.values()]

    def get(self, ids: Sequence[str]) -> dict[str, RemoteEvent]:
        found = {}
        for event_id in ids:
            event = self.calendar.get_event(event_id)
            if event is not None:
                found[event_id] = remote_event(event, self.calendar.timezone)
        return found

    def create(self, payload: EventPayload) -> RemoteEvent:
        return remote_event(self.calendar.insert(resource_from_payload(payload)), payload.timezone)

    def update(self, event_id: str, payload: EventPayload, etag: str | None) -> RemoteEvent:
        try:
            event = self.calendar.update(event_id, resource_from_payload(payload), if_match=etag)
        except KeyError:
            raise StaleEtagError(f"event {event_id} is gone") from None
        return remote_event(event, payload.timezone)

    def delete(self, event_id: str, etag: str | None) -> None:
        with contextlib.suppress(KeyError):
            self.calendar.delete(event_id, if_match=etag)

    def prepare(self) -> None:
        """Nothing to do: the store file appears with the first write."""

    def flush(self) -> None:
        self.calendar.flush()

    def close(self) -> None:
        self.calendar.close()


def open_calendar(settings: Settings) -> SimulatedCalendar:
    """The store at PLANCTL_SYNC_STORE, or at the documented default (its directory made)."""
    if settings.sync_store_is_default:
        settings.sync_store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SimulatedCalendar(settings.sync_store, timezone=settings.timezone)


def open_backend(settings: Settings, *, create_calendar: bool = True) -> SimulatedBackend:
    """The simulated calendar at PLANCTL_SYNC_STORE (the file appears on the first write)."""
    return SimulatedBackend(open_calendar(settings))


@contextlib.contextmanager
def _within_calendar_dates() -> Iterator[None]:
    """An event past 9999-12-31 (its end the next day, or in UTC) is a usage error."""
    try:
        yield
    except OverflowError:
        raise UsageError(
            "the event would end after 9999-12-31, the last date a calendar holds",
            "give an earlier --date",
        ) from None
