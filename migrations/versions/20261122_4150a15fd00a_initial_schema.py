"""initial schema

The ten tables of the planner, as docs/architecture.md#schema-first-revision describes them.

Revision ID: 4150a15fd00a
Revises: 
Create Date: 2026-11-22 12:24:01.330865+00:00

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '4150a15fd00a'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('adjuntos',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('origen', sa.String(length=20), nullable=False),
    sa.Column('origen_id', sa.Integer(), nullable=False),
    sa.Column('tipo', sa.String(length=50), nullable=True),
    sa.Column('ruta_fichero', sa.String(length=1000), nullable=False),
    sa.Column('notas', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.CheckConstraint("origen IN ('cliente', 'contratacion', 'sesion')", name=op.f('ck_adjuntos_origen')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjuntos'))
    )
    with op.batch_alter_table('adjuntos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adjuntos_origen_origen_id'), ['origen', 'origen_id'], unique=False)

    op.create_table('clientes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('empresa', sa.String(length=200), nullable=False),
    sa.Column('persona_contacto', sa.String(length=200), nullable=True),
    sa.Column('telefono', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('direccion', sa.String(length=300), nullable=True),
    sa.Column('cif', sa.String(length=20), nullable=True),
    sa.Column('notas', sa.Text(), nullable=True),
    sa.Column('color_hex', sa.String(length=7), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.CheckConstraint("color_hex IS NULL OR (length(color_hex) = 7 AND substr(color_hex, 1, 1) = '#')", name=op.f('ck_clientes_color_hex')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clientes')),
    sa.UniqueConstraint('cif', name=op.f('uq_clientes_cif'))
    )
    with op.batch_alter_table('clientes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clientes_empresa'), ['empresa'], unique=False)

    op.create_table('clientes_finales',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('empresa', sa.String(length=200), nullable=False),
    sa.Column('persona_encargada', sa.String(length=200), nullable=True),
    sa.Column('telefono_encargada', sa.String(length=40), nullable=True),
    sa.Column('email_encargada', sa.String(length=254), nullable=True),
    sa.Column('direccion', sa.String(length=300), nullable=True),
    sa.Column('notas', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clientes_finales'))
    )
    op.create_table('temas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('nombre', sa.String(length=200), nullable=False),
    sa.Column('descripcion', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_temas')),
    sa.UniqueConstraint('nombre', name=op.f('uq_temas_nombre'))
    )
    op.create_table('contactos_cliente_final',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cliente_final_id', sa.Integer(), nullable=False),
    sa.Column('nombre', sa.String(length=200), nullable=False),
    sa.Column('telefono', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('rol', sa.String(length=30), nullable=True),
    sa.Column('notas', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.CheckConstraint("rol IS NULL OR rol IN ('encargado_formacion', 'participante', 'otro')", name=op.f('ck_contactos_cliente_final_rol')),
    sa.ForeignKeyConstraint(['cliente_final_id'], ['clientes_finales.id'], name=op.f('fk_contactos_cliente_final_cliente_final_id_clientes_finales'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contactos_cliente_final'))
    )
    with op.batch_alter_table('contactos_cliente_final', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contactos_cliente_final_cliente_final_id'), ['cliente_final_id'], unique=False)

    op.create_table('formaciones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tema_id', sa.Integer(), nullable=False),
    sa.Column('nombre', sa.String(length=200), nullable=False),
    sa.Column('descripcion', sa.Text(), nullable=True),
    sa.Column('horas_referencia', sa.Numeric(precision=6, scale=2), nullable=True),
    sa.Column('nivel', sa.String(length=50), nullable=True),
    sa.Column('contenido_base', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.CheckConstraint('horas_referencia IS NULL OR horas_referencia > 0', name=op.f('ck_formaciones_horas_referencia')),
    sa.ForeignKeyConstraint(['tema_id'], ['temas.id'], name=op.f('fk_formaciones_tema_id_temas'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_formaciones')),
    sa.UniqueConstraint('nombre', 'nivel', name=op.f('uq_formaciones_nombre_nivel'))
    )
    with op.batch_alter_table('formaciones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_formaciones_tema_id'), ['tema_id'], unique=False)

    op.create_table('participantes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cliente_final_id', sa.Integer(), nullable=False),
    sa.Column('nombre', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('telefono', sa.String(length=40), nullable=True),
    sa.Column('observaciones', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.ForeignKeyConstraint(['cliente_final_id'], ['clientes_finales.id'], name=op.f('fk_participantes_cliente_final_id_clientes_finales'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participantes'))
    )
    with op.batch_alter_table('participantes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participantes_cliente_final_id'), ['cliente_final_id'], unique=False)

    op.create_table('contrataciones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cliente_id', sa.Integer(), nullable=False),
    sa.Column('cliente_final_id', sa.Integer(), nullable=True),
    sa.Column('formacion_id', sa.Integer(), nullable=False),
    sa.Column('expediente', sa.String(length=50), nullable=False),
    sa.Column('precio_hora', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('horas_previstas', sa.Numeric(precision=7, scale=2), nullable=True),
    sa.Column('modalidad', sa.String(length=20), nullable=True),
    sa.Column('direccion', sa.String(length=300), nullable=True),
    sa.Column('enlace_vc', sa.String(length=500), nullable=True),
    sa.Column('persona_responsable', sa.String(length=200), nullable=True),
    sa.Column('telefono_responsable', sa.String(length=40), nullable=True),
    sa.Column('email_responsable', sa.String(length=254), nullable=True),
    sa.Column('fecha_inicio_prevista', sa.Date(), nullable=True),
    sa.Column('fecha_fin_prevista', sa.Date(), nullable=True),
    sa.Column('observaciones', sa.Text(), nullable=True),
    sa.Column('estado', sa.String(length=20), server_default='tentativo', nullable=False),
    sa.Column('prioridad', sa.String(length=10), server_default='media', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.CheckConstraint("estado IN ('tentativo', 'confirmado', 'cancelado')", name=op.f('ck_contrataciones_estado')),
    sa.CheckConstraint("modalidad IS NULL OR modalidad IN ('presencial', 'online', 'mixta')", name=op.f('ck_contrataciones_modalidad')),
    sa.CheckConstraint("prioridad IN ('baja', 'media', 'alta')", name=op.f('ck_contrataciones_prioridad')),
    sa.CheckConstraint('fecha_fin_prevista IS NULL OR fecha_inicio_prevista IS NULL OR fecha_fin_prevista >= fecha_inicio_prevista', name=op.f('ck_contrataciones_fechas_previstas')),
    sa.CheckConstraint('horas_previstas IS NULL OR horas_previstas > 0', name=op.f('ck_contrataciones_horas_previstas')),
    sa.CheckConstraint('precio_hora IS NULL OR precio_hora >= 0', name=op.f('ck_contrataciones_precio_hora')),
    sa.ForeignKeyConstraint(['cliente_final_id'], ['clientes_finales.id'], name=op.f('fk_contrataciones_cliente_final_id_clientes_finales'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['cliente_id'], ['clientes.id'], name=op.f('fk_contrataciones_cliente_id_clientes'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['formacion_id'], ['formaciones.id'], name=op.f('fk_contrataciones_formacion_id_formaciones'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contrataciones')),
    sa.UniqueConstraint('expediente', name=op.f('uq_contrataciones_expediente'))
    )
    with op.batch_alter_table('contrataciones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contrataciones_cliente_final_id'), ['cliente_final_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contrataciones_cliente_id'), ['cliente_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contrataciones_fecha_inicio_prevista'), ['fecha_inicio_prevista'], unique=False)
        batch_op.create_index(batch_op.f('ix_contrataciones_formacion_id'), ['formacion_id'], unique=False)

    op.create_table('interacciones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cliente_id', sa.Integer(), nullable=False),
    sa.Column('contratacion_id', sa.Integer(), nullable=True),
    sa.Column('fecha', sa.Date(), nullable=False),
    sa.Column('tipo', sa.String(length=20), nullable=True),
    sa.Column('descripcion', sa.Text(), nullable=True),
    sa.Column('resultado', sa.String(length=20), nullable=True),
    sa.Column('proxima_accion', sa.Text(), nullable=True),
    sa.Column('fecha_proxima_accion', sa.Date(), nullable=True),
    sa.Column('crear_recordatorio', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.CheckConstraint("resultado IS NULL OR resultado IN ('propuesta', 'pendiente', 'negociacion', 'aceptado', 'rechazado', 'sin_respuesta')", name=op.f('ck_interacciones_resultado')),
    sa.CheckConstraint("tipo IS NULL OR tipo IN ('llamada', 'email', 'reunion', 'mensaje', 'otro')", name=op.f('ck_interacciones_tipo')),
    sa.ForeignKeyConstraint(['cliente_id'], ['clientes.id'], name=op.f('fk_interacciones_cliente_id_clientes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contratacion_id'], ['contrataciones.id'], name=op.f('fk_interacciones_contratacion_id_contrataciones'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interacciones'))
    )
    with op.batch_alter_table('interacciones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_interacciones_cliente_id_fecha'), ['cliente_id', 'fecha'], unique=False)
        batch_op.create_index(batch_op.f('ix_interacciones_contratacion_id'), ['contratacion_id'], unique=False)

    op.create_table('sesiones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contratacion_id', sa.Integer(), nullable=False),
    sa.Column('fecha', sa.Date(), nullable=False),
    sa.Column('hora_inicio', sa.Time(), nullable=False),
    sa.Column('hora_fin', sa.Time(), nullable=False),
    sa.Column('direccion', sa.String(length=300), nullable=True),
    sa.Column('enlace_vc', sa.String(length=500), nullable=True),
    sa.Column('notas', sa.Text(), nullable=True),
    sa.Column('estado', sa.String(length=20), server_default='programada', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
    sa.CheckConstraint("estado IN ('propuesta', 'programada', 'reprogramada', 'cancelada')", name=op.f('ck_sesiones_estado')),
    sa.CheckConstraint('hora_fin > hora_inicio', name=op.f('ck_sesiones_horario')),
    sa.ForeignKeyConstraint(['contratacion_id'], ['contrataciones.id'], name=op.f('fk_sesiones_contratacion_id_contrataciones'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sesiones'))
    )
    with op.batch_alter_table('sesiones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sesiones_contratacion_id_fecha_hora_inicio'), ['contratacion_id', 'fecha', 'hora_inicio'], unique=False)
        batch_op.create_index(batch_op.f('ix_sesiones_fecha_hora_inicio'), ['fecha', 'hora_inicio'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('sesiones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sesiones_fecha_hora_inicio'))
        batch_op.drop_index(batch_op.f('ix_sesiones_contratacion_id_fecha_hora_inicio'))

    op.drop_table('sesiones')
    with op.batch_alter_table('interacciones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_interacciones_contratacion_id'))
        batch_op.drop_index(batch_op.f('ix_interacciones_cliente_id_fecha'))

    op.drop_table('interacciones')
    with op.batch_alter_table('contrataciones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contrataciones_formacion_id'))
        batch_op.drop_index(batch_op.f('ix_contrataciones_fecha_inicio_prevista'))
        batch_op.drop_index(batch_op.f('ix_contrataciones_cliente_id'))
        batch_op.drop_index(batch_op.f('ix_contrataciones_cliente_final_id'))

    op.drop_table('contrataciones')
    with op.batch_alter_table('participantes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participantes_cliente_final_id'))

    op.drop_table('participantes')
    with op.batch_alter_table('formaciones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_formaciones_tema_id'))

    op.drop_table('formaciones')
    with op.batch_alter_table('contactos_cliente_final', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contactos_cliente_final_cliente_final_id'))

    op.drop_table('contactos_cliente_final')
    op.drop_table('temas')
    op.drop_table('clientes_finales')
    with op.batch_alter_table('clientes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clientes_empresa'))

    op.drop_table('clientes')
    with op.batch_alter_table('adjuntos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adjuntos_origen_origen_id'))

    op.drop_table('adjuntos')
