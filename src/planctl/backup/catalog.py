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
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from planctl.backup.store import (
    DATA_SUFFIXES,
    LOCK_NAME,
    MAX_METADATA_BYTES,
    METADATA_SUFFIX,
    TEMP_PREFIX,
    BackupError,
    BackupInfo,
    parse_metadata,
    read_small_file,
    write_json_atomically,
)
from planctl.backup.stores import LocalStore, Store, StoredFile, read_all, sha256_of
from planctl.errors import NothingToDoError, PlanctlError, UsageError, VerificationError
from planctl.text import local_moment, plural

log = logging.getLogger("planctl.backup")

PRE_RESTORE = "pre-restore"
CHECKSUM_CACHE = ".planctl-checksums.json"
#: sha256 of remote copies, per remote, by (name, tag): recorded at upload or read back.
REMOTE_CHECKSUMS = ".planctl-remote-checksums.json"
LAST_RUN_FILE = "last-run.json"
BROKEN_HINT = "restore an earlier backup (planctl backup list shows which are restorable)"


def order_key(info: BackupInfo) -> tuple[int, int, str, str]:
    """Oldest first: backups from before sequences (by their time), then by sequence."""
    if info.sequence is None:
        return (0, 0, info.created, info.name)
    return (1, info.sequence, "", info.name)


class ChecksumCache:
    """sha256 of a store's files, keyed by (name, tag): the tag changes whenever a file is
    rewritten, so an entry stays true until then. Kept in a JSON file (*path*) or, without
    one, for this process only."""

    def __init__(self, path: Path | None = None, section: str | None = None) -> None:
        self.path, self.section = path, section
        self.document: dict[str, object] = {}
        self.entries: dict[str, list[object]] = {}
        self.dirty = False
        if path is None:
            return
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(read_small_file(path))
            if isinstance(loaded, dict):
                self.document = loaded
        entries = self.document.get(section, {}) if section else self.document
        if isinstance(entries, dict):
            self.entries = {k: v for k, v in entries.items() if isinstance(v, list)}

    def known(self, found: StoredFile) -> str | None:
        cached = self.entries.get(found.name)
        if cached and len(cached) == 2 and cached[0] == found.tag and isinstance(cached[1], str):
            return cached[1]
        return None

    def record(self, found: StoredFile, sha256: str) -> None:
        self.entries[found.name] = [found.tag, sha256]
        self.dirty = True

    def sha256(self, store: Store, found: StoredFile) -> str:
        """The store's own checksum, a recorded one for this version, or a read-back."""
        if found.sha256 is not None:
            return found.sha256
        digest = self.known(found)
        if digest is None:
            digest = sha256_of(store, found.name)
            self.record(found, digest)
        return digest

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.dirty = True

    def save(self) -> None:
        """Best effort (read-only media): a missing cache only costs time."""
        if not self.dirty or self.path is None:
            return
        document: dict[str, object] = dict(self.document) if self.section else {}
        if self.section:
            document[self.section] = self.entries
        else:
            document = dict(self.entries)
        with contextlib.suppress(OSError, PlanctlError):  # read-only media included
            write_json_atomically(self.path, document)
        self.dirty = False


@dataclass(frozen=True)
class Owner:
    """Whose backups count: this database's id (None: unknown — a new or unreadable
    database, or one from before ids) and engine (None: any)."""

    database_id: str | None = None
    engine: str | None = None


ANYONE = Owner()


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
    """The backups of one store, their order and their health, for one *owner*.

    *restorable* is the one health rule every command asks: the metadata is
    well typed, the data's checksum matches, the backup is of this database and
    this engine, and its parents are restorable. Backups of another database or
    engine are *foreign*: listed as such, never counted, never removed.
    """

    def __init__(
        self,
        directory: Path | None,
        infos: list[BackupInfo],
        damaged: list[Path],
        *,
        store: Store | None = None,
        owner: Owner = ANYONE,
        cache: ChecksumCache | None = None,
    ) -> None:
        if store is None:
            assert directory is not None
            store = LocalStore(directory)
        self.directory = directory
        self.store = store
        self.owner = owner
        self.infos = sorted(infos, key=order_key)  # oldest first
        self.damaged = damaged  # metadata files that cannot be read
        self.by_name = {i.name: i for i in self.infos}
        if cache is None:
            cache = ChecksumCache(directory / CHECKSUM_CACHE if directory else None)
        self.cache = cache
        self._problems: dict[str, str | None] = {}

    @property
    def path(self) -> Path:
        """The local directory (a remote catalog has none)."""
        assert self.directory is not None, "a remote catalog has no local directory"
        return self.directory

    @property
    def where(self) -> str:
        return str(self.directory) if self.directory is not None else self.store.describe()

    # --- health ---------------------------------------------------------------------------

    def data_problem(self, info: BackupInfo) -> str | None:
        """Why the data file does not match its metadata (None: it does)."""
        found = self.store.stat(info.data_file)
        if found is None:
            return f"backup {info.name}: data file {info.data_file} is missing"
        if not found.regular:
            return f"backup {info.name}: data file {info.data_file} is not a regular file"
        if found.size != info.size:
            return f"backup {info.name}: data file {info.data_file} has the wrong size"
        if self.cache.sha256(self.store, found) != info.sha256:
            return f"backup {info.name}: checksum mismatch in {info.data_file}"
        return None

    def problem(self, info: BackupInfo) -> str | None:
        """Why *info* is damaged (None: its data and its parents are whole)."""
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

    def engine_of(self, info: BackupInfo) -> str | None:
        """The engine of *info*'s chain (None: unknown, its full backup is gone)."""
        root = self.lineage(info)[0]
        return root.engine if root.kind == "full" else None

    def foreign(self, info: BackupInfo) -> str | None:
        """Why *info* is not this database's (None: it is, or that cannot be told)."""
        engine, mine = self.engine_of(info), self.owner.engine
        if mine and engine not in (None, "logical", mine):
            return f"backup {info.name} is a {engine} backup; the database is {mine}"
        theirs, ours = info.database_id, self.owner.database_id
        if ours and theirs and theirs != ours:
            return (
                f"backup {info.name} is of another database (id {theirs[:8]}…; "
                f"this database is {ours[:8]}…)"
            )
        return None

    def why_not(self, info: BackupInfo) -> str | None:
        """Why *info* cannot be restored here (foreign or damaged); None: it can."""
        return self.foreign(info) or self.problem(info)

    def restorable(self, info: BackupInfo) -> bool:
        return self.why_not(info) is None

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

    def own(self) -> list[BackupInfo]:
        """This database's regular backups (damaged ones included), oldest first."""
        return [i for i in self.regular() if self.foreign(i) is None]

    def foreigners(self) -> list[BackupInfo]:
        return [i for i in self.infos if self.foreign(i) is not None]

    def next_sequence(self) -> int:
        return max((i.sequence or 0 for i in self.infos), default=0) + 1

    def newest_restorable(self, *, include_safety: bool = False) -> BackupInfo | None:
        for info in reversed(self.infos):
            if (include_safety or info.reason != PRE_RESTORE) and self.restorable(info):
                return info
        return None

    def restorable_chains(self) -> int:
        return sum(1 for c in self.chains(self.own()) if c.healthy)

    def skipped_newer(self, found: BackupInfo) -> list[tuple[BackupInfo, str]]:
        """The regular backups newer than *found* and why none of them was taken instead."""
        newer = [i for i in self.regular() if order_key(i) > order_key(found)]
        return [(i, why) for i in reversed(newer) if (why := self.why_not(i))]

    def check_unambiguous(self) -> None:
        """Refuse to delete when this database's id is unknown and several databases'
        backups share the store (which ones are ours cannot be told)."""
        if self.owner.database_id is not None:
            return
        ids = {i.database_id for i in self.own() if i.database_id}
        if len(ids) > 1:
            raise BackupError(
                f"backups of {len(ids)} databases share {self.where} and the configured "
                "database's id cannot be read, so it is unclear which are its own",
                "run it with DATABASE_URL set to the database whose backups to rotate",
            )

    # --- lookup ---------------------------------------------------------------------------

    def find(self, name: str = "latest", *, include_safety: bool = False) -> BackupInfo:
        """A backup by name (or unique prefix), or ``latest``: the newest restorable one."""
        if not self.infos and not self.damaged:
            raise NothingToDoError(f"no backups in '{self.where}'", "run planctl backup first")
        if name == "latest":
            found = self.newest_restorable(include_safety=include_safety)
            if found is None:
                candidates = [i for i in self.infos if include_safety or i.reason != PRE_RESTORE]
                mine = [i for i in candidates if self.foreign(i) is None]
                if mine:
                    raise VerificationError(
                        f"no restorable backup in '{self.where}': {self.problem(mine[-1])}",
                        "planctl backup verify --all names every bad file",
                    )
                if candidates:
                    raise NothingToDoError(
                        f"no backup of this database in '{self.where}' "
                        f"({plural(len(candidates), 'backup')} of other databases or engines; "
                        f"the newest: {self.foreign(candidates[-1])})",
                        "planctl backup list shows whose they are",
                    )
                raise NothingToDoError(
                    f"no backups in '{self.where}' except safety copies",
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
            f"no backup named '{name}' in '{self.where}'",
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
            f"no restorable backup in '{self.where}' was taken at or before "
            f"{local_moment(moment, zone, seconds=True)}",
            f"the oldest is from {local_moment(oldest, zone, seconds=True)}"
            if oldest
            else "run planctl backup first",
        )


def load_catalog(
    store: Store,
    *,
    owner: Owner = ANYONE,
    cache: ChecksumCache | None = None,
    directory: Path | None = None,
) -> BackupSet:
    """Read every metadata file of *store* into a catalog for *owner*."""
    infos: list[BackupInfo] = []
    damaged: list[Path] = []
    for found in store.list():
        name = found.name
        if name.startswith((TEMP_PREFIX, ".")) or not name.endswith(METADATA_SUFFIX):
            continue
        if name == LAST_RUN_FILE:  # the monitor's record, not a backup
            continue
        info = None
        if found.regular and found.size <= MAX_METADATA_BYTES:
            with contextlib.suppress(PlanctlError, OSError):
                info = parse_metadata(name, read_all(store, name))
        if info is None:
            damaged.append(directory / name if directory is not None else Path(name))
        else:
            infos.append(info)
    return BackupSet(directory, infos, damaged, store=store, owner=owner, cache=cache)


def load_set(directory: Path, owner: Owner = ANYONE) -> BackupSet:
    """The catalog of a local backup directory (missing directory: an empty set)."""
    directory = Path(directory)
    if directory.is_dir():
        try:
            os.listdir(directory)
        except PermissionError as error:
            raise BackupError(
                f"cannot read backup directory '{directory}'", "check its permissions"
            ) from error
    return load_catalog(LocalStore(directory), owner=owner, directory=directory)


# --- retention --------------------------------------------------------------------------------


def rotate_plan(backups: BackupSet, keep: int) -> list[Chain]:
    """The chains ``--keep N`` removes: those older than the N newest restorable chains.

    Damaged chains never count; those newer than the kept ones stay (they are
    evidence, and a repaired file may make them restorable again); safety
    copies are not regular backups and never rotate; backups of another
    database or engine are not this database's to remove.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    backups.check_unambiguous()
    chains = backups.chains(backups.own())
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
    now: dt.datetime | None = None,
) -> PrunePlan:
    """restic's ``forget`` semantics over this database's restorable chains.

    Newest first (by sequence), ``--keep-last N`` keeps the N newest;
    ``--keep-daily D`` keeps the newest chain of each of the last D days that
    have a backup (likewise ISO weeks and months), by the backups' recorded
    time in *timezone*. The newest restorable chain is always kept, and so is
    every chain that is not restorable (only what a rule could keep can go);
    other databases' backups are not in the plan. A backup's time counts as no
    later than *now* nor than any newer backup's (by sequence), so one stamped
    in the future (a stepped clock) cannot take a real day's slot.
    """
    zone = ZoneInfo(timezone)
    backups.check_unambiguous()
    chains = backups.chains(backups.own())
    healthy_newest_first = [c for c in reversed(chains) if c.healthy]
    reasons: dict[int, list[str]] = {id(c): [] for c in chains}
    moment: dict[int, dt.datetime] = {}
    latest = now or dt.datetime.now(dt.UTC)
    for chain in reversed(chains):
        latest = min(latest, chain.newest.created_at)
        moment[id(chain)] = latest

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
            bucket = bucket_of(moment[id(chain)].astimezone(zone))
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
    """Delete a chain, newest delta first (metadata before data: it stops existing first).
    Never a backup of another database or engine."""
    removed = list(reversed(chain.members))
    if any(backups.foreign(info) for info in removed):
        raise AssertionError("a foreign backup is never removed")
    for info in removed:
        backups.store.delete(f"{info.name}{METADATA_SUFFIX}")
        backups.store.delete(info.data_file)
        backups.cache.forget(info.data_file)
        log.info(
            "removed %s (%s, sequence %s) from %s",
            info.name,
            info.kind,
            info.sequence,
            backups.where,
        )
    return removed


# --- leftovers --------------------------------------------------------------------------------


def clean_leftovers(backups: BackupSet) -> list[Path]:
    """Remove temporary files and directories of crashed runs and data files nothing
    references.

    A data file is kept when any metadata names it, when a delta names its
    backup as parent (its metadata was lost: the chain needs it), or when its
    metadata file exists but is damaged (evidence). Call under the lock.
    """
    directory = backups.directory
    assert directory is not None, "leftovers are a local directory's"
    referenced = {i.data_file for i in backups.infos}
    parents = {i.parent for i in backups.infos if i.parent}
    damaged = {p.name.removesuffix(METADATA_SUFFIX) for p in backups.damaged}
    removed: list[Path] = []
    for path in sorted(directory.iterdir()):
        if path.name in (LOCK_NAME, CHECKSUM_CACHE, LAST_RUN_FILE, REMOTE_CHECKSUMS):
            continue
        if path.name.startswith(TEMP_PREFIX):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
            continue
        if path.is_dir():
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
