"""The planner's table names without SQLAlchemy, for the commands that start fast.

The one list of them: :mod:`planctl.db.schema` uses it as its ``TABLE_NAMES`` and
refuses to build when it does not name exactly its tables, parents first.
"""

from __future__ import annotations

#: The planner's tables in dependency order (parents first), as in the schema.
TABLES = (
    "adjuntos",
    "clientes",
    "clientes_finales",
    "temas",
    "contactos_cliente_final",
    "formaciones",
    "participantes",
    "contrataciones",
    "interacciones",
    "sesiones",
)
