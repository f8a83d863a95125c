"""How the command line ends on a signal or a closed pipe.

SIGTERM and SIGHUP are turned into :class:`Terminated`, a ``KeyboardInterrupt``
subclass, so they unwind exactly like Ctrl-C: every ``finally`` and context
manager runs (temporary files removed, transactions rolled back, locks let
go). The exit status is 128 + the signal number, as a shell reports a process
killed by it: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. A second
signal while cleaning up is ignored (``kill -9`` still works).

A reader that goes away (``planctl export csv sesiones | head -1``) is not an
error: :func:`quiet_broken_pipe` points standard output at ``/dev/null`` (so
nothing fails again when Python flushes it at exit) and the exit status is
141, 128 + SIGPIPE, what ``yes | head`` reports; no message is printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

BROKEN_PIPE_EXIT = 128 + signal.SIGPIPE
INTERRUPT_EXIT = 128 + signal.SIGINT
CAUGHT = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum: int, _frame: FrameType | None) -> None:
    for caught in CAUGHT:  # clean-up runs once, undisturbed
        signal.signal(caught, signal.SIG_IGN)
    raise Terminated(signum)


def install_handlers() -> None:
    """SIGTERM and SIGHUP raise :class:`Terminated` (main thread only, as Python requires)."""
    for caught in CAUGHT:
        if signal.getsignal(caught) is not signal.SIG_IGN:  # nohup's choice stands
            signal.signal(caught, _terminate)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal that interrupted the command."""
    if isinstance(interrupt, Terminated):
        return 128 + interrupt.signum
    return INTERRUPT_EXIT


def quiet_broken_pipe() -> int:
    """Silence standard output after its reader went away; returns the exit status."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return BROKEN_PIPE_EXIT
