"""Where an export goes: a file written atomically, or standard output."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from planctl.errors import PlanctlError


class OutputError(PlanctlError):
    """The export's destination cannot be written."""


@contextlib.contextmanager
def open_output(target: str | Path, *, binary: bool = False) -> Iterator[IO[str] | IO[bytes]]:
    """Yield a stream for *target* (``-`` is stdout).

    A file is written to a temporary sibling and renamed into place only when
    the export finished, so a failure never leaves a half-written file behind.
    """
    if str(target) == "-":
        stream: IO[bytes] = sys.stdout.buffer
        if binary:
            yield stream
            stream.flush()
            return
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=False)
        try:
            yield text
            text.flush()
        finally:
            text.detach()
        return
    path = Path(target)
    directory = path.parent if str(path.parent) else Path(".")
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
        mode = "wb" if binary else "w"
        with os.fdopen(
            fd, mode, **({} if binary else {"encoding": "utf-8", "newline": ""})
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
