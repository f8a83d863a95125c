"""The safety guards: the one function that says whether a run may write at all.

One rule protects both sides. A run that would delete or cancel more than
``max(5, 10 %)`` of the synced events on the calendar — or cancel that many
sessions in the planner — is refused before any change, naming the count,
the side and the override (``--allow-mass-delete`` for the calendar,
``--allow-mass-cancel`` for the planner). A planner with no sessions at all
while the calendar holds synced events is always refused (no override): that
is a lost or wrongly restored database, never an intention. And a listing
that lost events planctl synced (not even a tombstone) is a broken view.

:func:`refusal` is asked after planning and before the first write of a real
run; a dry run, ``sync status`` and ``--json`` ask it too and report its answer.
See docs/sync.md#safety-no-mass-cancellation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from planctl.errors import SyncError
from planctl.sync.options import SyncOptions
from planctl.sync.report import Action, Kind
from planctl.text import plural

# A run may remove at most this many, or this share of the synced, on either side.
MASS_CANCEL_MIN = 5
MASS_CANCEL_SHARE = 0.10
# Known events missing from a listing (not even a tombstone) beyond this many and
# this share mean the view is not trustworthy.
VANISHED_MIN = 5
VANISHED_SHARE = 0.5
CHECK_HINT = "planctl sync check shows which calendar planctl reads"


class UnsafeRunError(SyncError):
    """A run would delete or cancel en masse on either side, or the calendar's listing
    is not trustworthy. Nothing was changed on either side.

    *override* is the option that lets such a run proceed (None: none does).
    """

    def __init__(self, message: str, hint: str, *, override: str | None) -> None:
        super().__init__(message, f"nothing was changed; {hint}")
        self.override = override


@dataclass(frozen=True)
class Exposure:
    """What a plan would remove on each side, and what it stands against."""

    tracked: int  # state rows of this backend: the sessions and events synced so far
    vanished: int  # of those, events the listing does not show at all
    planner_sessions: int  # rows in sesiones, whatever their dates or state
    calendar_removals: int  # live events the run would delete (or cancel) on the calendar
    planner_cancels: int  # active sessions the run would set to cancelada

    @classmethod
    def of(
        cls, actions: Iterable[Action], *, tracked: int, vanished: int, planner_sessions: int
    ) -> Exposure:
        counted = Removals()
        for action in actions:
            counted.count(action)
        return counted.exposure(
            tracked=tracked, vanished=vanished, planner_sessions=planner_sessions
        )


@dataclass
class Removals:
    """What actions remove on each side, counted one at a time (a plan is never held whole)."""

    calendar: int = 0  # live events deleted (or cancelled) on the calendar
    planner: int = 0  # active sessions set to cancelada

    def side(self, action: Action) -> str | None:
        """'calendar' or 'planner' when *action* removes something there, else None."""
        if action.kind is Kind.DELETE_REMOTE and _live(action):
            return "calendar"
        if action.kind is Kind.CANCEL_LOCAL and action.local and action.local.active:
            return "planner"
        return None

    def count(self, action: Action) -> str | None:
        side = self.side(action)
        if side == "calendar":
            self.calendar += 1
        elif side == "planner":
            self.planner += 1
        return side

    def exposure(self, *, tracked: int, vanished: int, planner_sessions: int) -> Exposure:
        return Exposure(tracked, vanished, planner_sessions, self.calendar, self.planner)

    def beyond(self, approved: Removals, side: str) -> bool:
        """Whether this count went past what the guard *approved* on *side*."""
        return getattr(self, side) > getattr(approved, side)


def _live(action: Action) -> bool:
    remote = action.remote
    if remote is None or remote.deleted:
        return False
    return remote.content is None or remote.content.status != "CANCELLED"


def mass_limit(tracked: int) -> int:
    """How many a run may remove on one side: max(5, 10 % of the synced)."""
    return max(MASS_CANCEL_MIN, int(MASS_CANCEL_SHARE * tracked))


def refusal(
    exposure: Exposure, options: SyncOptions, *, calendar: str, keeps_deleted: bool
) -> UnsafeRunError | None:
    """Why a real run must not write anything (None: it may). The only place the rule lives."""
    tracked, vanished = exposure.tracked, exposure.vanished
    if tracked and exposure.planner_sessions == 0:
        return UnsafeRunError(
            f"the planner has no sessions at all while {calendar} holds "
            f"{plural(tracked, 'event')} planctl synced",
            "restore the planner's database (planctl restore); no option empties a calendar "
            "from an empty planner: delete the events in the calendar app if that is intended",
            override=None,
        )
    too_many_gone = vanished > 0 and (
        vanished == tracked
        or keeps_deleted
        or (vanished >= VANISHED_MIN and vanished > VANISHED_SHARE * tracked)
    )
    if too_many_gone and not options.allow_mass_cancel:
        return UnsafeRunError(
            f"{calendar} does not list {vanished:,} of the {plural(tracked, 'event')} "
            "planctl synced to it (not even as deleted): it looks missing, replaced or "
            "unreadable",
            f"{CHECK_HINT}; if the events were really deleted, run again with --allow-mass-cancel",
            override="--allow-mass-cancel",
        )
    limit = mass_limit(tracked)
    if exposure.calendar_removals > limit and not options.allow_mass_delete:
        return UnsafeRunError(
            f"this run would delete {exposure.calendar_removals:,} of the {tracked:,} events "
            f"planctl synced to {calendar} (sessions cancelled or gone in the planner; the "
            f"limit is {limit:,})",
            "planctl sync --dry-run lists them; if the planner is right, run again with "
            "--allow-mass-delete",
            override="--allow-mass-delete",
        )
    if exposure.planner_cancels > limit and not options.allow_mass_cancel:
        return UnsafeRunError(
            f"this run would cancel {exposure.planner_cancels:,} of the {tracked:,} synced "
            f"sessions in the planner (events deleted or cancelled on {calendar}; the limit "
            f"is {limit:,})",
            f"{CHECK_HINT}; if the calendar is right, run again with --allow-mass-cancel",
            override="--allow-mass-cancel",
        )
    return None
