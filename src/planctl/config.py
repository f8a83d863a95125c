"""Settings from ``.env`` and the environment, and URL masking.

Precedence: real environment variables, then the ``.env`` of the working
directory or its nearest parent that has one (:func:`find_env_file`), then the
defaults below. Everything is checked once, in :func:`load_settings`. Services
never read the environment themselves: they get a :class:`Settings`.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    # Google Calendar (docs/sync.md#google): the OAuth client file, the token (empty:
    # default_google_token()), the calendar (id or summary) and the API's root URL.
    "PLANCTL_GOOGLE_CLIENT_SECRETS": "",
    "PLANCTL_GOOGLE_TOKEN": "",
    "PLANCTL_GOOGLE_CALENDAR": "Planificador",
    "PLANCTL_GOOGLE_API_URL": "https://www.googleapis.com",
    "PLANCTL_PG_BINDIR": "",  # empty: the server's major version's tools, then PATH
    # Offsite backups (issue 15): all empty = local, unencrypted, unmonitored.
    "PLANCTL_BACKUP_RECIPIENTS": "",
    "PLANCTL_BACKUP_IDENTITY": "",
    "PLANCTL_BACKUP_REMOTE": "",
    # Seconds the remote (S3, SFTP) may take to connect or to answer (backup.stores.StorePolicy).
    "PLANCTL_BACKUP_REMOTE_TIMEOUT": "15",
    "PLANCTL_BACKUP_PING_URL": "",
    # Seconds a migration or restore waits in all for the database's locks (issue 24).
    "PLANCTL_LOCK_WAIT": "60",
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

    Next to a SQLite database file (``<database>.planctl-calendar.sqlite``);
    for other databases in the per-user data directory,
    ``$XDG_DATA_HOME/planctl`` (``~/.local/share/planctl``), named after the
    database (``calendar-<database>.sqlite``). Never relative to the directory
    a cron job starts in.
    """
    return _sync_store_named(
        database_url, environ, ".planctl-calendar.sqlite", "calendar-{}.sqlite"
    )


def former_default_sync_store(database_url: str, environ: Mapping[str, str]) -> Path:
    """The default store's former (Spanish) name, in the same directory:
    ``<database>.calendario_simulado.json`` or ``calendario_simulado-<database>.json``.
    A store found there is moved to :func:`default_sync_store`'s name when it is first
    opened (:func:`planctl.sync.backends.simulated.adopt_former_store`)."""
    return _sync_store_named(
        database_url, environ, ".calendario_simulado.json", "calendario_simulado-{}.json"
    )


def _sync_store_named(
    database_url: str, environ: Mapping[str, str], beside: str, in_data_dir: str
) -> Path:
    """*beside* appended to a SQLite database file's name, else *in_data_dir* (with the
    database's name) in the per-user data directory."""
    from urllib.parse import unquote, urlsplit

    scheme = _SCHEME.match(database_url)
    backend = scheme[0][:-3].split("+")[0].lower() if scheme else ""
    # sqlite:///relative.db and sqlite:////absolute.db: the path after the third slash
    database = unquote(urlsplit(database_url).path)[1:] if scheme else ""
    if (
        backend == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
    ):
        path = Path(database).expanduser().absolute()
        return path.with_name(path.name + beside)
    data_home = environ.get("XDG_DATA_HOME", "").strip()
    base = (
        Path(data_home) if data_home else Path(environ.get("HOME") or Path.home()) / ".local/share"
    )
    name = database or "planctl"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name) or "planctl"
    return (base / "planctl" / in_data_dir.format(safe)).absolute()


def default_google_token(environ: Mapping[str, str]) -> Path:
    """Where ``planctl sync auth`` keeps the Google token when PLANCTL_GOOGLE_TOKEN is not set:
    ``$XDG_CONFIG_HOME/planctl/google-token.json`` (``~/.config/planctl/…``)."""
    config_home = environ.get("XDG_CONFIG_HOME", "").strip()
    base = (
        Path(config_home) if config_home else Path(environ.get("HOME") or Path.home()) / ".config"
    )
    return (base / "planctl" / "google-token.json").absolute()


def normalize_database_url(url: str) -> str:
    """Point bare ``postgresql://`` and ``postgres://`` URLs at psycopg 3.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which planctl does not
    ship; users copy URLs from their provider in the bare form.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


#: The calendar backends planctl ships (planctl.sync.backends.<name>).
SYNC_BACKENDS = ("caldav", "google", "simulated")
#: Query arguments a SQLite DATABASE_URL may carry: the driver's own, and SQLite's URI
#: parameters, which it honours only with ``uri=true`` (and silently ignores otherwise).
_SQLITE_DRIVER_ARGS = frozenset({"timeout", "uri"})
_SQLITE_URI_ARGS = {
    "mode": ("ro", "rw", "rwc", "memory"),
    "cache": ("shared", "private"),
    "immutable": ("0", "1"),
    "nolock": ("0", "1"),
    "psow": ("0", "1"),
    "vfs": None,
}
SUPPORTED_DATABASES = "sqlite:///path/to/file.db or postgresql://user@host/dbname"
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa")


def check_database_url(url: str) -> None:
    """Refuse a DATABASE_URL planctl cannot use, without importing SQLAlchemy.

    Checks the scheme (SQLite or PostgreSQL), the port, and a SQLite URL's query
    arguments: the driver would ignore unknown ones with a warning, and SQLite's URI
    parameters (``mode=ro``…) only count with ``uri=true``.
    """
    from urllib.parse import parse_qsl, urlsplit

    masked = mask_url(url)
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise ConfigError(f"malformed DATABASE_URL '{masked}'", f"expected {SUPPORTED_DATABASES}")
    backend = scheme[0][:-3].split("+")[0].lower()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database '{backend}' in DATABASE_URL '{masked}'",
            f"planctl supports {SUPPORTED_DATABASES}",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a non-numeric port fails here)
    except ValueError as error:
        raise ConfigError(
            f"malformed DATABASE_URL '{masked}'", f"expected {SUPPORTED_DATABASES}"
        ) from error
    if backend != "sqlite":
        return  # libpq checks its own parameters, with a message naming the bad one
    from urllib.parse import unquote

    if "\0" in unquote(parts.path):
        raise ConfigError(
            f"DATABASE_URL '{masked}' holds a NUL byte in its path", "give a plain file path"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    uri = query.get("uri", "").lower() == "true"
    for key, value in query.items():
        if key in _SQLITE_DRIVER_ARGS:
            continue
        if key not in _SQLITE_URI_ARGS:
            raise ConfigError(
                f"unknown query argument '{key}' in DATABASE_URL '{masked}'",
                "SQLite URLs take timeout=, or uri=true with mode=, cache=, immutable=…",
            )
        allowed = _SQLITE_URI_ARGS[key]
        if allowed is not None and value not in allowed:
            raise ConfigError(
                f"bad value '{value}' for {key} in DATABASE_URL '{masked}'",
                f"use one of {', '.join(allowed)}",
            )
        if not uri:
            raise ConfigError(
                f"query argument '{key}' in DATABASE_URL '{masked}' needs uri=true",
                f"use sqlite:///file:{parts.path[1:] or 'planificador.db'}"
                f"?{key}={value}&uri=true, or remove it",
            )


def _check_database_file(url: str) -> None:
    """A planner lives in a file: refuse an in-memory SQLite database (it would hold nothing
    between two commands) and a path that is a device, FIFO or directory."""
    from urllib.parse import unquote, urlsplit

    if not url.lower().startswith("sqlite"):
        return
    parts = urlsplit(url)
    database = unquote(parts.path)[1:]
    if "uri=true" in parts.query.lower() and database.startswith("file:"):
        database = database.removeprefix("file:")
    if database in ("", ":memory:") or "mode=memory" in parts.query.lower():
        raise ConfigError(
            f"DATABASE_URL '{mask_url(url)}' is an in-memory SQLite database",
            "planctl works on a file: sqlite:///path/to/planificador.db",
        )
    try:
        mode = Path(database).expanduser().stat().st_mode
    except FileNotFoundError:
        return  # not there (yet): db-upgrade creates it, the others say it is missing
    except RuntimeError as error:  # ~user of a user this system does not know
        raise ConfigError(
            f"DATABASE_URL '{mask_url(url)}' names an unknown home directory",
            "give the database file's full path",
        ) from error
    except OSError as error:  # a name too long, a loop of links, a component that is a file
        shown = database if len(database) <= 80 else database[:77] + "…"
        raise ConfigError(
            f"DATABASE_URL names '{shown}', which cannot be used: {error.strerror}",
            "point it at a SQLite database file",
        ) from error
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"DATABASE_URL '{mask_url(url)}' names '{database}', which is not a regular file",
            "point it at a SQLite database file",
        )


def check_http_url(name: str, url: str) -> str | None:
    """Why *url* is not an ``http(s)://host…`` URL (None when it is one)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        return f"{name} '{mask_url(url)}' is malformed"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"{name} '{mask_url(url)}' is not an http(s) URL"
    return None


def check_remote_url(url: str) -> tuple[str, str] | None:
    """Why *url* is not a backup remote planctl can use, as (problem, hint); None when it
    is one. The one place that knows the remote URL forms (``s3://``, ``sftp://``)."""
    from urllib.parse import urlsplit

    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        return f"bad port in backup remote '{shown}'", "use sftp://user@host[:port]/path"
    scheme = parts.scheme.lower() if "://" in url else ""
    if scheme == "s3":
        if not parts.hostname:
            return f"no bucket in backup remote '{shown}'", "use s3://bucket/prefix"
        return None
    if scheme == "sftp":
        if parts.password is not None:
            return (
                f"backup remote '{shown}' must not hold a password",
                "sftp:// remotes use key authentication (an SSH key or the agent)",
            )
        if not parts.hostname or not parts.username:
            return (
                f"backup remote '{shown}' needs a user and a host",
                "use sftp://user@host[:port]/path",
            )
        return None
    return (
        f"unsupported backup remote '{shown}'",
        "use s3://bucket/prefix or sftp://user@host[:port]/path",
    )


def recipient_shape_error(entry: str) -> str | None:
    """Why one PLANCTL_BACKUP_RECIPIENTS entry cannot be an age recipient (None: it may be)."""
    parts = entry.split()
    if not parts:
        return "an empty entry"
    if parts[0].startswith("age1") and len(parts) == 1:
        return None
    if parts[0] in SSH_KEY_TYPES and len(parts) >= 2:
        return None
    return "not an age1… key or an ssh-ed25519/ssh-rsa public key"


@dataclass(frozen=True)
class Settings:
    """Everything planctl reads from its environment, resolved and checked once."""

    database_url: str = DEFAULTS["DATABASE_URL"]
    backup_dir: Path = Path(DEFAULTS["PLANCTL_BACKUP_DIR"])
    log_dir: Path = Path(DEFAULTS["PLANCTL_LOG_DIR"])
    timezone: str = DEFAULTS["PLANCTL_TIMEZONE"]
    sync_backend: str = DEFAULTS["PLANCTL_SYNC_BACKEND"]
    sync_store: Path = Path("planctl-calendar.sqlite")
    sync_store_is_default: bool = False  # the store path came from default_sync_store()
    #: With the default store: its former name (former_default_sync_store), moved on first use.
    sync_store_former: Path | None = None
    caldav_url: str = ""
    caldav_user: str = ""
    caldav_password: str = field(default="", repr=False)
    caldav_calendar: str = DEFAULTS["PLANCTL_CALDAV_CALENDAR"]
    google_client_secrets: Path | None = None
    google_token: Path = Path("google-token.json")
    google_calendar: str = DEFAULTS["PLANCTL_GOOGLE_CALENDAR"]
    google_api_url: str = DEFAULTS["PLANCTL_GOOGLE_API_URL"]
    #: Directory of pg_dump/pg_restore (None: the server's major version, then PATH).
    pg_bindir: Path | None = None
    # Offsite backups: age recipients (comma separated, parsed by backup.crypto),
    # the identity file for restores, the remote URL and the monitoring ping URL.
    backup_recipients: str = ""
    backup_identity: Path | None = None
    backup_remote: str = ""
    #: Seconds the remote may take to connect or answer, per attempt.
    backup_remote_timeout: float = float(DEFAULTS["PLANCTL_BACKUP_REMOTE_TIMEOUT"])
    backup_ping_url: str = field(default="", repr=False)
    #: Seconds migrations and restores wait in all for locks (planctl.db.lockwait).
    lock_wait: float = float(DEFAULTS["PLANCTL_LOCK_WAIT"])
    #: Where each variable came from ("the environment", ".env line 3"), for messages.
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def masked_url(self) -> str:
        return mask_url(self.database_url)

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone (checked by :func:`load_settings`)."""
        return ZoneInfo(self.timezone)

    def source(self, name: str) -> str:
        """Setting *name* and where it came from, for a message:
        ``PLANCTL_LOG_DIR, set in .env line 3``."""
        return f"{name}, set in {self.sources.get(name, 'the defaults')}"

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


def find_env_file(start: Path | None = None) -> Path | None:
    """The ``.env`` planctl reads: in the working directory or the nearest parent that has
    one (like git finds its repository). A ``.env`` that is not a regular file (a FIFO,
    a directory) is refused rather than read or waited on."""
    here = (start or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        candidate = directory / ".env"
        try:
            mode = candidate.stat().st_mode
        except OSError as error:
            if not candidate.is_symlink() and error.errno in (errno.ENOENT, errno.ENOTDIR):
                continue  # no .env here: look in the parent
            # a loop of links, a dangling link, no permission: a .env that is there but
            # cannot be read is refused, never silently skipped
            raise ConfigError(
                f"cannot read {candidate}: {error.strerror or error}",
                "fix or remove the .env file (or its link)",
            ) from error
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"{candidate} is not a regular file", "replace it with a text file of settings"
            )
        return candidate
    return None


def _read_dotenv(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The values of the ``.env`` at *path* and the line each one is set on."""
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"cannot read {path}: not UTF-8 text (byte {error.object[error.start]:#x} "
            f"at offset {error.start})",
            "save the .env file as UTF-8",
        ) from error
    except OSError as error:
        raise ConfigError(
            f"cannot read {path}: {error.strerror or error}", "check the file"
        ) from error
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:  # python-dotenv would warn on stderr and skip the line
            line = binding.original.string.strip()
            shown = line if len(line) <= 40 else line[:39] + "…"
            raise ConfigError(
                f"cannot parse {path} line {binding.original.line}: '{shown}'",
                "write NAME=value, one setting a line; quote values with spaces",
            )
    loaded = dotenv_values(stream=io.StringIO(text))
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        found = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=", line)
        if found:
            lines[found[1]] = number  # the last assignment wins, as in dotenv_values
    return {k: v for k, v in loaded.items() if v is not None}, lines


def read_environment(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = None
) -> dict[str, str]:
    """Merge ``.env`` and *environ* (environment wins) without touching os.environ."""
    return _gather(environ, dotenv_path)[0]


def _gather(
    environ: Mapping[str, str] | None, dotenv_path: str | Path | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(values, where each came from): ``.env`` then *environ*, which wins."""
    path = Path(dotenv_path) if dotenv_path is not None else find_env_file()
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    if path is not None and path.exists():
        loaded, lines = _read_dotenv(path)
        values.update(loaded)
        sources.update({k: f"{path} line {lines[k]}" for k in loaded if k in lines})
    env = os.environ if environ is None else environ
    values.update(env)
    sources.update({k: "the environment" for k in env})
    return values, sources


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = None
) -> Settings:
    """Resolve and check :class:`Settings` from the environment and ``.env``.

    Every value is checked here, once: a bad one is a :class:`ConfigError` naming the
    variable and where it was set, whichever command runs.
    """
    values, sources = _gather(environ, dotenv_path)

    def get(name: str) -> str:
        value = values.get(name, "").strip()
        return value or DEFAULTS.get(name, "")

    def bad(name: str, problem: str, hint: str) -> ConfigError:
        return ConfigError(f"{problem} (set in {sources.get(name, 'the defaults')})", hint)

    def path(name: str, *, directory: bool | None = None) -> Path | None:
        text = get(name)
        if not text:
            return None
        if "\0" in text:
            raise bad(name, f"{name} contains a NUL byte", "give a plain path")
        shown = text if len(text) <= 80 else text[:77] + "…"
        try:
            result = Path(text).expanduser()
            exists, is_dir = result.exists(), result.is_dir()
        except RuntimeError as error:  # ~user of a user this system does not know
            raise bad(
                name, f"{name} '{shown}' names an unknown home directory", "give the full path"
            ) from error
        except OSError as error:  # a name too long, a loop of links…
            raise bad(
                name, f"{name} '{shown}' cannot be used: {error.strerror}", "give a usable path"
            ) from error
        if directory is True and exists and not is_dir:
            raise bad(name, f"{name} '{result}' is not a directory", "name a directory")
        if directory is False and is_dir:
            raise bad(name, f"{name} '{result}' is a directory", "name a file")
        return result

    if "DATABASE_URL" in values and not values["DATABASE_URL"].strip():
        raise bad(
            "DATABASE_URL",
            "DATABASE_URL is set but empty",
            f"give a database URL, or unset it for the default {DEFAULTS['DATABASE_URL']}",
        )
    database_url = normalize_database_url(get("DATABASE_URL"))
    try:
        check_database_url(database_url)
        _check_database_file(database_url)
    except ConfigError as error:
        raise bad("DATABASE_URL", error.message, error.hint or "") from error

    timezone = get("PLANCTL_TIMEZONE")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise bad(
            "PLANCTL_TIMEZONE",
            f"unknown time zone '{timezone}' in PLANCTL_TIMEZONE",
            "use an IANA name like Europe/Madrid",
        ) from error

    backend = get("PLANCTL_SYNC_BACKEND").lower()
    if backend not in SYNC_BACKENDS:
        raise bad(
            "PLANCTL_SYNC_BACKEND",
            f"unknown sync backend '{get('PLANCTL_SYNC_BACKEND')}' in PLANCTL_SYNC_BACKEND",
            f"use one of {', '.join(SYNC_BACKENDS)}",
        )
    caldav_url = get("PLANCTL_CALDAV_URL")
    problem = check_http_url("PLANCTL_CALDAV_URL", caldav_url) if caldav_url else None
    if problem:
        raise bad("PLANCTL_CALDAV_URL", problem, "e.g. https://cloud.example.com/remote.php/dav")
    google_api_url = get("PLANCTL_GOOGLE_API_URL").rstrip("/")
    problem = check_http_url("PLANCTL_GOOGLE_API_URL", google_api_url)
    if problem:
        raise bad("PLANCTL_GOOGLE_API_URL", problem, "e.g. https://www.googleapis.com")
    google_token = path("PLANCTL_GOOGLE_TOKEN", directory=False)
    google_secrets = path("PLANCTL_GOOGLE_CLIENT_SECRETS", directory=False)
    ping_url = get("PLANCTL_BACKUP_PING_URL")
    problem = check_http_url("PLANCTL_BACKUP_PING_URL", ping_url) if ping_url else None
    if problem:
        raise bad("PLANCTL_BACKUP_PING_URL", problem, "e.g. https://hc-ping.com/<uuid>")
    remote = get("PLANCTL_BACKUP_REMOTE")
    remote_problem = check_remote_url(remote) if remote else None
    if remote_problem:
        raise bad("PLANCTL_BACKUP_REMOTE", *remote_problem)
    remote_timeout = parse_lock_wait(get("PLANCTL_BACKUP_REMOTE_TIMEOUT"))
    if remote_timeout is None:
        raise bad(
            "PLANCTL_BACKUP_REMOTE_TIMEOUT",
            f"PLANCTL_BACKUP_REMOTE_TIMEOUT '{get('PLANCTL_BACKUP_REMOTE_TIMEOUT')[:20]}' "
            "is not a number of seconds",
            "give seconds greater than 0, e.g. 15",
        )
    recipients = get("PLANCTL_BACKUP_RECIPIENTS")
    if recipients:
        for entry in recipients.split(","):
            problem = recipient_shape_error(entry)
            if problem:
                shown = entry.strip()[:24] + ("…" if len(entry.strip()) > 24 else "")
                raise bad(
                    "PLANCTL_BACKUP_RECIPIENTS",
                    f"bad age recipient '{shown}' in PLANCTL_BACKUP_RECIPIENTS: {problem}",
                    "use age1… keys from `age-keygen -y` or SSH public keys, separated by commas",
                )
    pg_bindir = path("PLANCTL_PG_BINDIR", directory=True)
    if pg_bindir is not None and not (pg_bindir / "pg_dump").is_file():
        raise bad(
            "PLANCTL_PG_BINDIR",
            f"PLANCTL_PG_BINDIR '{pg_bindir}' holds no pg_dump",
            "name the directory of pg_dump and pg_restore, e.g. /usr/lib/postgresql/16/bin",
        )
    store = path("PLANCTL_SYNC_STORE", directory=False)
    lock_wait = parse_lock_wait(get("PLANCTL_LOCK_WAIT"))
    if lock_wait is None:
        raise bad(
            "PLANCTL_LOCK_WAIT",
            f"PLANCTL_LOCK_WAIT '{get('PLANCTL_LOCK_WAIT')[:20]}' is not a number of seconds",
            "give seconds greater than 0, e.g. 60",
        )
    return Settings(
        database_url=database_url,
        backup_dir=path("PLANCTL_BACKUP_DIR", directory=True) or Path("backups"),
        log_dir=path("PLANCTL_LOG_DIR", directory=True) or Path("logs"),
        timezone=timezone,
        sync_backend=backend,
        # absolute from here on: a later chdir (or cron's working directory) cannot move it
        sync_store=store.absolute() if store else default_sync_store(database_url, values),
        sync_store_is_default=store is None,
        sync_store_former=None if store else former_default_sync_store(database_url, values),
        caldav_url=caldav_url,
        caldav_user=get("PLANCTL_CALDAV_USER"),
        # Not stripped: a password may begin or end with a space.
        caldav_password=values.get("PLANCTL_CALDAV_PASSWORD", ""),
        caldav_calendar=get("PLANCTL_CALDAV_CALENDAR"),
        google_client_secrets=google_secrets.absolute() if google_secrets else None,
        google_token=google_token.absolute() if google_token else default_google_token(values),
        google_calendar=get("PLANCTL_GOOGLE_CALENDAR"),
        google_api_url=google_api_url,
        pg_bindir=pg_bindir,
        backup_recipients=recipients,
        backup_identity=path("PLANCTL_BACKUP_IDENTITY", directory=False),
        backup_remote=remote,
        backup_remote_timeout=remote_timeout,
        backup_ping_url=ping_url,
        lock_wait=lock_wait,
        sources=sources,
    )


def parse_lock_wait(text: str) -> float | None:
    """Seconds (> 0, finite) from PLANCTL_LOCK_WAIT (or PLANCTL_BACKUP_REMOTE_TIMEOUT); None
    when it is not such a number."""
    import math

    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None
