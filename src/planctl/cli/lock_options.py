"""The lock-wait options that migrations and restores share: ``--lock-wait SECONDS`` and
``--terminate-blockers`` (planctl.db.lockwait does the waiting)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from planctl.cli.context import State, err_console

if TYPE_CHECKING:
    from planctl.db.lockwait import LockWait

LockWaitOption = Annotated[
    float | None,
    typer.Option(
        "--lock-wait",
        min=0.5,
        metavar="SECONDS",
        help="Seconds to wait in all for the database's locks, in short attempts that never "
        "hold the planner app up for more than 2 s (default: PLANCTL_LOCK_WAIT, 60); "
        "then exit 4 naming who holds them.",
    ),
]
TerminateBlockersOption = Annotated[
    bool,
    typer.Option(
        "--terminate-blockers",
        help="PostgreSQL: end the sessions that block planctl while idle in a transaction "
        "(never one running a query), naming them, then go on.",
    ),
]


def lock_wait_for(state: State, seconds: float | None, terminate_blockers: bool) -> LockWait:
    """The command's lock wait: --lock-wait, else PLANCTL_LOCK_WAIT; reports on stderr."""
    from planctl.db.lockwait import LockWait

    budget = seconds if seconds is not None else state.settings.lock_wait
    return LockWait(budget=budget, terminate_blockers=terminate_blockers, report=_report)


def _report(message: str) -> None:
    from rich.markup import escape

    # escaped: a blocker's query may hold brackets that Rich would read as markup
    err_console().print(f"[yellow]{escape(message)}[/yellow]", highlight=False, soft_wrap=True)
