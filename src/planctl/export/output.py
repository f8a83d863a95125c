"""Where an export goes: a file written atomically, or standard output."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from planctl.errors import PlanctlError


class OutputError(PlanctlError):
    """The export's destination cannot be written."""


@contextlib.contextmanager
def binary_output(target: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary stream for *target* (``-`` is stdout).

    A file is written to a temporary sibling, fsynced and renamed into place
    only when the export finished, so a failure never leaves a half-written
    file behind (and never clobbers the previous one).
    """
    if str(target) == "-":
        stream = sys.stdout.buffer
        yield stream
        stream.flush()
        return
    path = Path(target)
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"'{path}' is a directory", "give a file name with -o")
    if not directory.is_dir():
        raise OutputError(
            f"directory '{directory}' does not exist", "create it or choose another -o"
        )
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise OutputError(
            f"cannot write to '{directory}': {error.strerror}", "choose a writable directory"
        ) from None
    temp = Path(temp_name)
    try:
        with open(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # An existing file keeps its mode (exports hold personal data: a 0600
        # file must not become world-readable by being exported again).
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(temp, mode)
        os.replace(temp, path)
        _fsync_dir(directory)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def text_output(target: str | Path) -> Iterator[TextIO]:
    """Like :func:`binary_output`, as UTF-8 text with line ends left alone."""
    with binary_output(target) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            yield text
            text.flush()
        finally:
            text.detach()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
