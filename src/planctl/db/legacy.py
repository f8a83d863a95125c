"""planctl's bookkeeping tables under their Spanish names, before revision 31d0f0df5b58.

That revision renamed the sync state and run log to English ``planctl_*``
tables (docs/architecture.md#glossary). A database not yet upgraded, and a
delta backup taken before the upgrade, still hold the old tables: the change
log keeps their triggers (:func:`planctl.db.changelog.reinstall`) and a delta
of them still reads and applies (:func:`table`). The maps below are the one
statement of the renames; the migration applies them to the rows.
"""

from __future__ import annotations

import functools

from sqlalchemy import Column, MetaData, Table, UniqueConstraint

#: The revision that renamed the tables.
REVISION = "31d0f0df5b58"

#: Old table name → new table name.
TABLES: dict[str, str] = {
    "estados_sincronizacion": "planctl_sync_states",
    "ejecuciones_sincronizacion": "planctl_sync_runs",
}

#: Per old table: old column name → new column name (every column, unchanged ones too).
COLUMNS: dict[str, dict[str, str]] = {
    "estados_sincronizacion": {
        "id": "id",
        "backend": "backend",
        "sesion_id": "session_id",
        "id_remoto": "remote_id",
        "etag": "etag",
        "hash_local": "local_hash",
        "hash_remoto": "remote_hash",
        "sincronizado_en": "synced_at",
    },
    "ejecuciones_sincronizacion": {
        "id": "id",
        "backend": "backend",
        "modo": "mode",
        "inicio": "started_at",
        "fin": "finished_at",
        "resultado": "result",
        "creados": "created",
        "actualizados": "updated",
        "eliminados": "deleted",
        "sin_cambios": "unchanged",
        "conflictos": "conflicts",
        "errores": "errors",
    },
}

#: A sync run's result, old value → new value (``ejecuciones_sincronizacion.resultado``).
RESULTS: dict[str, str] = {
    "en_curso": "running",
    "ok": "ok",
    "conflictos": "conflicts",
    "errores": "errors",
    "interrumpida": "interrupted",
}

#: The old sync tables, in the order of their new names in the schema.
SYNC_TABLE_NAMES: tuple[str, ...] = tuple(TABLES)


@functools.cache
def table(name: str) -> Table:
    """The old table *name* as the current schema's table under its old names (KeyError when
    *name* is not an old table): enough to read, encode and upsert its rows, not to create it."""
    from planctl.db.schema import metadata

    current = metadata.tables[TABLES[name]]
    old_names = {new: old for old, new in COLUMNS[name].items()}
    columns = [
        Column(old_names[c.name], c.type, nullable=c.nullable, primary_key=c.primary_key)
        for c in current.columns
        if c.name in old_names  # a column added after the rename did not exist before it
    ]
    uniques = [
        UniqueConstraint(*(old_names[c.name] for c in constraint.columns))
        for constraint in current.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    return Table(name, MetaData(), *columns, *uniques)
