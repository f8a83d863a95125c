"""What a sync run is asked to do: mode, conflict policy, date range, overrides."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from planctl.calendar.zones import zone_info
from planctl.errors import UsageError

MODES = ("sync", "push", "pull")
POLICIES = ("local", "remote", "fail")


@dataclass(frozen=True)
class SyncOptions:
    """One run's options; :meth:`check` refuses a bad one before anything is read."""

    timezone: str
    mode: str = "sync"
    policy: str = "local"
    since: dt.date | None = None
    until: dt.date | None = None
    allow_mass_cancel: bool = False  # the planner's side: sessions set to cancelada
    allow_mass_delete: bool = False  # the calendar's side: events deleted or cancelled

    def check(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown sync mode '{self.mode}'", f"use one of {', '.join(MODES)}")
        if self.policy not in POLICIES:
            raise UsageError(
                f"unknown conflict policy '{self.policy}'", f"use one of {', '.join(POLICIES)}"
            )
        if self.since and self.until and self.since > self.until:
            raise UsageError(f"--since {self.since} is after --until {self.until}")
        zone_info(self.timezone)
