"""Per-service log files: names, format, masking, permissions."""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from planctl.logs import close_service_loggers, service_logger
from tests.helpers import planctl_env, run_planctl

from .conftest import Cli
from .helpers import target_of

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4} \| INFO \| planctl\.(\w+) \| (.*)$"
)


def test_each_service_writes_its_own_file(tmp_path: Path) -> None:
    try:
        for service, filename in [
            ("migrations", "migraciones.log"),
            ("export", "exportacion.log"),
            ("sync", "sincronizacion.log"),
            ("backup", "backup.log"),
        ]:
            service_logger(service, tmp_path).info("hello from %s", service)
            close_service_loggers()
            lines = (tmp_path / filename).read_text(encoding="utf-8").splitlines()
            match = LINE.match(lines[-1])
            assert match, lines[-1]
            assert match.groups() == (service, f"hello from {service}")
            assert stat.S_IMODE((tmp_path / filename).stat().st_mode) == 0o600
    finally:
        close_service_loggers()


def test_urls_and_secrets_are_masked_in_log_lines(tmp_path: Path) -> None:
    try:
        log = service_logger("backup", tmp_path, secrets=("TopSecret99",))
        log.info("connecting to %s", "postgresql://app:TopSecret99@db/planner")
        log.info("raw secret TopSecret99 in a message")
        close_service_loggers()
        text = (tmp_path / "backup.log").read_text(encoding="utf-8")
        assert "TopSecret99" not in text
        assert "postgresql://app:***@db/planner" in text
    finally:
        close_service_loggers()


def test_migrations_are_logged(cli: Cli, tmp_path: Path) -> None:
    run = cli("db-upgrade", url=f"sqlite:///{tmp_path / 'p.db'}")
    assert run.exit_code == 0, run.stderr
    close_service_loggers()
    text = (tmp_path / "logs" / "migraciones.log").read_text(encoding="utf-8")
    assert "| INFO | planctl.migrations | upgraded sqlite:///" in text


def test_help_creates_no_log_directory(cli: Cli, tmp_path: Path) -> None:
    assert cli("--help").exit_code == 0
    assert not (tmp_path / "logs").exists()


def test_a_short_secret_never_garbles_unrelated_text(tmp_path: Path) -> None:
    try:
        log = service_logger("sync", tmp_path, secrets=("xa",))
        log.info("joining https://zoom.example.com/j/1 with password xa; token=xa")
        close_service_loggers()
        text = (tmp_path / "sincronizacion.log").read_text(encoding="utf-8")
        assert "https://zoom.example.com/j/1" in text
        assert "password ***; token=***" in text and " xa" not in text
    finally:
        close_service_loggers()


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York"])
def test_log_times_are_in_the_configured_zone_with_the_offset(tmp_path: Path, zone: str) -> None:
    env = planctl_env(
        f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "b", tmp_path / "logs", PLANCTL_TIMEZONE=zone
    )
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run = run_planctl("-v", "db-upgrade", env=env)
    after = dt.datetime.now(dt.UTC)
    assert run.returncode == 0, run.stderr
    line = (tmp_path / "logs" / "migraciones.log").read_text(encoding="utf-8").splitlines()[-1]
    stamp = line.split(" | ")[0]  # 2026-11-25 15:21:01.352 -0500
    moment = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f %z")
    assert before <= moment <= after
    assert moment.utcoffset() == dt.datetime.now(ZoneInfo(zone)).utcoffset()
    # -v's lines on stderr show the same wall clock and offset.
    assert f"{moment:%z}" in run.stderr


def test_a_failed_watch_run_logs_its_traceback_with_passwords_masked(tmp_path: Path) -> None:
    """``backup watch`` keeps going after a failure, and backup.log shows what happened:
    the one-line message and the traceback with its cause, the password masked."""
    from planctl.backup import BackupManager
    from planctl.backup.manager import Schedule

    url = "postgresql://planner:Sekr3t-pw@127.0.0.1:1/planner"  # nothing listens on port 1
    logger = service_logger("backup", tmp_path / "logs", secrets=("Sekr3t-pw",))
    try:
        manager = BackupManager(
            target_of(url), tmp_path / "backups", schedule=Schedule(watch_changes=False)
        )
        assert manager.run_pending() is None and manager.consecutive_failures == 1
    finally:
        close_service_loggers()
    assert logger.name == "planctl.backup"
    text = (tmp_path / "logs" / "backup.log").read_text(encoding="utf-8")
    assert "| ERROR | planctl.backup | backup failed (1 in a row):" in text
    assert "Traceback (most recent call last):" in text
    assert "The above exception was the direct cause" in text  # the driver's error, chained
    assert "Sekr3t-pw" not in text and "planner:***@" in text
