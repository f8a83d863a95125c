"""The schema's table names without SQLAlchemy, for the commands that start fast.

A test keeps :data:`TABLES` equal to ``planctl.db.schema.TABLE_NAMES``.
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
