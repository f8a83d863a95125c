"""The database planctl works on, parsed once from DATABASE_URL into a :class:`Target`.

Configuration builds it (:func:`planctl.config.load_settings`); everything below the
CLI takes a Target, never a URL string. Parsing is plain Python: SQLAlchemy, whose
import alone costs a short command about 0.1 s, is imported only when a connection is
made (:attr:`Target.sqlalchemy_url`). The components are read with SQLAlchemy's own
URL grammar, so what planctl checks and shows is what the driver gets.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from planctl.config import mask_url, url_password
from planctl.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

Engine = Literal["sqlite", "postgresql"]

SUPPORTED_DATABASES = "sqlite:///path/to/file.db or postgresql://user@host/dbname"

#: SQLAlchemy's URL grammar (sqlalchemy.engine.url._parse_url), so that the parts
#: planctl reads without importing SQLAlchemy are the ones the driver will get.
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)
_PLAIN_SQLITE_URL = re.compile(r"sqlite(?:\+pysqlite)?:///([^?%#]+)")
#: The drivers planctl ships, by engine (psycopg 3 for PostgreSQL).
_DRIVERS: dict[str, tuple[str, ...]] = {
    "sqlite": ("sqlite", "sqlite+pysqlite"),
    "postgresql": ("postgresql+psycopg",),
}
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


def normalize_database_url(url: str) -> str:
    """Point bare ``postgresql://`` and ``postgres://`` URLs at psycopg 3.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which planctl does not
    ship; users copy URLs from their provider in the bare form.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _printable(text: str) -> str:
    """*text* with control characters escaped: a message about it stays one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda c: f"\\x{ord(c[0]):02x}", text)


def _malformed(masked: str) -> ConfigError:
    return ConfigError(f"malformed DATABASE_URL '{masked}'", f"expected {SUPPORTED_DATABASES}")


@dataclass(frozen=True)
class Target:
    """A checked database target: its engine, its parts, and how to show it.

    ``url`` holds the password: show :attr:`masked` (``str(target)``) instead.
    """

    engine: Engine
    #: The normalized URL, password included (a secret: never shown, never in argv).
    url: str = field(repr=False)
    #: SQLAlchemy's driver name: ``sqlite``, ``postgresql+psycopg``.
    driver: str
    #: The database part of the URL, unquoted: PostgreSQL's dbname, SQLite's path text.
    database: str | None
    #: The SQLite file (None for PostgreSQL).
    sqlite_file: Path | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    #: The query arguments in order (``host`` socket directory, ``sslmode``…, ``uri``…).
    query: tuple[tuple[str, str], ...] = ()
    #: Directory of pg_dump/pg_restore (None: the server's major version, then PATH).
    pg_bindir: Path | None = None
    #: The URL with its password replaced by ``***``: what messages and logs show.
    masked: str = ""

    @classmethod
    def parse(cls, url: str, *, pg_bindir: Path | None = None) -> Target:
        """Check *url* and read its parts; a URL planctl cannot use is a ConfigError.

        Refuses: another engine or driver, a bad port, a SQLite URL's unknown query
        arguments (the driver would ignore them with a warning) and URI parameters
        without ``uri=true`` (SQLite would ignore them), an in-memory SQLite database
        (it would hold nothing between two commands), and a SQLite path that is a
        directory, device or FIFO.
        """
        url = normalize_database_url(url)
        found = _URL.match(url)
        if found is None or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
            raise _malformed(_printable(mask_url(url)))
        masked = _mask(url, found)
        driver = found["name"]
        engine = driver.split("+")[0].lower()
        if engine not in _DRIVERS:
            raise ConfigError(
                f"unsupported database '{engine}' in DATABASE_URL '{masked}'",
                f"planctl supports {SUPPORTED_DATABASES}",
            )
        if driver not in _DRIVERS[engine]:  # SQLAlchemy's names are case-sensitive
            if driver.startswith("postgresql+"):
                raise ConfigError(
                    f"driver '{driver.partition('+')[2]}' is not installed for "
                    f"DATABASE_URL '{masked}'",
                    "use postgresql+psycopg:// (or plain postgresql://)",
                )
            raise ConfigError(
                f"unknown database driver '{driver}' in DATABASE_URL '{masked}'",
                "use sqlite:/// or postgresql+psycopg:// (psycopg 3 ships with planctl)",
            )
        port = found["port"]
        try:
            urlsplit(url).port  # noqa: B018  (a bad IPv6 host, a port out of range)
        except ValueError as error:
            raise _malformed(masked) from error
        if port is not None and not (port.isascii() and port.isdigit()):  # "h:/db" too
            raise _malformed(masked)
        query = tuple(parse_qsl(found["query"] or "", keep_blank_values=True))
        database = unquote(found["database"]) if found["database"] is not None else None
        target = cls(
            engine="sqlite" if engine == "sqlite" else "postgresql",
            url=url,
            driver=driver,
            database=database,
            host=found["ipv4host"] or found["ipv6host"],
            port=int(port) if port else None,
            user=unquote(found["username"]) if found["username"] is not None else None,
            password=unquote(found["password"]) if found["password"] is not None else None,
            query=query,
            pg_bindir=pg_bindir,
            masked=masked,
        )
        if target.engine == "sqlite":
            return replace(target, sqlite_file=target._check_sqlite())
        return target

    def _check_sqlite(self) -> Path:
        """The SQLite file, after the checks of its URL's query and of the path itself."""
        masked = self.masked
        database = self.database or ""
        if "\0" in database:
            raise ConfigError(
                f"DATABASE_URL '{masked}' holds a NUL byte in its path", "give a plain file path"
            )
        query = dict(self.query)
        uri = query.get("uri", "").lower() == "true"
        found_path = _printable(urlsplit(self.url).path[1:])
        for key, value in query.items():
            if key in _SQLITE_DRIVER_ARGS:
                continue
            if key not in _SQLITE_URI_ARGS:
                raise ConfigError(
                    f"unknown query argument '{_printable(key)}' in DATABASE_URL '{masked}'",
                    "SQLite URLs take timeout=, or uri=true with mode=, cache=, immutable=…",
                )
            allowed = _SQLITE_URI_ARGS[key]
            if allowed is not None and value not in allowed:
                raise ConfigError(
                    f"bad value '{_printable(value)}' for {key} in DATABASE_URL '{masked}'",
                    f"use one of {', '.join(allowed)}",
                )
            if not uri:
                raise ConfigError(
                    f"query argument '{key}' in DATABASE_URL '{masked}' needs uri=true",
                    f"use sqlite:///file:{found_path or 'planificador.db'}"
                    f"?{key}={_printable(value)}&uri=true, or remove it",
                )
        if uri and database.startswith("file:"):
            database = database.removeprefix("file:")
        if database in ("", ":memory:") or query.get("mode") == "memory":
            raise ConfigError(
                f"DATABASE_URL '{masked}' is an in-memory SQLite database",
                "planctl works on a file: sqlite:///path/to/planificador.db",
            )
        path = Path(database)
        try:
            mode = path.expanduser().stat().st_mode
        except FileNotFoundError:
            return path  # not there (yet): db-upgrade creates it, the others say it is missing
        except RuntimeError as error:  # ~user of a user this system does not know
            raise ConfigError(
                f"DATABASE_URL '{masked}' names an unknown home directory",
                "give the database file's full path",
            ) from error
        except OSError as error:  # a name too long, a loop of links, a component that is a file
            shown = _printable(database if len(database) <= 80 else database[:77] + "…")
            raise ConfigError(
                f"DATABASE_URL names '{shown}', which cannot be used: {error.strerror}",
                "point it at a SQLite database file",
            ) from error
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"DATABASE_URL '{masked}' names '{_printable(database)}', "
                "which is not a regular file",
                "point it at a SQLite database file",
            )
        return path

    @classmethod
    def sqlite(cls, path: Path) -> Target:
        """The SQLite file at *path* (a scratch copy, a restored file)."""
        return cls.parse(f"sqlite:///{quote(str(path))}")

    @property
    def is_sqlite(self) -> bool:
        return self.engine == "sqlite"

    @property
    def plain_sqlite_file(self) -> Path | None:
        """The file of a plain ``sqlite:///path`` URL (no query, no escapes), else None:
        what the sqlite3 driver alone can open (``export csv``, ``db-info``)."""
        return self.sqlite_file if _PLAIN_SQLITE_URL.fullmatch(self.url) else None

    def option(self, key: str) -> str | None:
        """The query argument *key* when given once (``host``, ``sslmode``…), else None."""
        values = [value for name, value in self.query if name == key]
        return values[0] if len(values) == 1 else None

    @cached_property
    def sqlalchemy_url(self) -> URL:
        """SQLAlchemy's URL for this target, built on first use (imports SQLAlchemy)."""
        from sqlalchemy import make_url

        return make_url(self.url)

    def with_database(self, name: str) -> Target:
        """The same server and credentials, database *name* (a scratch or admin database)."""
        if self.engine != "postgresql":
            raise ValueError("with_database is for PostgreSQL targets")
        found = _URL.match(self.url)
        assert found is not None  # parsed before
        if found["database"] is not None:
            head = self.url[: found.start("database") - 1]
        elif found["query"] is not None:
            head = self.url[: found.start("query") - 1]
        else:
            head = self.url
        rest = f"?{found['query']}" if found["query"] is not None else ""
        url = f"{head}/{quote(name, safe='')}{rest}"
        return Target.parse(url, pg_bindir=self.pg_bindir)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password(s) this URL holds, for scrubbing a driver's or a tool's message."""
        found = [self.password, url_password(self.url), self.option("password")]
        return tuple(dict.fromkeys(s for s in found if s))

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Target({self.masked!r})"


def _mask(url: str, found: re.Match[str]) -> str:
    """*url* with the password the driver would read (and any a reader might think is
    one, :func:`planctl.config.mask_url`) replaced by ``***``."""
    if found["password"]:
        url = f"{url[: found.start('password')]}***{url[found.end('password') :]}"
    return _printable(mask_url(url))
