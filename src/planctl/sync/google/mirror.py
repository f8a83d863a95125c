"""planctl's copy of a Google calendar's listing: ids, etags, session ids, and the sync token.

``events.list`` with the sync token returns only what changed since the last
run, so a run that finds nothing to do costs one request; the mirror supplies
the rest of the listing the engine compares. It is a cache: lost or from
another calendar, the next run lists the calendar in full.

*Shown etags.* Events created in a batch are saved by the engine before the
batch is sent, under an etag planctl makes up (``"planctl-<id>"``); the mirror
remembers which server etag that name stands for, so the event does not look
changed on the next run. Once the server's etag moves, the server's is shown.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, etag TEXT, shown_etag TEXT, session_id INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0);
"""


class Mirror:
    """The listing as of the sync token: in memory, saved to *path* (when given) by :meth:`save`.

    The file is the SQLite database serialised, written through
    :func:`planctl.fsutil.atomic_write` (0600). It is saved only once there is
    something worth keeping and only by a run that writes to the calendar or
    finds the file already there, so a dry run on a new calendar leaves no file.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.changed = False
        if path is not None and path.is_file():
            try:
                self.db.deserialize(path.read_bytes())
                self.db.executescript(SCHEMA)
            except (sqlite3.Error, OSError):
                self.db.close()  # a cache: an unreadable one is started over
                self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.db.executescript(SCHEMA)

    def save(self, *, create: bool) -> None:
        """Write the mirror durably if it changed (a new file only when *create*)."""
        if self.path is None or not self.changed or not (create or self.path.exists()):
            return
        from planctl.fsutil import atomic_write

        data = self.db.serialize()
        with atomic_write(self.path, name=str(self.path)) as out:
            out.write(data)
        self.changed = False

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def calendar_for(self, wanted: str) -> str | None:
        """The id of the calendar PLANCTL_GOOGLE_CALENDAR named when the mirror was made."""
        return self._meta("calendar_id") if self._meta("wanted") == wanted else None

    def remember_calendar(self, wanted: str, calendar_id: str) -> None:
        if self.calendar_for(wanted) == calendar_id:
            return
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('wanted', ?)", (wanted,))
        if self._meta("calendar_id") != calendar_id:
            self.db.execute("DELETE FROM events")
            self.db.execute("DELETE FROM meta WHERE key = 'sync_token'")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('calendar_id', ?)", (calendar_id,))
        self.changed = True

    def token_for(self, calendar_id: str) -> str | None:
        """The sync token, when the mirror is of *calendar_id*."""
        if self._meta("calendar_id") != calendar_id:
            return None
        return self._meta("sync_token")

    def replace(
        self,
        calendar_id: str,
        rows: Iterable[tuple[str, str | None, int | None, bool]],
        token: str | None,
    ) -> None:
        """A full listing: forget everything else, except what is known deleted.

        Google purges old tombstones; an event this mirror saw deleted stays
        deleted (a tracked event missing altogether means a broken view).
        """
        with self._transaction():
            same = self._meta("calendar_id") == calendar_id
            deleted = self.db.execute("SELECT * FROM events WHERE deleted = 1").fetchall()
            aliases = dict(
                self.db.execute(
                    "SELECT id, etag || '|' || shown_etag FROM events WHERE shown_etag IS NOT NULL"
                )
            )
            self.db.execute("DELETE FROM events")
            self._apply(rows, aliases)
            if same:
                self.db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)", deleted)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('calendar_id', ?)", (calendar_id,))
            self._set_token(token)

    def apply(
        self, rows: Iterable[tuple[str, str | None, int | None, bool]], token: str | None
    ) -> None:
        """An incremental listing: upsert what changed."""
        with self._transaction():
            self._apply(rows, None)
            self._set_token(token)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write: committed, and the mirror marked changed, or rolled back whole."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
            self.changed = True
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _set_token(self, token: str | None) -> None:
        if token:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('sync_token', ?)", (token,))
        else:
            self.db.execute("DELETE FROM meta WHERE key = 'sync_token'")

    def _apply(
        self,
        rows: Iterable[tuple[str, str | None, int | None, bool]],
        aliases: dict[str, str] | None,
    ) -> None:
        for event_id, etag, session_id, deleted in rows:
            shown = None
            if aliases is not None:
                kept = aliases.get(event_id, "")
                server, _, alias = kept.partition("|")
                shown = alias if kept and server == etag else None
            else:
                row = self.db.execute(
                    "SELECT etag, shown_etag FROM events WHERE id = ?", (event_id,)
                ).fetchone()
                if row is not None and row[0] == etag:
                    shown = row[1]
            self.db.execute(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?)",
                (event_id, etag, shown, session_id, int(deleted)),
            )

    def record_write(
        self,
        event_id: str,
        etag: str | None,
        shown: str | None,
        session_id: int | None,
        *,
        deleted: bool = False,
    ) -> None:
        """An event planctl just wrote: its etag as the server answered, as the engine has it."""
        self.changed = True
        self.db.execute(
            "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?)",
            (event_id, etag, shown, session_id, int(deleted)),
        )

    def rows(self) -> list[tuple[str, str | None, int | None, bool]]:
        """(id, etag as shown to the engine, session id, deleted) of every event."""
        return [
            (str(r[0]), r[1], r[2], bool(r[3]))
            for r in self.db.execute(
                "SELECT id, COALESCE(shown_etag, etag), session_id, deleted FROM events"
            )
        ]

    def shown(self, event_id: str, etag: str | None) -> str | None:
        """The etag to show the engine for a server *etag* of *event_id*."""
        row = self.db.execute(
            "SELECT etag, shown_etag FROM events WHERE id = ?", (event_id,)
        ).fetchone()
        if row is not None and row[0] == etag and row[1]:
            return str(row[1])
        return etag

    def server_etag(self, event_id: str, shown: str | None) -> str | None:
        """The server's etag an etag the engine holds stands for."""
        row = self.db.execute(
            "SELECT etag, shown_etag FROM events WHERE id = ?", (event_id,)
        ).fetchone()
        if row is not None and row[1] is not None and row[1] == shown:
            return str(row[0])
        return shown

    def close(self) -> None:
        self.db.close()
