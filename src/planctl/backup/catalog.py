"""The backup set as a catalog: backups in sequence, chains and their health, retention.

Everything here is a function over metadata (plus the data files' checksums),
so the rules that protect the user's last good copy live in one place:

- **Order** is the monotonic ``sequence`` recorded in each backup's metadata,
  never the wall clock: a backup stamped in the future (clock stepped back, a
  copy from another machine) cannot push a new one out or pass for the newest.
- **Health**: a backup is *restorable* when its metadata parses, its data file
  matches the recorded size and sha256, and, for a delta, its parent is
  restorable, is the very backup it was taken on (sha256) and of the same
  database. Checksums are cached by (size, mtime, ctime, inode) in
  ``.planctl-checksums.json``, so rotation does not re-read gigabytes on every
  run; ``planctl backup verify`` always reads the files.
- **Retention** counts restorable chains only. ``--keep N`` keeps the newest N
  restorable chains and everything newer than the oldest of them; only older
  chains go. Safety copies taken before a restore are never rotated out.
- **Cleanup** removes temporary files and data files that no metadata and no
  delta references, and reports each one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from zoneinfo import ZoneInfo

from planctl.backup.store import (
    DATA_SUFFIXES,
    LOCK_NAME,
    METADATA_SUFFIX,
    TEMP_PREFIX,
    BackupError,
    BackupInfo,
    fsync_dir,
    read_metadata,
    read_small_file,
    sha256_file,
    write_json_atomically,
)
from planctl.errors import NothingToDoError, UsageError, VerificationError
from planctl.text import local_moment

log = logging.getLogger("planctl.backup")

PRE_RESTORE = "pre-restore"
CHECKSUM_CACHE = ".planctl-checksums.json"
LAST_RUN_FILE = "last-run.json"
BROKEN_HINT = "restore an earlier backup (planctl backup list shows which are restorable)"


def order_key(info: BackupInfo) -> tuple[int, int, str, str]:
    """Oldest first: backups from before sequences (by their time), then by sequence."""
    if info.sequence is None:
        return (0, 0, info.created, info.name)
    return (1, info.sequence, "", info.name)


class ChecksumCache:
    """sha256 of data files keyed by what changes when a file is rewritten."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CHECKSUM_CACHE
        self.entries: dict[str, list[object]] = {}
        self.dirty = False
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(read_small_file(self.path))
            if isinstance(loaded, dict):
                self.entries = loaded

    @staticmethod
    def _key(stat: os.stat_result) -> list[object]:
        return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]

    def sha256(self, path: Path, stat: os.stat_result) -> str:
        key = self._key(stat)
        cached = self.entries.get(path.name)
        if isinstance(cached, list) and cached[:4] == key and isinstance(cached[4], str):
            return cached[4]
        digest = sha256_file(path)
        self.entries[path.name] = [*key, digest]
        self.dirty = True
        return digest

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.dirty = True

    def save(self) -> None:
        """Best effort (read-only media): a missing cache only costs time."""
        if not self.dirty:
            return
        with contextlib.suppress(OSError):
            write_json_atomically(self.path, self.entries)
        self.dirty = False


@dataclass
class Chain:
    """A full backup and the deltas that depend on it, in sequence order."""

    members: list[BackupInfo]
    restorable: list[BackupInfo] = field(default_factory=list)

    @property
    def root(self) -> BackupInfo:
        return self.members[0]

    @property
    def newest(self) -> BackupInfo:
        return self.members[-1]

    @property
    def created(self) -> str:
        return self.newest.created

    @property
    def healthy(self) -> bool:
        """Its full backup is restorable (so at least one state of it is)."""
        return bool(self.restorable) and self.restorable[0] is self.root


class BackupSet:
    """The backups of one directory, their order and their health."""

    def __init__(self, directory: Path, infos: list[BackupInfo], damaged: list[Path]) -> None:
        self.directory = directory
        self.infos = sorted(infos, key=order_key)  # oldest first
        self.damaged = damaged  # metadata files that cannot be read
        self.by_name = {i.name: i for i in self.infos}
        self.cache = ChecksumCache(directory)
        self._problems: dict[str, str | None] = {}

    # --- health ---------------------------------------------------------------------------

    def data_problem(self, info: BackupInfo) -> str | None:
        """Why the data file does not match its metadata (None: it does)."""
        path = self.directory / info.data_file
        try:
            stat = path.lstat()
        except OSError:
            return f"backup {info.name}: data file {info.data_file} is missing"
        if not S_ISREG(stat.st_mode):
            return f"backup {info.name}: data file {info.data_file} is not a regular file"
        if stat.st_size != info.size:
            return f"backup {info.name}: data file {info.data_file} has the wrong size"
        if self.cache.sha256(path, stat) != info.sha256:
            return f"backup {info.name}: checksum mismatch in {info.data_file}"
        return None

    def problem(self, info: BackupInfo) -> str | None:
        """Why *info* cannot be restored (None: it can), parents included."""
        if info.name not in self._problems:
            self._problems[info.name] = None  # a loop in the chain ends here
            self._problems[info.name] = self._find_problem(info)
        return self._problems[info.name]

    def _find_problem(self, info: BackupInfo) -> str | None:
        if info.kind not in ("full", "delta"):
            return f"backup {info.name}: unknown kind {info.kind!r}"
        own = self.data_problem(info)
        if own or info.kind == "full":
            return own
        parent = self.by_name.get(info.parent or "")
        if parent is None:
            return f"backup {info.name}: its parent {info.parent} is missing (broken chain)"
        if parent.sha256 != info.extra.get("parent_sha256"):
            return (
                f"backup {info.name}: its parent {parent.name} is not the backup it was "
                "taken on (checksum differs; broken chain)"
            )
        if order_key(parent) >= order_key(info):
            return f"backup {info.name}: its chain loops"
        if parent.database_id != info.database_id:
            return f"backup {info.name}: its parent {parent.name} is of another database"
        inherited = self.problem(parent)
        return (
            f"backup {info.name}: depends on a damaged backup ({inherited})" if inherited else None
        )

    def restorable(self, info: BackupInfo) -> bool:
        return self.problem(info) is None

    def chain_of(self, info: BackupInfo) -> list[BackupInfo]:
        """*info* and the backups it depends on, full first; VerificationError naming the
        first bad link (checksums, parents, identity)."""
        problem = self.problem(info)
        if problem:
            raise VerificationError(problem, BROKEN_HINT)
        links = [info]
        while links[0].kind == "delta":
            links.insert(0, self.by_name[links[0].parent or ""])
        return links

    def lineage(self, info: BackupInfo) -> list[BackupInfo]:
        """*info* and the ancestors that are present, oldest first (even if broken)."""
        links, seen = [info], {info.name}
        while links[0].parent and links[0].parent in self.by_name:
            parent = self.by_name[links[0].parent]
            if parent.name in seen:
                break
            seen.add(parent.name)
            links.insert(0, parent)
        return links

    # --- chains and order -------------------------------------------------------------------

    def chains(self, infos: Sequence[BackupInfo] | None = None) -> list[Chain]:
        """Backups grouped under their full backup, oldest chain first (by its newest member).
        Orphan deltas (parent gone) form chains of their own, never healthy."""
        members = self.infos if infos is None else sorted(infos, key=order_key)
        roots: dict[str, Chain] = {}
        for info in members:
            root, seen = info, {info.name}
            while root.parent and root.parent in self.by_name and root.parent not in seen:
                root = self.by_name[root.parent]
                seen.add(root.name)
            chain = roots.setdefault(root.name, Chain([]))
            chain.members.append(info)
        chains = list(roots.values())
        for chain in chains:
            chain.members.sort(key=order_key)
            chain.restorable = [m for m in chain.members if self.restorable(m)]
        return sorted(chains, key=lambda c: order_key(c.newest))

    def regular(self) -> list[BackupInfo]:
        return [i for i in self.infos if i.reason != PRE_RESTORE]

    def next_sequence(self) -> int:
        return max((i.sequence or 0 for i in self.infos), default=0) + 1

    def newest_restorable(self, *, include_safety: bool = False) -> BackupInfo | None:
        for info in reversed(self.infos):
            if (include_safety or info.reason != PRE_RESTORE) and self.restorable(info):
                return info
        return None

    def restorable_chains(self) -> int:
        return sum(1 for c in self.chains(self.regular()) if c.healthy)

    # --- lookup ---------------------------------------------------------------------------

    def find(self, name: str = "latest", *, include_safety: bool = False) -> BackupInfo:
        """A backup by name (or unique prefix), or ``latest``: the newest restorable one."""
        if not self.infos and not self.damaged:
            raise NothingToDoError(f"no backups in '{self.directory}'", "run planctl backup first")
        if name == "latest":
            found = self.newest_restorable(include_safety=include_safety)
            if found is None:
                candidates = [i for i in self.infos if include_safety or i.reason != PRE_RESTORE]
                if candidates:
                    raise VerificationError(
                        f"no restorable backup in '{self.directory}': "
                        f"{self.problem(candidates[-1])}",
                        "planctl backup verify --all names every bad file",
                    )
                raise NothingToDoError(
                    f"no backups in '{self.directory}' except safety copies",
                    "name one explicitly (planctl backup list)",
                )
            return found
        exact = [i for i in self.infos if i.name == name]
        if not exact and any(p.name == f"{name}{METADATA_SUFFIX}" for p in self.damaged):
            raise VerificationError(
                f"backup {name}: metadata file {name}{METADATA_SUFFIX} is damaged or unreadable",
                BROKEN_HINT,
            )
        matches = exact or [i for i in self.infos if i.name.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"'{name}' matches {len(matches)} backups", "give more of the name")
        damaged = [p for p in self.damaged if p.name.removesuffix(METADATA_SUFFIX).startswith(name)]
        if damaged:
            raise VerificationError(
                f"backup {damaged[0].stem}: metadata file {damaged[0].name} is damaged or "
                "unreadable",
                BROKEN_HINT,
            )
        raise NothingToDoError(
            f"no backup named '{name}' in '{self.directory}'",
            "planctl backup list shows the names",
        )

    def find_at(self, moment: dt.datetime) -> BackupInfo:
        """The newest restorable backup (not a safety copy) taken at or before *moment*.

        The only place the wall clock decides: the user asked for a time.
        """
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        for info in reversed(self.regular()):
            if info.created_at <= moment and self.restorable(info):
                return info
        oldest = min((i.created_at for i in self.infos), default=None)
        zone = str(getattr(moment.tzinfo, "key", "UTC"))
        raise NothingToDoError(
            f"no restorable backup in '{self.directory}' was taken at or before "
            f"{local_moment(moment, zone, seconds=True)}",
            f"the oldest is from {local_moment(oldest, zone, seconds=True)}"
            if oldest
            else "run planctl backup first",
        )


def load_set(directory: Path) -> BackupSet:
    """Read every metadata file of *directory* (missing directory: an empty set)."""
    directory = Path(directory)
    infos: list[BackupInfo] = []
    damaged: list[Path] = []
    if directory.is_dir():
        try:
            entries = sorted(directory.iterdir())
        except PermissionError:
            raise BackupError(
                f"cannot read backup directory '{directory}'", "check its permissions"
            ) from None
        for path in entries:
            if path.name.startswith((TEMP_PREFIX, ".")) or path.suffix != METADATA_SUFFIX:
                continue
            if path.name == LAST_RUN_FILE:  # the monitor's record, not a backup
                continue
            info = read_metadata(path)
            if info is None:
                damaged.append(path)
            else:
                infos.append(info)
    return BackupSet(directory, infos, damaged)


# --- retention --------------------------------------------------------------------------------


def rotate_plan(backups: BackupSet, keep: int) -> list[Chain]:
    """The chains ``--keep N`` removes: those older than the N newest restorable chains.

    Damaged chains never count; those newer than the kept ones stay (they are
    evidence, and a repaired file may make them restorable again); safety
    copies are not regular backups and never rotate.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    chains = backups.chains(backups.regular())
    healthy = [c for c in chains if c.healthy]
    if len(healthy) <= keep:
        return []
    oldest_kept = healthy[-keep]
    return chains[: chains.index(oldest_kept)]


@dataclass
class PrunePlan:
    keep: list[tuple[Chain, list[str]]] = field(default_factory=list)
    remove: list[Chain] = field(default_factory=list)


def prune_plan(
    backups: BackupSet,
    *,
    keep_last: int = 0,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
    timezone: str = "UTC",
) -> PrunePlan:
    """restic's ``forget`` semantics over restorable chains.

    Newest first (by sequence), ``--keep-last N`` keeps the N newest;
    ``--keep-daily D`` keeps the newest chain of each of the last D days that
    have a backup (likewise ISO weeks and months), by the backups' recorded
    time in *timezone*. The newest restorable chain is always kept, and so is
    every chain that is not restorable (only what a rule could keep can go).
    """
    zone = ZoneInfo(timezone)
    chains = backups.chains(backups.regular())
    healthy_newest_first = [c for c in reversed(chains) if c.healthy]
    reasons: dict[int, list[str]] = {id(c): [] for c in chains}

    buckets: list[tuple[str, int, Callable[[dt.datetime], object]]] = [
        ("daily", keep_daily, lambda t: t.date()),
        ("weekly", keep_weekly, lambda t: t.isocalendar()[:2]),
        ("monthly", keep_monthly, lambda t: (t.year, t.month)),
    ]
    for chain in healthy_newest_first[:keep_last]:
        reasons[id(chain)].append("last")
    for label, count, bucket_of in buckets:
        if count <= 0:
            continue
        seen: set[object] = set()
        for chain in healthy_newest_first:
            bucket = bucket_of(chain.newest.created_at.astimezone(zone))
            if bucket in seen:
                continue
            seen.add(bucket)
            if len(seen) > count:
                break
            reasons[id(chain)].append(label)
    if healthy_newest_first and not reasons[id(healthy_newest_first[0])]:
        reasons[id(healthy_newest_first[0])].append("newest")
    for chain in chains:
        if not chain.healthy:
            reasons[id(chain)].append("not restorable (kept as evidence)")
    plan = PrunePlan()
    for chain in reversed(chains):
        if reasons[id(chain)]:
            plan.keep.append((chain, reasons[id(chain)]))
        else:
            plan.remove.append(chain)
    return plan


def remove_chain(backups: BackupSet, chain: Chain) -> list[BackupInfo]:
    """Delete a chain, newest delta first (metadata before data: it stops existing first)."""
    removed = list(reversed(chain.members))
    for info in removed:
        (backups.directory / f"{info.name}{METADATA_SUFFIX}").unlink(missing_ok=True)
        fsync_dir(backups.directory)
        (backups.directory / info.data_file).unlink(missing_ok=True)
        backups.cache.forget(info.data_file)
        log.info("removed %s (%s, sequence %s)", info.name, info.kind, info.sequence)
    return removed


# --- leftovers --------------------------------------------------------------------------------


def clean_leftovers(backups: BackupSet) -> list[Path]:
    """Remove temporary files of crashed runs and data files nothing references.

    A data file is kept when any metadata names it, when a delta names its
    backup as parent (its metadata was lost: the chain needs it), or when its
    metadata file exists but is damaged (evidence). Call under the lock.
    """
    directory = backups.directory
    referenced = {i.data_file for i in backups.infos}
    parents = {i.parent for i in backups.infos if i.parent}
    damaged = {p.name.removesuffix(METADATA_SUFFIX) for p in backups.damaged}
    removed: list[Path] = []
    for path in sorted(directory.iterdir()):
        if path.name in (LOCK_NAME, CHECKSUM_CACHE, LAST_RUN_FILE) or path.is_dir():
            continue
        if path.name.startswith(TEMP_PREFIX):
            path.unlink(missing_ok=True)
            removed.append(path)
            continue
        stem = _data_stem(path.name)
        if stem is None or path.name in referenced or stem in parents or stem in damaged:
            continue
        if (directory / f"{stem}{METADATA_SUFFIX}").exists():
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    for path in removed:
        log.warning("removed leftover %s (no backup references it)", path)
    return removed


def _data_stem(name: str) -> str | None:
    """The backup name of a data file name, or None if it does not look like one."""
    if not (name[:8].isdigit() and name[8:9] == "-"):
        return None
    name = name.removesuffix(".age")
    for suffix in sorted(DATA_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None
