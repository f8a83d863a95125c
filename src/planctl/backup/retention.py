"""Which backups to keep: ``--keep N`` rotation and restic-style calendar buckets.

Both work on chains (a full backup and the deltas that depend on it), never on
single files, and never drop the newest chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from planctl.backup.store import BackupInfo


@dataclass
class Chain:
    """A full backup and its deltas, oldest first; dated by its newest member."""

    members: list[BackupInfo]

    @property
    def root(self) -> BackupInfo:
        return self.members[0]

    @property
    def newest(self) -> BackupInfo:
        return self.members[-1]

    @property
    def created(self) -> str:
        return self.newest.created


def chains(infos: Sequence[BackupInfo]) -> list[Chain]:
    """Group backups into chains, oldest chain first. Orphan deltas form their own chain."""
    by_name = {i.name: i for i in infos}
    roots: dict[str, Chain] = {}
    order: list[Chain] = []
    for info in sorted(infos, key=lambda i: (i.created, i.name)):
        root = info
        seen = set()
        while root.parent and root.parent in by_name and root.name not in seen:
            seen.add(root.name)
            root = by_name[root.parent]
        chain = roots.get(root.name)
        if chain is None:
            chain = roots[root.name] = Chain([])
            order.append(chain)
        chain.members.append(info)
    return sorted(order, key=lambda c: (c.created, c.root.name))


def rotate_plan(infos: Sequence[BackupInfo], keep: int) -> list[Chain]:
    """The chains that ``--keep N`` removes: all but the newest *keep*."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    all_chains = chains(infos)
    return all_chains[:-keep] if len(all_chains) > keep else []


@dataclass
class PrunePlan:
    keep: list[tuple[Chain, list[str]]] = field(default_factory=list)
    remove: list[Chain] = field(default_factory=list)


def prune_plan(
    infos: Sequence[BackupInfo],
    *,
    keep_last: int = 0,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
    timezone: str = "UTC",
) -> PrunePlan:
    """restic's ``forget`` semantics over chains.

    Newest first, ``--keep-last N`` keeps the N newest; ``--keep-daily D`` keeps
    the newest chain of each of the last D days that have a backup (likewise
    ISO weeks and months), in *timezone*. A chain is kept if any rule keeps it;
    the newest chain is always kept.
    """
    zone = ZoneInfo(timezone)
    newest_first = list(reversed(chains(infos)))
    reasons: dict[int, list[str]] = {id(c): [] for c in newest_first}

    def local(chain: Chain) -> dt.datetime:
        return chain.newest.created_at.astimezone(zone)

    buckets: list[tuple[str, int, Callable[[dt.datetime], object]]] = [
        ("daily", keep_daily, lambda t: t.date()),
        ("weekly", keep_weekly, lambda t: t.isocalendar()[:2]),
        ("monthly", keep_monthly, lambda t: (t.year, t.month)),
    ]
    for chain in newest_first[:keep_last]:
        reasons[id(chain)].append("last")
    for label, count, bucket_of in buckets:
        if count <= 0:
            continue
        seen: set[object] = set()
        for chain in newest_first:
            bucket = bucket_of(local(chain))
            if bucket in seen:
                continue
            seen.add(bucket)
            if len(seen) > count:
                break
            reasons[id(chain)].append(label)
    if newest_first and not reasons[id(newest_first[0])]:
        reasons[id(newest_first[0])].append("newest")
    plan = PrunePlan()
    for chain in newest_first:
        if reasons[id(chain)]:
            plan.keep.append((chain, reasons[id(chain)]))
        else:
            plan.remove.append(chain)
    return plan
