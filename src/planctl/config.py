"""Settings from ``.env`` and the environment, and URL masking.

Precedence: real environment variables, then ``.env`` in the working directory
(found with ``find_dotenv(usecwd=True)``), then the defaults below. Services
never read the environment themselves: they get a :class:`Settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULTS: dict[str, str] = {
    "DATABASE_URL": "sqlite:///planificador.db",
    "PLANCTL_BACKUP_DIR": "backups",
    "PLANCTL_LOG_DIR": "logs",
    "PLANCTL_TIMEZONE": "Europe/Madrid",
    "PLANCTL_SYNC_BACKEND": "simulated",
    "PLANCTL_SYNC_STORE": "calendario_simulado.json",
    "PLANCTL_CALDAV_URL": "",
    "PLANCTL_CALDAV_USER": "",
    "PLANCTL_CALDAV_PASSWORD": "",
    "PLANCTL_CALDAV_CALENDAR": "Planificador",
    # Offsite backups (issue 15): all empty = local, unencrypted, unmonitored.
    "PLANCTL_BACKUP_RECIPIENTS": "",
    "PLANCTL_BACKUP_IDENTITY": "",
    "PLANCTL_BACKUP_REMOTE": "",
    "PLANCTL_BACKUP_PING_URL": "",
}

_PASSWORD_IN_NETLOC = re.compile(r"^(?P<scheme>[^:/?#]+://)(?P<user>[^:@/?#]*):(?P<pw>[^@/?#]*)@")
_PASSWORD_IN_QUERY = re.compile(r"(?P<key>[?&](?:password|pass|pwd)=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return *url* with any password replaced by ``***``.

    Works on malformed URLs too (it is used in error messages about them), and
    covers both ``user:secret@host`` and ``?password=secret`` forms.
    """
    masked = _PASSWORD_IN_NETLOC.sub(
        lambda m: f"{m['scheme']}{m['user']}:***@" if m["pw"] else m[0], url
    )
    return _PASSWORD_IN_QUERY.sub(lambda m: f"{m['key']}***", masked)


def url_password(url: str) -> str | None:
    """The password embedded in *url*, if any (so messages can scrub it)."""
    match = _PASSWORD_IN_NETLOC.match(url)
    return match["pw"] if match and match["pw"] else None


def normalize_database_url(url: str) -> str:
    """Point bare ``postgresql://`` and ``postgres://`` URLs at psycopg 3.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which planctl does not
    ship; users copy URLs from their provider in the bare form.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Settings:
    """Everything planctl reads from its environment, resolved once."""

    database_url: str = DEFAULTS["DATABASE_URL"]
    backup_dir: Path = Path(DEFAULTS["PLANCTL_BACKUP_DIR"])
    log_dir: Path = Path(DEFAULTS["PLANCTL_LOG_DIR"])
    timezone: str = DEFAULTS["PLANCTL_TIMEZONE"]
    sync_backend: str = DEFAULTS["PLANCTL_SYNC_BACKEND"]
    sync_store: Path = Path(DEFAULTS["PLANCTL_SYNC_STORE"])
    caldav_url: str = ""
    caldav_user: str = ""
    caldav_password: str = field(default="", repr=False)
    caldav_calendar: str = DEFAULTS["PLANCTL_CALDAV_CALENDAR"]
    # Offsite backups: age recipients (comma separated, parsed by backup.crypto),
    # the identity file for restores, the remote URL and the monitoring ping URL.
    backup_recipients: str = ""
    backup_identity: Path | None = None
    backup_remote: str = ""
    backup_ping_url: str = field(default="", repr=False)
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def masked_url(self) -> str:
        return mask_url(self.database_url)

    def __repr__(self) -> str:  # never leak the password through repr()
        return (
            f"Settings(database_url={self.masked_url!r}, backup_dir={str(self.backup_dir)!r}, "
            f"log_dir={str(self.log_dir)!r}, timezone={self.timezone!r}, "
            f"sync_backend={self.sync_backend!r}, sync_store={str(self.sync_store)!r}, "
            f"caldav_url={mask_url(self.caldav_url)!r}, caldav_user={self.caldav_user!r}, "
            f"caldav_password={'***' if self.caldav_password else ''!r}, "
            f"caldav_calendar={self.caldav_calendar!r})"
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every password planctl knows of, for log and message scrubbing."""
        found = (url_password(self.database_url), url_password(self.caldav_url))
        return tuple(s for s in (*found, self.caldav_password) if s)


def read_environment(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = None
) -> dict[str, str]:
    """Merge ``.env`` and *environ* (environment wins) without touching os.environ."""
    from dotenv import dotenv_values, find_dotenv

    if dotenv_path is None:
        dotenv_path = find_dotenv(usecwd=True)
    values: dict[str, str] = {}
    if dotenv_path:
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = None
) -> Settings:
    """Resolve :class:`Settings` from the environment and ``.env``."""
    values = read_environment(environ, dotenv_path)

    def get(name: str) -> str:
        value = values.get(name, "").strip()
        return value or DEFAULTS[name]

    return Settings(
        database_url=normalize_database_url(get("DATABASE_URL")),
        backup_dir=Path(get("PLANCTL_BACKUP_DIR")).expanduser(),
        log_dir=Path(get("PLANCTL_LOG_DIR")).expanduser(),
        timezone=get("PLANCTL_TIMEZONE"),
        sync_backend=get("PLANCTL_SYNC_BACKEND"),
        sync_store=Path(get("PLANCTL_SYNC_STORE")).expanduser(),
        caldav_url=get("PLANCTL_CALDAV_URL"),
        caldav_user=get("PLANCTL_CALDAV_USER"),
        # Not stripped: a password may begin or end with a space.
        caldav_password=values.get("PLANCTL_CALDAV_PASSWORD", ""),
        caldav_calendar=get("PLANCTL_CALDAV_CALENDAR"),
        backup_recipients=get("PLANCTL_BACKUP_RECIPIENTS"),
        backup_identity=(
            Path(get("PLANCTL_BACKUP_IDENTITY")).expanduser()
            if get("PLANCTL_BACKUP_IDENTITY")
            else None
        ),
        backup_remote=get("PLANCTL_BACKUP_REMOTE"),
        backup_ping_url=get("PLANCTL_BACKUP_PING_URL"),
        extra={k: v for k, v in values.items() if k.startswith("PLANCTL_")},
    )
