"""Helpers shared by test modules: whole-table snapshots and real planctl processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from planctl.db.engine import connect
from planctl.db.models import TABLE_NAMES, metadata


def table_contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every planner table (timestamps included), ordered by id."""
    out = {}
    with connect(url) as connection:
        for name in TABLE_NAMES:
            table = metadata.tables[name]
            out[name] = [tuple(r) for r in connection.execute(select(table).order_by(table.c.id))]
    return out


def planctl_env(url: str, backup_dir: Path, log_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PLANCTL_")
    }
    env.update(DATABASE_URL=url, PLANCTL_BACKUP_DIR=str(backup_dir), PLANCTL_LOG_DIR=str(log_dir))
    env.update(extra)
    return env


FAULTS = Path(__file__).with_name("faults.py")


def _command(args: tuple[str, ...], fault: str | None) -> list[str]:
    """planctl as a real process; with *fault* ("crash:STAGE" or "pause:STAGE:SECONDS")
    through tests/faults.py, which injects the checkpoint."""
    if fault is None:
        return [sys.executable, "-m", "planctl", *args]
    return [sys.executable, str(FAULTS), fault, *args]


def run_planctl(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float = 120,
    fault: str | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(args, fault),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def spawn_planctl(
    *args: str, env: dict[str, str], fault: str | None = None, **kwargs: Any
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(args, fault),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
