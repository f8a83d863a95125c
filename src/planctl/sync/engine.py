"""The names of the sync engine in one place, for callers written before the split.

The engine lives in one module per job: :mod:`~planctl.sync.options`,
:mod:`~planctl.sync.local` (the planner's side of a session),
:mod:`~planctl.sync.decide` (the decision table, pure),
:mod:`~planctl.sync.plan` (planning), :mod:`~planctl.sync.safety` (the guards),
:mod:`~planctl.sync.apply` (writing), :mod:`~planctl.sync.report` and
:mod:`~planctl.sync.run` (the entry points).
"""

from __future__ import annotations

from planctl.sync.apply import MAX_RETRIES, differing_fields, reread
from planctl.sync.decide import decide, remote_token
from planctl.sync.local import CANCELLED, LocalItem
from planctl.sync.options import MODES, POLICIES, SyncOptions
from planctl.sync.plan import Plan, make_plan, remote_index
from planctl.sync.report import (
    LOCAL_WRITES,
    REMOTE_WRITES,
    WRITES,
    Action,
    Kind,
    SyncReport,
    SyncStatus,
)
from planctl.sync.run import COMMIT_EVERY, run_sync, sync_status
from planctl.sync.safety import (
    MASS_CANCEL_MIN,
    MASS_CANCEL_SHARE,
    Exposure,
    UnsafeRunError,
    mass_limit,
    refusal,
)

__all__ = [
    "CANCELLED",
    "COMMIT_EVERY",
    "LOCAL_WRITES",
    "MASS_CANCEL_MIN",
    "MASS_CANCEL_SHARE",
    "MAX_RETRIES",
    "MODES",
    "POLICIES",
    "REMOTE_WRITES",
    "WRITES",
    "Action",
    "Exposure",
    "Kind",
    "LocalItem",
    "Plan",
    "SyncOptions",
    "SyncReport",
    "SyncStatus",
    "UnsafeRunError",
    "decide",
    "differing_fields",
    "make_plan",
    "mass_limit",
    "refusal",
    "remote_index",
    "remote_token",
    "reread",
    "run_sync",
    "sync_status",
]
