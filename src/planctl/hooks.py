"""What a caller injects into a run: the test hooks, as one typed object.

Production passes :data:`NO_HOOKS`. The reliability tests pass a
``checkpoint`` that kills or pauses the process at a named stage
(``"data-written"``, ``"before-restore"``, …), as a power cut would
(``planctl.cli.app(args, obj=Hooks(checkpoint=...))``, tests/faults.py). A cheap
module: the CLI imports it at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: A named point in a backup or restore.
Checkpoint = Callable[[str], None]


def no_checkpoint(stage: str) -> None:
    """Production's checkpoint: nothing happens at the named stages."""


@dataclass(frozen=True)
class Hooks:
    """The hooks of one run; engines bind them when they are built (``engine_for``)."""

    checkpoint: Checkpoint = no_checkpoint


NO_HOOKS = Hooks()
