"""Engines for SQLite and PostgreSQL, and driver errors translated for humans.

SQLite connections enable ``PRAGMA foreign_keys=ON`` and get real transactions
around DDL (the pysqlite driver otherwise commits implicitly before DDL), so a
failed migration leaves nothing half-applied on either engine.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection

from planctl.config import mask_secret
from planctl.errors import DatabaseError
from planctl.failures import Failure, classify, driver_error
from planctl.target import Target

# SQLite stores Numeric as text-compatible REAL; planctl keeps Decimal at the
# edges and knows that, so the per-statement warning is noise.
warnings.filterwarnings("ignore", message=r".*does \*not\* support Decimal objects natively")


def check_sqlite_target(target: Target, *, create: bool = True) -> None:
    """Fail early and clearly when a SQLite file cannot be opened or created."""
    path = target.sqlite_file
    if path is None:
        return
    if path.exists():
        if path.is_dir():
            raise DatabaseError(
                f"SQLite database '{path}' is a directory", "point DATABASE_URL at a file"
            )
        if not os.access(path, os.R_OK):
            raise DatabaseError(
                f"cannot read SQLite database '{path}'", "check the file's permissions"
            )
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise DatabaseError(
            f"directory '{directory}' of SQLite database '{path.name}' does not exist",
            "create it or fix DATABASE_URL",
        )
    if create and not os.access(directory, os.W_OK | os.X_OK):
        raise DatabaseError(
            f"cannot create SQLite database '{path}': directory '{directory}' is read-only",
            "choose a writable directory in DATABASE_URL",
        )
    if not create:
        raise DatabaseError(
            f"SQLite database '{path}' does not exist", "run planctl db-upgrade to create it"
        )


#: How long a SQLite statement waits for another connection's lock (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 5000
#: What every PostgreSQL transaction of planctl pins: a transaction-mode pooler
#: (PgBouncer) hands out server connections on which pg_dump/pg_restore left
#: ``search_path`` empty, and planctl's tables would vanish from its queries.
PG_SEARCH_PATH = '"$user", public'


def _install_sqlite_hooks(engine: Engine, *, foreign_keys: bool, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so DDL is transactional too.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    # IMMEDIATE takes the write lock at BEGIN, where the busy timeout applies. A
    # deferred transaction that reads first and writes later fails at once with
    # "database is locked" when another writer committed in between (WAL).
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        lock_timeout = connection.get_execution_options().get("planctl_lock_timeout")
        if lock_timeout is not None:  # before BEGIN IMMEDIATE, whose wait it bounds
            connection.exec_driver_sql(f"PRAGMA busy_timeout={max(1, int(lock_timeout * 1000))}")
        connection.exec_driver_sql(begin)


def _install_postgres_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("planctl_transaction")
        if mode:  # must come before any query of the transaction
            connection.exec_driver_sql(f"SET TRANSACTION {mode}")
        connection.exec_driver_sql(
            "SELECT pg_catalog.set_config('search_path', %(path)s, true)",
            {"path": PG_SEARCH_PATH},
        )
        lock_timeout = connection.get_execution_options().get("planctl_lock_timeout")
        if lock_timeout is not None:  # planctl.db.lockwait: one attempt's wait for a lock
            from planctl.db.lockwait import pg_settings

            version = connection.dialect.server_version_info or (0,)
            for name, value in pg_settings(lock_timeout, int(version[0])).items():
                connection.exec_driver_sql(
                    "SELECT pg_catalog.set_config(%(name)s, %(value)s, true)",
                    {"name": name, "value": value},
                )


def make_engine(
    target: Target, *, foreign_keys: bool = True, immediate: bool = False, **kwargs: Any
) -> Engine:
    """An Engine for *target*, configured the way planctl expects.

    *foreign_keys* is turned off only by the migration runner: SQLite batch
    migrations recreate tables, and with enforcement on, dropping a parent
    table would cascade-delete its children.
    """
    url = target.sqlalchemy_url
    if target.is_sqlite:
        engine = create_engine(url, **kwargs)
        _install_sqlite_hooks(engine, foreign_keys=foreign_keys, immediate=immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", False)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("connect_timeout", 10)
    connect_args.setdefault("application_name", "planctl")
    # No server-side prepared statements: a transaction-mode pooler (PgBouncer) hands
    # the server connection on, and psycopg's automatic PREPARE after five runs of one
    # statement then collides ("prepared statement _pg3_0 already exists").
    connect_args.setdefault("prepare_threshold", None)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    _install_postgres_hooks(engine)
    return engine


_MESSAGES: dict[Failure, tuple[str, str]] = {
    Failure.AUTH_FAILED: (
        "authentication failed for {url}",
        "check the user and password in DATABASE_URL",
    ),
    Failure.NO_DATABASE: (
        "database does not exist: {url}",
        "create it (createdb) or fix DATABASE_URL",
    ),
    Failure.UNREACHABLE: (
        "cannot connect to {url}: server unreachable",
        "is PostgreSQL running and is the host/port in DATABASE_URL right?",
    ),
    Failure.NO_TABLE: (
        "{url} has no planner schema (a table is missing)",
        "run planctl db-upgrade first",
    ),
    Failure.CANNOT_OPEN: (
        "cannot open SQLite database {url}",
        "check that the directory exists and is writable",
    ),
    Failure.READ_ONLY: (
        "database {url} is read-only",
        "check the file's and directory's permissions, or the role's rights",
    ),
    Failure.LOCKED: ("database {url} is locked by another process", "retry when it has finished"),
    Failure.NOT_A_DATABASE: (
        "{url} is not a SQLite database",
        "point DATABASE_URL at a planner database",
    ),
    Failure.CORRUPT: (
        "database {url} is damaged",
        "restore it from a backup (planctl backup restore)",
    ),
    Failure.DISK_FULL: (
        "database {url}: the disk is full",
        "free space where the database lives and retry",
    ),
}


def describe_db_error(error: BaseException, target: Target | None) -> DatabaseError:
    """Turn a driver error into a one-line :class:`DatabaseError` with a hint, by the
    driver's error code (:func:`planctl.failures.classify`)."""
    masked = target.masked if target is not None else ""
    failure = classify(error)
    if failure in _MESSAGES:
        message, hint = _MESSAGES[failure]
        described = DatabaseError(message.format(url=masked), hint)
    else:
        text = " ".join(str(driver_error(error)).split())
        for secret in target.secrets if target is not None else ():
            text = mask_secret(text, secret)
        described = DatabaseError(f"database error on {masked}: {text}")
    described.failure = failure
    return described


@contextmanager
def translate_db_errors(target: Target) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors as :class:`DatabaseError`."""
    try:
        yield
    except exc.DBAPIError as error:
        raise describe_db_error(error, target) from error
    except exc.SQLAlchemyError as error:
        raise describe_db_error(error, target) from error


@contextmanager
def connect(
    target: Target,
    *,
    create: bool = False,
    foreign_keys: bool = True,
    immediate: bool = False,
    snapshot: bool = False,
    read_only: bool = False,
    lock_timeout: float | None = None,
) -> Iterator[Connection]:
    """A connection in a transaction that commits on success; errors translated.

    With *immediate* (SQLite), the transaction takes the write lock when it
    begins, waiting up to the busy timeout for a busy planner app. With
    *snapshot* (PostgreSQL), it is REPEATABLE READ (one snapshot for every
    query), READ ONLY too with *read_only*. With *lock_timeout* (seconds), a lock
    wait in the transaction gives up after that long (PostgreSQL ``lock_timeout``,
    SQLite's busy timeout): one attempt of :func:`planctl.db.lockwait.retry`.

    With *create* false, a SQLite file that does not exist yet is an error
    instead of being silently created empty.
    """
    if target.is_sqlite:
        check_sqlite_target(target, create=create)
    engine = make_engine(target, foreign_keys=foreign_keys, immediate=immediate)
    mode = None
    if snapshot and not target.is_sqlite:
        mode = "ISOLATION LEVEL REPEATABLE READ" + (", READ ONLY" if read_only else "")
    try:
        with translate_db_errors(target), engine.connect() as connection:
            if mode:
                connection.execution_options(planctl_transaction=mode)
            if lock_timeout is not None:
                connection.execution_options(planctl_lock_timeout=lock_timeout)
            with connection.begin():
                yield connection
    finally:
        engine.dispose()
