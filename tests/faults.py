"""Run planctl with a fault injected at a named checkpoint (for the reliability tests).

    python tests/faults.py crash:STAGE  backup --keep 2
    python tests/faults.py pause:STAGE:SECONDS  backup --incremental

Production code reads no test variable: the checkpoint is injected through
``planctl.cli.app(args, obj=Hooks(checkpoint=...))``, as a Python caller would.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable


def checkpoint_for(spec: str) -> Callable[[str], None]:
    kind, stage, *rest = spec.split(":")

    def checkpoint(name: str) -> None:
        if name != stage:
            return
        if kind == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(rest[0]) if rest else 1.0)

    return checkpoint


def main() -> None:
    from planctl.cli import app
    from planctl.cli.context import Hooks

    app(sys.argv[2:], obj=Hooks(checkpoint=checkpoint_for(sys.argv[1])), prog_name="planctl")


if __name__ == "__main__":
    main()
