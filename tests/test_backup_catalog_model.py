"""The backup catalog as a state machine over the in-memory store (issue 19).

Random backups, deltas, corruption, lost data and metadata, another
database's backups dropped into the same store, an engine field changed, a
stepped clock, rotation, prune, push and remote rot. After every step:

- the restorable chains (local and remote) never drop below min(N, before)
  when a rotation keeps N;
- nothing of another database or engine is ever deleted;
- ``latest`` is the newest restorable backup by an independent oracle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from planctl.backup.catalog import (
    BackupSet,
    Owner,
    load_catalog,
    prune_plan,
    remove_chain,
    rotate_plan,
)
from planctl.backup.offsite import push_set
from planctl.backup.store import BackupInfo
from planctl.backup.stores import LocalStore, MemoryStore, StoredFile
from planctl.fsutil import atomic_write

OURS, THEIRS = "a" * 32, "b" * 32
OWNER = Owner(OURS, "sqlite")
START = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DirStore(LocalStore):
    """A local backup directory with the in-memory store's test helpers."""

    @property
    def files(self) -> dict[str, bytes]:
        return {f.name: (self.directory / f.name).read_bytes() for f in self.list()}

    def put(self, name: str, data: bytes) -> StoredFile:
        with atomic_write(self.directory / name) as handle:
            handle.write(data)
        found = self.stat(name)
        assert found is not None
        return found


class Catalog(RuleBasedStateMachine):
    def make_local(self) -> MemoryStore | DirStore:
        return MemoryStore("local")

    def __init__(self) -> None:
        super().__init__()
        self.local = self.make_local()
        self.remote = MemoryStore("remote")
        self.sequence = 0
        self.clock = START
        self.foreign_files: set[str] = set()
        self.counter = 0

    # --- writing backups straight into the store ------------------------------------------

    def _put(self, kind: str, database: str, engine: str, parent: dict | None) -> dict[str, Any]:
        self.counter += 1
        self.sequence += 1
        name = f"{self.clock:%Y%m%d-%H%M%S}-{kind}-{self.counter}"
        data = f"{name} of {database}".encode()
        info: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "engine": "delta" if kind == "delta" else engine,
            "created": self.clock.isoformat(),
            "data_file": name + ".sqlite.zst",
            "sha256": sha(data),
            "size": len(data),
            "source": "sqlite:///x.db",
            "revision": "r1",
            "sequence": self.sequence,
            "database_id": database,
            "parent": parent["name"] if parent else None,
            "extra": {"parent_sha256": parent["sha256"], "base": engine} if parent else {},
        }
        self.local.put(info["data_file"], data)
        self.local.put(name + ".json", json.dumps(info).encode())
        self.clock += dt.timedelta(hours=1)
        return info

    def catalog(self, store: MemoryStore | DirStore | None = None) -> BackupSet:
        return load_catalog(store or self.local, owner=OWNER)

    def _newest_own(self) -> dict | None:
        backups = self.catalog()
        own = [i for i in backups.infos if backups.foreign(i) is None]
        return json.loads(self.local.files[own[-1].name + ".json"]) if own else None

    # --- rules ------------------------------------------------------------------------------

    @rule()
    def full_backup(self) -> None:
        self._put("full", OURS, "sqlite", None)

    @rule()
    def incremental(self) -> None:
        parent = self._newest_own()
        if parent is not None and self.catalog().restorable(self.catalog().by_name[parent["name"]]):
            self._put("delta", OURS, "sqlite", parent)
        else:
            self._put("full", OURS, "sqlite", None)

    @rule(engine=st.sampled_from(["sqlite", "postgresql"]))
    def another_databases_backup(self, engine: str) -> None:
        info = self._put("full", THEIRS, engine, None)
        self.foreign_files |= {info["name"] + ".json", info["data_file"]}

    @rule(pick=st.integers(0, 50))
    def corrupt_data(self, pick: int) -> None:
        names = [n for n in self.local.files if not n.endswith(".json")]
        names = [n for n in names if n not in self.foreign_files]
        if names:
            name = names[pick % len(names)]
            data = bytearray(self.local.files[name])
            data[0] ^= 0xFF  # same size: only the checksum tells
            self.local.put(name, bytes(data))

    @rule(pick=st.integers(0, 50))
    def delete_data(self, pick: int) -> None:
        names = [n for n in self.local.files if not n.endswith(".json")]
        names = [n for n in names if n not in self.foreign_files]
        if names:
            self.local.delete(names[pick % len(names)])

    @rule(pick=st.integers(0, 50))
    def delete_metadata(self, pick: int) -> None:
        names = [n for n in self.local.files if n.endswith(".json")]
        names = [n for n in names if n not in self.foreign_files]
        if names:
            self.local.delete(names[pick % len(names)])

    @rule(pick=st.integers(0, 50))
    def change_engine_field(self, pick: int) -> None:
        names = [n for n in self.local.files if n.endswith(".json")]
        names = [n for n in names if n not in self.foreign_files]
        fulls = [n for n in names if json.loads(self.local.files[n])["kind"] == "full"]
        if fulls:
            name = fulls[pick % len(fulls)]
            info = json.loads(self.local.files[name])
            info["engine"] = "postgresql"
            self.local.put(name, json.dumps(info).encode())
            # now another engine's: foreign, never to be deleted
            self.foreign_files |= {n for n in (name, info["data_file"]) if n in self.local.files}

    @rule(hours=st.integers(-72, 72))
    def step_clock(self, hours: int) -> None:
        self.clock += dt.timedelta(hours=hours)

    def _remove(self, store: MemoryStore | DirStore, keep: int) -> None:
        backups = load_catalog(store, owner=OWNER)
        before = backups.restorable_chains()
        for chain in rotate_plan(backups, keep):
            remove_chain(backups, chain)
        after = load_catalog(store, owner=OWNER).restorable_chains()
        assert after >= min(keep, before), (after, keep, before)

    @rule(keep=st.integers(1, 4))
    def rotate(self, keep: int) -> None:
        self._remove(self.local, keep)

    @rule(daily=st.integers(1, 3))
    def prune(self, daily: int) -> None:
        backups = self.catalog()
        before = backups.restorable_chains()
        plan = prune_plan(backups, keep_daily=daily, now=self.clock)
        for chain in plan.remove:
            remove_chain(backups, chain)
        assert self.catalog().restorable_chains() >= min(1, before)

    @rule(keep=st.one_of(st.none(), st.integers(1, 3)))
    def push(self, keep: int | None) -> None:
        before = load_catalog(self.remote, owner=OWNER).restorable_chains()
        local_good = self.catalog().restorable_chains()
        push_set(self.catalog(), self.remote, keep=keep)
        after = load_catalog(self.remote, owner=OWNER).restorable_chains()
        floor = max(before, local_good) if keep is None else min(keep, max(before, local_good))
        assert after >= floor, (after, floor)

    @rule(pick=st.integers(0, 50))
    def remote_rot(self, pick: int) -> None:
        names = [n for n in self.remote.files if not n.endswith(".json")]
        if names:
            name = names[pick % len(names)]
            data = bytearray(self.remote.files[name])
            data[-1] ^= 0x01
            self.remote.put(name, bytes(data))

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def nothing_foreign_is_deleted(self) -> None:
        missing = {n for n in self.foreign_files if n not in self.local.files}
        assert not missing, missing

    @invariant()
    def latest_is_the_newest_restorable(self) -> None:
        backups = self.catalog()
        expected = None
        for info in sorted(backups.infos, key=lambda i: i.sequence or 0):
            if backups.foreign(info) is None and _oracle_restorable(self.local, backups, info):
                expected = info.name
        found = backups.newest_restorable()
        assert (found.name if found else None) == expected

    @precondition(lambda self: self.remote.files)
    @invariant()
    def remote_foreign_copies_never_counted(self) -> None:
        remote = self.catalog(self.remote)
        for info in remote.infos:
            if info.database_id == THEIRS:
                assert not remote.restorable(info)


def _oracle_restorable(store: MemoryStore | DirStore, backups: BackupSet, info: BackupInfo) -> bool:
    """Restorable, computed again from the raw files (not through the catalog)."""
    seen = set()
    while True:
        if info.name in seen:
            return False
        seen.add(info.name)
        data = store.files.get(info.data_file)
        if data is None or sha(data) != info.sha256 or info.database_id != OURS:
            return False
        if info.kind == "full":
            return info.engine in ("sqlite", "logical")
        parent = backups.by_name.get(info.parent or "")
        if parent is None or parent.sha256 != info.extra.get("parent_sha256"):
            return False
        if (parent.sequence or 0) >= (info.sequence or 0):
            return False
        info = parent


class CatalogOnDisk(Catalog):
    """The same machine over a real directory (slower: fewer examples)."""

    def make_local(self) -> DirStore:
        self.tmp = tempfile.TemporaryDirectory(prefix="planctl-catalog-model-")
        return DirStore(Path(self.tmp.name))

    def teardown(self) -> None:
        self.tmp.cleanup()


Catalog.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestCatalog = Catalog.TestCase
CatalogOnDisk.TestCase.settings = settings(max_examples=10, stateful_step_count=20, deadline=None)
TestCatalogOnDisk = CatalogOnDisk.TestCase


def test_a_future_dated_backup_does_not_take_a_prune_slot() -> None:
    machine = Catalog()
    machine.clock = START - dt.timedelta(days=1)
    yesterday = machine._put("full", OURS, "sqlite", None)
    machine.clock = START
    today = machine._put("full", OURS, "sqlite", None)
    machine.clock = START + dt.timedelta(days=400)  # a stepped clock
    future = machine._put("full", OURS, "sqlite", None)
    now = START + dt.timedelta(hours=2)
    plan = prune_plan(machine.catalog(), keep_daily=2, now=now)
    kept = {chain.root.name for chain, _ in plan.keep}
    assert yesterday["name"] in kept and future["name"] in kept
    assert today["name"] not in kept  # the same day as the (clamped) future one, older
