"""The command line as a user first meets it: help, version, global options."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup

from planctl import __version__
from planctl.cli import COMMANDS, app, build_command, listed_help

from .conftest import Cli
from .helpers import target_of

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
MAIN = "from planctl.cli import main\nsys.exit(main())\n"
WHOLE_APP = "from planctl.cli import app\napp(prog_name='planctl')\n"


def _run_main(
    args: list[str], env: dict[str, str] | None = None, entry: str = MAIN
) -> dict[str, object]:
    """``planctl ARGS`` through the console-script entry point (or *entry*), in a fresh
    interpreter: its exit code, output, and the modules it had imported when it exited."""
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        f"sys.argv = ['planctl', *{args!r}]\n" + entry
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    *stderr, modules = done.stderr.splitlines()
    return {
        "code": done.returncode,
        "stdout": done.stdout,
        "stderr": "\n".join(stderr),
        "modules": json.loads(modules),
    }


def _imported(result: dict[str, object], roots: tuple[str, ...]) -> list[str]:
    modules = result["modules"]
    assert isinstance(modules, list)
    return [m for m in modules if m in roots or m.startswith(tuple(f"{r}." for r in roots))]


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["db-upgrade", "--help"], ["sync", "--help"]]
)
def test_help_and_version_do_not_import_heavy_libraries(args: list[str]) -> None:
    result = _run_main(args)
    assert result["code"] == 0
    assert _imported(result, HEAVY) == []


@pytest.fixture
def small_sqlite(tmp_path: Path) -> dict[str, str]:
    """A seeded SQLite database: the environment of a planctl run against it."""
    from planctl.db import migrate
    from planctl.db.seed import seed

    url = f"sqlite:///{tmp_path / 'planificador.db'}"
    migrate.upgrade(target_of(url))
    seed(target_of(url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_")}
    env.update(
        DATABASE_URL=url,
        PLANCTL_LOG_DIR=str(tmp_path / "logs"),
        PLANCTL_BACKUP_DIR=str(tmp_path / "backups"),
    )
    return env


@pytest.mark.parametrize(
    ("args", "not_imported"),
    [
        (["export", "csv", "sesiones"], ("sqlalchemy", "alembic", "rich")),
        (["db-info"], ("sqlalchemy", "alembic", "mako")),
        (["-q", "backup"], ("sqlalchemy.orm", "alembic", "rich", "urllib.request")),
        (["-q", "backup", "--incremental"], ("sqlalchemy.orm", "alembic", "rich")),
    ],
)
def test_a_command_imports_only_what_it_needs(
    args: list[str], not_imported: tuple[str, ...], small_sqlite: dict[str, str]
) -> None:
    result = _run_main(args, small_sqlite)
    assert result["code"] == 0, result["stderr"]
    assert _imported(result, not_imported) == []


@pytest.mark.parametrize(
    "args",
    [["--help"], [], ["backup", "--help"], ["sync", "remote", "--help"], ["backup", "lst"]],
)
def test_the_entry_point_lists_and_suggests_like_the_whole_app(args: list[str]) -> None:
    """The entry point builds only the commands its arguments name; what a user
    reads (the command list, "did you mean") is what the whole app shows."""
    ours, whole = _run_main(args), _run_main(args, entry=WHOLE_APP)
    assert (ours["code"], ours["stdout"], ours["stderr"]) == (
        whole["code"],
        whole["stdout"],
        whole["stderr"],
    )
    assert ours["stdout"] or ours["stderr"]


def test_a_typo_in_a_sub_command_gets_a_suggestion() -> None:
    typo = _run_main(["backup", "lst"])
    assert typo["code"] == 2
    assert "No such command 'lst'. Did you mean 'list'?" in str(typo["stderr"])


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


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listing_reads_each_command_help_without_building_it(name: str) -> None:
    """``planctl --help`` lists every command from its help text alone (start-up): the
    text it reads is the built command's, and the commands are those of the whole tree."""
    from typer.core import TyperCommand

    built = build_command(name)
    assert listed_help(name) == built.help
    listed = TyperCommand(name, help=listed_help(name)).get_short_help_str(60)
    assert listed == built.get_short_help_str(60) and listed.strip()
    assert {words[0] for words in COMMAND_TREE} == set(COMMANDS)


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


@pytest.mark.parametrize(
    ("args", "built"),
    [(["--help"], 0), (["-q", "--version"], 0), (["backup", "list", "--help"], 1), ([], 0)],
)
def test_a_command_line_builds_only_the_command_it_names(args: list[str], built: int) -> None:
    """Click's lazy group: ``planctl --help`` builds no command (each is listed by its help
    text), ``planctl backup list`` builds the backup group alone."""
    entry = (
        "from planctl.cli import build_command\n"
        "atexit.register(lambda: print(build_command.cache_info().currsize))\n" + MAIN
    )
    result = _run_main(args, entry=entry)
    assert result["code"] in (0, 2), result  # a bare planctl prints its help and exits 2
    assert str(result["stdout"]).splitlines()[-1] == str(built)


def test_global_flags_may_follow_the_command(tmp_path: Path) -> None:
    """cron lines put -q at the end: it is applied, not refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLANCTL_", "DATABASE_"))}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'p.db'}"
    env["PLANCTL_BACKUP_DIR"] = str(tmp_path / "backups")
    env["PLANCTL_LOG_DIR"] = str(tmp_path / "logs")
    upgrade = _run_main(["db-upgrade", "-q"], env=env)
    assert upgrade["code"] == 0 and upgrade["stdout"] == "", upgrade
    quiet = _run_main(["backup", "--keep", "5", "-q"], env=env)
    assert quiet["code"] == 0 and quiet["stdout"] == "" and quiet["stderr"] == "", quiet
    assert len(list((tmp_path / "backups").glob("*-full.json"))) == 1
    loud = _run_main(["backup", "list", "--verbose"], env=env)
    assert loud["code"] == 0 and "full" in str(loud["stdout"])


def test_hoisting_stops_at_a_double_dash() -> None:
    from planctl.cli import hoist_global_flags

    assert hoist_global_flags(["backup", "--keep", "5", "-q"]) == ["-q", "backup", "--keep", "5"]
    assert hoist_global_flags(["x", "--", "-q"]) == ["x", "--", "-q"]
