"""The safety guards: one place that decides whether a run may write at all.

Asked after planning and before the first write of a real run; a dry run,
``sync status`` and ``--json`` ask the same function and report its answer.
See docs/sync.md#safety-no-mass-cancellation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from planctl.errors import SyncError
from planctl.sync.report import Kind
from planctl.text import plural

if TYPE_CHECKING:
    from planctl.sync.plan import Plan

# The mass-cancellation guard: a run may cancel at most this many sessions, or
# this share of the sessions it tracks on the backend, whichever is larger.
MASS_CANCEL_MIN = 5
MASS_CANCEL_SHARE = 0.10
# The consistency guard: known events missing from a listing (not even a
# tombstone) beyond this many and this share mean the view is not trustworthy.
VANISHED_MIN = 5
VANISHED_SHARE = 0.5


class UnsafeRunError(SyncError):
    """A run would cancel sessions en masse, or the calendar's listing is not trustworthy."""


def check_safe(plan: Plan, calendar: str, *, keeps_deleted: bool) -> None:
    """Refuse, before any change, a run built on a view that lost most known events
    or that would cancel more than a small share of the tracked sessions."""
    hint = (
        "nothing was changed; check the calendar and PLANCTL_SYNC_STORE "
        "(planctl sync --dry-run lists the sessions); if this is intended, "
        "run again with --allow-mass-cancel"
    )
    vanished, tracked = plan.vanished, plan.tracked
    too_many_gone = vanished > 0 and (
        vanished == tracked
        or (keeps_deleted and vanished > 0)
        or (vanished >= VANISHED_MIN and vanished > VANISHED_SHARE * tracked)
    )
    if too_many_gone:
        raise UnsafeRunError(
            f"{calendar} does not list {vanished:,} of the {plural(tracked, 'event')} "
            "planctl synced to it (not even as deleted): it looks missing, replaced or unreadable",
            hint,
        )
    cancels = sum(
        1
        for a in plan.actions
        if a.kind is Kind.CANCEL_LOCAL and a.local is not None and a.local.active
    )
    limit = max(MASS_CANCEL_MIN, int(MASS_CANCEL_SHARE * tracked))
    if cancels > limit:
        raise UnsafeRunError(
            f"this run would cancel {cancels:,} of the {tracked:,} synced sessions at once "
            f"(events deleted or cancelled on {calendar}; the limit is {limit:,})",
            hint,
        )
