"""Per-service log files: names, format, masking, permissions."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from planctl.logs import close_service_loggers, service_logger

from .conftest import Cli

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| INFO \| planctl\.(\w+) \| (.*)$")


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
