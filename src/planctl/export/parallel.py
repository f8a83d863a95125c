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
from collections.abc import Callable, Sequence
from typing import IO, Any

from planctl.export.output import OutputError

#: Below this many ids one reader is faster than forking another.
MIN_ROWS = 100_000
MAX_JOBS = 4

Write = Callable[[bytes | bytearray], Any]
Progress = Callable[[int], None]
#: A range's work: write its lines (reporting progress if given), return how many rows.
Task = Callable[[Write, Progress | None], int]


def available() -> bool:
    return hasattr(os, "fork")


def split(low: int | None, high: int | None, parts: int) -> list[tuple[int, int]] | None:
    """Id ranges [a, b) of about equal width, or None when too few ids to split."""
    if parts < 2 or low is None or high is None or high - low < MIN_ROWS:
        return None
    edges = [low + (high - low + 1) * i // parts for i in range(parts)] + [high + 1]
    return list(itertools.pairwise(edges))


def run(first: Task, others: Sequence[Task], write: Write, progress: Progress | None) -> int:
    """Run *first* here and *others* in workers; write everything in order."""
    workers: list[Worker] = []
    try:
        workers = [Worker.start(task) for task in others]
        count = first(write, progress)
        for worker in workers:
            rows = worker.finish(write)
            count += rows
            if progress:
                progress(rows)
        return count
    finally:
        for worker in workers:
            worker.kill()


class Worker:
    """A forked process running one task into an unlinked spool file."""

    def __init__(self, pid: int, status: IO[bytes], spool: IO[bytes]) -> None:
        self.pid, self.status, self.spool = pid, status, spool

    @classmethod
    def start(cls, task: Task) -> Worker:
        spool = tempfile.TemporaryFile(prefix="planctl-export-")  # noqa: SIM115 - closed in kill()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(read_end)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills us
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
        return cls(pid, os.fdopen(read_end, "rb"), spool)

    def finish(self, write: Write) -> int:
        """Wait for the worker, then copy its spool to *write*; returns its row count."""
        report = self.status.read().decode(errors="replace")
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        if not report.startswith("ok "):
            code = os.waitstatus_to_exitcode(status)
            reason = " ".join(report.removeprefix("error ").split()) or f"exit status {code}"
            full = "disk" in reason or "No space" in reason or "too large" in reason
            hint = "free space in TMPDIR and retry" if full else "retry with --jobs 1"
            raise OutputError(f"export worker failed: {reason}", hint)
        self.spool.seek(0)
        while chunk := self.spool.read(1024 * 1024):
            write(chunk)
        return int(report.split()[1])

    def kill(self) -> None:
        if self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = 0
        self.status.close()
        self.spool.close()
