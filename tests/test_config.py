"""Settings: defaults, .env versus the environment, masking of secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from planctl.config import (
    DEFAULTS,
    load_settings,
    mask_url,
    normalize_database_url,
    read_environment,
)
from planctl.errors import ConfigError

from .conftest import Cli


def test_defaults_without_env_or_dotenv(tmp_path: Path) -> None:
    settings = load_settings(environ={}, dotenv_path=tmp_path / "missing.env")
    assert settings.database_url == "sqlite:///planificador.db"
    assert settings.backup_dir == Path("backups")
    assert settings.log_dir == Path("logs")
    assert settings.timezone == "Europe/Madrid"
    assert settings.sync_backend == "simulated"


def test_dotenv_in_working_directory_is_read(workdir: Path) -> None:
    (workdir / ".env").write_text(
        "DATABASE_URL=sqlite:///from_dotenv.db\nPLANCTL_TIMEZONE=Atlantic/Canary\n"
    )
    settings = load_settings()
    assert settings.database_url == "sqlite:///from_dotenv.db"
    assert settings.timezone == "Atlantic/Canary"


def test_environment_wins_over_dotenv(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text(
        "DATABASE_URL=sqlite:///from_dotenv.db\nPLANCTL_BACKUP_DIR=dotenv_backups\n"
    )
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from_env.db")
    settings = load_settings()
    assert settings.database_url == "sqlite:///from_env.db"
    assert settings.backup_dir == Path("dotenv_backups")  # not overridden, still from .env


def test_dotenv_is_not_pushed_into_os_environ(workdir: Path) -> None:
    import os

    (workdir / ".env").write_text("PLANCTL_SYNC_BACKEND=caldav\n")
    assert read_environment()["PLANCTL_SYNC_BACKEND"] == "caldav"
    assert "PLANCTL_SYNC_BACKEND" not in os.environ


def test_empty_values_fall_back_to_defaults(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"PLANCTL_LOG_DIR": "", "PLANCTL_LOCK_WAIT": ""}, dotenv_path=tmp_path / "x"
    )
    assert settings.database_url == DEFAULTS["DATABASE_URL"]
    assert settings.log_dir == Path("logs")
    assert settings.lock_wait == 60


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_database_url_is_refused_not_read_as_the_default(
    tmp_path: Path, value: str
) -> None:
    """An empty DATABASE_URL is a broken setting (a cron line's unset variable), not a
    request for the default database in the working directory."""
    with pytest.raises(ConfigError, match="DATABASE_URL is set but empty") as caught:
        load_settings(environ={"DATABASE_URL": value}, dotenv_path=tmp_path / "x")
    assert "(set in the environment)" in caught.value.message


def test_an_unreadable_or_unparsable_dotenv_is_one_line_naming_it(
    workdir: Path, cli: Cli
) -> None:
    env = workdir / ".env"
    env.symlink_to(".env")  # a loop of links
    run = cli("db-info")
    assert run.exit_code == 1
    assert run.stderr == (
        f"error: cannot read {env}: Too many levels of symbolic links — "
        "fix or remove the .env file (or its link)\n"
    )
    env.unlink()
    env.write_text('DATABASE_URL=sqlite:///x.db\nthis is not a setting\nB="open\n')
    run = cli("db-info")
    assert run.exit_code == 1
    assert run.stderr == (
        f"error: cannot parse {env} line 2: 'this is not a setting' — write NAME=value, "
        "one setting a line; quote values with spaces\n"
    )
    assert not (workdir / "x.db").exists()


def test_cli_reads_dotenv(workdir: Path, cli: Cli) -> None:
    (workdir / ".env").write_text("DATABASE_URL=sqlite:///dotenv.db\n")
    run = cli("db-upgrade")
    assert run.exit_code == 0, run.stderr
    assert (workdir / "dotenv.db").exists()
    assert not (workdir / "planificador.db").exists()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://app:s3cret@db.example.com:5432/planner",
            "postgresql://app:***@db.example.com:5432/planner",
        ),
        ("postgresql+psycopg://app:p%40ss@host/db", "postgresql+psycopg://app:***@host/db"),
        ("postgresql://app@host/db", "postgresql://app@host/db"),
        (
            "postgresql://host/db?user=app&password=hunter2",
            "postgresql://host/db?user=app&password=***",
        ),
        ("sqlite:///planificador.db", "sqlite:///planificador.db"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_settings_repr_never_shows_the_password() -> None:
    settings = load_settings(
        environ={"DATABASE_URL": "postgresql://app:s3cret@h/db"}, dotenv_path="/nonexistent"
    )
    assert "s3cret" not in repr(settings)
    assert settings.masked_url == "postgresql+psycopg://app:***@h/db"


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_bare_postgres_urls_use_psycopg3(url: str, normal: str) -> None:
    assert normalize_database_url(url) == normal


def test_db_info_masks_the_password(cli: Cli, pg_admin_url: str) -> None:
    # The local server trusts loopback, so any password connects: it must never be shown.
    url = pg_admin_url.replace("postgres@", "postgres:Hunter2Secret@", 1)
    run = cli("db-info", url=url)
    assert run.exit_code == 0, run.stderr
    assert "Hunter2Secret" not in run.stdout + run.stderr
    assert "postgres:***@" in run.stdout
    run = cli("db-info", "--json", url=url)
    assert "Hunter2Secret" not in run.stdout


def test_sync_settings_and_their_secrets(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "PLANCTL_SYNC_BACKEND": "caldav",
            "PLANCTL_CALDAV_URL": "https://planner:url-Secret@cloud.example.com/dav",
            "PLANCTL_CALDAV_USER": "planner",
            "PLANCTL_CALDAV_PASSWORD": " pw with spaces ",
            "PLANCTL_CALDAV_CALENDAR": "Formaciones",
        },
        dotenv_path=tmp_path / "missing.env",
    )
    assert settings.sync_backend == "caldav"
    assert settings.caldav_password == " pw with spaces "  # not stripped
    assert settings.caldav_calendar == "Formaciones"
    assert settings.secrets == ("url-Secret", " pw with spaces ")
    shown = repr(settings)
    assert "url-Secret" not in shown and "pw with spaces" not in shown
    assert "caldav_password='***'" in shown


def test_sync_defaults(tmp_path: Path) -> None:
    settings = load_settings(environ={}, dotenv_path=tmp_path / "missing.env")
    # next to the (default, relative) SQLite database, made absolute at load time
    assert settings.sync_store == Path("planificador.db.planctl-calendar.sqlite").absolute()
    assert settings.sync_store_is_default
    former = Path("planificador.db.calendario_simulado.json").absolute()
    assert settings.sync_store_former == former  # moved to sync_store on first use
    assert settings.caldav_url == "" and settings.caldav_calendar == "Planificador"
    assert settings.secrets == ()


def test_a_bad_time_zone_is_one_line_naming_its_source(tmp_path: Path) -> None:
    from planctl.config import load_settings

    with pytest.raises(
        ConfigError, match=r"'Mars/Base' in PLANCTL_TIMEZONE \(set in the environment\)"
    ):
        load_settings({"PLANCTL_TIMEZONE": "Mars/Base"}, dotenv_path=tmp_path / "none")
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nPLANCTL_TIMEZONE=Mars/Base\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"set in .*\.env line 2"):
        load_settings({}, dotenv_path=dotenv)


def test_a_dotenv_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    from planctl.config import load_settings

    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"DATABASE_URL=\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings({}, dotenv_path=dotenv)


# --- every setting is checked once, at load, naming the variable and its source ----------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://u@h/db", "unsupported database 'mysql'"),
        ("DATABASE_URL", "garbage", "malformed DATABASE_URL"),
        ("DATABASE_URL", "postgresql://h:port/db", "malformed DATABASE_URL"),
        ("DATABASE_URL", "sqlite:///p.db?mode=bogus", "bad value 'bogus' for mode"),
        ("DATABASE_URL", "sqlite:///p.db?mode=ro", "'mode' in DATABASE_URL .* needs uri=true"),
        ("DATABASE_URL", "sqlite:///p.db?journal=wal", "unknown query argument 'journal'"),
        ("DATABASE_URL", "sqlite://", "is an in-memory SQLite database"),
        ("DATABASE_URL", "sqlite:///:memory:", "is an in-memory SQLite database"),
        ("DATABASE_URL", "sqlite:////dev/null", "'/dev/null', which is not a regular file"),
        ("DATABASE_URL", "sqlite:////tmp", "'/tmp', which is not a regular file"),
        ("DATABASE_URL", "sqlite:///%00x.db", "holds a NUL byte"),
        ("PLANCTL_TIMEZONE", "Mars/Base", "unknown time zone 'Mars/Base'"),
        ("PLANCTL_SYNC_BACKEND", "outlook", "unknown sync backend 'outlook'"),
            ("PLANCTL_GOOGLE_API_URL", "googleapis.com", "PLANCTL_GOOGLE_API_URL .* not an http"),
        ("PLANCTL_CALDAV_URL", "cloud.example.com/dav", "PLANCTL_CALDAV_URL .* not an http"),
        ("PLANCTL_BACKUP_PING_URL", "ftp://hc/x", "PLANCTL_BACKUP_PING_URL .* not an http"),
        ("PLANCTL_BACKUP_REMOTE", "ftp://host/x", "unsupported backup remote"),
        ("PLANCTL_BACKUP_REMOTE", "sftp://u:hunter2@host/x", "must not hold a password"),
        ("PLANCTL_BACKUP_REMOTE", "sftp://host/x", "needs a user and a host"),
        ("PLANCTL_BACKUP_REMOTE", "s3:///prefix", "no bucket"),
        ("PLANCTL_BACKUP_RECIPIENTS", "age1abc,,age1def", "bad age recipient"),
        ("PLANCTL_BACKUP_RECIPIENTS", "AGE-SECRET-KEY-1XYZ", "not an age1… key"),
        ("PLANCTL_PG_BINDIR", "/nonexistent/bin", "holds no pg_dump"),
        ("PLANCTL_LOCK_WAIT", "soon", "PLANCTL_LOCK_WAIT 'soon' is not a number of seconds"),
        ("PLANCTL_LOCK_WAIT", "0", "PLANCTL_LOCK_WAIT '0' is not a number of seconds"),
        ("PLANCTL_LOCK_WAIT", "inf", "PLANCTL_LOCK_WAIT 'inf' is not a number of seconds"),
        ("PLANCTL_BACKUP_DIR", "~no-such-user-here/b", "names an unknown home directory"),
        ("PLANCTL_SYNC_STORE", "~no-such-user-here/c.json", "names an unknown home directory"),
        ("PLANCTL_LOG_DIR", "x" * 5000, "cannot be used: File name too long"),
        ("DATABASE_URL", "sqlite:///" + "y" * 5000, "cannot be used: File name too long"),
    ],
)
def test_a_bad_setting_is_refused_at_load_naming_variable_and_source(
    tmp_path: Path, name: str, value: str, message: str
) -> None:

    with pytest.raises(ConfigError, match=message) as raised:
        load_settings({name: value}, dotenv_path=tmp_path / "none")
    assert "(set in the environment)" in raised.value.message
    assert raised.value.hint
    assert "hunter2" not in str(raised.value)

    dotenv = tmp_path / ".env"
    dotenv.write_text(f"# planctl\n\n{name}={value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as raised:
        load_settings({}, dotenv_path=dotenv)
    assert f"(set in {dotenv} line 3)" in raised.value.message


def test_paths_must_be_of_the_right_kind(tmp_path: Path) -> None:

    a_file, a_dir = tmp_path / "file", tmp_path / "dir"
    a_file.write_text("x")
    a_dir.mkdir()
    for name in ("PLANCTL_BACKUP_DIR", "PLANCTL_LOG_DIR", "PLANCTL_PG_BINDIR"):
        with pytest.raises(ConfigError, match=f"{name} '{a_file}' is not a directory"):
            load_settings({name: str(a_file)}, dotenv_path=tmp_path / "none")
    for name in ("PLANCTL_SYNC_STORE", "PLANCTL_BACKUP_IDENTITY"):
        with pytest.raises(ConfigError, match=f"{name} '{a_dir}' is a directory"):
            load_settings({name: str(a_dir)}, dotenv_path=tmp_path / "none")


def test_typed_settings(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_dump").write_text("#!/bin/sh\n")
    settings = load_settings(
        {
            "PLANCTL_TIMEZONE": "America/New_York",
            "PLANCTL_PG_BINDIR": str(bindir),
            "PLANCTL_SYNC_BACKEND": "CalDAV",
            "DATABASE_URL": "sqlite:///file:p.db?mode=ro&uri=true",
        },
        dotenv_path=tmp_path / "none",
    )
    assert settings.zone == ZoneInfo("America/New_York")
    assert settings.pg_bindir == bindir
    assert settings.sync_backend == "caldav"
    assert not hasattr(settings, "extra")
    assert settings.source("PLANCTL_TIMEZONE") == "PLANCTL_TIMEZONE, set in the environment"
    assert settings.source("PLANCTL_LOG_DIR") == "PLANCTL_LOG_DIR, set in the defaults"


def test_the_sync_backends_setting_knows_every_backend_module() -> None:
    from planctl.config import SYNC_BACKENDS
    from planctl.sync.backend import backend_names

    assert sorted(SYNC_BACKENDS) == backend_names()


def test_dotenv_is_found_in_the_nearest_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("PLANCTL_TIMEZONE=Atlantic/Canary\n", encoding="utf-8")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.delenv("PLANCTL_TIMEZONE", raising=False)
    settings = load_settings()
    assert settings.timezone == "Atlantic/Canary"
    assert (
        settings.source("PLANCTL_TIMEZONE")
        == f"PLANCTL_TIMEZONE, set in {tmp_path / '.env'} line 1"
    )
    # the nearest one wins, whole: a closer .env hides the farther one
    (deep / ".env").write_text("PLANCTL_LOG_DIR=here\n", encoding="utf-8")
    settings = load_settings()
    assert settings.timezone == DEFAULTS["PLANCTL_TIMEZONE"]
    assert settings.log_dir == Path("here")


def test_a_dotenv_that_is_a_fifo_is_refused_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os


    os.mkfifo(tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"\.env is not a regular file"):
        load_settings()


BAD_SETTINGS = [
    ("PLANCTL_TIMEZONE", "Mars/Base"),
    ("PLANCTL_BACKUP_REMOTE", "ftp://host/x"),
    ("DATABASE_URL", "sqlite:///planificador.db?mode=bogus"),
]
EVERY_KIND_OF_COMMAND = [
    ("db-info",),
    ("db-current",),
    ("backup", "list"),
    ("backup",),
    ("export", "csv", "sesiones", "-o", "s.csv"),
    ("export", "ical", "-o", "s.ics"),
    ("export", "pdf", "--since", "2026-01-01", "--until", "2026-01-31", "-o", "s.pdf"),
    ("sync", "status"),
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS)
def test_a_bad_setting_is_the_same_one_line_and_exit_code_for_every_command(
    tmp_path: Path, name: str, value: str
) -> None:
    import os

    from tests.helpers import run_planctl

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANCTL_", "DATABASE_"))}
    (tmp_path / ".env").write_text(f"{name}={value}\n", encoding="utf-8")
    for command in EVERY_KIND_OF_COMMAND:
        run = run_planctl(*command, env=env, cwd=tmp_path)
        lines = run.stderr.splitlines()
        assert run.returncode == 1, (command, run.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (command, run.stderr)
        assert f"set in {tmp_path / '.env'} line 1" in lines[0], (command, lines[0])
        assert "Traceback" not in run.stderr and "site-packages" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]  # nothing was created


def test_an_unwritable_log_dir_names_the_setting(tmp_path: Path) -> None:
    import os

    from tests.helpers import run_planctl

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANCTL_", "DATABASE_"))}
    run_planctl("db-upgrade", env=env, cwd=tmp_path).check_returncode()
    # /proc cannot hold directories, whoever runs the tests (root included)
    (tmp_path / ".env").write_text("PLANCTL_LOG_DIR=/proc/planctl-logs\n", encoding="utf-8")
    for command in (("backup",), ("export", "csv", "sesiones", "-o", "s.csv"), ("db-upgrade",)):
        run = run_planctl(*command, env=env, cwd=tmp_path)
        assert run.returncode == 1, run.stderr
        line = run.stderr.strip()
        assert line.startswith("error: cannot write log file '/proc/planctl-logs")
        assert f"(PLANCTL_LOG_DIR, set in {tmp_path / '.env'} line 1)" in line
        assert "\n" not in line
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "backups").exists()
