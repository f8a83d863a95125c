"""planctl's bookkeeping in English: planctl_sync_states and planctl_sync_runs

Revision ID: 31d0f0df5b58
Revises: d7f3a9c2b5e1
Create Date: 2026-12-07 04:00:00.000000+00:00

``estados_sincronizacion`` → ``planctl_sync_states`` and
``ejecuciones_sincronizacion`` → ``planctl_sync_runs``, every column, constraint
and index renamed to match (the naming convention's names), the run results
translated (``en_curso`` → ``running``, ``interrumpida`` → ``interrupted``, …)
and the change log's rows and triggers moved to the new names. Rows and ids are
kept. The renames themselves are :mod:`planctl.db.legacy`'s maps; the downgrade
applies them backwards.

PostgreSQL renames in place (the tables keep their sequences' positions and
their grants); SQLite cannot rename a constraint or change a CHECK, so it
copies each table into its new shape (ids kept: a plain INTEGER PRIMARY KEY has
no sequence) and drops the old one.

"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

from planctl.db import changelog, legacy

revision: str = '31d0f0df5b58'
down_revision: str | None = 'd7f3a9c2b5e1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES, RUNS = 'estados_sincronizacion', 'ejecuciones_sincronizacion'
MODES = ('sync', 'push', 'pull')


class Shape(NamedTuple):
    """One sync table under one set of names, as this revision leaves it (frozen here)."""

    name: str
    columns: list[sa.Column[Any]]
    pk: str
    uniques: list[tuple[str, list[str]]]
    indexes: list[tuple[str, list[str]]]
    checks: list[tuple[str, str]]


def _listed(values: Sequence[str]) -> str:
    return ', '.join(f"'{v}'" for v in values)


def _shape(old: str, english: bool) -> Shape:
    """The table *old* under its Spanish (before) or English (after) names."""
    name = legacy.TABLES[old] if english else old

    def n(column: str) -> str:
        return legacy.COLUMNS[old][column] if english else column

    def col(column: str, kind: Any, nullable: bool = False, **options: Any) -> sa.Column[Any]:
        return sa.Column(n(column), kind, nullable=nullable, **options)

    if old == STATES:
        return Shape(
            name,
            [
                col('id', sa.Integer()),
                col('backend', sa.String(length=40)),
                col('sesion_id', sa.Integer()),
                col('id_remoto', sa.String(length=1000)),
                col('etag', sa.String(length=200), nullable=True),
                col('hash_local', sa.String(length=64)),
                col('hash_remoto', sa.String(length=64)),
                col('sincronizado_en', sa.DateTime(timezone=True)),
            ],
            f'pk_{name}',
            [(f"uq_{name}_backend_{n('sesion_id')}", ['backend', n('sesion_id')])],
            [(f"ix_{name}_backend_{n('id_remoto')}", ['backend', n('id_remoto')])],
            [],
        )
    results = list(legacy.RESULTS.values() if english else legacy.RESULTS)
    counts = ('creados', 'actualizados', 'eliminados', 'sin_cambios', 'conflictos', 'errores')
    return Shape(
        name,
        [
            col('id', sa.Integer()),
            col('backend', sa.String(length=40)),
            col('modo', sa.String(length=10)),
            col('inicio', sa.DateTime(timezone=True)),
            col('fin', sa.DateTime(timezone=True), nullable=True),
            col('resultado', sa.String(length=20)),
            *(col(c, sa.Integer(), server_default='0') for c in counts),
        ],
        f'pk_{name}',
        [],
        [(f"ix_{name}_backend_{n('inicio')}", ['backend', n('inicio')])],
        [
            (f"ck_{name}_{n('modo')}", f"{n('modo')} IN ({_listed(MODES)})"),
            (f"ck_{name}_{n('resultado')}", f"{n('resultado')} IN ({_listed(results)})"),
        ],
    )


def _result_column(old: str, english: bool) -> str | None:
    return (legacy.COLUMNS[old]['resultado'] if english else 'resultado') if old == RUNS else None


def _translated(column: str, english: bool) -> str:
    """SQL for *column*'s run result in the other language."""
    pairs = legacy.RESULTS.items() if english else ((b, a) for a, b in legacy.RESULTS.items())
    cases = ' '.join(f"WHEN '{a}' THEN '{b}'" for a, b in pairs)
    return f'CASE {column} {cases} ELSE {column} END'


def _copy(old: str, english: bool) -> None:
    """SQLite: the table in its other shape, the rows copied across, the source dropped."""
    source, target = _shape(old, not english), _shape(old, english)
    op.create_table(
        target.name,
        *target.columns,
        sa.PrimaryKeyConstraint('id', name=op.f(target.pk)),
        *(sa.UniqueConstraint(*cols, name=op.f(name)) for name, cols in target.uniques),
        *(sa.CheckConstraint(text, name=op.f(name)) for name, text in target.checks),
    )
    result = _result_column(old, not english)
    selected = [
        _translated(c.name, english) if c.name == result else c.name for c in source.columns
    ]
    op.execute(
        f"INSERT INTO {target.name} ({', '.join(c.name for c in target.columns)}) "
        f"SELECT {', '.join(selected)} FROM {source.name}"
    )
    op.drop_table(source.name)
    for name, cols in target.indexes:
        op.create_index(op.f(name), target.name, cols)


def _rename(old: str, english: bool) -> None:
    """PostgreSQL: the table, its columns, constraints, indexes and sequence renamed in place."""
    source, target = _shape(old, not english), _shape(old, english)
    op.rename_table(source.name, target.name)
    for before, after in zip(source.columns, target.columns, strict=True):
        if before.name != after.name:
            op.alter_column(target.name, before.name, new_column_name=after.name)
    renamed = [(source.pk, target.pk)]
    renamed += [(a[0], b[0]) for a, b in zip(source.uniques, target.uniques, strict=True)]
    for before_name, after_name in renamed:
        op.execute(f'ALTER TABLE {target.name} RENAME CONSTRAINT {before_name} TO {after_name}')
    for (before_name, _), (after_name, _) in zip(source.indexes, target.indexes, strict=True):
        op.execute(f'ALTER INDEX {before_name} RENAME TO {after_name}')
    op.execute(f'ALTER SEQUENCE {source.name}_id_seq RENAME TO {target.name}_id_seq')
    for name, _ in source.checks:
        op.drop_constraint(op.f(name), target.name, type_='check')
    result = _result_column(old, english)
    if result is not None:
        op.execute(f'UPDATE {target.name} SET {result} = {_translated(result, english)}')
    for name, text in target.checks:
        op.create_check_constraint(op.f(name), target.name, text)


def _move(english: bool) -> None:
    """Both tables to English (*english*) or back, with the change log's names and triggers."""
    connection = op.get_bind()
    olds = legacy.SYNC_TABLE_NAMES
    sources = [legacy.TABLES[t] for t in olds] if not english else list(olds)
    targets = [legacy.TABLES[t] for t in olds] if english else list(olds)
    changelog.drop_triggers(connection, sources)  # their names carry the table's
    for old in olds:
        if op.get_context().dialect.name == 'postgresql':
            _rename(old, english)
        else:
            _copy(old, english)
    for source, target in zip(sources, targets, strict=True):
        op.execute(
            f"UPDATE {changelog.LOG_TABLE} SET table_name = '{target}' "
            f"WHERE table_name = '{source}'"
        )
    changelog.install_triggers(connection, targets)


def upgrade() -> None:
    _move(english=True)


def downgrade() -> None:
    _move(english=False)
