"""Where the migrations live and which revision is their head, read without Alembic.

``db-info`` and the backups only need the head revision; Alembic's
``ScriptDirectory`` imports Alembic, Mako and every migration module to learn
it (about 0.1 s of a short command). The scripts name ``revision`` and
``down_revision`` as literals (``script.py.mako``), so their syntax tree is
enough; a script that does not is left to Alembic.
"""

from __future__ import annotations

import ast
from pathlib import Path

from planctl.errors import MigrationError

_NOT_A_LITERAL = object()


def migrations_dir() -> Path:
    """Where the Alembic environment lives: in the package, else in the checkout."""
    here = Path(__file__).resolve().parent.parent  # planctl/
    for candidate in (here / "migrations", here.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationError(
        "the migrations directory is missing from this installation",
        "reinstall planctl (pip install --force-reinstall planctl)",
    )


def head_revision() -> str | None:
    """The one head of the migrations (None when there are none); two heads are an error."""
    directory = migrations_dir()
    found = heads(directory)
    if found is None:
        from alembic.script import ScriptDirectory

        found = list(ScriptDirectory(str(directory)).get_heads())
    if len(found) > 1:
        raise MigrationError(
            f"the migrations have {len(found)} heads ({', '.join(found)})",
            "merge them with alembic merge before upgrading",
        )
    return found[0] if found else None


def heads(directory: Path) -> list[str] | None:
    """The revisions no script revises, or None if a script's revisions are not literals."""
    revises: dict[str, tuple[str, ...]] = {}
    for path in sorted((directory / "versions").glob("*.py")):
        found = _literal_revisions(path)
        if found is None:
            return None
        revises[found[0]] = found[1]
    revised = {parent for parents in revises.values() for parent in parents}
    return sorted(set(revises) - revised)


def _literal_revisions(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """``(revision, down revisions)`` assigned as literals at the top of *path*, else None."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_bytes(), str(path)).body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                values[target.id] = _NOT_A_LITERAL
    revision, down = values.get("revision"), values.get("down_revision", _NOT_A_LITERAL)
    if not isinstance(revision, str):
        return None
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    return None
