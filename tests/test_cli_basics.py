"""The command line as a user first meets it: help, version, global options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from planctl import __version__
from planctl.cli import app
from planctl.cli.db import COMMANDS

from .conftest import Cli

HEAVY = ("sqlalchemy", "alembic", "fpdf", "icalendar", "psycopg", "caldav")


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["db-upgrade", "--help"], ["sync", "--help"]]
)
def test_help_and_version_do_not_import_heavy_libraries(args: list[str]) -> None:
    code = (
        "import sys, json\n"
        f"sys.argv = ['planctl', *{args!r}]\n"
        "from planctl.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(json.dumps({'code': code, 'heavy': heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None)
    assert result["heavy"] == []


def test_version(cli: Cli) -> None:
    run = cli("--version")
    assert run.exit_code == 0
    assert run.stdout.strip() == f"planctl {__version__}"


def test_python_dash_m_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "planctl", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"planctl {__version__}"


def test_help_lists_every_command(cli: Cli) -> None:
    run = cli("--help")
    assert run.exit_code == 0
    for name in COMMANDS:
        assert name in run.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help_and_is_documented(name: str, cli: Cli) -> None:
    from pathlib import Path

    run = cli(name, "--help")
    assert run.exit_code == 0
    assert f"planctl {name}" in run.stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"planctl {name}" in readme, f"{name} is not documented in the README"


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    run = cli("db-upgrayd")
    assert run.exit_code == 2


def test_app_has_no_pretty_exceptions() -> None:
    assert app.pretty_exceptions_enable is False


def _command_tree() -> list[list[str]]:
    """Every command and sub-command of the real CLI (so a new one cannot go undocumented)."""
    import typer.main

    def walk(command: object, words: list[str], out: list[list[str]]) -> list[list[str]]:
        if words:
            out.append(words)
        for name, child in sorted(getattr(command, "commands", {}).items()):
            walk(child, [*words, name], out)
        return out

    return walk(typer.main.get_command(app), [], [])


@pytest.mark.parametrize("words", _command_tree(), ids=" ".join)
def test_every_subcommand_has_help_and_is_documented(words: list[str], cli: Cli) -> None:
    from pathlib import Path

    run = cli(*words, "--help")
    assert run.exit_code == 0
    assert f"planctl {' '.join(words)}" in run.stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"planctl {' '.join(words)}" in readme


@pytest.mark.parametrize(
    "command",
    [["export", "csv", "sesiones"], ["export", "ical"], ["export", "pdf"], ["sync", "--dry-run"]],
    ids=" ".join,
)
def test_since_after_until_is_refused_alike(command: list[str], cli: Cli) -> None:
    run = cli(*command, "--since", "2026-12-01", "--until", "2026-11-01")
    assert run.exit_code == 2
    assert "--since 2026-12-01 is after --until 2026-11-01" in run.stderr
