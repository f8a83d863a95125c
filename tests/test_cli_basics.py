"""The command line as a user first meets it: help, version, global options."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup

from planctl import __version__
from planctl.cli import app, command_line

from .conftest import Cli

HEAVY = ("sqlalchemy", "alembic", "fpdf", "icalendar", "psycopg", "caldav")


def _walk(command: object, words: list[str]) -> list[tuple[tuple[str, ...], str]]:
    """(words, help text) of *command*'s sub-commands, all the way down (Typer's own Click)."""
    found = []
    if isinstance(command, TyperGroup):
        for name, child in sorted(command.commands.items()):
            path = [*words, name]
            found.append((tuple(path), child.help or child.short_help or ""))
            found += _walk(child, path)
    return found


# The real command tree (planctl.cli's full app), so a new command cannot go undocumented.
TREE_HELP = dict(_walk(typer.main.get_command(app), []))
COMMAND_TREE = list(TREE_HELP)


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
    for words in COMMAND_TREE:
        if len(words) == 1:
            assert words[0] in run.stdout


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    run = cli("db-upgrayd")
    assert run.exit_code == 2


def test_app_has_no_pretty_exceptions() -> None:
    assert app.pretty_exceptions_enable is False


@pytest.mark.parametrize("group", sorted({words[0] for words in COMMAND_TREE if len(words) > 1}))
def test_the_entry_point_builds_each_group_whole(group: str) -> None:
    """``planctl backup ...`` builds only the backup group: it must hold every sub-command."""
    alone = dict(_walk(typer.main.get_command(command_line([group, "--help"])), []))
    assert alone == {words: text for words, text in TREE_HELP.items() if words[0] == group}


README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("words", COMMAND_TREE, ids=" ".join)
def test_every_command_has_help_and_is_documented(words: tuple[str, ...], cli: Cli) -> None:
    """Every command and sub-command of the real tree has help text and a README example."""
    command = " ".join(words)
    assert TREE_HELP[words].strip(), f"planctl {command} has no help text"
    run = cli(*words, "--help")
    assert run.exit_code == 0
    assert f"planctl {command}" in run.stdout
    # the whole command, not the start of a longer one ("sync remote" ≠ "sync remote add")
    assert re.search(rf"planctl {re.escape(command)}(?![\w-])", README), (
        f"planctl {command} is not documented in the README"
    )


@pytest.mark.parametrize(
    "command",
    [["export", "csv", "sesiones"], ["export", "ical"], ["export", "pdf"], ["sync", "--dry-run"]],
    ids=" ".join,
)
def test_since_after_until_is_refused_alike(command: list[str], cli: Cli) -> None:
    run = cli(*command, "--since", "2026-12-01", "--until", "2026-11-01")
    assert run.exit_code == 2
    assert "--since 2026-12-01 is after --until 2026-11-01" in run.stderr
