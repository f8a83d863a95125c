"""Forked export workers: one table read in id ranges by several processes.

The database does most of an export's work (rendering lines), and it is
CPU-bound: threads would serialise on the GIL, so each extra range goes to a
forked process. A worker writes its range into an unlinked temporary file
(nothing is left behind, even after ``kill -9``) and reports its row count
through a pipe; the parent streams the first range itself, then appends each
spool in order. A worker never returns into the caller's code: it ends with
``os._exit`` and touches none of the parent's connections.

The caller is responsible for giving every range the same snapshot.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, NoReturn

from planctl.export.output import OutputError

#: Below this many ids one reader is faster than forking another.
MIN_ROWS = 100_000
MAX_JOBS = 4
READY = b"r"
#: How a full disk or file-size limit reads (SQLite, then the OS).
FULL = ("database or disk is full", "No space left", "File too large")

Write = Callable[[bytes | bytearray], Any]
Progress = Callable[[int], None]
#: A range's work: write its lines (reporting progress if given), return how many rows.
Task = Callable[[Write, Progress | None], int]
#: Runs first in the worker: opens its own connection and snapshot, returns the work.
Opener = Callable[[], Task]


def available() -> bool:
    return hasattr(os, "fork")


def split(low: int | None, high: int | None, parts: int) -> list[tuple[int, int]] | None:
    """Id ranges [a, b) of about equal width, or None when too few ids to split."""
    if parts < 2 or low is None or high is None or high - low < MIN_ROWS:
        return None
    edges = [low + (high - low + 1) * i // parts for i in range(parts)] + [high + 1]
    return list(itertools.pairwise(edges))


@contextlib.contextmanager
def workers(openers: Sequence[Opener]) -> Iterator[list[Worker]]:
    """Fork one worker per opener; yields once each has opened its snapshot."""
    started: list[Worker] = []
    try:
        for opener in openers:
            started.append(Worker.start(opener))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.kill()


def drain(first: Task, started: Sequence[Worker], write: Write, progress: Progress | None) -> int:
    """Run *first* here, then append each worker's spool in order; the total rows."""
    count = first(write, progress)
    for worker in started:
        rows = worker.finish(write)
        count += rows
        if progress:
            progress(rows)
    return count


class Worker:
    """A forked process: opens its own snapshot, then runs its task into a spool file.

    Pipe protocol, child to parent: ``r`` once the snapshot is open, then
    ``ok <rows>`` or ``error <message>`` (an error may also come instead of ``r``).
    """

    def __init__(self, pid: int, status: IO[bytes], spool: IO[bytes]) -> None:
        self.pid, self.status, self.spool = pid, status, spool

    @classmethod
    def start(cls, opener: Opener) -> Worker:
        spool = tempfile.TemporaryFile(prefix="planctl-export-")  # noqa: SIM115 - closed in kill()
        read_end, write_end = os.pipe()
        # No Ctrl-C between fork() and the worker's try: it would carry the worker
        # back into the caller's code. The parent gets a pending one after the fork.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            for fd in (read_end, write_end):
                os.close(fd)
            spool.close()
            raise
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills us
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                os.close(read_end)
                task = opener()
                os.write(write_end, READY)
                with open(spool.fileno(), "wb", closefd=False) as out:
                    rows = task(out.write, None)
                    out.flush()
                os.write(write_end, f"ok {rows}".encode())
                code = 0
            except BaseException as error:  # reported to the parent, which raises it
                with contextlib.suppress(OSError):
                    os.write(write_end, f"error {error}".encode()[:4000])
            finally:
                os._exit(code)
        os.close(write_end)
        worker = cls(pid, os.fdopen(read_end, "rb"), spool)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a pending Ctrl-C lands here
        return worker

    def wait_ready(self) -> None:
        """Block until the worker holds its snapshot (raises if it failed first)."""
        first = self.status.read(1)
        if first != READY:
            self._failed(first + self.status.read())

    def finish(self, write: Write) -> int:
        """Wait for the worker, then copy its spool to *write*; returns its row count."""
        report = self.status.read()
        if not report.startswith(b"ok "):
            self._failed(report)
        os.waitpid(self.pid, 0)
        self.pid = 0
        self.spool.seek(0)
        while chunk := self.spool.read(1024 * 1024):
            write(chunk)
        return int(report.split()[1])

    def _failed(self, report: bytes) -> NoReturn:
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        text = report.decode(errors="replace").removeprefix("error ")
        reason = " ".join(text.split()) or f"exit status {os.waitstatus_to_exitcode(status)}"
        full = any(text in reason for text in FULL)
        hint = "free space in TMPDIR and retry" if full else "retry with --jobs 1"
        raise OutputError(f"export worker failed: {reason}", hint)

    def kill(self) -> None:
        if self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = 0
        self.status.close()
        self.spool.close()
