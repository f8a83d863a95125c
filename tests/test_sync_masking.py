"""Masking by construction: URL userinfo is masked by structure; nothing else is rewritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from planctl.config import mask_url, url_password
from planctl.logs import close_service_loggers, mask_url_in_text

from .conftest import Cli
from .helpers import free_port


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://ana:e@cloud.example.com/dav", "https://ana:***@cloud.example.com/dav"),
        ("https://ana:p@ss:w@rd@host/dav/", "https://ana:***@host/dav/"),  # '@' in the password
        ("https://ana@host/dav", "https://ana@host/dav"),
        ("https://ana:@host/dav", "https://ana:@host/dav"),
        ("https://host/a@b", "https://host/a@b"),  # an '@' after the authority is not userinfo
        ("https://zoom.example.com/j/1?pwd=abc", "https://zoom.example.com/j/1?pwd=***"),
        ("mailto:ana@example.com", "mailto:ana@example.com"),
    ],
)
def test_mask_url_is_structural(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_password_with_at_signs_is_read_whole() -> None:
    assert url_password("https://ana:p@ss:w@rd@host/dav/") == "p@ss:w@rd"
    assert url_password("https://ana@host/") is None


def test_masking_never_touches_unrelated_text() -> None:
    text = "moved to https://zoom.example.com/j/1 by https://ana:e@cloud.example.com/dav"
    assert mask_url_in_text(text) == (
        "moved to https://zoom.example.com/j/1 by https://ana:***@cloud.example.com/dav"
    )


def test_a_one_character_password_does_not_garble_messages(
    workdir: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, migrated_url: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("PLANCTL_SYNC_BACKEND", "caldav")
    monkeypatch.setenv("PLANCTL_CALDAV_URL", f"http://planner:1@127.0.0.1:{port}/dav/")
    monkeypatch.setenv("PLANCTL_CALDAV_USER", "planner")
    monkeypatch.setenv("PLANCTL_CALDAV_PASSWORD", "1")
    run = cli("sync")
    assert run.exit_code == 1
    assert f"http://planner:***@127.0.0.1:{port}/dav/" in run.stderr
    assert "***27" not in run.stderr and "0.***" not in run.stderr
    close_service_loggers()
    log = (tmp_path / "logs" / "sincronizacion.log").read_text(encoding="utf-8")
    assert f"127.0.0.1:{port}" in log and "planner:1@" not in log
