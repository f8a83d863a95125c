"""Package boundaries: the calendar model sits below both the exports and sync.

Every import statement counts, at module level or inside a function (lazy
imports included), so a boundary cannot be crossed by deferring the import.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import planctl

PACKAGE_ROOT = Path(planctl.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, package: str) -> set[str]:
    """Every module *source* (a module of *package*) imports, relative imports made absolute.

    ``from a import b`` counts as both ``a`` and ``a.b`` (``b`` may be a module).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def crossings(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """``module -> import`` for each import under *package* of a *forbidden* package."""
    directory = PACKAGE_ROOT.joinpath(*package.split(".")[1:])
    modules = sorted(directory.rglob("*.py"))
    assert modules, f"no modules under {directory}"
    return [
        f"{module_name(path)} -> {name}"
        for path in modules
        for name in sorted(imported_modules(path.read_text(encoding="utf-8"), package_of(path)))
        if any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("planctl.sync", ("planctl.export", "planctl.cli")),
        ("planctl.calendar", ("planctl.export", "planctl.sync", "planctl.cli")),
        ("planctl.export", ("planctl.sync", "planctl.cli")),
    ],
)
def test_package_does_not_import_across_its_boundary(
    package: str, forbidden: tuple[str, ...]
) -> None:
    assert crossings(package, forbidden) == []


def test_the_walk_sees_lazy_and_relative_imports() -> None:
    """The checker itself: imports inside functions and relative ones are found."""
    source = (
        "import json\n"
        "def later():\n"
        "    from planctl.export import ical\n"
        "    from ...export.sessions import SessionView\n"
        "from . import content\n"
    )
    names = imported_modules(source, "planctl.sync.backends")
    assert {
        "json",
        "planctl.export",
        "planctl.export.ical",
        "planctl.export.sessions",
        "planctl.export.sessions.SessionView",
        "planctl.sync.backends.content",
    } <= names


def test_time_zone_helpers_import_without_icalendar_or_sqlalchemy() -> None:
    """The zone helpers the CLI and the backends use load no heavy library."""
    code = (
        "import sys, planctl.calendar.zones\n"
        "print(sorted(m for m in ('icalendar', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


#: Durable writes have one home: planctl/fsutil.py. A module listed here would be
#: one still being converted to it (none is).
FSYNC_PENDING: set[str] = set()


def fsync_calls(source: str) -> int:
    """How many ``os.fsync(...)`` calls *source* makes (a call, not a mention in a docstring)."""
    return sum(
        1
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "fsync"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "os"
    )


def test_only_fsutil_calls_os_fsync() -> None:
    offenders = {
        path.relative_to(PACKAGE_ROOT.parent).as_posix()
        for path in PACKAGE_ROOT.rglob("*.py")
        if fsync_calls(path.read_text(encoding="utf-8"))
    }
    assert offenders - FSYNC_PENDING == {"planctl/fsutil.py"}
    stale = FSYNC_PENDING - offenders
    assert not stale, f"{stale} no longer call os.fsync: remove them from FSYNC_PENDING"


def test_the_fsync_rule_sees_a_call_and_not_a_mention() -> None:
    assert fsync_calls("import os\nos.fsync(fd)\n") == 1
    assert fsync_calls('"""os.fsync(fd) is fsutil\'s."""\n') == 0


#: Where a URL string may still be a parameter: the CLI reads and parses it, config.py
#: and target.py are the parsers.
URL_PARSERS = ("planctl/cli/", "planctl/config.py", "planctl/target.py")
#: URL parameters that are not the database's: the offsite remote and its endpoint, the
#: monitoring ping, HTTP calendar servers and Google's API root, and a masked URL
#: (already shown text). Anything else named *url* below cli/ is a database URL.
OTHER_URLS = {"remote_url", "ping_url", "endpoint_url", "s3_endpoint_url", "root_url", "masked_url"}
#: Modules whose ``url`` is a remote store's or a calendar server's, never the database's.
REMOTE_MODULES = ("planctl/backup/remote/", "planctl/sync/backends/", "planctl/sync/google/")
_DATABASE_URL_NAME = re.compile(r"(database|db|sqlalchemy|engine)_?url|dsn", re.IGNORECASE)


def url_parameters(source: str, module: str) -> list[str]:
    """``function(parameter)`` for each parameter of *source* that takes a database URL
    string: named like one (``database_url``, ``dsn``…) whatever its annotation, or a
    ``str`` named ``url``/``*_url`` outside the remote-store and calendar modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        arguments = node.args
        for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
            annotation = ast.unparse(arg.annotation) if arg.annotation else ""
            named_url = arg.arg == "url" or arg.arg.endswith("_url")
            if _DATABASE_URL_NAME.fullmatch(arg.arg) or (
                named_url
                and "str" in annotation
                and arg.arg not in OTHER_URLS
                and not module.startswith(REMOTE_MODULES)
            ):
                found.append(f"{node.name}({arg.arg}: {annotation or '?'})")
    return found


def test_no_function_below_the_cli_takes_a_database_url_string() -> None:
    """The database is a parsed planctl.target.Target below cli/ (issue 23): a URL
    string there would be parsed again, with its own rules."""
    offenders = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        module = path.relative_to(PACKAGE_ROOT.parent).as_posix()
        if module.startswith(URL_PARSERS):
            continue
        found = url_parameters(path.read_text(encoding="utf-8"), module)
        if found:
            offenders[module] = found
    assert offenders == {}


def test_the_url_rule_sees_a_database_url_parameter() -> None:
    source = (
        "def a(database_url: str) -> None: ...\n"
        "async def b(*, url: str | None = None) -> None: ...\n"
        "def c(self, db_url) -> None: ...\n"
        "def d(remote_url: str, target: Target, url: Target) -> None: ...\n"
    )
    assert url_parameters(source, "planctl/db/engine.py") == [
        "a(database_url: str)",
        "b(url: str | None)",
        "c(db_url: ?)",
    ]
    assert url_parameters("def e(url: str) -> None: ...\n", "planctl/backup/remote/s3.py") == []


# --- no import cycle among the backup modules -------------------------------------------------


def runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run: everywhere (functions included) except inside an
    ``if TYPE_CHECKING:`` block, which only the type checker reads."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def module_edges(package: str) -> dict[str, set[str]]:
    """``module -> the modules of *package* it imports`` when it runs (lazy imports
    included, type-only ones not).

    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``.
    A package's ``__init__`` importing its own submodules (re-exports, dispatch to
    an implementation) is the package's API, not a dependency: no edge.
    """
    directory = PACKAGE_ROOT.joinpath(*package.split(".")[1:])
    paths = {module_name(path): path for path in sorted(directory.rglob("*.py"))}
    edges: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package_of(path).rsplit(".", node.level - 1)[0]
                    base = f"{anchor}.{base}" if base else anchor
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.add(child if child in paths else base)
        own_package = path.name == "__init__.py"
        edges[name] = {
            target
            for target in targets & paths.keys()
            if target != name and not (own_package and target.startswith(name + "."))
        }
    return edges


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first walk, as ``[a, b, …, a]``."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" on the current path, "done" when fully walked
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node)
    return cycles


def test_the_backup_modules_import_no_cycle() -> None:
    """create, restore, verify, offsite, cron and the engines form a layered graph (issue
    19: create ↔ offsite ↔ verify was a circle), lazy imports included."""
    edges = module_edges("planctl.backup")
    assert {"planctl.backup.create", "planctl.backup.offsite", "planctl.backup.verify"} <= set(
        edges
    )
    assert import_cycles(edges) == []


def test_the_cycle_check_finds_a_cycle_and_resolves_submodules() -> None:
    """The checker itself: a lazy import closing a circle is found; ``from pkg import mod``
    points at the module, not at the package."""
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
    edges = module_edges("planctl.backup")
    assert (
        "planctl.backup.delta" in edges["planctl.backup.create"]
    )  # from planctl.backup import delta
    assert "planctl.backup" not in edges["planctl.backup.create"]
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from planctl.backup.remote import RemoteStore\n"
        "def later():\n"
        "    from planctl.backup import delta\n"
    )
    names = {n.module for n in runtime_imports(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    assert names == {"typing", "planctl.backup"}
