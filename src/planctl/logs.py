"""Per-service rotating log files: ``<log dir>/<service>.log``.

Each service logs under ``planctl.<service>``; the file name is the domain's
Spanish one. Files are opened lazily, so ``planctl --help`` creates nothing.
Times are in the configured zone (``PLANCTL_TIMEZONE``) with their UTC offset.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from planctl.config import mask_secret, mask_url

LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"

SERVICE_FILES: dict[str, str] = {
    "migrations": "migraciones.log",
    "export": "exportacion.log",
    "sync": "sincronizacion.log",
    "backup": "backup.log",
}

_MAX_BYTES = 5 * 1024 * 1024
_BACKUP_COUNT = 5


def log_files(log_dir: Path) -> tuple[Path, ...]:
    """Every file the service logs write or rotate through in *log_dir* (never an output)."""
    return tuple(
        log_dir / f"{name}{suffix}"
        for name in SERVICE_FILES.values()
        for suffix in ("", *(f".{n}" for n in range(1, _BACKUP_COUNT + 1)))
    )


class ZonedFormatter(logging.Formatter):
    """``2026-11-25 21:03:04.512 +0100 | INFO | …``: the time in *timezone*, with its offset."""

    def __init__(self, timezone: str, fmt: str = LOG_FORMAT) -> None:
        super().__init__(fmt)
        self.zone = ZoneInfo(timezone)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = dt.datetime.fromtimestamp(record.created, self.zone)
        return f"{moment:%Y-%m-%d %H:%M:%S}.{int(record.msecs):03d} {moment:%z}"


class MaskingFilter(logging.Filter):
    """Mask any URL password that slipped into a log record."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._mask(record.getMessage()), None
        if record.exc_info and not record.exc_text:  # a traceback quotes messages too
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        return True

    def _mask(self, text: str) -> str:
        text = mask_url_in_text(text)
        for secret in self.secrets:
            text = mask_secret(text, secret)
        return text


#: A URL inside free text: up to the next blank or quote (a traceback quotes its values).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def mask_url_in_text(text: str) -> str:
    """Mask every ``scheme://user:password@`` occurrence inside free text."""
    return _URL_IN_TEXT.sub(lambda found: mask_url(found[0]), text)


def service_logger(
    service: str, log_dir: Path, *, secrets: tuple[str, ...] = (), timezone: str = "UTC"
) -> logging.Logger:
    """Logger for *service* writing to its rotating file in *log_dir* (idempotent), its
    times in *timezone*."""
    if service not in SERVICE_FILES:
        raise ValueError(f"unknown log service {service!r}")
    logger = logging.getLogger(f"planctl.{service}")
    logger.setLevel(logging.DEBUG)
    path = (log_dir / SERVICE_FILES[service]).resolve()
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            handler.setFormatter(ZonedFormatter(timezone))
            return logger
    path.parent.mkdir(parents=True, exist_ok=True)
    # Open it once now, so an unwritable log directory is an error before any work starts
    # (the caller names the setting). Logs may quote hosts and user names: 0600.
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600))
    handler = _LogFileHandler(
        path, maxBytes=_MAX_BYTES, backupCount=_BACKUP_COUNT, encoding="utf-8", delay=True
    )
    handler.setFormatter(ZonedFormatter(timezone))
    handler.addFilter(MaskingFilter(secrets))
    logger.addHandler(handler)
    return logger


class _LogFileHandler(logging.handlers.RotatingFileHandler):
    """A log file that cannot be written (disk full, removed directory) costs one warning
    line on stderr, once, instead of logging's traceback on every record."""

    _warned = False

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        if not self._warned:
            self._warned = True
            error = sys.exc_info()[1]
            reason = getattr(error, "strerror", None) or error
            sys.stderr.write(f"warning: cannot write log file {self.baseFilename}: {reason}\n")


def close_service_loggers() -> None:
    """Detach file handlers (tests switch log directories between runs)."""
    for service in SERVICE_FILES:
        logger = logging.getLogger(f"planctl.{service}")
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler):
                handler.close()
                logger.removeHandler(handler)
