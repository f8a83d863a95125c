"""Monitoring for cron users: durations, healthchecks.io-style pings, the last run's record.

Pings (``URL/start``, ``URL``, ``URL/fail``) never raise and never take longer
than their timeout, whatever the server does (refuses, hangs, trickles bytes):
a backup's outcome never depends on its monitor. The last run's outcome is a
small JSON file in the backup directory, replaced atomically.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from planctl.errors import UsageError

LAST_RUN_FILE = "last-run.json"
PING_TIMEOUT = 10.0
Outcome = Literal["success", "failure"]
PingKind = Literal["start", "success", "fail"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90m``, ``26h``, ``2d``, ``1w``, ``1d12h`` → a positive timedelta."""
    compact = text.strip().replace(" ", "")
    if not compact or _DURATION.sub("", compact) or not _DURATION.search(compact):
        raise UsageError(
            f"invalid duration {text!r}", hint="use a number and a unit s/m/h/d/w, e.g. 26h or 2d"
        )
    seconds = sum(float(n) * _UNITS[u.lower()] for n, u in _DURATION.findall(compact))
    if seconds <= 0:
        raise UsageError(f"duration {text!r} must be longer than zero")
    try:
        return timedelta(seconds=seconds)
    except OverflowError as error:  # beyond timedelta's 999,999,999 days
        raise UsageError(
            f"duration {text!r} is too long", "use at most a few years, e.g. 400d"
        ) from error


def ping_url(base: str, kind: PingKind) -> str:
    """healthchecks.io convention: start → URL/start, success → URL, fail → URL/fail."""
    base = base.rstrip("/")
    return base if kind == "success" else f"{base}/{kind}"


def ping(
    base: str,
    kind: PingKind,
    message: str = "",
    timeout: float = PING_TIMEOUT,
    opener: Callable[..., object] | None = None,
) -> bool:
    """Send one ping; True when the server answered 2xx within *timeout*. Never raises.

    The request runs in a daemon thread that is abandoned at the deadline, so
    a server that accepts and then trickles bytes cannot hold the backup up.
    """
    if not base:
        return False
    import urllib.request  # only when pinging: http.client costs a backup ~5 ms to import

    send_with: Callable[..., Any] = opener or urllib.request.urlopen
    result: list[bool] = []

    def send() -> None:
        try:
            request = urllib.request.Request(
                ping_url(base, kind),
                data=message.encode("utf-8")[:10000] if message else None,
                headers={"User-Agent": "planctl"},
                method="POST" if message else "GET",
            )
            with send_with(request, timeout=timeout) as response:
                response.read(1024)
                result.append(200 <= response.status < 300)
        except Exception:  # a monitor's failure is never the backup's failure
            result.append(False)

    worker = threading.Thread(target=send, name="planctl-ping", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


@dataclass(frozen=True)
class LastRun:
    """What the last backup run did: for ``backup status`` and cron checks."""

    outcome: Outcome
    finished: datetime
    message: str = ""
    backup: str | None = None
    #: Seconds the run took, and the new backup's size (None: not known).
    duration: float | None = None
    size: int | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["finished"] = self.finished.astimezone(UTC).isoformat()
        return data


def write_last_run(backup_dir: Path, record: LastRun) -> Path:
    """Replace ``last-run.json`` in *backup_dir* through :func:`planctl.fsutil.atomic_write`."""
    from planctl.fsutil import atomic_write

    backup_dir = Path(backup_dir)
    backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = backup_dir / LAST_RUN_FILE
    text = json.dumps({"format": 1, **record.to_json()}, indent=2) + "\n"
    with atomic_write(target) as handle:
        handle.write(text.encode("utf-8"))
    return target


def read_last_run(backup_dir: Path) -> LastRun | None:
    """The last run's record, or None when there is none or it cannot be understood."""
    try:
        from planctl.backup.store import read_small_file

        data = json.loads(read_small_file(Path(backup_dir) / LAST_RUN_FILE))
        outcome = data["outcome"]
        if outcome not in ("success", "failure"):
            return None
        finished = datetime.fromisoformat(data["finished"])
        if finished.tzinfo is None:
            return None
        duration, size = data.get("duration"), data.get("size")
        return LastRun(
            outcome,
            finished,
            str(data.get("message", "")),
            data.get("backup"),
            float(duration) if isinstance(duration, int | float) else None,
            int(size) if isinstance(size, int) else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_stale(newest: datetime | None, max_age: timedelta, now: datetime) -> bool:
    """True when there is no restorable backup or the newest is older than *max_age*.

    A backup dated in the future (the clock jumped back) counts as age zero.
    """
    if newest is None:
        return True
    return now - newest > max_age
