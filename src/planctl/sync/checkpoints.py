"""What a CalDAV backend remembers a clean run's listing by: a small JSON file.

``Backend.confirm(key)`` after a clean run stores, under the run's listing
key (database identity, reader, change-log position, state-row count), the
calendar's RFC 6578 sync token as of that run's listing (or, for a server
without sync tokens, its ``getctag``) and the events planctl did not make.
The next run with that key asks the server only for what changed since.

The file is a cache: lost, unreadable or of another calendar URL, the next
run lists the calendar in full. Written atomically, 0600; the newest
:data:`KEEP` checkpoints are kept (several planner databases may sync one
calendar through one file).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from planctl.fsutil import open_regular

KEEP = 8
VERSION = 1

log = logging.getLogger("planctl.sync")


@dataclass(frozen=True)
class Checkpoint:
    """The calendar as a clean run listed it."""

    calendar: str  # the calendar collection's URL the token or ctag is of
    token: str | None = None  # RFC 6578 sync-token (None: the server has none)
    ctag: str | None = None  # getctag, when there is no token
    others: dict[str, str | None] = field(default_factory=dict)  # id → etag, not planctl's
    #: events the run wrote after the token: the server may show no change for one a
    #: phone later put back as it was at the token, so their etags are asked for again
    written: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return bool(self.token or self.ctag)


class CheckpointFile:
    """Checkpoints by listing key, in *path* (None: nothing is remembered)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def _read(self) -> list[dict[str, object]]:
        if self.path is None or not self.path.exists():
            return []
        try:  # a regular file only: a FIFO planted there must not hang a cron sync
            with open_regular(self.path, follow_symlinks=True) as file:
                data = json.loads(file.read().decode("utf-8"))
        except (OSError, ValueError) as error:  # a cache: an unreadable one is started over
            log.debug("ignoring unreadable %s: %s", self.path, error)
            return []
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return []
        found = data.get("checkpoints")
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []

    def get(self, key: str) -> Checkpoint | None:
        for item in self._read():
            if item.get("key") != key:
                continue
            calendar, token, ctag = item.get("calendar"), item.get("token"), item.get("ctag")
            others, written = item.get("others"), item.get("written")
            if not isinstance(calendar, str) or not isinstance(others, dict):
                return None
            if not isinstance(written, list):
                return None
            return Checkpoint(
                calendar,
                token if isinstance(token, str) else None,
                ctag if isinstance(ctag, str) else None,
                {str(k): v if isinstance(v, str) else None for k, v in others.items()},
                tuple(str(w) for w in written),
            )
        return None

    def put(self, key: str, checkpoint: Checkpoint) -> None:
        """Remember *checkpoint* under *key*, durably (the newest :data:`KEEP` stay)."""
        kept = [c for c in self._read() if c.get("key") != key][: KEEP - 1]
        item: dict[str, object] = {
            "key": key,
            "calendar": checkpoint.calendar,
            "token": checkpoint.token,
            "ctag": checkpoint.ctag,
            "others": checkpoint.others,
            "written": list(checkpoint.written),
        }
        self._write([item, *kept])

    def forget(self, calendar: str) -> None:
        """Drop every checkpoint of *calendar*: a run is writing to it, and a run that does
        not end clean must not leave a token older than its writes (the next run lists
        in full; a clean one confirms anew)."""
        found = self._read()
        kept = [c for c in found if c.get("calendar") != calendar]
        if len(kept) != len(found):
            self._write(kept)

    def _write(self, items: list[dict[str, object]]) -> None:
        if self.path is None:
            return
        from planctl.fsutil import atomic_write

        data = json.dumps({"version": VERSION, "checkpoints": items}, indent=1)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with atomic_write(self.path, name=str(self.path)) as out:
            out.write(data.encode("utf-8"))
        self.path.chmod(0o600)
