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
        environ={"DATABASE_URL": "  ", "PLANCTL_LOG_DIR": ""}, dotenv_path=tmp_path / "x"
    )
    assert settings.database_url == DEFAULTS["DATABASE_URL"]
    assert settings.log_dir == Path("logs")


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
    assert settings.sync_store == Path("planificador.db.calendario_simulado.json").absolute()
    assert settings.sync_store_is_default
    assert settings.caldav_url == "" and settings.caldav_calendar == "Planificador"
    assert settings.secrets == ()


def test_a_bad_time_zone_is_one_line_naming_its_source(tmp_path: Path) -> None:
    from planctl.config import load_settings
    from planctl.errors import ConfigError

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
    from planctl.errors import ConfigError

    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"DATABASE_URL=\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings({}, dotenv_path=dotenv)
