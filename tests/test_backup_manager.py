"""BackupManager (scheduling on an injectable clock) and ``planctl backup watch`` as a process."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from planctl.backup import BackupManager, list_backups
from planctl.backup.manager import Schedule
from planctl.backup.options import BackupOptions, RestoreOptions
from planctl.db.engine import connect
from planctl.errors import PlanctlError
from tests.helpers import planctl_env, spawn_planctl, table_contents, wait_until

from .helpers import target_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _touch(url: str, value: str) -> None:
    with connect(target_of(url)) as c:
        c.execute(text("UPDATE temas SET descripcion = :v WHERE id = 1"), {"v": value})


def test_interval_and_min_interval_throttling(seeded_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    manager = BackupManager(
        target_of(seeded_url),
        tmp_path / "b",
        BackupOptions(incremental=True),
        Schedule(interval=300, min_interval=5.0),
        clock=clock,
    )
    first = manager.run_pending()  # nothing yet: due at once
    assert first is not None and first.kind == "full"
    assert manager.run_pending() is None  # not due again before the interval
    clock.advance(1)
    _touch(seeded_url, "a")
    manager.notify_change()
    assert manager.run_pending() is None  # changed, but only 1 s after the last backup
    assert manager.next_due() == pytest.approx(1005.0)
    clock.advance(4)
    delta = manager.run_pending()  # 5 s after the last: the change is backed up
    assert delta is not None and delta.kind == "delta" and delta.row_counts == {"temas": 1}
    assert manager.deltas_since_full == 1
    clock.advance(10)
    assert manager.run_pending() is None  # no change pending: wait for the interval
    assert manager.next_due() == pytest.approx(1305.0)
    clock.advance(290)
    periodic = manager.run_pending()
    assert periodic is not None and periodic.kind == "delta" and manager.deltas_since_full == 2
    # A burst of changes gives one backup, not one per change.
    for i in range(5):
        _touch(seeded_url, f"burst {i}")
        manager.notify_change()
        clock.advance(1)
    assert manager.run_pending() is not None
    assert manager.run_pending() is None
    assert [i.kind for i in reversed(list_backups(tmp_path / "b"))] == ["full"] + ["delta"] * 3


def test_max_deltas_before_full(seeded_url: str, tmp_path: Path) -> None:
    manager = BackupManager(
        target_of(seeded_url),
        tmp_path / "b",
        BackupOptions(incremental=True, max_deltas=2),
        clock=FakeClock(),
    )
    kinds = []
    for i in range(4):
        _touch(seeded_url, str(i))
        info = manager.backup_now()
        assert info is not None
        kinds.append((info.kind, manager.deltas_since_full))
    assert kinds == [("full", 0), ("delta", 1), ("delta", 2), ("full", 0)]
    assert manager.backup_full() is not None and manager.deltas_since_full == 0
    delta = manager.backup_delta()
    assert delta is not None and delta.kind == "delta"


def test_failure_callback_counts_and_backs_off(tmp_path: Path) -> None:
    clock = FakeClock()
    calls: list[tuple[str, int]] = []
    missing = f"sqlite:///{tmp_path / 'no-such.db'}"
    manager = BackupManager(
        target_of(missing),
        tmp_path / "b",
        schedule=Schedule(interval=60, min_interval=2),
        on_backup_failure=lambda error, count: calls.append((str(error), count)),
        clock=clock,
    )
    assert manager.run_pending() is None
    assert manager.consecutive_failures == 1
    assert manager.next_due() == pytest.approx(1002.0)  # first retry after min_interval
    clock.advance(2)
    manager.run_pending()
    assert manager.next_due() == pytest.approx(1006.0)  # then 4 s, 8 s, … up to the interval
    for _ in range(10):
        clock.advance(manager.next_due() - clock())
        manager.run_pending()
    assert manager.consecutive_failures == 12
    assert manager.next_due() - clock() == pytest.approx(60.0)
    assert [count for _, count in calls] == list(range(1, 13))
    assert "does not exist" in calls[0][0]
    assert manager.status().last_error is not None


def test_a_success_resets_the_failure_count(seeded_url: str, tmp_path: Path) -> None:
    calls: list[int] = []
    backups = tmp_path / "b"
    backups.write_text("a file where the directory should be")
    manager = BackupManager(
        target_of(seeded_url),
        backups,
        on_backup_failure=lambda _e, n: calls.append(n),
        clock=FakeClock(),
    )
    assert manager.backup_now() is None and manager.backup_now() is None
    assert calls == [1, 2] and manager.consecutive_failures == 2
    backups.unlink()
    assert manager.backup_now() is not None
    assert manager.consecutive_failures == 0 and manager.status().last_error is None


def test_a_broken_failure_hook_does_not_stop_the_manager(tmp_path: Path) -> None:
    def hook(_error: BaseException, _count: int) -> None:
        raise RuntimeError("hook is broken")

    manager = BackupManager(
        target_of(f"sqlite:///{tmp_path / 'x.db'}"), tmp_path / "b", on_backup_failure=hook
    )
    assert manager.backup_now() is None and manager.consecutive_failures == 1


def test_thread_notices_changes_by_itself(seeded_url: str, tmp_path: Path) -> None:
    """start(): the first backup at once, then the polled change log triggers a delta."""
    manager = BackupManager(
        target_of(seeded_url),
        tmp_path / "b",
        BackupOptions(incremental=True),
        Schedule(interval=3600, min_interval=0.2, poll_interval=0.1),
    )
    manager.start()
    try:
        _wait_for(lambda: len(_names(tmp_path / "b")) == 1)
        _touch(seeded_url, "from another program")
        _wait_for(lambda: len(_names(tmp_path / "b")) == 2)
    finally:
        manager.stop(timeout=30)
    assert not manager.running
    newest = list_backups(tmp_path / "b")[0]
    assert newest.kind == "delta" and newest.row_counts == {"temas": 1}


def _names(directory: Path) -> list[str]:
    try:
        return [i.name for i in list_backups(directory)]
    except PlanctlError:
        return []


def _wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    wait_until(condition, timeout=timeout)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_watch_process(tmp_path: Path, signum: int) -> None:
    """A real ``planctl backup watch``: backs up, sees others' changes, stops on a signal."""
    from planctl.db import migrate
    from planctl.db.seed import seed

    db = tmp_path / "planificador.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    backups, logs = tmp_path / "backups", tmp_path / "logs"
    env = planctl_env(url, backups, logs)
    process = spawn_planctl(
        "backup",
        "watch",
        "--interval",
        "3600",
        "--min-interval",
        "0.5",
        "--incremental",
        "--max-deltas",
        "3",
        env=env,
    )
    try:
        _wait_for(lambda: len(_names(backups)) == 1)
        with sqlite3.connect(db) as other:  # a program that is not planctl
            other.execute("PRAGMA foreign_keys=ON")
            other.execute("UPDATE sesiones SET notas = 'cambiada' WHERE id IN (1, 2)")
        _wait_for(lambda: len(_names(backups)) == 2)
        expected = table_contents(url)
        os.kill(process.pid, signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    delta = list_backups(backups)[0]
    assert delta.kind == "delta" and delta.row_counts == {"sesiones": 2}
    assert "deltas since full 1/3" in out and "consecutive failures 0" in out and "Stopped." in out
    # Each status line starts with the time in PLANCTL_TIMEZONE (Europe/Madrid) and its offset.
    status = [line for line in out.splitlines() if " backup 2" in line]
    offset = re.escape(f"{dt.datetime.now(ZoneInfo('Europe/Madrid')):%z}")
    assert status and all(
        re.match(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d {offset} backup ", line) for line in status
    ), status
    log_text = (logs / "backup.log").read_text()
    assert "watch started" in log_text and "watch stopped" in log_text
    assert "deltas since full 1; consecutive failures 0" in log_text
    # The chain restores to the state the delta saw.
    from planctl.backup import restore_backup

    restore_backup(target_of(url), backups, delta.name, RestoreOptions(safety_backup=False))
    assert table_contents(url) == expected


def test_watch_failure_hook(tmp_path: Path) -> None:
    backups, logs = tmp_path / "backups", tmp_path / "logs"
    record = tmp_path / "failures.txt"
    env = planctl_env(f"sqlite:///{tmp_path / 'missing.db'}", backups, logs)
    process = spawn_planctl(
        "backup",
        "watch",
        "--interval",
        "5",
        "--min-interval",
        "0.2",
        "--on-failure",
        # The README's example uses a here-string: the hook runs under bash.
        f'cat >> {record} <<< "$PLANCTL_BACKUP_FAILURES|$PLANCTL_BACKUP_ERROR"',
        env=env,
    )
    try:
        _wait_for(lambda: record.exists() and len(record.read_text().splitlines()) >= 3)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    lines = record.read_text().splitlines()
    assert [line.split("|")[0] for line in lines[:3]] == ["1", "2", "3"]
    assert "does not exist" in lines[0]
    assert "backup failed (1 in a row)" in err and "Traceback" not in err
    assert "backup failed (3 in a row)" in (logs / "backup.log").read_text()


def test_the_readme_on_failure_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's --on-failure command, as written, through the hook watch uses."""
    from planctl.backup.manager import run_failure_command

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    match = re.search(r"--on-failure '([^']+)'", readme)
    assert match, "the README shows an --on-failure example"
    command = match.group(1)
    # A stand-in `mail` first on PATH records what it was given.
    sent = tmp_path / "sent.txt"
    shim = tmp_path / "bin" / "mail"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\n{{ printf "%s\\n" "$@"; echo ---; cat; }} > "{sent}"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    run_failure_command(command, "database 'planificador.db' does not exist", 3)
    args, body = sent.read_text().split("---\n")
    assert args.splitlines() == ["-s", "planctl backup failed (3)", "admin"]
    assert body == "database 'planificador.db' does not exist\n"
