"""Exports as a demanding user runs them, through real planctl processes.

Output targets (the database, backups, symlinks, FIFOs, devices, stale temps),
``--all`` all or nothing (file-size limit, a full tmpfs, SIGTERM, a kill -9 in
the middle of the swap), signals, closed pipes, and the planner app writing
during a long export.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from planctl.db import migrate
from planctl.db.seed import seed
from planctl.fsutil import TEMP_SUFFIX

from .conftest import EnvFor, require_root, skip_or_fail
from .helpers import run_planctl, target_of


def make_db(path: Path, scale: int | None = None) -> str:
    url = f"sqlite:///{path}"
    migrate.upgrade(target_of(url))
    if scale is None:
        seed(target_of(url))
    else:
        seed(target_of(url), scale=scale)
    return url


@pytest.fixture(scope="module")
def small_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_db(tmp_path_factory.mktemp("small") / "planificador.db")


@pytest.fixture(scope="module")
def big_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_db(tmp_path_factory.mktemp("big") / "planificador.db", scale=60_000)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every entry of *directory* (hidden ones too) with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def db_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


# Output targets.


def test_database_and_its_journals_are_refused(
    small_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    database = db_file(small_url)
    before = digest(database)
    link = tmp_path / "innocent.csv"
    link.symlink_to(database)
    targets = [str(database), f"{database}-wal", f"{database}-shm", f"{database}-journal"]
    for target in [*targets, str(link)]:
        for command in (["csv", "sesiones"], ["ical"]):
            run = run_planctl("export", *command, "-o", target, env=env_for(small_url))
            assert run.returncode == 1, (target, run.stderr)
            assert run.stderr.count("\n") == 1 and "is the database file" in run.stderr
            assert "Traceback" not in run.stderr
    assert digest(database) == before
    assert not Path(f"{database}-journal").exists()


def test_backup_directory_is_refused(small_url: str, env_for: EnvFor, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    run = run_planctl(
        "export", "csv", "temas", "-o", str(backups / "t.csv"), env=env_for(small_url)
    )
    assert run.returncode == 1 and "inside the backup directory" in run.stderr
    run = run_planctl("export", "csv", "--all", str(backups / "csv"), env=env_for(small_url))
    assert run.returncode == 1 and "inside the backup directory" in run.stderr
    assert list(backups.iterdir()) == []


def test_symlink_is_followed_and_stays_a_link(
    small_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    run = run_planctl("export", "csv", "temas", "-o", str(link), env=env_for(small_url))
    assert run.returncode == 0, run.stderr
    assert link.is_symlink() and real.read_text(encoding="utf-8").startswith("id,nombre")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_new_file_is_0600(small_url: str, env_for: EnvFor, tmp_path: Path) -> None:
    target = tmp_path / "new.ics"
    assert run_planctl("export", "ical", "-o", str(target), env=env_for(small_url)).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_fifo_reader_gets_the_data(big_url: str, env_for: EnvFor, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    run = run_planctl("export", "csv", "sesiones", "-o", str(fifo), env=env_for(big_url))
    reader.join(60)
    assert run.returncode == 0, run.stderr
    assert received[0].count(b"\r\n") == 60_001
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert hidden(tmp_path) == []


def test_full_device_is_one_line(small_url: str, env_for: EnvFor) -> None:
    for command in (
        ["csv", "sesiones"],
        ["ical"],
        ["pdf", "--since", "2026-09-01", "--until", "2027-06-30"],
    ):
        run = run_planctl("export", *command, "-o", "/dev/full", env=env_for(small_url))
        assert run.returncode == 1, run.stderr
        assert run.stderr.strip().splitlines() == [
            "error: no space left on device writing '/dev/full' — free some space and retry"
        ]
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_stale_temp_sibling_is_removed_by_the_next_export(
    small_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    stale = tmp_path / f".s.csv.k9x2{TEMP_SUFFIX}"  # what a kill -9 leaves (nobody locks it)
    stale.write_bytes(b"x" * 1000)
    target = tmp_path / "s.csv"
    assert (
        run_planctl("export", "csv", "temas", "-o", str(target), env=env_for(small_url)).returncode
        == 0
    )
    assert not stale.exists() and hidden(tmp_path) == []


def stop_when(
    process: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 60
) -> bool:
    """SIGSTOP *process* as soon as ready() holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGSTOP)
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.001)
    raise AssertionError("never became ready")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_removes_the_temp_and_keeps_the_old_file(
    big_url: str, env_for: EnvFor, tmp_path: Path, signum: int
) -> None:
    target = tmp_path / "s.csv"
    target.write_bytes(b"previous")
    for _attempt in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "planctl", "export", "csv", "sesiones", "-o", str(target)],
            env=env_for(big_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if stop_when(process, lambda: any(n.startswith(".s.csv.") for n in os.listdir(tmp_path))):
            break
        process.communicate()
        target.write_bytes(b"previous")
    else:
        pytest.fail("the export always finished before it could be stopped")
    process.send_signal(signum)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert target.read_bytes() == b"previous"
    assert hidden(tmp_path) == []


# Closed pipes.


@pytest.mark.parametrize("command", [["csv", "sesiones"], ["ical"]])
@pytest.mark.parametrize("unbuffered", [False, True])
def test_closed_pipe_is_quiet(
    big_url: str, env_for: EnvFor, command: list[str], unbuffered: bool
) -> None:
    env = env_for(big_url)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    planctl = f"{sys.executable} -m planctl export {' '.join(command)}"
    done = subprocess.run(
        ["bash", "-c", f"{planctl} 2>err | head -1; echo ${{PIPESTATUS[0]}}; cat err"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(db_file(big_url)).parent,
    )
    first, status, *rest = done.stdout.splitlines()
    assert first.startswith("id,contratacion_id" if command[0] == "csv" else "BEGIN:VCALENDAR")
    assert status == "141" and rest == [], done.stdout  # nothing on planctl's stderr


# --all: all or nothing.


@pytest.fixture
def previous_set(small_url: str, env_for: EnvFor, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """DIR holding a complete earlier export plus a file of the user's own."""
    directory = tmp_path / "export"
    run = run_planctl("export", "csv", "--all", str(directory), env=env_for(small_url))
    assert run.returncode == 0, run.stderr
    (directory / "LEEME.txt").write_text("mine")
    return directory, snapshot(directory)


def test_all_writes_every_table_and_leaves_other_files(
    previous_set: tuple[Path, dict[str, bytes]], big_url: str, env_for: EnvFor
) -> None:
    directory, before = previous_set
    run = run_planctl("export", "csv", "--all", str(directory), env=env_for(big_url))
    assert run.returncode == 0, run.stderr
    after = snapshot(directory)
    assert after["LEEME.txt"] == b"mine" and set(after) == set(before)
    assert after["sesiones.csv"].count(b"\r\n") == 60_001
    assert hidden(directory) == []


def test_all_under_a_file_size_limit_keeps_the_previous_set(
    previous_set: tuple[Path, dict[str, bytes]], big_url: str, env_for: EnvFor
) -> None:
    directory, before = previous_set

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    run = run_planctl(
        "export", "csv", "--all", str(directory), env=env_for(big_url), preexec_fn=limit
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"error: file too large writing '{directory}' (file-size limit reached) "
        "— raise the limit (ulimit -f) or export less"
    ]
    assert snapshot(directory) == before and hidden(directory) == []


def test_all_on_a_full_disk_keeps_the_previous_set(
    small_url: str, big_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    require_root("mounting a tiny tmpfs")
    media = tmp_path / "media"
    media.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(media)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        skip_or_fail(f"cannot mount tmpfs: {mounted.stderr}")
    try:
        directory = media / "export"
        assert (
            run_planctl("export", "csv", "--all", str(directory), env=env_for(small_url)).returncode
            == 0
        )
        before = snapshot(directory)
        run = run_planctl("export", "csv", "--all", str(directory), env=env_for(big_url))
        assert run.returncode == 1
        assert "no space left on device writing" in run.stderr and run.stderr.count("\n") == 1
        assert snapshot(directory) == before and hidden(directory) == []
    finally:
        subprocess.run(["umount", str(media)], check=True)


def test_all_interrupted_by_sigterm_keeps_the_previous_set(
    previous_set: tuple[Path, dict[str, bytes]], big_url: str, env_for: EnvFor
) -> None:
    directory, before = previous_set

    def staging_has_sesiones() -> bool:
        for entry in directory.iterdir():
            if entry.name.endswith(TEMP_SUFFIX) and (entry / "new" / "sesiones.csv").exists():
                return True
        return False

    for _attempt in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "planctl", "export", "csv", "--all", str(directory)],
            env=env_for(big_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if stop_when(process, staging_has_sesiones):
            break
        process.communicate()
        pytest.fail("the export finished before it could be stopped")  # no retry: set changed
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert snapshot(directory) == before and hidden(directory) == []


def test_all_rolls_back_a_swap_cut_by_kill_9(
    previous_set: tuple[Path, dict[str, bytes]], big_url: str, tmp_path: Path
) -> None:
    """A kill -9 halfway through the renames leaves a staging dir with the old files and a
    marker: the next run puts the old set back before anything else (here it then fails,
    so what is left is exactly what the recovery restored)."""
    from planctl.errors import DatabaseError
    from planctl.export import csv as csv_export

    directory, before = previous_set
    staging = directory / f".csv.crashed{TEMP_SUFFIX}"
    (staging / "old").mkdir(parents=True)
    (staging / "new").mkdir()
    for name in ("clientes.csv", "sesiones.csv", "temas.csv"):
        os.link(directory / name, staging / "old" / name)
    (staging / csv_export.COMMITTING).write_text("clientes\nsesiones\ntemas\n")
    (staging / "new" / "clientes.csv").write_bytes(b"new half of the set")
    os.replace(staging / "new" / "clientes.csv", directory / "clientes.csv")  # before the kill
    (staging / "new" / "sesiones.csv").write_bytes(b"not yet renamed")
    broken = tmp_path / "broken.db"
    broken.write_bytes(db_file(big_url).read_bytes())
    with sqlite3.connect(broken) as con:
        con.execute("DROP TABLE sesiones")
    connection = sqlite3.connect(broken)
    with pytest.raises(DatabaseError, match="sesiones"):
        csv_export.export_all(connection, directory)
    connection.close()
    assert snapshot(directory) == before and hidden(directory) == []


def test_two_all_runs_on_one_directory_exclude_each_other(
    previous_set: tuple[Path, dict[str, bytes]], small_url: str
) -> None:
    from planctl.errors import LockedError
    from planctl.export.csv import export_all
    from planctl.fsutil import file_lock

    directory, before = previous_set
    with file_lock(directory), pytest.raises(LockedError) as locked:
        export_all(sqlite3.connect(db_file(small_url)), directory)
    assert locked.value.exit_code == 4 and "export directory" in str(locked.value)
    assert snapshot(directory) == before


# The planner app writes during a long export.


WRITER = """
import sqlite3, sys, time, pathlib
con = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
stop = pathlib.Path(sys.argv[2])
worst, commits, failures = 0.0, 0, 0
while not stop.exists():
    started = time.monotonic()
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE sesiones SET notas = ? WHERE id = 1", (f"commit {commits}",))
        con.execute("COMMIT")
        commits += 1
    except sqlite3.Error:
        failures += 1
    worst = max(worst, time.monotonic() - started)
    time.sleep(0.005)
print(commits, failures, worst)
"""


def slow_read(process: subprocess.Popen[bytes], seconds: float) -> int:
    """Read the export's stdout in small sips for about *seconds*; returns the lines."""
    assert process.stdout is not None
    lines = 0
    last = b""
    started = time.monotonic()
    while chunk := process.stdout.read(65536):
        lines += (last + chunk[:1]).count(b"\r\n") + chunk.count(b"\r\n")
        last = chunk[-1:]
        if time.monotonic() - started < seconds:
            time.sleep(0.02)
    return lines


StartWriter = Callable[[Path], "subprocess.Popen[str]"]


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StartWriter]:
    started: list[tuple[subprocess.Popen[str], Path]] = []

    def start(database: Path) -> subprocess.Popen[str]:
        stop = tmp_path / f"stop{len(started)}"
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append((process, stop))
        return process

    yield start
    for process, stop in started:
        stop.touch()
        process.wait(30)


def test_writer_never_waits_during_a_long_export_in_wal_mode(
    big_url: str, env_for: EnvFor, writer: StartWriter
) -> None:
    database = db_file(big_url)
    with sqlite3.connect(database) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # db-upgrade's doing
    app = writer(database)
    time.sleep(0.2)
    export = subprocess.Popen(
        [sys.executable, "-m", "planctl", "export", "csv", "sesiones"],
        env=env_for(big_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines = slow_read(export, 3.0)
    assert export.wait(60) == 0
    assert export.stderr is not None and export.stderr.read() == b""  # no rollback warning
    assert isinstance(app.args, list)
    Path(app.args[-1]).touch()  # the writer's stop file
    commits, failures, worst = app.communicate(timeout=30)[0].split()
    assert lines == 60_001
    assert int(failures) == 0 and int(commits) > 100
    assert float(worst) < 1.0, worst


def test_long_export_on_a_rollback_journal_warns_once(
    big_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    copy = tmp_path / "rollback.db"
    with sqlite3.connect(db_file(big_url)) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as con:
        assert con.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    url = f"sqlite:///{copy}"
    export = subprocess.Popen(
        [sys.executable, "-m", "planctl", "export", "csv", "sesiones"],
        env=env_for(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert slow_read(export, 2.0) == 60_001
    assert export.wait(60) == 0
    assert export.stderr is not None
    warning = export.stderr.read().decode()
    assert warning.count("warning:") == 1 and "rollback journal" in warning
    assert "PRAGMA journal_mode=WAL" in warning


def test_sync_store_is_refused(small_url: str, env_for: EnvFor, tmp_path: Path) -> None:
    store = tmp_path / "calendario.json"
    store.write_text("{}")
    env = env_for(small_url, PLANCTL_SYNC_STORE=str(store))
    run = run_planctl("export", "ical", "-o", str(store), env=env)
    assert run.returncode == 1 and "must not overwrite" in run.stderr
    assert store.read_text() == "{}"
