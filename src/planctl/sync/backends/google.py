"""``google``: Google Calendar through the Calendar API v3 (and the emulator, as ``simulated``).

- Listing: ``events.list`` with the sync token of the last run (one request
  when nothing changed) over the mirror of the listing; a 410 (token expired)
  is one full listing, said in one line of the log. ``showDeleted`` on full
  listings, so deletions arrive as ``cancelled`` state.
- Writes: updates and deletes carry the etag (``If-Match``); 412 is
  :class:`StaleEtagError` and the engine re-reads and decides by its policy.
  Creates are queued and sent as batches of up to 50 when the engine flushes
  (before it commits the state rows that name them), with event ids chosen
  here so a batch that is cut short and run again never duplicates an event.
- The session's identity is ``extendedProperties.private.planctlSessionId``.
- The calendar is ``PLANCTL_GOOGLE_CALENDAR`` (an id, or a summary; default
  ``Planificador``), created on the first writing run; never the primary
  calendar unless named.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from planctl.config import Settings
from planctl.errors import SyncError
from planctl.sync.backend import EventPayload, Listing, RemoteEvent, StaleEtagError
from planctl.sync.google.client import CalendarClient, GoogleApiError, events_path
from planctl.sync.google.events import remote_event, resource_from_payload, session_property
from planctl.sync.google.mirror import Mirror
from planctl.sync.google.phone import Phone
from planctl.text import plural

NAME = "google"
BATCH_SIZE = 50
FEW = 20  # more events to load than this: one full listing instead of one request each
KEEP_FETCHED = 5000  # events of a listing kept with their content (more: loaded when needed)
logger = logging.getLogger("planctl.sync")

Resource = dict[str, Any]
Row = tuple[str, str | None, int | None, bool]  # id, etag, session id, deleted


def _pending_etag(event_id: str) -> str:
    return f'"planctl-{event_id}"'


class GoogleBackend:
    """The sync protocol over a :class:`CalendarClient` and one calendar."""

    # Google lists deletions as tombstones (showDeleted, sync tokens); it purges old ones,
    # but the mirror keeps every tombstone it saw, even across a full listing.
    keeps_deleted = True
    exclusive = False

    def __init__(
        self,
        client: CalendarClient,
        *,
        calendar: str,
        timezone: str,
        mirror: Mirror,
        where: str,
        create_calendar: bool = True,
        name: str = NAME,
    ) -> None:
        self.client = client
        self.wanted = calendar
        self.timezone = timezone
        self.mirror = mirror
        self.where = where
        self.create_calendar = create_calendar
        self.name = name
        self.calendar_id: str | None = None
        self.calendar_summary = calendar
        self._resolved = False
        self._pending: list[tuple[str, int, Resource]] = []
        self._wrote = False
        self.full_listings = 0

    # -- the calendar ----------------------------------------------------------

    def _calendar(self, *, create: bool) -> str | None:
        """The calendar's id: remembered by the mirror, else from calendarList (one request)."""
        if self.calendar_id is None and not self._resolved:
            self.calendar_id = self.mirror.calendar_for(self.wanted)
        if self.calendar_id is not None or (self._resolved and not create):
            return self.calendar_id
        self._resolve(create=create)
        return self.calendar_id

    def _resolve(self, *, create: bool) -> None:
        calendars = self._call(self.client.calendar_list)
        self.calendar_id = pick_calendar(calendars, self.wanted, self.where)
        if self.calendar_id is None and create and self.create_calendar:
            made = self._call(self.client.insert_calendar, self.wanted, self.timezone)
            self.calendar_id = str(made["id"])
            logger.info(
                "created the calendar '%s' (%s) at %s", self.wanted, self.calendar_id, self.where
            )
        self._resolved = True
        if self.calendar_id is not None:
            self.mirror.remember_calendar(self.wanted, self.calendar_id)

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except GoogleApiError as error:
            raise api_failure(error, self.where) from error

    def describe(self) -> str:
        return f"Google calendar '{self.calendar_summary}' at {self.where}"

    def check(self) -> str:
        calendar_id = self._calendar(create=False)
        if calendar_id is None:
            return (
                f"{self.describe()}: reachable, authorised; the calendar is made on the first sync"
            )
        events = [e for e in self.list() if not e.deleted]
        count = plural(len(events), "event")
        return f"{self.describe()} ({calendar_id}): reachable, authorised, {count}"

    # -- reading -----------------------------------------------------------------

    def list(self) -> list[RemoteEvent]:
        return self.list_changes(None).events

    def list_changes(self, since: str | None) -> Listing:
        """The events changed since the clean run that confirmed *since* (one request when
        nothing changed), or every event (complete) when *since* is None or unknown."""
        calendar_id = self._calendar(create=False)
        if calendar_id is None:
            return Listing([], complete=True)
        try:
            fetched = self._refresh(calendar_id)
        except GoogleApiError as error:
            if error.status == 404 and not self._resolved:  # the remembered calendar is gone
                self.calendar_id = None
                self._resolve(create=False)
                return self.list_changes(since)
            raise api_failure(error, self.where) from error
        rows = self.mirror.changed_since(since) if since is not None else None
        complete = rows is None
        events = []
        for event_id, etag, session_id, deleted in self.mirror.rows() if rows is None else rows:
            resource = fetched.get(event_id)
            if resource is not None:
                events.append(self._remote(resource))
            else:
                events.append(RemoteEvent(event_id, etag, session_id, deleted=deleted))
        return Listing(events, complete=complete)

    def confirm(self, key: str) -> None:
        """Remember the mirror's change number under *key*, durably (saved now: nothing
        else is written at the end of a run that found nothing to do)."""
        self.mirror.confirm(key)
        self.mirror.save(create=self._wrote)

    def _refresh(self, calendar_id: str) -> dict[str, Resource]:
        """Bring the mirror up to date (incrementally with the sync token, else in full),
        page by page; returns the events fetched, when there were at most KEEP_FETCHED."""
        token = self.mirror.token_for(calendar_id)
        kept: dict[str, Resource] = {}
        if token:
            try:
                self.mirror.load(None, self._pages(calendar_id, token, kept), full=False)
                return kept
            except GoogleApiError as error:
                if error.status != 410:
                    raise
                logger.warning(
                    "the calendar's sync token expired (410); listing the whole calendar once"
                )
                kept.clear()
        self.mirror.load(calendar_id, self._pages(calendar_id, None, kept), full=True)
        self.full_listings += 1
        return kept

    def _pages(
        self, calendar_id: str, token: str | None, kept: dict[str, Resource] | None = None
    ) -> Iterator[tuple[Sequence[Row], str | None]]:
        """The listing's pages as mirror rows; the events themselves go to *kept* while
        there are at most KEEP_FETCHED of them (more: none, they are loaded when needed)."""
        pages = self.client.event_pages(calendar_id, sync_token=token, show_deleted=True)
        overflow = kept is None
        for items, next_token in pages:
            if not overflow:
                assert kept is not None
                kept.update((str(e["id"]), e) for e in items)
                if len(kept) > KEEP_FETCHED:
                    kept.clear()
                    overflow = True
            yield self._rows(items), next_token

    def _rows(self, items: Sequence[Resource]) -> Sequence[Row]:
        rows = []
        for event in items:
            value = session_property(event)
            session_id = int(value) if value is not None and value.isdigit() else None
            rows.append(
                (
                    str(event["id"]),
                    event.get("etag"),
                    session_id,
                    event.get("status") == "cancelled",
                )
            )
        return rows

    def _remote(self, event: Resource) -> RemoteEvent:
        remote = remote_event(event, self.timezone)
        shown = self.mirror.shown(remote.id, remote.etag)
        if shown != remote.etag:
            return RemoteEvent(remote.id, shown, remote.session_id, remote.content, remote.deleted)
        return remote

    def get(self, ids: Sequence[str]) -> dict[str, RemoteEvent]:
        """Load events afresh (a re-read after a 412 must not see this run's listing)."""
        calendar_id = self._calendar(create=False)
        if calendar_id is None:
            return {}
        if len(ids) > FEW:
            wanted = set(ids)
            pages = self.client.event_pages(calendar_id, show_deleted=True)
            try:
                return {
                    str(e["id"]): self._remote(e)
                    for items, _ in pages
                    for e in items
                    if str(e["id"]) in wanted
                }
            except GoogleApiError as error:
                raise api_failure(error, self.where) from error
        found: dict[str, RemoteEvent] = {}
        for event_id in ids:
            event = self._call(self.client.get_event, calendar_id, event_id)
            if event is not None:
                found[event_id] = self._remote(event)
        return found

    # -- writing -----------------------------------------------------------------

    def prepare(self) -> None:
        """Create the calendar when missing (after the guards; never in a dry run)."""
        self._calendar(create=True)

    def create(self, payload: EventPayload) -> RemoteEvent:
        self._calendar(create=True)
        event_id = uuid.uuid4().hex  # ours: a batch sent twice cannot make two events
        body = {**resource_from_payload(payload), "id": event_id}
        self._pending.append((event_id, payload.session_id, body))
        if len(self._pending) >= BATCH_SIZE:
            self._send_pending()
        return RemoteEvent(event_id, _pending_etag(event_id), payload.session_id, payload.content)

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        calendar_id = self._calendar(create=True)
        assert calendar_id is not None
        calls = [("POST", events_path(calendar_id), body, None) for _, _, body in pending]
        answers = self.client.batch(calls)
        self._wrote = True
        for (event_id, session_id, _), answer in zip(pending, answers, strict=True):
            if isinstance(answer, GoogleApiError):
                if answer.status == 409:  # sent before by a retried batch: it exists
                    existing = self._call(self.client.get_event, calendar_id, event_id)
                    etag = existing.get("etag") if existing else None
                else:
                    raise api_failure(answer, self.where) from answer
            else:
                etag = answer.get("etag")
            self.mirror.record_write(event_id, etag, _pending_etag(event_id), session_id)

    def update(self, event_id: str, payload: EventPayload, etag: str | None) -> RemoteEvent:
        calendar_id = self._calendar(create=True)
        assert calendar_id is not None
        headers = self._if_match(event_id, etag)
        try:
            event = self.client.call(
                "PUT",
                events_path(calendar_id, event_id),
                body=resource_from_payload(payload),
                headers=headers,
            )
        except GoogleApiError as error:
            if error.status == 412:
                raise StaleEtagError(
                    f"event {event_id}: the calendar has a newer version"
                ) from error
            if error.status in (404, 410):
                raise StaleEtagError(f"event {event_id} is gone") from error
            raise api_failure(error, self.where) from error
        self._wrote = True
        self.mirror.record_write(event_id, event.get("etag"), None, payload.session_id)
        return remote_event(event, self.timezone)

    def delete(self, event_id: str, etag: str | None) -> None:
        calendar_id = self._calendar(create=True)
        assert calendar_id is not None
        try:
            self.client.call(
                "DELETE", events_path(calendar_id, event_id), headers=self._if_match(event_id, etag)
            )
        except GoogleApiError as error:
            if error.status == 412:
                raise StaleEtagError(
                    f"event {event_id}: the calendar has a newer version"
                ) from error
            if error.status not in (404, 410):  # already gone is fine
                raise api_failure(error, self.where) from error
        self._wrote = True

    def _if_match(self, event_id: str, etag: str | None) -> dict[str, str] | None:
        server = self.mirror.server_etag(event_id, etag)
        return {"If-Match": server} if server else None

    def flush(self) -> None:
        """Send the queued creates and save the mirror: the engine commits the state rows
        naming them next."""
        self._send_pending()
        self.mirror.save(create=self._wrote)

    def close(self) -> None:
        try:
            self._pending.clear()  # never flushed: the engine did not commit them either
            if self._wrote and self.calendar_id is not None:
                # Move the sync token past this run's own writes: the next run that
                # finds nothing to do is one request that returns nothing.
                token = self.mirror.token_for(self.calendar_id)
                try:
                    # page by page: after a first sync this is every event of the calendar
                    pages = self._pages(self.calendar_id, token)
                    # without a token: a calendar made by this run, its first listing
                    self.mirror.load(None if token else self.calendar_id, pages, full=not token)
                except (GoogleApiError, SyncError) as error:
                    logger.info("could not move the sync token on: %s", error)
            self.mirror.save(create=self._wrote)
        finally:
            self.mirror.close()
            self.client.close()


def pick_calendar(calendars: list[Resource], wanted: str, where: str) -> str | None:
    """The id of the calendar PLANCTL_GOOGLE_CALENDAR names (an id, or a summary), or None."""
    for calendar in calendars:
        if calendar.get("id") == wanted or (wanted == "primary" and calendar.get("primary")):
            return str(calendar["id"])
    named = [c for c in calendars if c.get("summary") == wanted and not c.get("primary")]
    if len(named) > 1:
        ids = ", ".join(str(c["id"]) for c in named)
        raise SyncError(
            f"{len(named)} calendars are called '{wanted}' at {where} ({ids})",
            "set PLANCTL_GOOGLE_CALENDAR to the id of the one planctl should use",
        )
    return str(named[0]["id"]) if named else None


def api_failure(error: GoogleApiError, where: str) -> SyncError:
    if error.status == 401:
        return SyncError(
            f"Google refused the authorisation at {where} ({error.message})",
            "run planctl sync auth again",
        )
    if error.status == 403:
        return SyncError(
            f"Google refused {error.what} at {where}: {error.reason} ({error.message})",
            "check that the token's account owns the calendar",
        )
    return SyncError(
        f"Google Calendar at {where} answered {error}",
        "run planctl sync again; see the log for the request",
    )


def mirror_path(settings: Settings) -> Path:
    """The listing's mirror of the calendar PLANCTL_GOOGLE_CALENDAR at PLANCTL_GOOGLE_API_URL."""
    key = hashlib.sha256(
        f"{settings.google_api_url}\n{settings.google_calendar}".encode()
    ).hexdigest()[:16]
    return settings.google_token.with_name(f"google-mirror-{key}.sqlite")


def open_backend(settings: Settings, *, create_calendar: bool = True) -> GoogleBackend:
    """Google Calendar with the token of ``planctl sync auth``."""
    from planctl.sync.google.client import HttpTransport
    from planctl.sync.google.oauth import TokenSource

    tokens = TokenSource(settings.google_token)
    client = CalendarClient(HttpTransport(settings.google_api_url), authorize=tokens)
    path = mirror_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return GoogleBackend(
        client,
        calendar=settings.google_calendar,
        timezone=settings.timezone,
        mirror=Mirror(path),
        where=settings.google_api_url,
        create_calendar=create_calendar,
    )


class ApiPhone(Phone):
    """``planctl sync remote`` through the Calendar API: the same on Google and the emulator."""

    def __init__(
        self,
        client: CalendarClient,
        *,
        calendar: str,
        timezone: str,
        where: str,
        title: str,
        on_close: Any = None,
    ) -> None:
        self.client = client
        self.wanted = calendar
        self.timezone = timezone
        self._where = where
        self.title = title
        self._on_close = on_close
        self._calendar_id: str | None = None

    def where(self) -> str:
        return self._where

    def _id(self, *, create: bool) -> str | None:
        if self._calendar_id is None:
            calendars = self._call(self.client.calendar_list)
            self._calendar_id = pick_calendar(calendars, self.wanted, self._where)
            if self._calendar_id is None and create:
                made = self._call(self.client.insert_calendar, self.wanted, self.timezone)
                self._calendar_id = str(made["id"])
        return self._calendar_id

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except GoogleApiError as error:
            raise api_failure(error, self._where) from error

    def list_events(self, *, show_deleted: bool = True) -> list[Resource]:
        calendar_id = self._id(create=False)
        if calendar_id is None:
            return []
        items, _ = self._call(self.client.list_events, calendar_id, show_deleted=show_deleted)
        return list(items)

    def get_event(self, event_id: str) -> Resource | None:
        calendar_id = self._id(create=False)
        return (
            None
            if calendar_id is None
            else self._call(self.client.get_event, calendar_id, event_id)
        )

    def insert(self, body: Resource) -> Resource:
        calendar_id = self._id(create=True)
        assert calendar_id is not None
        return dict(self._call(self.client.call, "POST", events_path(calendar_id), body=body))

    def patch(self, event_id: str, changes: Resource, *, if_match: str | None = None) -> Resource:
        calendar_id = self._id(create=True)
        assert calendar_id is not None
        headers = {"If-Match": if_match} if if_match else None
        return dict(
            self._call(
                self.client.call,
                "PATCH",
                events_path(calendar_id, event_id),
                body=changes,
                headers=headers,
            )
        )

    def delete(self, event_id: str, *, if_match: str | None = None) -> None:
        calendar_id = self._id(create=True)
        assert calendar_id is not None
        headers = {"If-Match": if_match} if if_match else None
        try:
            self.client.call("DELETE", events_path(calendar_id, event_id), headers=headers)
        except GoogleApiError as error:
            if error.status not in (404, 410):
                raise api_failure(error, self._where) from error

    def close(self) -> None:
        self.client.close()
        if self._on_close is not None:
            self._on_close()


def open_phone(settings: Settings) -> ApiPhone:
    """The Google calendar's events, to change as a phone would."""
    from planctl.sync.google.client import HttpTransport
    from planctl.sync.google.oauth import TokenSource

    client = CalendarClient(
        HttpTransport(settings.google_api_url), authorize=TokenSource(settings.google_token)
    )
    return ApiPhone(
        client,
        calendar=settings.google_calendar,
        timezone=settings.timezone,
        where=f"the Google calendar '{settings.google_calendar}' at {settings.google_api_url}",
        title=f"Google calendar '{settings.google_calendar}'",
    )
