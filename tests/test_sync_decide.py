"""The decision table (docs/sync.md#the-decision-table), row by row, without a database.

``decide`` is pure: a session as the planner holds it (L), the calendar's event
(R) and the state row (S) in, one action out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from planctl.calendar.sessions import SessionView
from planctl.sync.backend import RemoteEvent
from planctl.sync.decide import decide
from planctl.sync.local import LocalItem
from planctl.sync.report import Kind
from planctl.sync.state import StateRow

TZ = "Europe/Madrid"
VIEW = SessionView(
    id=7,
    fecha=dt.date(2026, 11, 23),
    hora_inicio=dt.time(9),
    hora_fin=dt.time(13),
    estado="programada",
    direccion="Calle Mayor 1, Madrid",
    enlace_vc=None,
    notas=None,
    created_at=None,
    updated_at=None,
    contratacion_id=1,
    expediente="EXP-1",
    modalidad="presencial",
    persona_responsable=None,
    telefono_responsable=None,
    email_responsable=None,
    precio_hora=None,
    cliente_id=1,
    cliente="Ñandú, S.A.",
    cliente_color=None,
    cliente_final=None,
    formacion="Excel avanzado",
    nivel=None,
    tema="Ofimática",
)
SYNCED = LocalItem(VIEW, TZ)  # the session as the last run synced it


def local(kind: str) -> LocalItem | None:
    """L: absent, as synced, edited in the planner, or cancelled."""
    views = {
        "synced": VIEW,
        "edited": replace(VIEW, hora_fin=dt.time(14)),
        "cancelled": replace(VIEW, estado="cancelada"),
    }
    return None if kind == "none" else LocalItem(views[kind], TZ)


def remote(kind: str) -> RemoteEvent | None:
    """R: absent, as synced (etag unmoved, not loaded), edited on the phone, or deleted."""
    if kind == "none":
        return None
    if kind == "synced":
        return RemoteEvent(id="e7", etag='"1"', session_id=7)
    if kind == "same-new-etag":
        return RemoteEvent(id="e7", etag='"2"', session_id=7, content=SYNCED.content)
    if kind == "edited":
        moved = replace(SYNCED.content, start=SYNCED.content.start + dt.timedelta(hours=1))
        return RemoteEvent(id="e7", etag='"2"', session_id=7, content=moved)
    if kind == "like-planner-edit":
        edited = local("edited")
        assert edited is not None
        return RemoteEvent(id="e7", etag='"2"', session_id=7, content=edited.content)
    assert kind == "deleted"
    return RemoteEvent(id="e7", etag='"2"', session_id=7, deleted=True)


def state(kind: str) -> StateRow | None:
    if kind == "none":
        return None
    return StateRow(7, "e7", '"1"', SYNCED.state_token, SYNCED.token, dt.datetime(2026, 11, 1))


# (L, R, S, policy) → the action; policy only matters where both sides changed.
TABLE = [
    ("synced", "none", "none", "local", Kind.CREATE_REMOTE),
    ("cancelled", "none", "none", "local", Kind.UNCHANGED),
    ("synced", "same-new-etag", "none", "local", Kind.RECORD),
    ("synced", "edited", "none", "local", Kind.UPDATE_REMOTE),
    ("synced", "edited", "none", "remote", Kind.UPDATE_LOCAL),
    ("synced", "edited", "none", "fail", Kind.CONFLICT),
    ("none", "edited", "none", "local", Kind.ORPHAN),
    ("none", "deleted", "none", "local", Kind.UNCHANGED),
    ("synced", "synced", "synced", "local", Kind.UNCHANGED),
    ("synced", "same-new-etag", "synced", "local", Kind.RECORD),
    ("edited", "synced", "synced", "local", Kind.UPDATE_REMOTE),
    ("cancelled", "synced", "synced", "local", Kind.DELETE_REMOTE),
    ("synced", "edited", "synced", "local", Kind.UPDATE_LOCAL),
    ("synced", "deleted", "synced", "local", Kind.CANCEL_LOCAL),
    ("edited", "like-planner-edit", "synced", "fail", Kind.RECORD),
    ("edited", "edited", "synced", "local", Kind.UPDATE_REMOTE),
    ("edited", "edited", "synced", "remote", Kind.UPDATE_LOCAL),
    ("edited", "edited", "synced", "fail", Kind.CONFLICT),
    ("synced", "none", "synced", "local", Kind.CANCEL_LOCAL),
    ("edited", "none", "synced", "local", Kind.CREATE_REMOTE),
    ("edited", "none", "synced", "remote", Kind.CANCEL_LOCAL),
    ("edited", "none", "synced", "fail", Kind.CONFLICT),
    ("cancelled", "none", "synced", "local", Kind.FORGET),
    ("none", "synced", "synced", "local", Kind.DELETE_REMOTE),
    ("none", "edited", "synced", "local", Kind.DELETE_REMOTE),
    ("none", "edited", "synced", "remote", Kind.FORGET),
    ("none", "edited", "synced", "fail", Kind.CONFLICT),
    ("none", "deleted", "synced", "local", Kind.FORGET),
    ("none", "none", "synced", "local", Kind.FORGET),
]


@pytest.mark.parametrize(("l_side", "r_side", "s_side", "policy", "expected"), TABLE)
def test_decision_table(l_side: str, r_side: str, s_side: str, policy: str, expected: Kind) -> None:
    action = decide(7, local(l_side), remote(r_side), state(s_side), policy)
    assert action.kind is expected, action.reason


def test_a_cancelled_session_whose_event_was_deleted_on_the_phone_too_is_recorded() -> None:
    """Cancelled on both sides since the last run: equal tokens, nothing to write."""
    action = decide(7, local("cancelled"), remote("deleted"), state("synced"), "fail")
    assert action.kind is Kind.RECORD
