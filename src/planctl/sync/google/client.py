"""A thin client for the Calendar API v3 REST shapes: requests, retries, batches.

Why not google-api-python-client: it imports httplib2, uritemplate and the
discovery machinery (~0.3 s before the first request, where this module costs
milliseconds), and its batch and retry helpers do not honour ``Retry-After``
or bound the total time. The shapes are few and stable, so planctl speaks
them itself over ``http.client`` with one kept-alive connection (a TLS
handshake per request would dominate a sync), and the same client talks to
the emulator in-process through :class:`InProcessTransport`. google-auth
supplies and refreshes the access token; the tests run google-api-python-client
against the emulator as the independent client.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from planctl.errors import SyncError
from planctl.sync.google.emulator import (
    Emulator,
    Request,
    Response,
    format_http_response,
    parse_http_request,
    split_multipart,
)

API_PATH = "/calendar/v3"
BATCH_PATH = "/batch/calendar/v3"
BATCH_LIMIT = 50  # Google accepts 1000; 50 keeps a batch's failure and retry small
RETRYABLE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded")
TIMEOUT = 60.0
logger = logging.getLogger("planctl.sync.google")

Resource = dict[str, Any]


class GoogleApiError(Exception):
    """An error answer of the API: status, Google's reason and message."""

    def __init__(self, status: int, reason: str, message: str, what: str) -> None:
        super().__init__(f"{status} {reason}: {message} ({what})")
        self.status = status
        self.reason = reason
        self.message = message
        self.what = what


def error_of(response: Response, what: str) -> GoogleApiError:
    """Google's error body (``{"error": {"code", "message", "errors": [{"reason"}]}}``) read."""
    reason, message = "", response.body[:200].decode("utf-8", "replace")
    try:
        error = json.loads(response.body)["error"]
        message = str(error.get("message") or message)
        details = error.get("errors") or [{}]
        reason = str(details[0].get("reason") or error.get("status") or "")
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        pass
    return GoogleApiError(response.status, reason or "error", message, what)


def retryable(response: Response) -> bool:
    if response.status in (429, 500, 502, 503, 504):
        return True
    return response.status == 403 and error_of(response, "").reason in RETRYABLE_REASONS


class Transport(Protocol):
    def send(self, request: Request) -> Response: ...

    def close(self) -> None: ...


class InProcessTransport:
    """Requests handed to an :class:`Emulator` in this process: no socket, same shapes."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def send(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}  # as a server sees them
        response = self.emulator.handle(
            Request(request.method, request.target, headers, request.body)
        )
        response.headers = {k.lower(): v for k, v in response.headers.items()}
        return response

    def close(self) -> None:
        return None


class HttpTransport:
    """One kept-alive HTTP(S) connection to the API's host (reopened when it drops)."""

    def __init__(self, root_url: str, *, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(root_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self._connection = kind(self.host, self.port, timeout=self.timeout)
        return self._connection

    def send(self, request: Request) -> Response:
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(
                    request.method,
                    self.prefix + request.target,
                    request.body or None,
                    request.headers,
                )
                answer = connection.getresponse()
                body = answer.read()
                return Response(answer.status, body, {k.lower(): v for k, v in answer.getheaders()})
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # a kept-alive connection the server closed: once more on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Backoff:
    """Exponential backoff with full jitter, honouring Retry-After, bounded in total time."""

    base: float = 1.0
    cap: float = 32.0
    total: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.cap, self.base * 2**attempt)
        wait = ceiling * (0.5 + self.jitter() / 2)
        return max(wait, retry_after or 0.0)


def retry_after(response: Response) -> float | None:
    value = response.headers.get("retry-after") or response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


@dataclass
class CalendarClient:
    """The Calendar v3 resources planctl uses, with retries and batches."""

    transport: Transport
    authorize: Callable[[bool], str | None] = lambda refresh: None  # the Authorization header
    backoff: Backoff = field(default_factory=Backoff)
    requests: int = 0  # HTTP requests sent (a batch counts once)
    retries: int = 0

    # -- one request -------------------------------------------------------

    def _headers(
        self, extra: dict[str, str] | None = None, *, refresh: bool = False
    ) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        authorization = self.authorize(refresh)
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def send(self, request: Request) -> Response:
        """Send with retries (rate limits, 5xx, dropped connections) and one re-authorisation."""
        started = self.backoff.clock()
        attempt = 0
        refreshed = False
        while True:
            request.headers.update(self._headers(refresh=False))
            try:
                self.requests += 1
                response = self.transport.send(request)
            except (OSError, http.client.HTTPException) as error:
                response = None
                failure: str = f"cannot reach the Google Calendar API: {error}"
                cause: Exception = error
            if response is not None and response.status == 401 and not refreshed:
                refreshed = True
                request.headers.update(self._headers(refresh=True))
                continue
            if response is not None and not retryable(response):
                return response
            if response is not None:
                failure = f"the Google Calendar API kept answering {response.status}"
                cause = error_of(response, f"{request.method} {request.path}")
                wait = self.backoff.delay(attempt, retry_after(response))
            else:
                wait = self.backoff.delay(attempt, None)
            if self.backoff.clock() - started + wait > self.backoff.total:
                raise SyncError(
                    f"{failure} for {self.backoff.clock() - started:.0f} s; gave up "
                    "(what was written so far is recorded; nothing is half-written)",
                    "run planctl sync again later",
                ) from cause
            self.retries += 1
            logger.info("%s %s: %s; retrying in %.1f s", request.method, request.path, cause, wait)
            self.backoff.sleep(wait)
            attempt += 1

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Resource:
        """One API call; its JSON answer, or :class:`GoogleApiError`."""
        request = self._request(method, path, query=query, body=body, headers=headers)
        response = self.send(request)
        return self._result(response, f"{method} {path}")

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Request:
        target = API_PATH + path
        if query:
            target += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        all_headers = dict(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/json; charset=UTF-8"
        return Request(method, target, all_headers, data)

    @staticmethod
    def _result(response: Response, what: str) -> Resource:
        if response.status >= 400:
            raise error_of(response, what)
        if not response.body:
            return {}
        try:
            answer = json.loads(response.body)
        except ValueError as error:
            raise SyncError(f"the Google Calendar API answered {what} with no JSON") from error
        return answer if isinstance(answer, dict) else {}

    # -- batches -----------------------------------------------------------

    def batch(
        self, calls: Sequence[tuple[str, str, Any, dict[str, str] | None]]
    ) -> list[Resource | GoogleApiError]:
        """Up to :data:`BATCH_LIMIT` calls (method, path, body, headers) per batch request.

        Parts answered with a rate limit or a 5xx are sent again (backoff as
        for single requests); each call's answer or error, in order.
        """
        results: list[Resource | GoogleApiError | None] = [None] * len(calls)
        for start in range(0, len(calls), BATCH_LIMIT):
            pending = list(range(start, min(start + BATCH_LIMIT, len(calls))))
            started, attempt = self.backoff.clock(), 0
            while pending:
                answers = self._send_batch([calls[i] for i in pending])
                again = []
                waits = []
                for index, answer in zip(pending, answers, strict=True):
                    what = f"{calls[index][0]} {calls[index][1]}"
                    if retryable(answer):
                        again.append(index)
                        waits.append(retry_after(answer) or 0.0)
                        results[index] = error_of(answer, what)
                    elif answer.status >= 400:
                        results[index] = error_of(answer, what)
                    else:
                        results[index] = self._result(answer, what)
                if not again:
                    break
                wait = self.backoff.delay(attempt, max(waits))
                if self.backoff.clock() - started + wait > self.backoff.total:
                    cause = results[again[0]]
                    assert isinstance(cause, GoogleApiError)
                    raise SyncError(
                        f"the Google Calendar API kept refusing {len(again)} writes of a batch; "
                        "gave up",
                        "run planctl sync again later",
                    ) from cause
                self.retries += 1
                self.backoff.sleep(wait)
                attempt += 1
                pending = again
        return [
            r if r is not None else GoogleApiError(0, "missing", "no answer", "batch")
            for r in results
        ]

    def _send_batch(
        self, calls: Sequence[tuple[str, str, Any, dict[str, str] | None]]
    ) -> list[Response]:
        boundary = "planctl_" + secrets.token_hex(12)
        chunks = []
        for number, (method, path, body, headers) in enumerate(calls):
            inner = self._request(method, path, body=body, headers=headers)
            lines = [f"{inner.method} {inner.target} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in inner.headers.items()]
            part = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + inner.body
            chunks.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <item{number}>\r\n\r\n".encode()
                + part
                + b"\r\n"
            )
        chunks.append(f"--{boundary}--\r\n".encode())
        request = Request(
            "POST",
            BATCH_PATH,
            {"Content-Type": f"multipart/mixed; boundary={boundary}"},
            b"".join(chunks),
        )
        response = self.send(request)
        if response.status >= 400:
            raise error_of(response, "POST batch")
        content_type = response.headers.get("content-type") or response.headers.get(
            "Content-Type", ""
        )
        boundary_in = content_type.partition("boundary=")[2].strip('"')
        answers: dict[int, Response] = {}
        for part in split_multipart(response.body, boundary_in):
            head, _, message = part.partition(b"\r\n\r\n")
            number = _content_number(head.decode("latin-1"))
            status_line, _, rest = message.partition(b"\r\n")
            parsed = parse_http_request(b"X / HTTP/1.1\r\n" + rest)
            status = int(status_line.split()[1])
            answers[number] = Response(status, parsed.body, parsed.headers)
        missing = Response(500, b'{"error": {"code": 500, "message": "no answer in the batch"}}')
        return [answers.get(n, missing) for n in range(len(calls))]

    # -- resources -------------------------------------------------------------

    def calendar_list(self) -> list[Resource]:
        items: list[Resource] = []
        page: str | None = None
        while True:
            answer = self.call("GET", "/users/me/calendarList", query={"pageToken": page})
            items.extend(answer.get("items") or [])
            page = answer.get("nextPageToken")
            if not page:
                return items

    def insert_calendar(self, summary: str, time_zone: str) -> Resource:
        return self.call("POST", "/calendars", body={"summary": summary, "timeZone": time_zone})

    def list_events(
        self, calendar_id: str, *, sync_token: str | None = None, show_deleted: bool = True
    ) -> tuple[list[Resource], str | None]:
        """Every page of ``events.list``: the events and the next sync token."""
        items: list[Resource] = []
        token: str | None = None
        for page, last in self.event_pages(
            calendar_id, sync_token=sync_token, show_deleted=show_deleted
        ):
            items.extend(page)
            token = last
        return items, token

    def event_pages(
        self, calendar_id: str, *, sync_token: str | None = None, show_deleted: bool = True
    ) -> Iterator[tuple[list[Resource], str | None]]:
        """``events.list`` one page at a time (at most 2,500 events held): each page's
        events, and with the last page the next sync token (None before)."""
        page: str | None = None
        while True:
            query: dict[str, Any] = {"maxResults": 2500, "pageToken": page}
            if sync_token:
                query["syncToken"] = sync_token
            elif show_deleted:
                query["showDeleted"] = "true"
            answer = self.call("GET", events_path(calendar_id), query=query)
            page = answer.get("nextPageToken")
            yield list(answer.get("items") or []), None if page else answer.get("nextSyncToken")
            if not page:
                return

    def get_event(self, calendar_id: str, event_id: str) -> Resource | None:
        try:
            return self.call("GET", events_path(calendar_id, event_id))
        except GoogleApiError as error:
            if error.status in (404, 410):
                return None
            raise

    def close(self) -> None:
        self.transport.close()


def events_path(calendar_id: str, event_id: str | None = None) -> str:
    path = f"/calendars/{quote(calendar_id, safe='')}/events"
    return path + (f"/{quote(event_id, safe='')}" if event_id else "")


def _content_number(head: str) -> int:
    for line in head.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-id":
            digits = "".join(c for c in value.rsplit("item", 1)[-1] if c.isdigit())
            return int(digits) if digits else -1
    return -1


def format_response(response: Response) -> bytes:  # re-exported for tests of the batch format
    return format_http_response(response)


socket_errors = (socket.timeout, ConnectionError)
