"""The offsite settings: read once into Settings, the ping URL kept out of repr()."""

from __future__ import annotations

from pathlib import Path

from planctl.config import load_settings


def test_offsite_settings_default_to_off(tmp_path: Path) -> None:
    settings = load_settings(environ={}, dotenv_path=tmp_path / "none.env")
    assert settings.backup_recipients == ""
    assert settings.backup_identity is None
    assert settings.backup_remote == ""
    assert settings.backup_ping_url == ""


def test_offsite_settings_from_environment_and_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PLANCTL_BACKUP_REMOTE=s3://from-dotenv/x\nPLANCTL_BACKUP_IDENTITY=~/key.txt\n")
    settings = load_settings(
        environ={
            "PLANCTL_BACKUP_RECIPIENTS": " age1abc,age1def ",
            "PLANCTL_BACKUP_REMOTE": "sftp://backup@nas:2222/srv/planctl",
            "PLANCTL_BACKUP_PING_URL": "https://hc-ping.com/secret-uuid",
        },
        dotenv_path=dotenv,
    )
    assert settings.backup_recipients == "age1abc,age1def"
    assert settings.backup_remote == "sftp://backup@nas:2222/srv/planctl"  # environment wins
    assert settings.backup_identity == Path("~/key.txt").expanduser()
    assert settings.backup_ping_url == "https://hc-ping.com/secret-uuid"
    assert "secret-uuid" not in repr(settings)
