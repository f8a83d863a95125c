"""fsutil: atomic writes to any user-named target, protected files, stale temps, locks.

Real files, FIFOs, devices and processes (kill -9, a file-size limit); no mocks.
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from planctl.errors import ExitCode, LockedError
from planctl.fsutil import (
    TEMP_SUFFIX,
    Guard,
    OutputError,
    atomic_write,
    file_lock,
    locked_temp_dir,
    open_output,
    remove_stale_temps,
    write_bytes,
)

from .conftest import skip_or_fail


def temps(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(TEMP_SUFFIX))


def test_new_file_is_0600_and_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    write_bytes(target, b"a,b\r\n")
    assert target.read_bytes() == b"a,b\r\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert temps(tmp_path) == []


def test_existing_file_keeps_mode_and_owner(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    if os.geteuid() == 0:
        os.chown(target, 65534, 65534)  # nobody: root can give the new file back to it
    before = target.stat()
    write_bytes(target, b"new")
    after = target.stat()
    assert target.read_bytes() == b"new"
    assert after.st_ino != before.st_ino  # replaced, not rewritten in place
    assert stat.S_IMODE(after.st_mode) == 0o644
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "data" / "real.csv"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new"
    # A dangling link creates its target.
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "data" / "later.csv")
    write_bytes(dangling, b"x")
    assert dangling.is_symlink() and (tmp_path / "data" / "later.csv").read_bytes() == b"x"


def test_fifo_reader_gets_the_data(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_bytes(fifo, b"x" * 200_000)  # more than a pipe buffer
    reader.join(10)
    assert received == [b"x" * 200_000]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert temps(tmp_path) == []


def test_character_devices_are_written_through() -> None:
    write_bytes("/dev/null", b"nothing")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with pytest.raises(OutputError, match="no space left on device writing '/dev/full'"):
        write_bytes("/dev/full", b"x" * 100_000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_dev_stdout_shares_the_descriptor(tmp_path: Path) -> None:
    """/dev/stdout (and /dev/fd/1) write to the process's stdout, whatever it is."""
    out = tmp_path / "captured"
    script = textwrap.dedent(
        """
        import sys
        from planctl.fsutil import write_bytes
        print("before", flush=True)
        write_bytes("/dev/stdout", b"one\\n")
        write_bytes("/dev/fd/1", b"two\\n")
        print("after", flush=True)
        """
    )
    with open(out, "wb") as sink:
        subprocess.run([sys.executable, "-c", script], stdout=sink, check=True, timeout=30)
    assert out.read_bytes() == b"before\none\ntwo\nafter\n"
    assert temps(tmp_path) == []


def test_directory_and_missing_parent_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        write_bytes(tmp_path, b"x")
    with pytest.raises(OutputError, match="does not exist"):
        write_bytes(tmp_path / "missing" / "f.csv", b"x")


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_guard_refuses_the_database_and_its_journals(tmp_path: Path, suffix: str) -> None:
    database = tmp_path / "planificador.db"
    database.write_bytes(b"SQLite format 3\x00")
    guard = Guard(database=database)
    target = Path(f"{database}{suffix}")
    with pytest.raises(OutputError, match="is the database file") as caught:
        write_bytes(target, b"csv", guard)
    assert caught.value.exit_code == ExitCode.FAILED
    assert database.read_bytes() == b"SQLite format 3\x00"
    assert not (suffix and target.exists())
    # Through a symlink, a relative path and a hard link too.
    link = tmp_path / "innocent.csv"
    link.symlink_to(database)
    with pytest.raises(OutputError, match="database file"):
        write_bytes(link, b"csv", guard)
    hard = tmp_path / "hard.csv"
    os.link(database, hard)
    with pytest.raises(OutputError, match="database file"):
        write_bytes(hard, b"csv", guard)
    assert database.read_bytes() == b"SQLite format 3\x00"


def test_guard_refuses_the_backup_directory(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    (backups / "set").mkdir(parents=True)
    guard = Guard(backup_dir=backups)
    for target in (backups / "x.csv", backups / "set" / "y.csv"):
        with pytest.raises(OutputError, match="inside the backup directory"):
            write_bytes(target, b"csv", guard)
    assert list(backups.rglob("*")) == [backups / "set"]
    write_bytes(tmp_path / "backups.csv", b"ok", guard)  # a similar name is fine


def test_failure_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), open_output(target) as out:
        out.write(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert temps(tmp_path) == []


def test_block_devices_are_refused(tmp_path: Path) -> None:
    devices = [p for p in Path("/dev").iterdir() if p.is_block_device()]
    if not devices and os.geteuid() == 0:  # make one (never opened: refused before that)
        node = tmp_path / "disk"
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 0))
        devices = [node]
    if not devices:
        skip_or_fail("no block device visible and not root to make one")
    with pytest.raises(OutputError, match="block device"):
        write_bytes(devices[0], b"x")


WRITER = textwrap.dedent(
    """
    import sys, time
    from planctl.fsutil import atomic_write
    with atomic_write(sys.argv[1]) as out:
        out.write(b"partial" * 1000)
        out.flush()
        print("ready", flush=True)
        time.sleep(60)
    """
)


def test_stale_temp_of_a_killed_writer_is_removed_live_one_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    killed = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    live = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert killed.stdout is not None and live.stdout is not None
        assert killed.stdout.readline() == "ready\n"
        assert live.stdout.readline() == "ready\n"
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert len(temps(tmp_path)) == 2
        write_bytes(target, b"new")
        assert target.read_bytes() == b"new"
        assert len(temps(tmp_path)) == 1  # the live writer's temp survives
    finally:
        live.kill()
        live.wait(10)
    assert remove_stale_temps(target)
    assert temps(tmp_path) == []


def test_stale_temp_directory_is_removed(tmp_path: Path) -> None:
    final = tmp_path / "export"
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from planctl.fsutil import locked_temp_dir
        with locked_temp_dir(Path(sys.argv[1])) as staging:
            (staging / "a.csv").write_bytes(b"x")
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(final)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    assert len(temps(tmp_path)) == 1
    process.kill()
    process.wait(10)
    with locked_temp_dir(final) as staging:
        assert staging.is_dir()
        remove_stale_temps(final)
        assert temps(tmp_path) == [staging.name]  # our own is held, the dead one is gone
    assert temps(tmp_path) == []


def test_file_size_limit_is_one_line_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    script = textwrap.dedent(
        """
        import sys
        from planctl.fsutil import OutputError, write_bytes
        try:
            write_bytes(sys.argv[1], b"x" * 1_000_000)
        except OutputError as error:
            print(error, file=sys.stderr)
            sys.exit(1)
        """
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    run = subprocess.run(
        [sys.executable, "-c", script, str(target)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 1
    assert "file too large writing" in run.stderr and "Traceback" not in run.stderr
    assert target.read_bytes() == b"old"
    assert temps(tmp_path) == []


def test_file_lock_waits_until_the_deadline_then_exit_4(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom planctl.fsutil import file_lock\n"
            "with file_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        with (
            pytest.raises(LockedError, match="locked by another planctl run") as caught,
            file_lock(lock, timeout=0.3),
        ):
            pass
        waited = time.monotonic() - started
        assert 0.3 <= waited < 2.0
        assert caught.value.exit_code == ExitCode.LOCKED == 4
        holder.send_signal(signal.SIGKILL)  # the kernel lets go of a dead holder's lock
        holder.wait(10)
        with file_lock(lock, timeout=2.0):
            pass
    finally:
        holder.kill()
        holder.wait(10)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_file_lock_gets_the_lock_once_it_is_released(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    held, release = threading.Event(), threading.Event()
    events: list[str] = []

    def hold() -> None:
        with file_lock(lock):
            held.set()
            release.wait(10)
            events.append("holder released")

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    with file_lock(lock, timeout=5.0):  # flock is per open file: threads exclude each other too
        events.append("waiter locked")
        waited = time.monotonic() - started
    holder.join()
    assert events == ["holder released", "waiter locked"]  # it waited, then got the lock
    assert 0.15 <= waited < 5.0


def test_atomic_write_of_a_plain_path(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    with atomic_write(target) as out:
        out.write(b"{}")
    assert target.read_bytes() == b"{}"


def test_publish_makes_a_library_written_file_the_durable_target(tmp_path: Path) -> None:
    from planctl.fsutil import publish

    target = tmp_path / "backup.db"
    target.write_bytes(b"old")
    temp = tmp_path / ".backup.db.tmp"
    temp.write_bytes(b"new contents")  # as the SQLite backup API or pg_dump leaves it
    publish(temp, target)
    assert target.read_bytes() == b"new contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db"]
