r"""planctl's copy of a Google calendar's listing: ids, etags, session ids, and the sync token.

``events.list`` with the sync token returns only what changed since the last
run, so a run that finds nothing to do costs one request; the mirror supplies
the rest of the listing the engine compares. It is a cache: lost or from
another calendar, the next run lists the calendar in full.

*Changes since a clean run.* Every row carries the number of the change that
last touched it. After a run that ended clean (every event listed so far is
in the sync state) the engine :meth:`confirm`\ s a key naming its database and
change-log position; the next run with that key asks :meth:`changed_since`
and compares only the rows changed after it. A full listing that loses an
event forgets every key (the next run compares everything).

*Shown etags.* Events created in a batch are saved by the engine before the
batch is sent, under an etag planctl makes up (``"planctl-<id>"``); the mirror
remembers which server etag that name stands for, so the event does not look
changed on the next run. Once the server's etag moves, the server's is shown.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, etag TEXT, shown_etag TEXT, session_id INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS checkpoints (key TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
# A row's change number: bumped only when the row really changes (etag, shown etag,
# session, deleted), so a run's own writes confirmed by the listing are no change.
SEQ_COLUMN = "ALTER TABLE events ADD COLUMN seq INTEGER NOT NULL DEFAULT 0"
COLUMNS = "id, etag, shown_etag, session_id, deleted"
KEEP_CHECKPOINTS = 8  # planner databases synced with one calendar through one mirror
Row = tuple[str, str | None, int | None, bool]


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
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(events)")]
        if "seq" not in columns:  # a mirror of an older planctl: no change numbers yet
            self.db.execute(SEQ_COLUMN)
        self.db.execute("CREATE INDEX IF NOT EXISTS events_seq ON events (seq)")

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
            self.db.execute("DELETE FROM checkpoints")
            self.db.execute("DELETE FROM meta WHERE key = 'sync_token'")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('calendar_id', ?)", (calendar_id,))
        self.changed = True

    def token_for(self, calendar_id: str) -> str | None:
        """The sync token, when the mirror is of *calendar_id*."""
        if self._meta("calendar_id") != calendar_id:
            return None
        return self._meta("sync_token")

    def replace(self, calendar_id: str, rows: Iterable[Row], token: str | None) -> None:
        """A full listing: forget everything else, except what is known deleted."""
        self.load(calendar_id, [(list(rows), token)], full=True)

    def apply(self, rows: Iterable[Row], token: str | None) -> None:
        """An incremental listing: upsert what changed."""
        self.load(None, [(list(rows), token)], full=False)

    def load(
        self,
        calendar_id: str | None,
        pages: Iterable[tuple[Sequence[Row], str | None]],
        *,
        full: bool,
    ) -> None:
        """A listing page by page (never held whole), in one transaction; the token
        comes with the last page.

        *full*: every event of *calendar_id*. Google purges old tombstones; an event
        this mirror saw deleted stays deleted (a tracked event missing altogether
        means a broken view), and an event missing from a full listing makes every
        confirmed key useless.
        """
        with self._transaction():
            if full:  # in place: the listing is compared row by row, never copied
                same = self._meta("calendar_id") == calendar_id
                if not same:
                    self.db.execute("DELETE FROM events")
                self.db.execute("DROP TABLE IF EXISTS temp.seen")
                self.db.execute("CREATE TEMP TABLE seen (id TEXT PRIMARY KEY)")
            token = None
            for rows, last in pages:
                for row in rows:
                    self._put(row, "events")
                if full:
                    self.db.executemany(
                        "INSERT OR IGNORE INTO seen VALUES (?)", [(row[0],) for row in rows]
                    )
                token = last
            if full:
                unseen = "deleted = 0 AND id NOT IN (SELECT id FROM seen)"
                lost = self.db.execute(f"SELECT count(*) FROM events WHERE {unseen}").fetchone()[0]
                self.db.execute(f"DELETE FROM events WHERE {unseen}")
                if lost or not same:
                    self.db.execute("DELETE FROM checkpoints")
                self.db.execute("DROP TABLE temp.seen")
                self.db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('calendar_id', ?)", (calendar_id,)
                )
            self._set_token(token)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write: committed (the mirror marked changed when a row or the token
        changed), or rolled back whole."""
        before = self.db.total_changes
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
            self.changed = self.changed or self.db.total_changes != before
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _set_token(self, token: str | None) -> None:
        if token == self._meta("sync_token"):
            return
        if token:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('sync_token', ?)", (token,))
        else:
            self.db.execute("DELETE FROM meta WHERE key = 'sync_token'")

    def _next_seq(self) -> int:
        seq = int(self._meta("seq") or 0) + 1
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (str(seq),))
        return seq

    def _put(self, row: Row, before: str) -> None:
        """Store one listed event; its shown etag stays while the server's etag is the one
        it stands for."""
        event_id, etag, session_id, deleted = row
        old = self.db.execute(
            f"SELECT etag, shown_etag, session_id, deleted, seq FROM {before} WHERE id = ?",
            (event_id,),
        ).fetchone()
        shown = old[1] if old is not None and old[0] == etag else None
        self._store(
            (event_id, etag, shown, session_id, int(deleted)), old, present=before == "events"
        )

    def _store(
        self, values: tuple[object, ...], old: tuple[object, ...] | None, *, present: bool
    ) -> None:
        """Write one row (*old*: as it was; *present*: still in the table); a new change
        number only when something in it changed."""
        if old is not None and tuple(old[:4]) == values[1:]:
            if present:
                return
            seq = old[4]
        else:
            seq = self._next_seq()
        self.db.execute(
            f"INSERT OR REPLACE INTO events ({COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, ?)",
            (*values, seq),
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
        old = self.db.execute(
            "SELECT etag, shown_etag, session_id, deleted, seq FROM events WHERE id = ?",
            (event_id,),
        ).fetchone()
        self._store((event_id, etag, shown, session_id, int(deleted)), old, present=True)

    def rows(self) -> list[Row]:
        """(id, etag as shown to the engine, session id, deleted) of every event."""
        return list(self._select(""))

    def _select(self, where: str, *parameters: object) -> Iterator[Row]:
        query = f"SELECT id, COALESCE(shown_etag, etag), session_id, deleted FROM events {where}"
        for r in self.db.execute(query, parameters):
            yield str(r[0]), r[1], r[2], bool(r[3])

    def changed_since(self, key: str) -> list[Row] | None:
        """The rows changed since the clean run that confirmed *key*, with every live event
        planctl did not make (None: *key* unknown, compare everything)."""
        row = self.db.execute("SELECT seq FROM checkpoints WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return list(
            self._select("WHERE seq > ? OR (session_id IS NULL AND deleted = 0)", int(row[0]))
        )

    def confirm(self, key: str) -> None:
        """A clean run recorded every row changed so far: the next run under *key* starts here."""
        with self._transaction():
            seq = int(self._meta("seq") or 0)
            self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (key, seq))
            self.db.execute(
                "DELETE FROM checkpoints WHERE key NOT IN "
                "(SELECT key FROM checkpoints ORDER BY seq DESC LIMIT ?)",
                (KEEP_CHECKPOINTS,),
            )

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
