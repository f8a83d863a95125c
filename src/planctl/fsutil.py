"""Writing user-named files safely, and small exclusive file locks.

Every command that writes a file the user named goes through
:func:`open_output` (or :func:`atomic_write` for a plain path):

- ``-`` is standard output; ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``
  and ``/proc/self/fd/N`` write to that descriptor (a duplicate, sharing its
  offset: nothing is truncated or replaced).
- A character device, FIFO or socket is opened and written through (a FIFO's
  reader gets the data; ``/dev/full`` gives the one-line "no space left"
  error). A block device or a directory is refused.
- A symlink is followed: its final target is replaced, the link stays a link.
- A regular file is written to a hidden temporary sibling
  (``.<name>.<random>.planctl-tmp``), fsynced, renamed over the target, and
  the directory fsynced: readers see the old file or the whole new one.
  An existing file keeps its mode, owner and group; a new file is 0600
  (exports hold personal data; ``chmod`` it once and later writes keep that).
- The database file, its ``-wal``/``-shm``/``-journal`` siblings and anything
  inside the backup directory are refused (:class:`Guard`), before anything
  is opened.
- A temporary sibling is flock-ed by its writer for its whole life, so one
  left behind by a ``kill -9`` (lock released by the kernel) is recognised and
  removed by the next write to the same path, while a live writer's is left
  alone.

Durable writes have one home, here (temp → write → fsync → rename → directory
fsync): :func:`atomic_write` for bytes planctl writes to a path, :func:`open_output`
/ :func:`write_bytes` for a path the user named, :func:`publish` for a file a
library wrote to a temporary name, :func:`fsync_file` and :func:`fsync_dir` for
the steps on their own. No other module calls ``os.fsync`` for a new file.

Disk full, quota and file-size-limit errors become one :class:`OutputError`
line naming the target. :func:`file_lock` is an exclusive ``flock`` that
waits until a deadline, then raises :class:`~planctl.errors.LockedError`
(exit 4).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from planctl.errors import LockedError, PlanctlError, UsageError
from planctl.failures import is_disk_full

if TYPE_CHECKING:
    from planctl.config import Settings

TEMP_SUFFIX = ".planctl-tmp"
#: Journal files SQLite keeps beside a database.
DATABASE_SIBLINGS = ("", "-wal", "-shm", "-journal")
_STD_STREAMS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"/(?:dev|proc/self|proc/thread-self)/fd/(\d+)")


class OutputError(PlanctlError):
    """A destination that cannot or must not be written (exit 1)."""


@dataclass(frozen=True)
class Guard:
    """Files planctl must never overwrite: the database (and its journals), the backups."""

    database: Path | None = None
    backup_dir: Path | None = None
    extra: tuple[Path, ...] = field(default=())

    @classmethod
    def for_settings(cls, settings: Settings) -> Guard:
        """What no file planctl writes at a user's request may overwrite: the database (and
        its journals), the backups, the simulated calendar's store (also under its former
        name, until it is moved) and its journal."""
        from planctl.db.sqlite_file import database_file
        from planctl.logs import log_files

        return cls(
            database=database_file(settings.database_url),
            backup_dir=settings.backup_dir,
            extra=(
                settings.sync_store,
                Path(f"{settings.sync_store}.journal"),
                *filter(None, [settings.sync_store_former]),
                *log_files(settings.log_dir),
            ),
        )

    def check(self, path: Path) -> None:
        """Raise OutputError if writing *path* (symlinks followed) would hit a protected file."""
        real = Path(os.path.realpath(path))
        if self.database is not None:
            database = Path(os.path.realpath(self.database))
            for suffix in DATABASE_SIBLINGS:
                protected = Path(f"{database}{suffix}")
                if real == protected or _same_file(real, protected):
                    raise OutputError(
                        f"'{path}' is the database file {protected}",
                        "choose another output file; planctl never writes over the database",
                    )
        if self.backup_dir is not None:
            backups = Path(os.path.realpath(self.backup_dir))
            if real == backups or backups in real.parents:
                raise OutputError(
                    f"'{path}' is inside the backup directory {backups}",
                    "choose an output outside it; only planctl backup writes there",
                )
        for other in self.extra:
            if real == Path(os.path.realpath(other)) or _same_file(real, other):
                raise OutputError(
                    f"'{path}' is a file planctl must not overwrite", "choose another output"
                )


NO_GUARD = Guard()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_standard_output(target: str | Path) -> bool:
    """Whether writing *target* writes standard output: ``-``, or a path that is the same
    file as descriptor 1 (``/dev/stdout``, ``/dev/fd/1``, ``/proc/self/fd/N`` of it, the
    terminal's or the pipe's own name), compared by device and inode."""
    if str(target) == "-":
        return True
    try:
        out, info = os.fstat(1), os.stat(target)
    except (OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (out.st_dev, out.st_ino)


@dataclass(frozen=True)
class Target:
    """Where a write goes: stdout (neither set), a descriptor, or a regular file to replace."""

    name: str  # as the user gave it, for messages
    fd: int | None = None  # write through this descriptor (a device, a FIFO, /dev/stdout)
    path: Path | None = None  # replace this regular file atomically (symlinks resolved)
    owned: bool = False  # close fd when done


def resolve_target(target: str | Path, guard: Guard = NO_GUARD) -> Target:
    """Decide how *target* is written; refuses protected, block-device and directory targets.

    Does not create anything. A descriptor in the result must be closed by the
    caller when ``owned`` (use :func:`open_output`, which does).
    """
    name = str(target)
    if "\0" in name:
        raise UsageError(
            f"output '{name.replace(chr(0), '?')}' holds a NUL byte", "give a plain path"
        )
    if name == "-":
        return Target(name)  # sys.stdout itself, whatever it is (a test runner's too)
    number = _STD_STREAMS.get(name)
    match = _FD_PATH.fullmatch(name)
    if number is None and match:
        number = int(match.group(1))
    if number is not None:
        try:
            return Target(name, fd=os.dup(number), owned=True)
        except OSError as error:
            raise OutputError(
                f"cannot write to '{name}': {error.strerror}", "check the descriptor"
            ) from error
    path = Path(target)
    guard.check(path)
    try:
        info = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise OutputError(
            f"cannot write to '{name}': {error.strerror}", "check the path"
        ) from error
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise OutputError(f"'{name}' is a directory", "give a file name")
        if stat.S_ISBLK(info.st_mode):
            raise OutputError(
                f"'{name}' is a block device", "planctl writes files, FIFOs and streams only"
            )
        if not stat.S_ISREG(info.st_mode):  # character device, FIFO, socket: write through
            return Target(name, fd=_open_through(path, name), owned=True)
    real = Path(os.path.realpath(path))
    if not real.parent.is_dir():
        raise OutputError(
            f"directory '{real.parent}' does not exist", "create it or choose another output"
        )
    return Target(name, path=real)


def _open_through(path: Path, name: str) -> int:
    try:
        # No O_TRUNC and no O_CREAT: a device or FIFO is written as it is.
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as error:
        raise OutputError(
            f"cannot open '{name}' for writing: {error.strerror}", "check its permissions"
        ) from error


@contextlib.contextmanager
def open_output(target: str | Path, guard: Guard = NO_GUARD) -> Iterator[BinaryIO]:
    """Yield a binary stream for *target*; the file appears complete or not at all.

    See the module docstring for how each kind of target is treated.
    """
    resolved = resolve_target(target, guard)
    if resolved.path is not None:
        with atomic_write(resolved.path, name=resolved.name) as handle:
            yield handle
        return
    with space_errors(resolved.name):
        sys.stdout.flush()
        if resolved.fd is None:
            stream = sys.stdout.buffer
            yield stream
            stream.flush()
            return
        try:
            with open(resolved.fd, "wb", closefd=False) as handle:
                yield handle
        finally:
            if resolved.owned:
                os.close(resolved.fd)


@contextlib.contextmanager
def open_text_output(target: str | Path, guard: Guard = NO_GUARD) -> Iterator[TextIO]:
    """Like :func:`open_output`, as UTF-8 text with line ends left alone."""
    with open_output(target, guard) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            yield text
            text.flush()
        finally:
            text.detach()


@contextlib.contextmanager
def space_errors(name: str) -> Iterator[None]:
    """Disk full, quota or file-size limit while writing *name*: one OutputError line."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.EFBIG:
            raise OutputError(
                f"file too large writing '{name}' (file-size limit reached)",
                "raise the limit (ulimit -f) or export less",
            ) from error
        if is_disk_full(error):
            raise OutputError(
                f"no space left on device writing '{name}'", "free some space and retry"
            ) from error
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, *, name: str | None = None) -> Iterator[BinaryIO]:
    """Write *path* through a locked temporary sibling, fsync, rename, fsync the directory.

    On any exception (a signal turned into one included) the temporary file is
    removed and *path* is left exactly as it was.
    """
    final = Path(path)
    shown = name or str(final)
    directory = final.parent
    remove_stale_temps(final)
    with space_errors(shown):
        fd, temp = -1, None
        try:
            # Created, locked and named with signals held: an interrupt can only come
            # once *temp* is known, so the handler below always removes it.
            with signals_held():
                fd, temp = _locked_temp(final)
            with open(fd, "wb", closefd=False) as handle:
                yield handle
                handle.flush()
                os.fsync(fd)
            copy_identity(final, fd, shown)
            os.replace(temp, final)
            fsync_dir(directory)
        except BaseException:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            raise
        finally:
            if fd >= 0:
                os.close(fd)  # releases the temp's lock


def write_bytes(path: str | Path, data: bytes, guard: Guard = NO_GUARD) -> None:
    """Write *data* to the user-named *path* as :func:`open_output` would."""
    with open_output(path, guard) as handle:
        handle.write(data)


def temp_prefix(final: Path) -> str:
    return f".{final.name}."


def open_regular(path: str | Path, *, follow_symlinks: bool = False) -> BinaryIO:
    """*path* opened for reading only if it is a regular file (OSError otherwise).

    Opened non-blocking, so a FIFO left where a file should be never hangs a command;
    without *follow_symlinks* a symlink is refused too, so planctl never reads (or
    vouches for) a file elsewhere in place of one of its own.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags if follow_symlinks else flags | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: The signals planctl turns into a clean interruption (cli/signals.py).
INTERRUPTS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back for a few system calls that must not be split
    (they are delivered, and handled, as soon as the block ends)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _locked_temp(final: Path, *, directory: bool = False) -> tuple[int, Path]:
    """A new temporary sibling of *final* (a 0600 file, or a 0700 *directory*), flock-ed by
    this process; an fd open on it."""
    while True:
        try:
            if directory:
                name = tempfile.mkdtemp(
                    prefix=temp_prefix(final), suffix=TEMP_SUFFIX, dir=final.parent
                )
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                fd, name = tempfile.mkstemp(
                    prefix=temp_prefix(final), suffix=TEMP_SUFFIX, dir=final.parent
                )
        except OSError as error:
            if is_disk_full(error):
                raise
            raise OutputError(
                f"cannot write to '{final.parent}': {error.strerror}",
                "choose a writable directory",
            ) from error
        if _lock_new(fd, name):
            return fd, Path(name)


def _lock_new(fd: int, name: str) -> bool:
    """Lock a just-created temp; False (closed) if a stale-temp sweep removed it meanwhile."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(name).st_ino:
            return True
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return False


def copy_identity(final: Path, fd: int, shown: str) -> None:
    """Give the new file the old one's owner, group and mode (a new file stays 0600)."""
    try:
        old = os.stat(final)
    except FileNotFoundError:
        return
    new = os.fstat(fd)
    if (old.st_uid, old.st_gid) != (new.st_uid, new.st_gid):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except PermissionError as error:
            raise OutputError(
                f"'{shown}' belongs to another user or group; replacing it would change that",
                "write it as its owner, or remove it first",
            ) from error
    os.fchmod(fd, stat.S_IMODE(old.st_mode))  # after chown, which may clear set-id bits


def fsync_file(path: str | Path) -> None:
    """fsync a file by its path: its data survives a crash (then rename it, or
    :func:`fsync_dir` its directory, for its name to survive too)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(temp: str | Path, final: str | Path) -> None:
    """Make *temp*, a complete file that a library wrote (the SQLite backup API, pg_dump,
    a download), the durable *final*: fsync it, rename it over *final* (same directory),
    fsync the directory. The tail of :func:`atomic_write`, for data planctl does not
    stream itself."""
    fsync_file(temp)
    os.replace(temp, final)
    fsync_dir(Path(final).parent)


def fsync_dir(directory: str | Path) -> None:
    """fsync a directory, so a rename or unlink inside it survives a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(
    final: Path, before_remove: Callable[[Path], None] | None = None
) -> list[Path]:
    """Remove temporary siblings of *final* (files or directories) that no process holds.

    *before_remove* sees each stale one first, while it is locked (to recover from it).
    """
    removed = []
    for candidate in _temp_siblings(final):
        if _try_remove(candidate, before_remove):
            removed.append(candidate)
    return removed


def _temp_siblings(final: Path) -> Iterable[Path]:
    prefix = temp_prefix(final)
    try:
        names = os.listdir(final.parent)
    except OSError:
        return []
    return [final.parent / n for n in names if n.startswith(prefix) and n.endswith(TEMP_SUFFIX)]


def _try_remove(candidate: Path, before_remove: Callable[[Path], None] | None) -> bool:
    try:
        fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False  # a live writer holds it
    try:
        if before_remove is not None:
            before_remove(candidate)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked_temp_dir(final: Path) -> Iterator[Path]:
    """A hidden, flock-ed temporary directory beside *final* (same filesystem), 0700.

    Removed with its contents when the block ends, however it ends; one left by
    a ``kill -9`` is removed by :func:`remove_stale_temps` (*final*).
    """
    fd, name = -1, None
    try:
        with signals_held():  # created, locked and named whole (see atomic_write)
            fd, name = _locked_temp(final, directory=True)
        yield name
    finally:
        if name is not None:
            shutil.rmtree(name, ignore_errors=True)
        if fd >= 0:
            os.close(fd)


@contextlib.contextmanager
def file_lock(
    path: str | Path, *, timeout: float = 0.0, poll: float = 0.05, what: str | None = None
) -> Iterator[int]:
    """Hold an exclusive flock on *path* (created 0600 if missing; a directory works too).

    Waits up to *timeout* seconds, polling; then raises LockedError (exit 4).
    The kernel releases the lock when the holder dies, so a kill -9 never
    leaves it stuck. Yields the locked descriptor.
    """
    target = Path(path)
    try:
        if target.is_dir():
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise OutputError(
            f"cannot open lock file '{target}': {error.strerror}", "check the directory"
        ) from error
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LockedError(
                        f"{what or repr(str(target))} is locked by another planctl run",
                        "wait for it to finish and retry",
                    ) from error
                time.sleep(min(poll, left))
        yield fd
    finally:
        os.close(fd)  # closing releases the flock
