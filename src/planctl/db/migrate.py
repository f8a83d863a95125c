"""Migration runner over Alembic's Python API (the ``db-*`` commands call these).

The Alembic environment is found either inside the installed package
(``planctl/migrations``, shipped in the wheel) or at the top of a source
checkout (``migrations/``). The live connection travels to ``env.py`` in
``Config.attributes``, so every command runs in one transaction. That
transaction is one attempt of :func:`planctl.db.lockwait.retry`: its lock
waits are short, and a run that gives up leaves the schema as it was.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from planctl.config import mask_url
from planctl.db import lockwait
from planctl.db.engine import connect, parse_url
from planctl.db.lockwait import LockWait
from planctl.db.revisions import head_revision, migrations_dir
from planctl.errors import MigrationError, UsageError, VerificationError
from planctl.failures import MigrationFailure, classify_migration
from planctl.text import plural

if TYPE_CHECKING:
    from alembic.script import Script

log = logging.getLogger("planctl.migrations")

FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"


def alembic_config(database_url: str, *, stdout: TextIO | None = None) -> Config:
    """An Alembic Config pointing at planctl's migrations and *database_url*."""
    config = Config(stdout=stdout or io.StringIO())
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.set_main_option("timezone", "UTC")
    config.attributes["planctl"] = True
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory(str(migrations_dir()))


@contextmanager
def _migration_connection(
    database_url: str, *, create: bool, lock_timeout: float | None = None
) -> Iterator[Connection]:
    """One transaction for a whole migration run; on SQLite, foreign keys are
    enforced by a final check instead of row by row (batch mode recreates tables).
    With *lock_timeout*, it writes: SQLite takes the write lock at BEGIN, and
    every lock wait gives up after *lock_timeout* seconds."""
    with connect(
        database_url,
        create=create,
        foreign_keys=False,
        immediate=lock_timeout is not None,
        lock_timeout=lock_timeout,
    ) as connection:
        yield connection
        if connection.dialect.name == "sqlite":
            _check_foreign_keys(connection)


def _check_foreign_keys(connection: Connection) -> None:
    """After a SQLite migration ran without enforcement, prove nothing dangles."""
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        tables = sorted({row[0] for row in problems})
        raise MigrationError(
            f"migration would leave {plural(len(problems), 'row')} with broken foreign keys in "
            f"{', '.join(tables)}; rolled back",
            "fix the data or the migration and retry",
        )


def _run(
    database_url: str,
    action: str,
    fn: Any,
    *args: Any,
    create: bool = False,
    lock_wait: LockWait | None = None,
    **kwargs: Any,
) -> None:
    if args and isinstance(args[0], str):
        _require_revision(args[0], action.split()[0])

    def attempt(seconds: float) -> None:
        config = alembic_config(database_url)
        with _migration_connection(database_url, create=create, lock_timeout=seconds) as connection:
            config.attributes["connection"] = connection
            fn(config, *args, **kwargs)

    try:
        target = lockwait.target_for(database_url)
        lockwait.retry(lock_wait or LockWait(), target, action, attempt)
    except CommandError as error:
        raise _describe_command_error(error, action) from error
    except AssertionError as error:  # Alembic asserts on some malformed revision strings
        raise MigrationError(
            f"{action} failed: '{args[0] if args else ''}' is not a usable revision",
            "planctl db-history lists the revisions",
        ) from error
    log.info("%s on %s", action, mask_url(database_url))


def _require_revision(revision: str, action: str) -> None:
    if not revision.strip():
        raise UsageError(
            f"{action}: the revision is empty",
            "give a revision id (planctl db-history), head, base or a relative step like -1",
        )


def _describe_command_error(error: CommandError, action: str) -> MigrationError:
    text = " ".join(str(error).split())
    failure = classify_migration(error)
    if failure is MigrationFailure.UNKNOWN_REVISION:
        return MigrationError(f"{action} failed: {text}", "planctl db-history lists the revisions")
    if failure is MigrationFailure.OUT_OF_RANGE:
        return MigrationError(
            f"{action} failed: cannot go below the first revision ({text})",
            "planctl db-current shows where the database is",
        )
    return MigrationError(f"{action} failed: {text}")


def upgrade(
    database_url: str, revision: str = "head", *, lock_wait: LockWait | None = None
) -> tuple[str | None, str | None]:
    """Upgrade to *revision*; returns (revision before, revision after).

    Lock waits follow *lock_wait* (default: 2 s attempts within 60 s).

    A SQLite database this creates is switched to WAL, so the planner app can
    keep writing while planctl reads (exports, backups); an existing one keeps
    its journal mode (``db-info`` shows it, the README says how to switch).
    """
    new_file = _new_sqlite_file(database_url)
    before = current(database_url, missing_ok=True)
    _run(
        database_url,
        f"upgrade to {revision}",
        command.upgrade,
        revision,
        create=True,
        lock_wait=lock_wait,
    )
    if new_file is not None and new_file.exists():
        set_wal(new_file)
    return before, current(database_url)


def _new_sqlite_file(database_url: str) -> Path | None:
    """The SQLite file an upgrade would create, or None (PostgreSQL, memory, file exists)."""
    from planctl.db.engine import sqlite_path

    path = sqlite_path(parse_url(database_url))
    return path if path is not None and not path.exists() else None


def set_wal(path: Path) -> None:
    """Switch a SQLite file to write-ahead logging (it stays so: the mode is in the file)."""
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        connection.close()
    if str(mode).lower() != "wal":
        raise MigrationError(f"could not switch '{path}' to WAL (still {mode})")


def journal_mode(database_url: str) -> str | None:
    """SQLite's journal mode (``wal``, ``delete``, …) of *database_url*; None for PostgreSQL."""
    with connect(database_url) as connection:
        if connection.dialect.name != "sqlite":
            return None
        return str(connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()).lower()


def upgrade_sql(database_url: str, revision: str = "head", start: str | None = None) -> str:
    """The SQL an upgrade would run (Alembic offline mode), without touching the database."""
    out = io.StringIO()
    config = alembic_config(database_url, stdout=out)
    config.attributes["sql_output"] = out
    target = f"{start}:{revision}" if start else revision
    try:
        command.upgrade(config, target, sql=True)
    except CommandError as error:
        raise _describe_command_error(error, f"upgrade to {revision}") from error
    return out.getvalue()


def downgrade(
    database_url: str, revision: str = "-1", *, lock_wait: LockWait | None = None
) -> tuple[str | None, str | None]:
    """Downgrade to *revision* (default: one step); returns (before, after)."""
    _require_revision(revision, "downgrade")
    before = current(database_url)
    if before is None and revision != "base":
        raise MigrationError(
            f"cannot downgrade {mask_url(database_url)}: it has no schema revision",
            "nothing to undo; planctl db-upgrade creates the schema",
        )
    _run(
        database_url,
        f"downgrade to {revision}",
        command.downgrade,
        revision,
        lock_wait=lock_wait,
    )
    return before, current(database_url)


def stamp(database_url: str, revision: str, *, lock_wait: LockWait | None = None) -> str | None:
    """Record *revision* as current without running migrations."""
    # never creates a file
    _run(database_url, f"stamp {revision}", command.stamp, revision, lock_wait=lock_wait)
    return current(database_url)


def current(database_url: str, *, missing_ok: bool = False) -> str | None:
    """The database's revision, or None for an empty (unversioned) database."""
    url = parse_url(database_url)
    if url.get_backend_name() == "sqlite" and missing_ok:
        from planctl.db.engine import sqlite_path

        path = sqlite_path(url)
        if path is not None and not path.exists():
            return None
    with _migration_connection(database_url, create=False) as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return heads[0] if heads else None


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    down_revision: str | None
    message: str
    created: dt.datetime | None
    is_head: bool
    is_current: bool = False


def revision_hint(wanted: str | None, current: str | None) -> str:
    """How to bring a database at *current* to *wanted* (a backup's revision) before a
    restore that needs the same schema: ``run planctl db-downgrade <wanted> first`` when
    the database is newer, ``db-upgrade`` when older."""
    if wanted is None:
        return "restore it into a database without an Alembic revision"
    scripts = script_directory()
    known = {s.revision for s in scripts.walk_revisions()}
    if wanted not in known:
        return f"this planctl does not know revision {wanted}; upgrade planctl first"
    older = current is not None and any(
        s.revision == wanted for s in scripts.iterate_revisions(current, "base")
    )
    command = "db-downgrade" if older else "db-upgrade"
    return f"run planctl {command} {wanted} first"


def history(current_revision: str | None = None) -> list[RevisionInfo]:
    """All revisions, newest first."""
    scripts: list[Script] = list(script_directory().walk_revisions())
    result = []
    for script in scripts:
        parent = script.down_revision
        down = ",".join(parent) if isinstance(parent, (tuple, list)) else parent
        result.append(
            RevisionInfo(
                revision=script.revision,
                down_revision=down,
                message=(script.doc or "").strip(),
                created=_create_date(script),
                is_head=script.is_head,
                is_current=script.revision == current_revision,
            )
        )
    return result


def _create_date(script: Script) -> dt.datetime | None:
    """The script's ``Create Date:`` line (UTC when it names no offset)."""
    path = Path(script.path)
    for line in path.read_text(encoding="utf-8").splitlines()[:12]:
        if line.startswith("Create Date:"):
            try:
                moment = dt.datetime.fromisoformat(line.partition(":")[2].strip())
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


def revision(database_url: str, message: str, *, autogenerate: bool = False) -> Path:
    """Write a new revision script; with *autogenerate*, diff the models against the database.

    Only in a source checkout: in an installed planctl the new script would land in
    site-packages and move head for every user of that installation.
    """
    if not message.strip() or not message.isprintable():
        raise UsageError(
            "--message must be a line of text (it becomes the script's docstring and name)",
            "e.g. -m 'add sesiones.aula'",
        )
    directory = migrations_dir() / "versions"
    if {"site-packages", "dist-packages"} & set(directory.parts):
        raise MigrationError(
            f"db-revision writes migrations into a source checkout, not into {directory}",
            "run it from a clone of planctl's repository (pip install -e .)",
        )
    config = alembic_config(database_url)
    try:
        if autogenerate:
            with _migration_connection(database_url, create=True) as connection:
                config.attributes["connection"] = connection
                config.attributes["autogenerate"] = True
                scripts = command.revision(config, message=message, autogenerate=True)
        else:
            scripts = command.revision(config, message=message)
    except CommandError as error:
        raise _describe_command_error(error, "revision") from error
    script = (scripts[0] if scripts else None) if isinstance(scripts, list) else scripts
    if script is None:
        raise MigrationError(
            "no changes detected between the models and the database",
            "no revision written; edit planctl/db/schema.py first",
        )
    log.info("new revision %s in %s", script.revision, directory)
    return Path(script.path)


@dataclass(frozen=True)
class CheckResult:
    revision: str | None
    head: str | None
    differences: list[str]

    @property
    def at_head(self) -> bool:
        return self.revision == self.head

    @property
    def ok(self) -> bool:
        return self.at_head and not self.differences


def compare(database_url: str, metadata: MetaData | None = None) -> CheckResult:
    """Compare the database with the models and with head (no writes)."""
    from alembic.autogenerate import compare_metadata

    from planctl.db.schema import metadata as model_metadata

    target = model_metadata if metadata is None else metadata
    head = head_revision()
    with _migration_connection(database_url, create=False) as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "render_as_batch": True, "include_name": _include_name},
        )
        heads = context.get_current_heads()
        revision = heads[0] if heads else None
        diffs = compare_metadata(context, target) if revision is not None else []
    return CheckResult(revision, head, [_describe_diff(d) for d in diffs])


def check(database_url: str, metadata: MetaData | None = None) -> CheckResult:
    """Like :func:`compare`, but raise :class:`VerificationError` on any drift."""
    result = compare(database_url, metadata)
    masked = mask_url(database_url)
    if result.revision is None:
        raise VerificationError(
            f"database {masked} has no schema (no Alembic revision)",
            "run planctl db-upgrade",
        )
    if not result.at_head:
        raise VerificationError(
            f"database {masked} is at revision {result.revision}, head is {result.head}",
            "run planctl db-upgrade",
        )
    if result.differences:
        raise VerificationError(
            f"database {masked} differs from the models in {len(result.differences)} places: "
            + "; ".join(result.differences[:5]),
            "write a migration with planctl db-revision --autogenerate",
        )
    return result


def _include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Ignore tables planctl does not own (only for autogenerate/compare)."""
    if type_ == "table":
        from planctl.db.schema import metadata as model_metadata

        return name in model_metadata.tables
    return True


def _describe_diff(diff: Any) -> str:
    if isinstance(diff, list):  # column modifications come grouped
        return ", ".join(_describe_diff(d) for d in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind} {diff[1].name}"
    if kind in ("add_column", "remove_column"):
        return f"{kind} {diff[2]}.{diff[3].name}"
    if kind in ("add_index", "remove_index"):
        return f"{kind} {diff[1].name}"
    if kind.startswith("modify_"):
        return f"{kind} {diff[2]}.{diff[3]}"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        return f"{kind} {getattr(diff[1], 'name', diff[1])}"
    return str(kind)
