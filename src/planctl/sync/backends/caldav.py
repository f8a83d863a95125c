"""``caldav``: any CalDAV server (Nextcloud, Radicale, iCloud, Google's CalDAV endpoint).

The ``caldav`` library finds the principal and its calendars (and creates
planctl's calendar when it is missing); events travel as plain WebDAV
requests so every write can be conditional: ``If-None-Match: *`` to create,
``If-Match: <etag>`` to update or delete (HTTP 412 means somebody changed
the event since planctl read it). A listing asks only for hrefs and etags;
event bodies are fetched (calendar-multiget) only when an etag moved.

After a clean run the calendar's RFC 6578 sync token is remembered
(:mod:`planctl.sync.checkpoints`); the next run asks with a
``sync-collection`` REPORT for what changed since. A server without sync
tokens gets a ``getctag`` check (unchanged: nothing changed); an expired
token gets one full listing.

Events are the iCalendar export's VEVENTs, UID ``sesion-<id>@planctl``,
stored at ``<calendar>/<uid>.ics``, with the VTIMEZONE of their year.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.sax.saxutils import escape

from planctl.calendar.events import END_CALENDAR, calendar_header
from planctl.config import Settings, check_http_url, mask_url
from planctl.errors import ConfigError, SyncError
from planctl.failures import connection_refused
from planctl.logs import mask_url_in_text
from planctl.sync.backend import EventPayload, Listing, RemoteEvent, StaleEtagError
from planctl.sync.checkpoints import Checkpoint, CheckpointFile
from planctl.sync.content import content_from_vevent, session_id_from_uid
from planctl.text import plural

NAME = "caldav"
TIMEOUT_SECONDS = 20
MULTIGET_CHUNK = 200
MAX_REDIRECTS = 5
DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CALENDARSERVER = "{http://calendarserver.org/ns/}"
PROPFIND_ETAGS = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>'
)
PROPFIND_CTAG = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">'
    "<d:prop><cs:getctag/></d:prop></d:propfind>"
)
SYNC_PAGES = 100  # truncated sync-collection answers (RFC 6578 section 3.6) followed
VALID_SYNC_TOKEN = f"{DAV}valid-sync-token"

log = logging.getLogger("planctl.sync")


def _sync_collection(token: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<d:sync-collection xmlns:d="DAV:">'
        f"<d:sync-token>{escape(token)}</d:sync-token><d:sync-level>1</d:sync-level>"
        "<d:prop><d:getetag/></d:prop></d:sync-collection>"
    )


class _ExpiredToken(Exception):
    """The server no longer accepts the sync token (DAV:valid-sync-token)."""


class _NoSync(Exception):
    """The server answered the sync-collection REPORT with an error: no sync tokens."""


def _library_errors() -> tuple[type[Exception], ...]:
    """What the caldav library raises for a server's failure: its own DAVError, niquests'
    errors (OSError subclasses, like the socket's) and lxml's for a body that is not XML.
    Anything else is a bug and keeps its traceback."""
    from caldav.lib.error import DAVError
    from lxml.etree import LxmlError

    return (DAVError, OSError, LxmlError)


class CalDAVBackend:
    """The sync protocol over one calendar collection of a CalDAV server."""

    name = NAME
    keeps_deleted = False  # a deleted event is gone; a CANCELLED one stays (and is tracked)

    def __init__(
        self,
        settings: Settings,
        *,
        create_calendar: bool = True,
        checkpoints: Path | None = None,
    ) -> None:
        self.url = settings.caldav_url.strip()
        self.user = settings.caldav_user.strip()
        self.password = settings.caldav_password
        self.calendar_name = settings.caldav_calendar.strip()
        self.timezone = settings.timezone
        self.create_calendar = create_calendar
        self._client: Any = None
        self._calendar_url: str | None = None
        self._looked_up = False
        self.service_url = self.url
        #: what clean runs' listings are remembered by (None: every listing is complete)
        self.checkpoints = CheckpointFile(checkpoints)
        self._pending: Checkpoint | None = None  # this run's listing, for confirm()
        self._others: dict[str, str | None] = {}  # events planctl did not make: id → etag
        self._written: dict[str, None] = {}  # events this run wrote (an ordered set)
        self.full_listings = 0  # for tests and the benchmark

    # -- connection and errors -------------------------------------------------

    def describe(self) -> str:
        who = f" as '{self.user}'" if self.user else ""
        return f"CalDAV calendar '{self.calendar_name}' at {mask_url(self.url)}{who}"

    def _require_settings(self) -> None:
        if not self.url:
            raise ConfigError(
                "PLANCTL_CALDAV_URL is not set (PLANCTL_SYNC_BACKEND=caldav)",
                "set it in .env to the server's CalDAV URL, e.g. https://cloud.example.com/remote.php/dav",
            )
        problem = check_http_url("PLANCTL_CALDAV_URL", self.url)
        if problem:
            raise ConfigError(problem, "e.g. https://cloud.example.com/remote.php/dav")
        if self.password and not self.user:
            raise ConfigError(
                "PLANCTL_CALDAV_PASSWORD is set but PLANCTL_CALDAV_USER is not",
                "set the user name that goes with the password",
            )
        if not self.calendar_name:
            raise ConfigError(
                "PLANCTL_CALDAV_CALENDAR is empty", "name the calendar planctl should use"
            )

    def _scrub(self, text: str) -> str:
        """A server or library message on one line, URL userinfo masked by structure.

        Never a search-and-replace of the password's text: messages are never
        built with the password, and replacing a short password's letters
        would garble unrelated words.
        """
        return mask_url_in_text(" ".join(str(text).split()))

    def _translate(self, error: Exception) -> SyncError:
        """One line that says what went wrong with the server, never the password."""
        from caldav.lib import error as dav_error

        where = mask_url(self.url)
        if isinstance(error, dav_error.AuthorizationError):
            who = f"user '{self.user}'" if self.user else "anonymous access"
            return SyncError(
                f"CalDAV server {where} refused {who} (HTTP 401/403)",
                "check PLANCTL_CALDAV_USER and PLANCTL_CALDAV_PASSWORD",
            )
        if isinstance(error, OSError | TimeoutError) or "Connection" in type(error).__name__:
            reason = self._scrub(str(getattr(error, "strerror", None) or error))
            if connection_refused(error):
                reason = "connection refused"
            return SyncError(
                f"cannot reach CalDAV server {where}: {reason}",
                "is the server running, and are the host and port in PLANCTL_CALDAV_URL right?",
            )
        return SyncError(
            f"CalDAV server {where} failed: {self._scrub(str(error))}",
            "check PLANCTL_CALDAV_URL; details in sincronizacion.log",
        )

    def _connect(self) -> Any:
        if self._client is None:
            self._require_settings()
            from caldav.davclient import DAVClient

            try:
                self.service_url = self._follow_well_known(self.url)
                client = DAVClient(
                    url=self.service_url,
                    username=self.user or None,
                    # a user with an empty password still answers the server's challenge
                    password=self.password if self.user else None,
                    timeout=TIMEOUT_SECONDS,
                )
                self._principal = client.principal()
            except _library_errors() as error:
                raise self._translate(error) from error
            self._client = client
        return self._client

    def _follow_well_known(self, url: str) -> str:
        """The service URL behind an RFC 6764 ``/.well-known/caldav`` URL (else *url*).

        The caldav library's own discovery starts from a domain or an e-mail
        address and insists on https; a configured well-known URL is followed
        here, redirect by redirect (a PROPFIND must not become a GET), and only
        within the same host (RFC 6764 section 8).
        """
        if not urlsplit(url).path.rstrip("/").endswith("/.well-known/caldav"):
            return url
        import niquests

        auth = (self.user, self.password) if self.user else None
        current = url
        for _ in range(MAX_REDIRECTS):
            response = niquests.request(
                "PROPFIND",
                current,
                headers={"Depth": "0"},
                auth=auth,
                timeout=TIMEOUT_SECONDS,
                allow_redirects=False,
            )
            location = response.headers.get("Location")
            if response.status_code not in (301, 302, 303, 307, 308) or not location:
                return current
            target = urljoin(current, location)
            if urlsplit(target).hostname != urlsplit(url).hostname:
                raise SyncError(
                    f"{mask_url(url)} redirects to another host ({urlsplit(target).hostname})",
                    "set PLANCTL_CALDAV_URL to the server's CalDAV URL itself",
                )
            current = target
        raise SyncError(
            f"{mask_url(url)} redirects more than {MAX_REDIRECTS} times",
            "set PLANCTL_CALDAV_URL to the server's CalDAV URL itself",
        )

    def _calendars(self) -> dict[str, str]:
        """Display name → URL of the principal's calendars."""
        self._connect()
        found: dict[str, str] = {}
        try:
            for calendar in self._principal.calendars():
                name = calendar.get_display_name() or str(calendar.url).rstrip("/").split("/")[-1]
                found.setdefault(str(name), str(calendar.url))
        except _library_errors() as error:
            raise self._translate(error) from error
        return found

    def _calendar(self) -> str | None:
        """planctl's calendar URL, None while it does not exist (see :meth:`prepare`)."""
        if not self._looked_up:
            url = self._calendars().get(self.calendar_name)
            self._calendar_url = url if url is None or url.endswith("/") else url + "/"
            self._looked_up = True
        return self._calendar_url

    def prepare(self) -> None:
        """Create planctl's calendar when it is missing (a run that passed the guards)."""
        if self._calendar() is not None:
            return
        if not self.create_calendar:
            raise SyncError(
                f"calendar '{self.calendar_name}' does not exist at {mask_url(self.url)}",
                "run planctl sync (not a dry run) to create it, or set PLANCTL_CALDAV_CALENDAR",
            )
        try:
            made = self._principal.make_calendar(name=self.calendar_name)
        except _library_errors() as error:
            raise self._translate(error) from error
        url = str(made.url)
        self._calendar_url = url if url.endswith("/") else url + "/"

    def _request(
        self, url: str, method: str, body: str = "", headers: dict[str, str] | None = None
    ) -> Any:
        client = self._connect()
        try:
            return client.request(url, method, body, headers or {})
        except _library_errors() as error:
            raise self._translate(error) from error

    # -- the protocol ----------------------------------------------------------

    def check(self) -> str:
        calendars = self._calendars()
        if self.calendar_name not in calendars:
            existing = ", ".join(sorted(calendars)) or "none"
            raise SyncError(
                f"calendar '{self.calendar_name}' does not exist at {mask_url(self.url)} "
                f"(calendars there: {existing})",
                "planctl sync creates it on its first run, or set PLANCTL_CALDAV_CALENDAR",
            )
        self._calendar_url = calendars[self.calendar_name]
        self._looked_up = True
        events = len(self.list())
        found = "; ".join(f"'{n}' {self._path(u)}" for n, u in sorted(calendars.items()))
        return (
            f"{self.describe()}: reachable, {plural(events, 'event')}\n"
            f"  service:    {mask_url(self.service_url)}\n"
            f"  principal:  {self._path(str(self._principal.url))}\n"
            f"  calendars:  {found}\n"
            f"  planctl's:  {self._path(self._calendar_url)}"
        )

    def _path(self, href: str) -> str:
        """The canonical id of an event: its unquoted URL path."""
        base = self._calendar() or self.url
        return unquote(urlsplit(urljoin(base, href)).path)

    def _href(self, event_id: str) -> str:
        base = self._calendar() or self.url
        return urljoin(base, quote(event_id))

    def list(self) -> list[RemoteEvent]:
        calendar = self._calendar()
        if calendar is None:
            return []  # a dry run before the calendar exists: it would start empty
        response = self._request(calendar, "PROPFIND", PROPFIND_ETAGS, {"Depth": "1"})
        if response.status not in (200, 207) or response.tree is None:
            raise SyncError(
                f"listing {self.describe()} failed (HTTP {response.status})",
                "check PLANCTL_CALDAV_URL and PLANCTL_CALDAV_CALENDAR",
            )
        events = []
        own = unquote(urlsplit(calendar).path).rstrip("/")
        for item in response.tree.iter(f"{DAV}response"):
            href = item.findtext(f"{DAV}href") or ""
            if item.find(f".//{DAV}resourcetype/{DAV}collection") is not None:
                continue
            path = self._path(href)
            if path.rstrip("/") == own:
                continue
            events.append(RemoteEvent(id=path, etag=item.findtext(f".//{DAV}getetag")))
        return events

    def list_changes(self, since: str | None) -> Listing:
        """What changed since the clean run that confirmed *since*: a ``sync-collection``
        REPORT with that run's sync token (one request when nothing changed), or for a
        server without tokens a ``getctag`` check; else every href and etag."""
        self._pending = None
        self._written = {}
        calendar = self._calendar()
        if calendar is None:
            return Listing([], complete=True)
        saved = self.checkpoints.get(since) if since is not None else None
        if saved is not None and saved.calendar == calendar and saved.usable:
            changes = self._changes(calendar, saved)
            if changes is not None:
                return changes
        return self._full(calendar)

    def _changes(self, calendar: str, saved: Checkpoint) -> Listing | None:
        """The incremental listing, None when only a full one can tell."""
        ctag = saved.ctag
        if saved.token:
            try:
                changed, token = self._sync_report(calendar, saved.token)
            except _ExpiredToken:
                log.warning(
                    "the calendar's sync token is no longer valid; listing the whole calendar once"
                )
                return None
            except _NoSync:
                changed, token = None, None
            if changed is not None:
                return self._incremental(calendar, saved, changed, token, None)
        if not ctag:
            return None
        now = self._ctag(calendar)
        if now is None or now != ctag:
            return None
        return self._incremental(calendar, saved, {}, None, now)

    def _incremental(
        self,
        calendar: str,
        saved: Checkpoint,
        changed: dict[str, str | None],
        token: str | None,
        ctag: str | None,
    ) -> Listing:
        """Events changed (etag) or gone (None) since *saved*, plus others' events; the
        events the confirming run wrote are asked for their etags again."""
        again = [path for path in saved.written if path not in changed]
        if again:
            changed = {**changed, **self._etags(calendar, again)}
        gone = tuple(sorted(path for path, etag in changed.items() if etag is None))
        self._others = {p: e for p, e in saved.others.items() if p not in changed}
        events = [RemoteEvent(id=p, etag=e) for p, e in changed.items() if e is not None]
        events += [RemoteEvent(id=p, etag=e) for p, e in self._others.items()]
        self._pending = Checkpoint(calendar, token, ctag)
        return Listing(events, complete=False, gone=gone)

    def _full(self, calendar: str) -> Listing:
        """Every href and etag: with a fresh sync token when the server has them (one
        request), else the ctag first and then a PROPFIND."""
        self.full_listings += 1
        self._others = {}
        try:
            changed, token = self._sync_report(calendar, "")
        except (_ExpiredToken, _NoSync):
            changed, token = None, None
        if changed is not None and token:
            events = [RemoteEvent(id=p, etag=e) for p, e in changed.items() if e is not None]
            self._pending = Checkpoint(calendar, token)
            return Listing(events, complete=True)
        ctag = self._ctag(calendar)  # before the listing: a change in between is seen next time
        events = self.list()
        self._pending = Checkpoint(calendar, None, ctag)
        return Listing(events, complete=True)

    def _sync_report(self, calendar: str, token: str) -> tuple[dict[str, str | None], str]:
        """RFC 6578 ``sync-collection`` from *token* ("" for every member): id → etag of
        what changed (None: removed), and the new token; truncated answers are followed."""
        from caldav.lib.error import DAVError

        changed: dict[str, str | None] = {}
        own = unquote(urlsplit(calendar).path).rstrip("/")
        for _ in range(SYNC_PAGES):
            client = self._connect()
            try:
                response = client.request(
                    calendar, "REPORT", _sync_collection(token), {"Depth": "0"}
                )
            except DAVError as error:
                if VALID_SYNC_TOKEN in (error.preconditions or []):
                    raise _ExpiredToken from error
                log.debug("sync-collection refused: %s", self._scrub(str(error)))
                raise _NoSync from error
            except _library_errors() as error:
                raise self._translate(error) from error
            tree = response.tree
            if response.status != 207 or tree is None:
                if tree is not None and tree.find(f".//{VALID_SYNC_TOKEN}") is not None:
                    raise _ExpiredToken
                log.debug("sync-collection answered HTTP %s", response.status)
                raise _NoSync
            new_token = tree.findtext(f"{DAV}sync-token")
            if not new_token:
                raise _NoSync
            truncated = False
            for item in tree.iter(f"{DAV}response"):
                path = self._path(item.findtext(f"{DAV}href") or "")
                status = item.findtext(f"{DAV}status") or ""
                if path.rstrip("/") == own:
                    truncated = truncated or " 507" in status
                    continue
                if item.find(f".//{DAV}resourcetype/{DAV}collection") is not None:
                    continue
                etag = item.findtext(f".//{DAV}getetag")
                if etag is None and " 404" not in status:
                    continue  # a member whose etag the server did not give: not a change
                changed[path] = etag
            if not truncated:
                return changed, new_token
            if new_token == token:
                break  # truncated without a way on: what is missing cannot be asked for
            token = new_token
        log.debug("sync-collection stayed truncated; listing in full")
        raise _NoSync

    def _etags(self, calendar: str, ids: Sequence[str]) -> dict[str, str | None]:
        """The etags of *ids* (None: gone), by calendar-multiget without their bodies."""
        found: dict[str, str | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), MULTIGET_CHUNK):
            response = self._multiget(calendar, ids[start : start + MULTIGET_CHUNK], data=False)
            for item in response.tree.iter(f"{DAV}response"):
                path = self._path(item.findtext(f"{DAV}href") or "")
                if path in found:
                    found[path] = item.findtext(f".//{DAV}getetag") or None
        return found

    def _multiget(self, calendar: str, ids: Sequence[str], *, data: bool) -> Any:
        hrefs = "".join(f"<d:href>{escape(quote(i))}</d:href>" for i in ids)
        wanted = "<d:getetag/><c:calendar-data/>" if data else "<d:getetag/>"
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
            f"<d:prop>{wanted}</d:prop>{hrefs}</c:calendar-multiget>"
        )
        response = self._request(calendar, "REPORT", body, {"Depth": "1"})
        if response.status not in (200, 207) or response.tree is None:
            raise SyncError(f"reading events of {self.describe()} failed (HTTP {response.status})")
        return response

    def _ctag(self, calendar: str) -> str | None:
        """The calendar's ``getctag`` (None when the server has none)."""
        try:
            response = self._request(calendar, "PROPFIND", PROPFIND_CTAG, {"Depth": "0"})
        except SyncError:
            return None
        if response.status not in (200, 207) or response.tree is None:
            return None
        ctag = response.tree.findtext(f".//{CALENDARSERVER}getctag")
        return ctag or None

    def confirm(self, key: str) -> None:
        """Remember this run's sync token (or ctag) and others' events under *key*."""
        if self._pending is None or not self._pending.usable:
            return
        checkpoint = Checkpoint(
            self._pending.calendar,
            self._pending.token,
            self._pending.ctag,
            dict(self._others),
            tuple(self._written),
        )
        self.checkpoints.put(key, checkpoint)

    def get(self, ids: Sequence[str]) -> dict[str, RemoteEvent]:
        calendar = self._calendar()
        if calendar is None or not ids:
            return {}
        found: dict[str, RemoteEvent] = {}
        for start in range(0, len(ids), MULTIGET_CHUNK):
            response = self._multiget(calendar, ids[start : start + MULTIGET_CHUNK], data=True)
            for item in response.tree.iter(f"{DAV}response"):
                data = item.findtext(f".//{CALDAV}calendar-data")
                if not data:
                    continue  # 404 inside the multistatus: gone meanwhile
                path = self._path(item.findtext(f"{DAV}href") or "")
                event = self._parse(path, item.findtext(f".//{DAV}getetag"), data)
                found[path] = event
                if event.session_id is None:
                    self._others[path] = event.etag
                else:
                    self._others.pop(path, None)
        return found

    def _parse(self, path: str, etag: str | None, data: str) -> RemoteEvent:
        from icalendar import Calendar, Event

        try:
            calendar = Calendar.from_ical(data)
            masters = [e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e]
            event = masters[0]
            if not isinstance(event, Event):
                raise TypeError("not a VEVENT")
            uid = str(event.get("uid", ""))
            content = content_from_vevent(event, self.timezone)
        except (ValueError, IndexError, KeyError, TypeError):
            # Not an event planctl can read (a task, a broken file): someone else's.
            return RemoteEvent(id=path, etag=etag)
        return RemoteEvent(id=path, etag=etag, session_id=session_id_from_uid(uid), content=content)

    def _body(self, payload: EventPayload) -> str:
        year = payload.content.start.year
        header = calendar_header(payload.timezone, dt.date(year, 1, 1), dt.date(year + 1, 1, 1))
        data: bytes = header + payload.vevent.to_ical() + END_CALENDAR
        return data.decode("utf-8")

    def _put(self, event_id: str, payload: EventPayload, condition: dict[str, str]) -> RemoteEvent:
        headers = {"Content-Type": "text/calendar; charset=utf-8", **condition}
        self._wrote(event_id)
        response = self._request(self._href(event_id), "PUT", self._body(payload), headers)
        if response.status in (404, 412):
            raise StaleEtagError(f"event {event_id}: HTTP {response.status}")
        if response.status not in (200, 201, 204):
            raise SyncError(
                f"writing event {event_id} to {self.describe()} failed (HTTP {response.status})",
                "details in sincronizacion.log",
            )
        etag = response.headers.get("ETag")
        return RemoteEvent(id=event_id, etag=etag, session_id=payload.session_id)

    def _wrote(self, event_id: str) -> None:
        """Before a write: the first one of a run forgets the calendar's checkpoints."""
        if not self._written and self._calendar_url is not None:
            self.checkpoints.forget(self._calendar_url)
        self._written[event_id] = None

    def create(self, payload: EventPayload) -> RemoteEvent:
        calendar = self._calendar()
        assert calendar is not None, "prepare() creates the calendar before the first write"
        event_id = unquote(urlsplit(calendar).path) + f"{payload.uid}.ics"
        return self._put(event_id, payload, {"If-None-Match": "*"})

    def update(self, event_id: str, payload: EventPayload, etag: str | None) -> RemoteEvent:
        return self._put(event_id, payload, {"If-Match": etag} if etag else {})

    def delete(self, event_id: str, etag: str | None) -> None:
        headers = {"If-Match": etag} if etag else {}
        self._wrote(event_id)
        response = self._request(self._href(event_id), "DELETE", "", headers)
        if response.status == 412:
            raise StaleEtagError(f"event {event_id}: HTTP 412")
        if response.status not in (200, 204, 404):
            raise SyncError(
                f"deleting event {event_id} from {self.describe()} failed (HTTP {response.status})",
                "details in sincronizacion.log",
            )

    def flush(self) -> None:
        """Nothing to do: the server acknowledged each write."""

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None


def checkpoints_path(settings: Settings) -> Path:
    """Where clean runs' sync tokens for this calendar are kept: next to the sync store
    (config.default_sync_store: beside a SQLite database, else the per-user data
    directory), one file per server URL, user and calendar name."""
    key = hashlib.sha256(
        f"{settings.caldav_url.strip()}\n{settings.caldav_user.strip()}\n"
        f"{settings.caldav_calendar.strip()}".encode()
    ).hexdigest()[:16]
    return settings.sync_store.with_name(f"planctl-caldav-{key}.json")


def open_backend(settings: Settings, *, create_calendar: bool = True) -> CalDAVBackend:
    """The CalDAV calendar of PLANCTL_CALDAV_URL/USER/PASSWORD/CALENDAR (connects lazily)."""
    return CalDAVBackend(
        settings, create_calendar=create_calendar, checkpoints=checkpoints_path(settings)
    )
