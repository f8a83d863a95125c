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

from planctl.errors import ConfigError

DEFAULTS: dict[str, str] = {
    "DATABASE_URL": "sqlite:///planificador.db",
    "PLANCTL_BACKUP_DIR": "backups",
    "PLANCTL_LOG_DIR": "logs",
    "PLANCTL_TIMEZONE": "Europe/Madrid",
    "PLANCTL_SYNC_BACKEND": "simulated",
    "PLANCTL_SYNC_STORE": "",  # empty: default_sync_store() (next to a SQLite database)
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

_PASSWORD_IN_QUERY = re.compile(r"(?P<key>[?&](?:password|pass|pwd)=)[^&#]*", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PLAIN_SQLITE_URL = re.compile(r"sqlite(?:\+pysqlite)?:///([^?%#]+)")


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """``(scheme://, userinfo, rest)`` of *url*, or None when it has no userinfo.

    Structural: the authority ends at the first ``/``, ``?`` or ``#``, and the
    userinfo at its *last* ``@`` (a password may contain ``@`` and ``:``).
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return None
    after = url[scheme.end() :]
    end = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    authority = after[:end]
    if "@" not in authority:
        return None
    userinfo, _, host = authority.rpartition("@")
    return scheme[0], userinfo, host + after[end:]


def mask_url(url: str) -> str:
    """Return *url* with its password (userinfo and ``?password=``) replaced by ``***``.

    Only the structure of the URL is used, never a search for the password's
    text, so nothing outside the password is ever rewritten. Works on
    malformed URLs too (it is used in error messages about them).
    """
    parts = _split_userinfo(url)
    masked = url
    if parts is not None:
        scheme, userinfo, rest = parts
        user, colon, password = userinfo.partition(":")
        if colon and password:
            masked = f"{scheme}{user}:***@{rest}"
    return _PASSWORD_IN_QUERY.sub(lambda m: f"{m['key']}***", masked)


def mask_secret(text: str, secret: str) -> str:
    """Replace *secret* in *text* where it stands as a token of its own, never inside a
    longer word: a short password must not garble unrelated text (``zoom.e***ample``)."""
    if not secret:
        return text
    pattern = rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"
    return re.sub(pattern, "***", text)


def url_password(url: str) -> str | None:
    """The password embedded in *url*, if any."""
    parts = _split_userinfo(url)
    if parts is None:
        return None
    _, colon, password = parts[1].partition(":")
    return password if colon and password else None


def plain_sqlite_file(database_url: str) -> Path | None:
    """The file of a plain ``sqlite:///path`` URL (no query, no escapes), else None.

    Read without SQLAlchemy, whose import alone costs about 0.1 s of a command.
    """
    match = _PLAIN_SQLITE_URL.fullmatch(database_url)
    return Path(match.group(1)) if match else None


def default_sync_store(database_url: str, environ: Mapping[str, str]) -> Path:
    """Where the simulated calendar lives when PLANCTL_SYNC_STORE is not set.

    Next to a SQLite database file (``<database>.calendario_simulado.json``);
    for other databases in the per-user data directory,
    ``$XDG_DATA_HOME/planctl`` (``~/.local/share/planctl``), named after the
    database. Never relative to the directory a cron job starts in.
    """
    backend, database = _backend_and_database(database_url)
    a_file = bool(database) and database != ":memory:" and not str(database).startswith("file:")
    if backend == "sqlite" and a_file:
        path = Path(str(database)).expanduser().absolute()
        return path.with_name(path.name + ".calendario_simulado.json")
    data_home = environ.get("XDG_DATA_HOME", "").strip()
    base = (
        Path(data_home) if data_home else Path(environ.get("HOME") or Path.home()) / ".local/share"
    )
    name = database or "planctl"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name) or "planctl"
    return (base / "planctl" / f"calendario_simulado-{safe}.json").absolute()


def _backend_and_database(database_url: str) -> tuple[str, str | None]:
    """The backend's name and the database of *database_url* (``("", None)`` if malformed)."""
    plain = plain_sqlite_file(database_url)
    if plain is not None:
        return "sqlite", str(plain)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        return "", None
    return url.get_backend_name(), url.database


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
    sync_store: Path = Path("calendario_simulado.json")
    sync_store_is_default: bool = False  # the store path came from default_sync_store()
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
        try:
            loaded = dotenv_values(dotenv_path)
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"cannot read {dotenv_path}: not UTF-8 text (byte {error.object[error.start]:#x} "
                f"at offset {error.start})",
                "save the .env file as UTF-8",
            ) from None
        except OSError as error:
            raise ConfigError(
                f"cannot read {dotenv_path}: {error.strerror or error}", "check the file"
            ) from None
        values.update({k: v for k, v in loaded.items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def _where(name: str, environ: Mapping[str, str] | None, dotenv_path: str | Path | None) -> str:
    """Where a setting came from, for error messages: the environment or a .env line."""
    if name in (os.environ if environ is None else environ):
        return "the environment"
    from dotenv import find_dotenv

    path = dotenv_path or find_dotenv(usecwd=True)
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return str(path)
        for number, line in enumerate(lines, 1):
            if re.match(rf"\s*(export\s+)?{re.escape(name)}\s*=", line):
                return f"{path} line {number}"
    return "the defaults"


def _check_timezone(
    name: str, value: str, environ: Mapping[str, str] | None, dotenv_path: str | Path | None
) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone '{value}' in {name} (set in {_where(name, environ, dotenv_path)})",
            "use an IANA name like Europe/Madrid",
        ) from None
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = None
) -> Settings:
    """Resolve :class:`Settings` from the environment and ``.env``."""
    values = read_environment(environ, dotenv_path)

    def get(name: str) -> str:
        value = values.get(name, "").strip()
        return value or DEFAULTS[name]

    database_url = normalize_database_url(get("DATABASE_URL"))
    store = get("PLANCTL_SYNC_STORE")
    return Settings(
        database_url=database_url,
        backup_dir=Path(get("PLANCTL_BACKUP_DIR")).expanduser(),
        log_dir=Path(get("PLANCTL_LOG_DIR")).expanduser(),
        timezone=_check_timezone("PLANCTL_TIMEZONE", get("PLANCTL_TIMEZONE"), environ, dotenv_path),
        sync_backend=get("PLANCTL_SYNC_BACKEND"),
        # absolute from here on: a later chdir (or cron's working directory) cannot move it
        sync_store=Path(store).expanduser().absolute()
        if store
        else default_sync_store(database_url, values),
        sync_store_is_default=not store,
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
