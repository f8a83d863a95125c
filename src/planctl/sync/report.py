"""What a run decided and did: the kinds of action, one action per session, the report.

The report is what the CLI renders and ``--json`` prints; the run log keeps its
counts under the same English names (:meth:`SyncReport.run_counts`).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO

from planctl.calendar.zones import zone_info
from planctl.sync.backend import RemoteEvent
from planctl.sync.local import LocalItem
from planctl.sync.state import RunRecord, StateRow
from planctl.text import local_moment


class Kind(StrEnum):
    """What the engine does (or would do) for one session."""

    CREATE_REMOTE = "create on calendar"
    UPDATE_REMOTE = "update on calendar"
    DELETE_REMOTE = "delete on calendar"
    UPDATE_LOCAL = "update in planner"
    CANCEL_LOCAL = "cancel in planner"
    RECORD = "record (already equal)"
    FORGET = "forget (gone on both sides)"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"
    PENDING = "pending (other direction)"
    ORPHAN = "left alone (not in this planner's state)"
    ERROR = "error"


REMOTE_WRITES = {Kind.CREATE_REMOTE, Kind.UPDATE_REMOTE, Kind.DELETE_REMOTE}
LOCAL_WRITES = {Kind.UPDATE_LOCAL, Kind.CANCEL_LOCAL}
WRITES = REMOTE_WRITES | LOCAL_WRITES
QUIET = (Kind.UNCHANGED, Kind.RECORD, Kind.FORGET)  # no change on either side


@dataclass
class Action:
    """One row of the plan: the decision for one session, and why."""

    kind: Kind
    session_id: int
    reason: str
    local: LocalItem | None = None
    remote: RemoteEvent | None = None
    state: StateRow | None = None
    then: Kind | None = None  # PENDING: what the other direction would do
    detail: str = ""
    wrote_local: bool = False  # set when applied: the session row really changed
    wrote_remote: bool = False  # set when applied: the calendar really changed
    note: str = ""  # what the user should know (e.g. fields the planner cannot keep)

    @property
    def label(self) -> str:
        """Date, time with its UTC offset, and title, from whichever side has them."""
        if self.local is not None:
            v = self.local.view
            # the wall-clock time as the planner holds it (even one a DST change skips)
            start = dt.datetime.combine(v.fecha, v.hora_inicio, zone_info(self.local.timezone))
            return f"{v.fecha} {v.hora_inicio:%H:%M} {start:%z} {v.formacion} — {v.cliente}"
        if self.remote is not None and self.remote.content is not None:
            c = self.remote.content
            zone = str(getattr(c.start.tzinfo, "key", "UTC"))
            return f"{local_moment(c.start, zone)} {c.summary}"
        return f"sesión {self.session_id}"


KEEP_ACTIONS = 1000  # actions a report holds as objects; the rest are counted and spooled


@dataclass
class SyncReport:
    """The plan (dry run) or what was done, with the calendar's other events.

    Memory is bounded by :data:`KEEP_ACTIONS`, not by the calendar: every action
    is counted (:meth:`add`); the first ones are kept as objects (``actions``,
    complete when :attr:`complete`), conflicts, errors, orphans and noted ones
    always; the JSON of every later one goes to an unnamed temporary file that
    :meth:`json_chunks` reads back.
    """

    backend: str
    calendar: str
    mode: str
    policy: str
    dry_run: bool
    actions: list[Action] = field(default_factory=list)  # kept: all when complete
    foreign: list[RemoteEvent] = field(default_factory=list)
    duplicates: list[RemoteEvent] = field(default_factory=list)
    remote_writes: int = 0
    local_writes: int = 0
    refusal: str | None = None  # dry run: why the real run would be refused (safety guard)
    refusal_override: str | None = None  # the option that would let it proceed (None: none)
    untouched: int = 0  # tracked sessions in sync, not read (no action; counted as unchanged)
    log_mark: int | None = None  # the change-log position a clean run stores
    _problems: list[Action] = field(default_factory=list, repr=False)  # beyond the kept ones
    _tally: Counter[tuple[Kind, Kind | None, bool, bool]] = field(
        default_factory=Counter, repr=False
    )  # (kind, then, wrote_local, wrote_remote)
    _spool: IO[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        given, self.actions = self.actions, []
        for action in given:
            self.add(action)

    def add(self, action: Action) -> None:
        """Count one planned or applied action; keep it while the report is small."""
        self._tally[(action.kind, action.then, action.wrote_local, action.wrote_remote)] += 1
        if len(self.actions) < KEEP_ACTIONS and self._spool is None:
            self.actions.append(action)
            return
        if action.kind in (Kind.CONFLICT, Kind.ERROR, Kind.ORPHAN) or action.note:
            self._problems.append(action)
        if self._spool is None:
            # unnamed; lives as long as the report (closed by close() or with the report)
            self._spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._spool.write(json.dumps([action.kind in QUIET, _action_dict(action)]) + "\n")

    @property
    def complete(self) -> bool:
        return self._spool is None

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()

    def _with_problems(self) -> Iterator[Action]:
        yield from self.actions
        yield from self._problems

    def count(self, *kinds: Kind) -> int:
        return sum(n for (kind, _, _, _), n in self._tally.items() if kind in kinds)

    @property
    def conflicts(self) -> list[Action]:
        return [a for a in self._with_problems() if a.kind is Kind.CONFLICT]

    @property
    def errors(self) -> list[Action]:
        return [a for a in self._with_problems() if a.kind is Kind.ERROR]

    @property
    def orphans(self) -> list[Action]:
        return [a for a in self._with_problems() if a.kind is Kind.ORPHAN]

    @property
    def noted(self) -> list[Action]:
        return [a for a in self._with_problems() if a.note]

    def planned(self) -> Counter[tuple[Kind, Kind | None]]:
        """How many sessions each (kind, pending kind) has, whether kept or not."""
        counts: Counter[tuple[Kind, Kind | None]] = Counter()
        for (kind, then, _, _), n in self._tally.items():
            counts[(kind, then)] += n
        return counts

    def _wrote(self, kind: Kind, *, remote: bool) -> int:
        return sum(
            n
            for (k, _, wrote_local, wrote_remote), n in self._tally.items()
            if k is kind and (wrote_remote if remote else wrote_local)
        )

    def _done(self, kind: Kind, *, remote: bool) -> int:
        """Planned actions of *kind* (dry run), or those that really wrote (a run)."""
        if self.dry_run:
            return self.count(kind)
        if remote:
            return self._wrote(kind, remote=True) + (
                self._wrote(Kind.UPDATE_LOCAL, remote=True) if kind is Kind.UPDATE_REMOTE else 0
            )
        return self._wrote(kind, remote=False)

    def summary(self) -> dict[str, int]:
        """The counts the CLI shows and the run log keeps: what changed on each side."""
        unchanged = self.count(Kind.UNCHANGED, Kind.RECORD, Kind.FORGET) + self.untouched
        if not self.dry_run:  # a phone edit of a field the planner does not keep
            unchanged += self._tally[(Kind.UPDATE_LOCAL, None, False, False)]
        return {
            "calendar_created": self._done(Kind.CREATE_REMOTE, remote=True),
            "calendar_updated": self._done(Kind.UPDATE_REMOTE, remote=True),
            "calendar_deleted": self._done(Kind.DELETE_REMOTE, remote=True),
            "planner_updated": self._done(Kind.UPDATE_LOCAL, remote=False),
            "planner_cancelled": self._done(Kind.CANCEL_LOCAL, remote=False),
            "unchanged": unchanged,
            "conflicts": self.count(Kind.CONFLICT),
            "pending": self.count(Kind.PENDING),
            "errors": self.count(Kind.ERROR),
        }

    def as_dict(self, *, all_actions: bool = False) -> dict[str, object]:
        """The report for ``--json``: English keys, one entry per session acted on."""
        return self._document(list(self._shown(all_actions)))

    def _shown(self, all_actions: bool) -> Iterator[dict[str, object]]:
        for a in self.actions:
            if all_actions or a.kind not in QUIET or a.note:
                yield _action_dict(a)
        if self._spool is not None:
            self._spool.flush()
            self._spool.seek(0)
            for line in self._spool:
                quiet, data = json.loads(line)
                if all_actions or not quiet or data["note"]:
                    yield data
            self._spool.seek(0, 2)  # later adds go to the end

    def _document(self, actions: list[dict[str, object]]) -> dict[str, object]:
        return {
            "backend": self.backend,
            "calendar": self.calendar,
            "mode": self.mode,
            "policy": self.policy,
            "dry_run": self.dry_run,
            "summary": self.summary(),
            "actions": actions,
            "others": len(self.foreign),
            "duplicates": len(self.duplicates),
            "refused": self.refusal,
            "override": self.refusal_override,
        }

    def json_chunks(self, *, all_actions: bool = False) -> Iterator[str]:
        """:meth:`as_dict` as JSON text in pieces, one action at a time: never the whole
        document (tens of MB at 200,000 sessions) in memory at once."""
        shown = next(self._shown(all_actions), None) is not None
        data = self._document(_Streamed(lambda: self._shown(all_actions)) if shown else [])
        encoder = json.JSONEncoder(indent=2, ensure_ascii=False)
        yield from encoder.iterencode(data)
        yield "\n"

    def run_counts(self) -> dict[str, int]:
        s = self.summary()
        return {
            "created": s["calendar_created"],
            "updated": s["calendar_updated"] + s["planner_updated"],
            "deleted": s["calendar_deleted"] + s["planner_cancelled"],
            "unchanged": s["unchanged"],
            "conflicts": s["conflicts"],
            "errors": s["errors"],
        }


def _action_dict(a: Action) -> dict[str, object]:
    return {
        "session": a.session_id,
        "action": a.kind.name.lower(),
        "pending": a.then.name.lower() if a.then is not None else None,
        "reason": a.reason,
        "detail": a.detail or None,
        "note": a.note or None,
    }


class _Streamed(list[dict[str, object]]):
    """A list to the JSON encoder whose items are made while it writes them."""

    def __init__(self, make: Callable[[], Iterator[dict[str, object]]]) -> None:
        super().__init__()
        self._make = make

    def __iter__(self) -> Iterator[dict[str, object]]:
        return self._make()

    def __bool__(self) -> bool:  # only made when it has items (the encoder asks)
        return True


@dataclass
class SyncStatus:
    """``planctl sync status``: how the planner and the calendar compare right now."""

    backend: str
    calendar: str
    in_sync: int
    pending: int
    conflicting: int
    errors: int
    last_run: RunRecord | None
    report: SyncReport

    def as_dict(self) -> dict[str, object]:
        last = self.last_run
        return {
            "backend": self.backend,
            "calendar": self.calendar,
            "in_sync": self.in_sync,
            "pending": self.pending,
            "conflicting": self.conflicting,
            "errors": self.errors,
            "last_run": None
            if last is None
            else {
                "mode": last.mode,
                "started": _iso(last.started),
                "finished": _iso(last.finished),
                "result": last.result,
                "counts": dict(last.counts),
            },
            "refused": self.report.refusal,
            "override": self.report.refusal_override,
            "pending_sessions": [
                {"session": a.session_id, "action": str(a.kind), "reason": a.reason}
                for a in self.report.actions
                if a.kind in WRITES
            ],
            "conflicts": [
                {"session": a.session_id, "reason": a.reason} for a in self.report.conflicts
            ],
            "others": [
                {
                    "id": e.id,
                    "summary": e.content.summary if e.content else None,
                    "start": _iso(e.content.start) if e.content else None,
                }
                for e in self.report.foreign
            ],
            "orphans": [
                {"session": a.session_id, "id": a.remote.id if a.remote else None}
                for a in self.report.orphans
            ],
            "duplicates": [{"session": e.session_id, "id": e.id} for e in self.report.duplicates],
        }


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()
