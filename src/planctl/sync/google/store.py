"""The emulator's store: calendars, events and OAuth grants in one SQLite file.

Every event write takes the next number of one store-wide sequence: it is the
event's etag (``"<n>"``, quoted like Google's) and the position sync tokens
count from, so an incremental listing is ``seq > token``. Deleted events stay
as ``cancelled`` tombstones. Each write is its own transaction (WAL, so a
killed process loses nothing it acknowledged); :meth:`EmulatorStore.flush`
checkpoints the WAL, which makes the writes so far survive a power loss too.

The server-side API raises Python exceptions: ``KeyError`` (404 / 410 for a
patch of a deleted event), :class:`~planctl.sync.backend.StaleEtagError`
(412), :class:`DuplicateId` (409). The emulator maps them to HTTP.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from planctl.sync.backend import StaleEtagError

Resource = dict[str, Any]
FORMAT = "planctl-google-emulator"
PRIMARY_ID = "planner@example.com"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calendars (
    id TEXT PRIMARY KEY, summary TEXT NOT NULL, time_zone TEXT NOT NULL,
    is_primary INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    calendar_id TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (calendar_id, id));
CREATE INDEX IF NOT EXISTS events_by_seq ON events (calendar_id, seq);
CREATE TABLE IF NOT EXISTS grants (
    refresh_token TEXT PRIMARY KEY, client_id TEXT NOT NULL, scope TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS access_tokens (
    token TEXT PRIMARY KEY, refresh_token TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL, challenge TEXT);
"""


class InjectedFault(RuntimeError):
    """Raised by the store after a chosen number of writes (tests of interrupted runs)."""


class DuplicateId(Exception):
    """An insert with an id the calendar already has (HTTP 409)."""


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_store_file(path: Path) -> bool:
    """Whether *path* starts like a SQLite database (and not like the old JSON store)."""
    with open(path, "rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


class EmulatorStore:
    """Calendars and events of one emulated Google account, and its OAuth grants.

    *path* None keeps everything in memory (a dry run over a store that does
    not exist yet leaves no file behind).
    """

    def __init__(
        self, path: Path | None, *, timezone: str = "Europe/Madrid", lazy: bool = False
    ) -> None:
        self.path = path
        self.timezone = timezone
        self.writes = 0  # successful event writes since opening (tests count them)
        self.crash_after_writes: int | None = None
        # "The phone" writes just before planctl's request arrives (stale etags); one shot.
        self.before_write: Callable[[str, str | None], object] | None = None
        # lazy: in memory until the first write creates the file (a dry run leaves none)
        self._lazy_path = path if lazy else None
        self.db = self._connect(None if lazy else path)
        if self._meta("format") is None:
            self.db.executescript(SCHEMA)
            with _Transaction(self.db):
                self._set_meta("format", FORMAT)
                self._set_meta("next_seq", "1")
                self._set_meta("epoch", "1")
                self.db.execute(
                    "INSERT OR IGNORE INTO calendars VALUES (?, ?, ?, 1, 0)",
                    (PRIMARY_ID, PRIMARY_ID, timezone),
                )

    # -- plumbing ------------------------------------------------------------

    @staticmethod
    def _connect(path: Path | None) -> sqlite3.Connection:
        target = str(path) if path is not None else ":memory:"
        db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 10000")
        if path is not None:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            if path.exists():
                path.chmod(0o600)
        return db

    def _materialise(self) -> None:
        """The first write of a lazy store: the file appears, with what memory held."""
        path, self._lazy_path = self._lazy_path, None
        assert path is not None
        target = self._connect(path)
        self.db.backup(target)
        self.db.close()
        self.db = target

    def _meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            return None  # a new file: no tables yet
        return str(row[0]) if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def transaction(self) -> Any:
        if self._lazy_path is not None:
            self._materialise()
        return _Transaction(self.db)

    def _next_seq(self) -> int:
        seq = int(self._meta("next_seq") or 1)
        self._set_meta("next_seq", str(seq + 1))
        return seq

    @property
    def epoch(self) -> int:
        """Sync tokens carry the epoch they were issued in; bumping it expires them all."""
        return int(self._meta("epoch") or 1)

    def expire_sync_tokens(self) -> None:
        with self.transaction():
            self._set_meta("epoch", str(self.epoch + 1))

    def last_seq(self) -> int:
        return int(self._meta("next_seq") or 1) - 1

    def flush(self) -> None:
        """Make every write so far durable (checkpoint the WAL, fsynced)."""
        if self.path is not None:
            self.db.execute("PRAGMA wal_checkpoint(FULL)")

    def close(self) -> None:
        self.db.close()

    # -- calendars -----------------------------------------------------------

    def calendars(self) -> list[Resource]:
        rows = self.db.execute(
            "SELECT id, summary, time_zone, is_primary, seq FROM calendars ORDER BY rowid"
        )
        return [_calendar(*row) for row in rows]

    def calendar(self, calendar_id: str) -> Resource | None:
        if calendar_id == "primary":
            calendar_id = PRIMARY_ID
        for found in self.calendars():
            if found["id"] == calendar_id:
                return found
        return None

    def insert_calendar(self, summary: str, time_zone: str | None = None) -> Resource:
        calendar_id = f"{uuid.uuid4().hex[:26]}@group.calendar.google.com"
        with self.transaction():
            seq = self._next_seq()
            self.db.execute(
                "INSERT INTO calendars VALUES (?, ?, ?, 0, ?)",
                (calendar_id, summary, time_zone or self.timezone, seq),
            )
        found = self.calendar(calendar_id)
        assert found is not None
        return found

    def resolve(self, calendar_id: str) -> str:
        found = self.calendar(calendar_id)
        if found is None:
            raise KeyError(calendar_id)
        return str(found["id"])

    # -- events: the server's API -------------------------------------------

    def _arrive(self, operation: str, event_id: str | None) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(operation, event_id)

    def _row(self, calendar_id: str, event_id: str) -> Resource | None:
        row = self.db.execute(
            "SELECT body FROM events WHERE calendar_id = ? AND id = ?", (calendar_id, event_id)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def _write(self, calendar_id: str, event: Resource) -> Resource:
        with self.transaction():
            seq = self._next_seq()
            event["etag"] = f'"{seq}"'
            event["updated"] = now_rfc3339()
            self.db.execute(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                (calendar_id, event["id"], seq, json.dumps(event, ensure_ascii=False)),
            )
        self.writes += 1
        if self.crash_after_writes is not None and self.writes >= self.crash_after_writes:
            raise InjectedFault(f"injected fault after {self.writes} writes")
        return copy.deepcopy(event)

    def get_event(self, calendar_id: str, event_id: str) -> Resource | None:
        return self._row(calendar_id, event_id)

    def events(
        self, calendar_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> Iterator[tuple[int, Resource]]:
        """(seq, event) in write order, tombstones included, from *after_seq* on."""
        query = "SELECT seq, body FROM events WHERE calendar_id = ? AND seq > ? ORDER BY seq"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        for seq, body in self.db.execute(query, (calendar_id, after_seq)).fetchall():
            yield int(seq), json.loads(body)

    def insert(self, calendar_id: str, body: Resource) -> Resource:
        self._arrive("insert", body.get("id"))
        event_id = str(body.get("id") or uuid.uuid4().hex)
        if self._row(calendar_id, event_id) is not None:
            raise DuplicateId(event_id)
        event = {
            **copy.deepcopy(body),
            "kind": "calendar#event",
            "id": event_id,
            "created": now_rfc3339(),
            "sequence": 0,
        }
        event.setdefault("status", "confirmed")
        event.setdefault("iCalUID", f"{event_id}@google.com")
        return self._write(calendar_id, event)

    def _current(self, calendar_id: str, event_id: str, if_match: str | None) -> Resource:
        current = self._row(calendar_id, event_id)
        if current is None:
            raise KeyError(event_id)  # 404
        if if_match is not None and if_match != "*" and current.get("etag") != if_match:
            raise StaleEtagError(f"event {event_id}: etag {if_match} is stale")  # 412
        return current

    def update(
        self, calendar_id: str, event_id: str, body: Resource, *, if_match: str | None = None
    ) -> Resource:
        self._arrive("update", event_id)
        # Like Google's API, a full update of a deleted (cancelled) event restores it.
        current = self._current(calendar_id, event_id, if_match)
        event = {
            **copy.deepcopy(body),
            "kind": "calendar#event",
            "id": event_id,
            "created": current.get("created") or now_rfc3339(),
            "iCalUID": current.get("iCalUID"),
            "sequence": int(current.get("sequence", 0)) + 1,
        }
        event.pop("etag", None)
        event.setdefault("status", "confirmed")
        return self._write(calendar_id, event)

    def patch(
        self, calendar_id: str, event_id: str, changes: Resource, *, if_match: str | None = None
    ) -> Resource:
        self._arrive("patch", event_id)
        current = self._current(calendar_id, event_id, if_match)
        if current.get("status") == "cancelled":
            raise KeyError(event_id)  # 410 Gone
        event = copy.deepcopy(current)
        for key, value in copy.deepcopy(changes).items():
            if key in ("id", "etag", "kind", "created", "updated", "iCalUID"):
                continue
            if key == "extendedProperties" and isinstance(value, dict):
                merged = event.setdefault("extendedProperties", {})
                for scope, properties in value.items():
                    merged.setdefault(scope, {}).update(properties or {})
            else:
                event[key] = value
        event["sequence"] = int(current.get("sequence", 0)) + 1
        return self._write(calendar_id, event)

    def delete(self, calendar_id: str, event_id: str, *, if_match: str | None = None) -> bool:
        """Delete (leave a tombstone); False when it was already deleted (410)."""
        self._arrive("delete", event_id)
        current = self._current(calendar_id, event_id, if_match)
        if current.get("status") == "cancelled":
            return False
        tombstone = {
            "kind": "calendar#event",
            "id": event_id,
            "status": "cancelled",
            "iCalUID": current.get("iCalUID"),
        }
        self._write(calendar_id, tombstone)
        return True

    def import_events(self, calendar_id: str, events: list[Resource], next_etag: int) -> None:
        """Bring events of the old JSON store in, keeping their ids and etags."""
        with self.transaction():
            for event in events:
                etag = str(event.get("etag") or "").strip('"')
                seq = int(etag) if etag.isdigit() else self._next_seq()
                self.db.execute(
                    "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                    (calendar_id, event["id"], seq, json.dumps(event, ensure_ascii=False)),
                )
            self._set_meta("next_seq", str(max(next_etag, self.last_seq() + 1)))

    # -- OAuth grants --------------------------------------------------------

    def new_code(self, client_id: str, redirect_uri: str, scope: str, challenge: str | None) -> str:
        code = "4/" + secrets.token_urlsafe(24)
        with self.transaction():
            self.db.execute(
                "INSERT INTO codes VALUES (?, ?, ?, ?, ?)",
                (code, client_id, redirect_uri, scope, challenge),
            )
        return code

    def take_code(self, code: str) -> tuple[str, str, str, str | None] | None:
        with self.transaction():
            row = self.db.execute(
                "SELECT client_id, redirect_uri, scope, challenge FROM codes WHERE code = ?",
                (code,),
            ).fetchone()
            self.db.execute("DELETE FROM codes WHERE code = ?", (code,))
        return (str(row[0]), str(row[1]), str(row[2]), row[3]) if row else None

    def new_grant(self, client_id: str, scope: str) -> str:
        refresh = "1//" + secrets.token_urlsafe(32)
        with self.transaction():
            self.db.execute("INSERT INTO grants VALUES (?, ?, ?, 0)", (refresh, client_id, scope))
        return refresh

    def grant(self, refresh_token: str) -> tuple[str, str] | None:
        """(client id, scope) of a live grant."""
        row = self.db.execute(
            "SELECT client_id, scope FROM grants WHERE refresh_token = ? AND revoked = 0",
            (refresh_token,),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def new_access_token(self, refresh_token: str, lifetime: float, now: float) -> str:
        token = "ya29." + secrets.token_urlsafe(32)
        with self.transaction():
            self.db.execute(
                "INSERT INTO access_tokens VALUES (?, ?, ?)", (token, refresh_token, now + lifetime)
            )
        return token

    def access_valid(self, token: str, now: float) -> bool:
        row = self.db.execute(
            "SELECT a.expires, g.revoked FROM access_tokens a JOIN grants g "
            "ON g.refresh_token = a.refresh_token WHERE a.token = ?",
            (token,),
        ).fetchone()
        return bool(row) and float(row[0]) > now and not row[1]

    def revoke(self, token: str) -> bool:
        """Revoke the grant *token* (a refresh or an access token) belongs to."""
        with self.transaction():
            row = self.db.execute(
                "SELECT refresh_token FROM access_tokens WHERE token = ?", (token,)
            ).fetchone()
            refresh = str(row[0]) if row else token
            changed = self.db.execute(
                "UPDATE grants SET revoked = 1 WHERE refresh_token = ? AND revoked = 0", (refresh,)
            ).rowcount
        return bool(changed)

    def revoke_all(self) -> None:
        with self.transaction():
            self.db.execute("UPDATE grants SET revoked = 1")


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on an exception); nests as a no-op."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        if not self.outer:
            return
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _calendar(
    calendar_id: str, summary: str, time_zone: str, is_primary: int, seq: int
) -> Resource:
    found: Resource = {
        "kind": "calendar#calendar",
        "etag": f'"{seq}"',
        "id": calendar_id,
        "summary": summary,
        "timeZone": time_zone,
    }
    if is_primary:
        found["primary"] = True
    return found
