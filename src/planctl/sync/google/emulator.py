"""A Google Calendar API v3 emulator: Google's paths, shapes and errors over a store.

:class:`Emulator` turns one request (method, path with query, headers, body)
into one response; :func:`serve` puts it on loopback with the standard
library's threading HTTP server, and the ``simulated`` backend calls it
in-process (no socket). Served:

- ``/calendar/v3/``: ``users/me/calendarList``, ``calendars`` (insert, get),
  ``calendars/{id}/events`` (list with ``syncToken``/``pageToken``/
  ``showDeleted``/``privateExtendedProperty``/``timeMin``/``timeMax``, insert,
  get, update, patch, delete); etags and ``If-Match`` (412); 410
  ``fullSyncRequired`` for a sync token of an older epoch; Google's error body.
- ``/batch/calendar/v3``: ``multipart/mixed`` batches of the above.
- ``/o/oauth2/auth`` (approves at once: 302 to the loopback ``redirect_uri``
  with ``code`` and ``state``), ``/token`` (``authorization_code`` with PKCE,
  ``refresh_token``), ``/revoke``.
- ``/emulator/faults`` (POST a fault, DELETE all), ``/emulator/stats``: fault
  injection and request counts for tests (docs/sync.md lists the faults).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from planctl.sync.backend import StaleEtagError
from planctl.sync.google.store import DuplicateId, EmulatorStore, Resource, now_rfc3339

API = "/calendar/v3"
BATCH = "/batch/calendar/v3"
ACCESS_TOKEN_LIFETIME = 3600.0
REASONS = {
    400: ("Bad Request", "badRequest", "INVALID_ARGUMENT"),
    401: ("Invalid Credentials", "authError", "UNAUTHENTICATED"),
    403: ("Rate Limit Exceeded", "rateLimitExceeded", "PERMISSION_DENIED"),
    404: ("Not Found", "notFound", "NOT_FOUND"),
    409: ("The requested identifier already exists.", "duplicate", "ALREADY_EXISTS"),
    410: ("Resource has been deleted", "deleted", "FAILED_PRECONDITION"),
    412: ("Precondition Failed", "conditionNotMet", "FAILED_PRECONDITION"),
    429: ("Rate Limit Exceeded", "rateLimitExceeded", "RESOURCE_EXHAUSTED"),
    500: ("Backend Error", "backendError", "INTERNAL"),
    503: ("The service is currently unavailable.", "backendError", "UNAVAILABLE"),
}
FILTERS_BARRED_WITH_SYNC_TOKEN = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)


@dataclass
class Request:
    method: str
    target: str  # path and query, as on the request line
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.target).query).items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        message: str | None = None,
        reason: str | None = None,
        *,
        location: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_message, default_reason, _ = REASONS.get(status, ("Error", "error", "UNKNOWN"))
        super().__init__(message or default_message)
        self.status = status
        self.message = message or default_message
        self.reason = reason or default_reason
        self.location = location
        self.headers = headers or {}

    def response(self) -> Response:
        """Google's error body: ``{"error": {"code", "message", "errors": [...], "status"}}``."""
        domain = (
            "usageLimits"
            if self.reason.endswith("RateLimitExceeded") or self.reason == ("rateLimitExceeded")
            else "global"
        )
        detail: Resource = {"domain": domain, "reason": self.reason, "message": self.message}
        if self.location:
            detail.update(locationType="parameter", location=self.location)
        status = REASONS.get(self.status, ("", "", "UNKNOWN"))[2]
        body = {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [detail],
                "status": status,
            }
        }
        return json_response(self.status, body, self.headers)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return Response(
        status, data, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
    )


@dataclass
class Fault:
    """One injected failure: answer *count* matching requests with it (after *skip* of them).

    kind: ``rate_limit`` (403 rateLimitExceeded), ``user_rate_limit`` (403
    userRateLimitExceeded), ``too_many`` (429), ``server`` (*status*, 500 or
    503), ``stall`` (a batch stops for *seconds* after *after_parts* of its
    parts, then answers 503 for the rest without applying them). ``retry_after``
    adds a Retry-After header; ``path`` limits it to
    paths containing that text.
    """

    kind: str
    count: int = 1
    skip: int = 0
    status: int = 503
    retry_after: float | None = None
    path: str = ""
    seconds: float = 30.0
    after_parts: int = 0

    def error(self) -> HttpError:
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}
        if self.kind == "rate_limit":
            return HttpError(403, "Rate Limit Exceeded", "rateLimitExceeded", headers=headers)
        if self.kind == "user_rate_limit":
            return HttpError(
                403, "User Rate Limit Exceeded", "userRateLimitExceeded", headers=headers
            )
        if self.kind == "too_many":
            return HttpError(429, headers=headers)
        return HttpError(self.status, headers=headers)


FAULT_KINDS = ("rate_limit", "user_rate_limit", "too_many", "server", "stall")


class Emulator:
    """Google Calendar API v3 over a store. Thread-safe: one request at a time."""

    def __init__(
        self,
        store: EmulatorStore,
        *,
        require_auth: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.require_auth = require_auth
        self.clock = clock
        self.faults: list[Fault] = []
        self.requests = 0
        self.stalled = 0  # batches that stopped on a ``stall`` fault
        self.access_token_lifetime = ACCESS_TOKEN_LIFETIME
        self._lock = threading.RLock()

    # -- dispatch ------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/emulator/"):
            with self._lock:
                return self._admin(request)
        with self._lock:
            self.requests += 1
            try:
                if path in ("/o/oauth2/auth", "/o/oauth2/v2/auth"):
                    return self._authorize(request)
                if path in ("/token", "/oauth2/v4/token"):
                    return self._token(request)
                if path in ("/revoke", "/o/oauth2/revoke"):
                    return self._revoke(request)
                if not (path.startswith(API + "/") or path == BATCH):
                    raise HttpError(404)
                self._check_auth(request)
                stall = self._fault(path)
                if path == BATCH:
                    return self._batch(request, stall)
                return self._api(request)
            except HttpError as error:
                return error.response()
        raise AssertionError("unreachable")

    def _fault(self, path: str) -> Fault | None:
        for fault in list(self.faults):
            if fault.path not in path:
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.count -= 1
            if fault.count <= 0:
                self.faults.remove(fault)
            if fault.kind == "stall":
                return fault
            raise fault.error()
        return None

    def _check_auth(self, request: Request) -> None:
        if not self.require_auth:
            return
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not token or not self.store.access_valid(token, self.clock()):
            raise HttpError(
                401,
                "Request had invalid authentication credentials.",
                "authError",
                location="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )

    def _admin(self, request: Request) -> Response:
        path = request.path
        if path == "/emulator/stats":
            return json_response(
                200,
                {
                    "requests": self.requests,
                    "stalled": self.stalled,
                    "faults": len(self.faults),
                    "writes": self.store.writes,
                },
            )
        if path == "/emulator/faults" and request.method == "DELETE":
            self.faults.clear()
            return json_response(200, {})
        if path == "/emulator/faults" and request.method == "POST":
            body = _json_body(request)
            kind = body.get("kind")
            if kind == "expire_sync_tokens":
                self.store.expire_sync_tokens()
            elif kind == "revoke_grants":
                self.store.revoke_all()
            elif kind == "access_token_lifetime":
                self.access_token_lifetime = float(body.get("seconds", ACCESS_TOKEN_LIFETIME))
            elif kind in FAULT_KINDS:
                fields = {k: v for k, v in body.items() if k in Fault.__dataclass_fields__}
                self.faults.append(Fault(**fields))
            else:
                raise_bad = HttpError(400, f"unknown fault kind {kind!r}")
                return raise_bad.response()
            return json_response(200, {})
        if path == "/emulator/reset":
            self.requests = 0
            return json_response(200, {})
        return HttpError(404).response()

    # -- the Calendar API ----------------------------------------------------

    def _api(self, request: Request) -> Response:
        parts = [unquote(p) for p in request.path[len(API) + 1 :].split("/")]
        method = request.method
        if parts[:3] == ["users", "me", "calendarList"] and len(parts) == 3 and method == "GET":
            return self._calendar_list()
        if parts[0] == "calendars" and len(parts) == 1 and method == "POST":
            body = _json_body(request)
            if not str(body.get("summary") or "").strip():
                raise HttpError(400, "Missing title.", "required")
            return json_response(
                200, self.store.insert_calendar(str(body["summary"]), body.get("timeZone"))
            )
        if parts[0] != "calendars" or len(parts) < 2:
            raise HttpError(404)
        calendar = self.store.calendar(parts[1])
        if calendar is None:
            raise HttpError(404)
        calendar_id = str(calendar["id"])
        if len(parts) == 2 and method == "GET":
            return json_response(200, calendar)
        if len(parts) == 3 and parts[2] == "events":
            if method == "GET":
                return self._list(calendar, request.query)
            if method == "POST":
                return self._event_response(self._insert(calendar_id, _json_body(request)))
        if len(parts) == 4 and parts[2] == "events":
            return self._event(calendar_id, parts[3], request)
        raise HttpError(404)

    def _calendar_list(self) -> Response:
        items = []
        for calendar in self.store.calendars():
            entry = {
                **calendar,
                "kind": "calendar#calendarListEntry",
                "accessRole": "owner",
                "defaultReminders": [],
                "selected": True,
            }
            items.append(entry)
        return json_response(
            200,
            {
                "kind": "calendar#calendarList",
                "etag": f'"{self.store.last_seq()}"',
                "nextSyncToken": _token({"l": self.store.last_seq()}),
                "items": items,
            },
        )

    def _insert(self, calendar_id: str, body: Resource) -> Resource:
        _check_event(body)
        event_id = body.get("id")
        if event_id is not None and not re.fullmatch(r"[a-v0-9]{5,1024}", str(event_id)):
            raise HttpError(400, "Invalid resource id value.", "invalid")
        try:
            return self.store.insert(calendar_id, body)
        except DuplicateId as error:
            raise HttpError(409) from error

    def _event(self, calendar_id: str, event_id: str, request: Request) -> Response:
        if_match = request.headers.get("if-match")
        try:
            if request.method == "GET":
                found = self.store.get_event(calendar_id, event_id)
                if found is None:
                    raise HttpError(404)
                return self._event_response(found)
            if request.method == "PUT":
                body = _json_body(request)
                _check_event(body)
                return self._event_response(
                    self.store.update(calendar_id, event_id, body, if_match=if_match)
                )
            if request.method == "PATCH":
                return self._event_response(
                    self.store.patch(calendar_id, event_id, _json_body(request), if_match=if_match)
                )
            if request.method == "DELETE":
                if not self.store.delete(calendar_id, event_id, if_match=if_match):
                    raise HttpError(410)
                return Response(204)
        except KeyError as error:
            current = self.store.get_event(calendar_id, event_id)
            raise HttpError(410 if current is not None else 404) from error
        except StaleEtagError as error:
            raise HttpError(412, location="If-Match") from error
        raise HttpError(405, "Method not allowed", "methodNotAllowed")

    def _event_response(self, event: Resource) -> Response:
        return json_response(200, _decorated(event), {"ETag": str(event.get("etag", ""))})

    def _list(self, calendar: Resource, query: dict[str, str]) -> Response:
        calendar_id = str(calendar["id"])
        sync_token, page_token = query.get("syncToken"), query.get("pageToken")
        try:
            limit = max(1, min(int(query.get("maxResults", "250")), 2500))
        except ValueError as error:
            raise HttpError(
                400, "Invalid value for maxResults", "invalid", location="maxResults"
            ) from error
        if page_token:
            state = _untoken(page_token, "pageToken")
            after, incremental = int(state["a"]), bool(state.get("i"))
        elif sync_token:
            barred = [name for name in FILTERS_BARRED_WITH_SYNC_TOKEN if name in query]
            if barred:
                raise HttpError(
                    400,
                    f"The {barred[0]} parameter cannot be used with syncToken.",
                    "invalid",
                    location=barred[0],
                )
            state = _untoken(sync_token, "syncToken")
            if state.get("c") != calendar_id:
                raise HttpError(400, "Invalid sync token value.", "invalid", location="syncToken")
            if int(state.get("e", 0)) != self.store.epoch:
                raise HttpError(
                    410,
                    "Sync token is no longer valid, a full sync is required.",
                    "fullSyncRequired",
                    location="syncToken",
                )
            after, incremental = int(state["s"]), True
        else:
            after, incremental = 0, False
        show_deleted = incremental or query.get("showDeleted") == "true"
        wanted = _filters(query)
        items: list[Resource] = []
        last = after
        more = False
        while len(items) < limit:
            chunk = list(self.store.events(calendar_id, after_seq=last, limit=limit))
            if not chunk:
                break
            for seq, event in chunk:
                last = seq
                if (show_deleted or event.get("status") != "cancelled") and wanted(event):
                    items.append(_decorated(event))
                    if len(items) == limit:
                        break
            more = bool(list(self.store.events(calendar_id, after_seq=last, limit=1)))
            if not more:
                break
        body: Resource = {
            "kind": "calendar#events",
            "etag": f'"{last}"',
            "summary": calendar["summary"],
            "description": "",
            "updated": now_rfc3339(),
            "timeZone": calendar["timeZone"],
            "accessRole": "owner",
            "defaultReminders": [],
            "items": items,
        }
        if more:
            body["nextPageToken"] = _token({"a": last, "i": int(incremental)})
        else:
            body["nextSyncToken"] = _token({"c": calendar_id, "s": last, "e": self.store.epoch})
        return json_response(200, body)

    # -- batch ---------------------------------------------------------------

    def _batch(self, request: Request, stall: Fault | None) -> Response:
        content_type = request.headers.get("content-type", "")
        match = re.search(r'boundary="?([^";]+)"?', content_type)
        if not content_type.startswith("multipart/mixed") or not match:
            raise HttpError(400, "Batch requests are multipart/mixed with a boundary.")
        parts = split_multipart(request.body, match.group(1))
        if len(parts) > 1000:
            raise HttpError(400, "Too many requests in batch; the limit is 1000.")
        boundary = "batch_" + secrets.token_hex(12)
        out: list[bytes] = []
        stalled = False
        for number, part in enumerate(parts):
            if stall is not None and number == stall.after_parts:
                # The server stops half-way (a crash): the rest of the batch is never applied.
                self.stalled += 1
                stalled = True
                self._lock.release()  # let tests look at the stats while this batch hangs
                try:
                    time.sleep(stall.seconds)
                finally:
                    self._lock.acquire()
            headers, inner = _split_head(part)
            content_id = headers.get("content-id", "").strip()
            response = (
                HttpError(503).response()
                if stalled
                else self._api_or_error(parse_http_request(inner))
            )
            out.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-{content_id.strip('<>')}>\r\n\r\n".encode()
                + format_http_response(response)
                + b"\r\n"
            )
        out.append(f"--{boundary}--\r\n".encode())
        return Response(
            200, b"".join(out), {"Content-Type": f"multipart/mixed; boundary={boundary}"}
        )

    def _api_or_error(self, request: Request) -> Response:
        try:
            if not request.path.startswith(API + "/"):
                raise HttpError(404)
            return self._api(request)
        except HttpError as error:
            return error.response()

    # -- OAuth ---------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        query = request.query
        redirect = query.get("redirect_uri", "")
        host = urlsplit(redirect).hostname or ""
        if not query.get("client_id") or host not in ("127.0.0.1", "localhost", "::1"):
            return Response(
                400,
                b"Error 400: invalid_request (a loopback redirect_uri and a client_id "
                b"are required)",
                {"Content-Type": "text/plain; charset=utf-8"},
            )
        if query.get("response_type", "code") != "code":
            return Response(
                400, b"Error 400: unsupported_response_type", {"Content-Type": "text/plain"}
            )
        challenge = query.get("code_challenge")
        code = self.store.new_code(query["client_id"], redirect, query.get("scope", ""), challenge)
        answer = {"code": code, "scope": query.get("scope", "")}
        if "state" in query:
            answer["state"] = query["state"]
        separator = "&" if "?" in redirect else "?"
        return Response(
            302, b"", {"Location": redirect + separator + urlencode(answer, quote_via=quote)}
        )

    def _token(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            taken = self.store.take_code(form.get("code", ""))
            if taken is None:
                return _oauth_error("invalid_grant", "Malformed auth code.")
            client_id, redirect, scope, challenge = taken
            if form.get("client_id") != client_id or form.get("redirect_uri", redirect) != redirect:
                return _oauth_error("invalid_grant", "Bad Request")
            if challenge and _s256(form.get("code_verifier", "")) != challenge:
                return _oauth_error("invalid_grant", "Invalid code verifier.")
            refresh = self.store.new_grant(client_id, scope)
            return self._access(refresh, scope, with_refresh=True)
        if grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            grant = self.store.grant(refresh)
            if grant is None or grant[0] != form.get("client_id"):
                return _oauth_error("invalid_grant", "Token has been expired or revoked.")
            return self._access(refresh, grant[1], with_refresh=False)
        return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _access(self, refresh: str, scope: str, *, with_refresh: bool) -> Response:
        token = self.store.new_access_token(refresh, self.access_token_lifetime, self.clock())
        body: Resource = {
            "access_token": token,
            "expires_in": int(self.access_token_lifetime),
            "scope": scope,
            "token_type": "Bearer",
        }
        if with_refresh:
            body["refresh_token"] = refresh
        return json_response(200, body)

    def _revoke(self, request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        token = request.query.get("token") or form.get("token", "")
        if not self.store.revoke(token):
            return _oauth_error("invalid_token", "Token expired or revoked")
        return json_response(200, {})


# -- helpers ------------------------------------------------------------------


def _oauth_error(error: str, description: str) -> Response:
    return json_response(400, {"error": error, "error_description": description})


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _token(state: Resource) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _untoken(token: str, name: str) -> Resource:
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(state, dict):
            raise ValueError(name)
        return state
    except ValueError as error:
        raise HttpError(400, f"Invalid {name} value.", "invalid", location=name) from error


def _json_body(request: Request) -> Resource:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as error:
        raise HttpError(400, "Parse Error", "parseError") from error
    if not isinstance(body, dict):
        raise HttpError(400, "Parse Error", "parseError")
    return body


def _moment(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    from datetime import UTC, datetime

    if "dateTime" in value:
        try:
            moment = datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        except ValueError:
            return ""
        if moment.tzinfo is None:
            return moment.isoformat()
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return str(value.get("date", ""))


def _check_event(body: Resource) -> None:
    if "start" not in body:
        raise HttpError(400, "Missing start time.", "required")
    if "end" not in body:
        raise HttpError(400, "Missing end time.", "required")
    start, end = _moment(body["start"]), _moment(body["end"])
    if not start or not end:
        raise HttpError(400, "Invalid start or end time.", "invalid")
    if end < start:
        raise HttpError(400, "The specified time range is empty.", "timeRangeEmpty")


def _filters(query: dict[str, str]) -> Callable[[Resource], bool]:
    wanted = [p.partition("=") for p in parse_multi(query, "privateExtendedProperty")]
    time_min, time_max = query.get("timeMin"), query.get("timeMax")
    low = _moment({"dateTime": time_min}) if time_min else ""
    high = _moment({"dateTime": time_max}) if time_max else ""

    def accept(event: Resource) -> bool:
        private = (event.get("extendedProperties") or {}).get("private") or {}
        if any(private.get(name) != value for name, _, value in wanted):
            return False
        if event.get("status") == "cancelled" or not (low or high):
            return True
        start, end = _moment(event.get("start")), _moment(event.get("end"))
        return not ((low and end <= low) or (high and start >= high))

    return accept


def parse_multi(query: dict[str, str], name: str) -> list[str]:
    value = query.get(name)
    return [value] if value else []


def _decorated(event: Resource) -> Resource:
    """What Google adds to every live event it returns."""
    if event.get("status") == "cancelled":
        return event
    shown = dict(event)
    shown.setdefault("htmlLink", f"https://www.google.com/calendar/event?eid={event['id']}")
    shown.setdefault("creator", {"email": "planner@example.com", "self": True})
    shown.setdefault("organizer", {"email": "planner@example.com", "self": True})
    shown.setdefault("reminders", {"useDefault": True})
    shown.setdefault("eventType", "default")
    return shown


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The parts of a multipart body (without their delimiters)."""
    delimiter = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        parts.append(
            chunk.removeprefix(b"\r\n")
            .removeprefix(b"\n")
            .removesuffix(b"\r\n")
            .removesuffix(b"\n")
        )
    return parts


def _split_head(data: bytes) -> tuple[dict[str, str], bytes]:
    """Headers (lower-case names) and body of an HTTP message or a MIME part."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, rest = data.partition(separator)
        if found:
            break
    else:
        head, rest = data, b""
    headers = {}
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def parse_http_request(data: bytes) -> Request:
    """An ``application/http`` part: request line, headers, body."""
    line, _, rest = data.partition(b"\n")
    method, target, *_ = line.decode("latin-1").strip().split(" ")
    headers, body = _split_head(b"x: y\r\n" + rest) if rest else ({}, b"")
    headers.pop("x", None)
    parsed = urlsplit(target)
    return Request(
        method.upper(), parsed.path + (f"?{parsed.query}" if parsed.query else ""), headers, body
    )


def format_http_response(response: Response) -> bytes:
    phrase = REASONS.get(response.status, ("OK",))[0] if response.status >= 400 else "OK"
    if response.status == 204:
        phrase = "No Content"
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    lines.append(f"Content-Length: {len(response.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


# -- the loopback server --------------------------------------------------------


def serve(
    emulator: Emulator,
    port: int = 0,
    host: str = "127.0.0.1",
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve *emulator* on http://host:port until interrupted (port 0: any free port)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            response = emulator.handle(Request(self.command, self.path, headers, body))
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: a request log would be noise on the terminal

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    try:
        if ready is not None:
            ready(int(server.server_address[1]))
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def new_request_id() -> str:
    return uuid.uuid4().hex
