"""CalDAV sync end to end against a real Radicale server on 127.0.0.1, and `sync check`.

Each fixture starts ``python -m radicale`` on a free port with temporary storage
(one without authentication, one with an htpasswd file) and waits until it
answers. The "phone" is the caldav library used directly, as any client would.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from planctl.logs import close_service_loggers
from planctl.sync.backends.caldav import CalDAVBackend
from planctl.sync.engine import Kind

from . import sync_support
from .conftest import Cli, free_port
from .helpers import table_contents
from .sync_support import PASSWORD, TZ, DavWorld, Radicale, make_tiny_planner

# the CalDAV servers and the world over them (tests/sync_support.py)
radicale, radicale_auth, xandikos = (
    sync_support.radicale, sync_support.radicale_auth, sync_support.xandikos
)  # fmt: skip
server, dav = sync_support.server, sync_support.dav


def _phone(world: DavWorld) -> Any:
    """The calendar as a phone sees it, through the caldav client library."""
    from caldav.davclient import DAVClient

    settings = world.settings_
    client = DAVClient(url=settings.caldav_url, username=settings.caldav_user, password="x")
    for calendar in client.principal().calendars():
        if calendar.get_display_name() == settings.caldav_calendar:
            return calendar
    raise AssertionError("calendar not found")


def _etags(world: DavWorld) -> dict[str, str | None]:
    backend = CalDAVBackend(world.settings_, create_calendar=False)
    try:
        return {e.id: e.etag for e in backend.list()}
    finally:
        backend.close()


def _vevent(calendar: Any, session_id: int) -> Any:
    return calendar.event_by_uid(f"sesion-{session_id}@planctl")


def test_push_phone_edit_pull_deletes_and_no_op(dav: DavWorld) -> None:
    # push: the calendar is created and gets the export's VEVENTs
    pushed = dav.sync(mode="push")
    assert pushed.count(Kind.CREATE_REMOTE) == 3
    phone = _phone(dav)
    uids = sorted(str(e.icalendar_component["UID"]) for e in phone.events())
    assert uids == ["sesion-1@planctl", "sesion-2@planctl", "sesion-3@planctl"]
    component = _vevent(phone, 2).icalendar_component
    assert str(component["SUMMARY"]) == "Excel avanzado — Ñandú, S.A."
    assert component["DTSTART"].params["TZID"] == TZ
    assert component.decoded("DTSTART") == dt.datetime(2026, 11, 24, 9, tzinfo=ZoneInfo(TZ))

    # a second run right after changes nothing on either side
    etags, planner = _etags(dav), table_contents(dav.url)
    second = dav.sync()
    assert {a.kind for a in second.actions} <= {Kind.UNCHANGED}
    assert _etags(dav) == etags and table_contents(dav.url) == planner

    # the phone moves session 2 and changes its place (and bumps SEQUENCE, DTSTAMP)
    event = _vevent(phone, 2)
    component = event.icalendar_component
    for name in ("DTSTART", "DTEND", "LOCATION", "SEQUENCE", "DTSTAMP"):
        del component[name]
    component.add("DTSTART", dt.datetime(2026, 11, 27, 10, tzinfo=ZoneInfo(TZ)))
    component.add("DTEND", dt.datetime(2026, 11, 27, 12, 30, tzinfo=ZoneInfo(TZ)))
    component.add("LOCATION", "Aula 7")
    component.add("SEQUENCE", 5)
    component.add("DTSTAMP", dt.datetime.now(dt.UTC))
    event.save()

    pulled = dav.sync(mode="pull")
    assert {a.session_id: a.kind for a in pulled.actions}[2] is Kind.UPDATE_LOCAL
    row = dav.session(2)
    assert (row.fecha, row.hora_inicio, row.hora_fin, row.direccion, row.estado) == (
        dt.date(2026, 11, 27),
        dt.time(10),
        dt.time(12, 30),
        "Aula 7",
        "reprogramada",
    )

    # deleted on the phone → the session is cancelled; deleted in the planner → event gone
    _vevent(phone, 3).delete()
    dav.execute("DELETE FROM sesiones WHERE id = 1")
    both = dav.sync()
    kinds = {a.session_id: a.kind for a in both.actions}
    assert kinds[3] is Kind.CANCEL_LOCAL and kinds[1] is Kind.DELETE_REMOTE
    assert dav.session(3).estado == "cancelada"
    remaining = sorted(str(e.icalendar_component["UID"]) for e in _phone(dav).events())
    assert remaining == ["sesion-2@planctl"]

    # and once more: nothing to do, no event rewritten
    etags, planner = _etags(dav), table_contents(dav.url)
    last = dav.sync()
    assert {a.kind for a in last.actions} <= {Kind.UNCHANGED}
    assert _etags(dav) == etags and table_contents(dav.url) == planner


def test_local_change_is_a_conditional_update_and_others_events_stay(dav: DavWorld) -> None:
    dav.sync()
    phone = _phone(dav)
    phone.save_event(
        dtstart=dt.datetime(2026, 11, 23, 18, tzinfo=ZoneInfo(TZ)),
        dtend=dt.datetime(2026, 11, 23, 19, tzinfo=ZoneInfo(TZ)),
        summary="Dentista",
        uid="dentista-1@phone",
    )
    dav.execute("UPDATE sesiones SET notas = 'llevar proyector' WHERE id = 1")
    report = dav.sync()
    assert {a.session_id: a.kind for a in report.actions}[1] is Kind.UPDATE_REMOTE
    assert [e.content.summary for e in report.foreign if e.content] == ["Dentista"]
    description = str(_vevent(phone, 1).icalendar_component["DESCRIPTION"])
    assert "Notas: llevar proyector" in description
    assert "Dentista" in [str(e.icalendar_component["SUMMARY"]) for e in phone.events()]


def test_lost_state_and_interrupted_runs_adopt_instead_of_duplicating(dav: DavWorld) -> None:
    dav.sync()
    dav.execute("DELETE FROM planctl_sync_states")
    report = dav.sync()
    assert {a.kind for a in report.actions} == {Kind.RECORD}
    assert len(list(_phone(dav).events())) == 3


def test_dry_run_creates_no_calendar(dav: DavWorld) -> None:
    report = dav.sync(dry_run=True)
    assert report.count(Kind.CREATE_REMOTE) == 3
    from caldav.davclient import DAVClient

    client = DAVClient(url=dav.settings_.caldav_url, username="trainer", password="x")
    names = [c.get_display_name() for c in client.principal().calendars()]
    assert dav.settings_.caldav_calendar not in names


# -- sync check and bad configuration, through the CLI -----------------------------------


@pytest.fixture
def caldav_env(workdir: Path, monkeypatch: pytest.MonkeyPatch, migrated_url: str) -> Path:
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.setenv("PLANCTL_SYNC_BACKEND", "caldav")
    return workdir


def _no_secret(run: Any, tmp_path: Path) -> None:
    close_service_loggers()
    log = tmp_path / "logs" / "sincronizacion.log"
    text = run.stdout + run.stderr + (log.read_text(encoding="utf-8") if log.exists() else "")
    assert PASSWORD not in text and "wrong-Pa55" not in text
    assert "Traceback" not in run.stderr


def test_check_without_a_url_names_the_variable(caldav_env: Path, cli: Cli, tmp_path: Path) -> None:
    run = cli("sync", "check")
    assert run.exit_code == 1
    assert "PLANCTL_CALDAV_URL is not set" in run.stderr


def test_check_password_without_user(
    caldav_env: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLANCTL_CALDAV_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("PLANCTL_CALDAV_PASSWORD", PASSWORD)
    run = cli("sync", "check")
    assert run.exit_code == 1 and "PLANCTL_CALDAV_USER is not" in run.stderr
    _no_secret(run, tmp_path)


def test_check_unreachable_server(
    caldav_env: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("PLANCTL_CALDAV_URL", f"http://planner:{PASSWORD}@127.0.0.1:{port}/dav/")
    monkeypatch.setenv("PLANCTL_CALDAV_USER", "planner")
    monkeypatch.setenv("PLANCTL_CALDAV_PASSWORD", PASSWORD)
    for args in (["sync", "check"], ["-v", "sync"]):
        run = cli(*args)
        assert run.exit_code == 1, run.stdout
        assert "cannot reach CalDAV server" in run.stderr and "connection refused" in run.stderr
        assert f"http://planner:***@127.0.0.1:{port}/dav/" in run.stderr
        _no_secret(run, tmp_path)


def test_check_wrong_password_is_a_401(
    caldav_env: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    radicale_auth: Radicale,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PLANCTL_CALDAV_URL", radicale_auth.url)
    monkeypatch.setenv("PLANCTL_CALDAV_USER", "planner")
    monkeypatch.setenv("PLANCTL_CALDAV_PASSWORD", "wrong-Pa55")
    run = cli("sync", "check")
    assert run.exit_code == 1
    assert "refused user 'planner' (HTTP 401/403)" in run.stderr
    assert "PLANCTL_CALDAV_PASSWORD" in run.stderr
    _no_secret(run, tmp_path)


def test_check_missing_calendar_then_sync_creates_it(
    caldav_env: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    radicale_auth: Radicale,
    tmp_path: Path,
    migrated_url: str,
) -> None:
    make_tiny_planner(migrated_url)
    monkeypatch.setenv("PLANCTL_CALDAV_URL", radicale_auth.url)
    monkeypatch.setenv("PLANCTL_CALDAV_USER", "planner")
    monkeypatch.setenv("PLANCTL_CALDAV_PASSWORD", PASSWORD)
    monkeypatch.setenv("PLANCTL_CALDAV_CALENDAR", f"Formaciones {tmp_path.name}")
    run = cli("sync", "check")
    assert run.exit_code == 1
    assert f"calendar 'Formaciones {tmp_path.name}' does not exist" in run.stderr
    assert "planctl sync creates it" in run.stderr
    synced = cli("sync")
    assert synced.exit_code == 0, synced.stderr
    ok = cli("sync", "check")
    assert ok.exit_code == 0, ok.stderr
    assert "reachable, 3 events" in ok.stdout
    _no_secret(ok, tmp_path)
    _no_secret(synced, tmp_path)


# -- cancelled events are state, on a real server ---------------------------------------


def _set_status(world: DavWorld, session_id: int, status: str) -> None:
    event = _vevent(_phone(world), session_id)
    component = event.icalendar_component
    component.pop("STATUS", None)
    component.add("STATUS", status)
    event.save()


def test_cancelled_on_the_phone_then_re_enabled_and_un_cancelled(dav: DavWorld) -> None:
    dav.sync()
    _set_status(dav, 2, "CANCELLED")
    first = dav.sync()
    assert {a.session_id: a.kind for a in first.actions}[2] is Kind.CANCEL_LOCAL
    assert dav.session(2).estado == "cancelada" and 2 in dav.states()  # the event still exists

    # re-enabled in the planner: the same event is updated (no create, no HTTP 412)
    dav.execute("UPDATE sesiones SET estado = 'programada' WHERE id = 2")
    second = dav.sync()
    assert {a.session_id: a.kind for a in second.actions}[2] is Kind.UPDATE_REMOTE
    assert not second.errors
    assert str(_vevent(_phone(dav), 2).icalendar_component["STATUS"]) == "CONFIRMED"

    # cancelled again on the phone, then un-cancelled there: the session comes back
    _set_status(dav, 2, "CANCELLED")
    dav.sync()
    assert dav.session(2).estado == "cancelada"
    _set_status(dav, 2, "CONFIRMED")
    third = dav.sync()
    assert {a.session_id: a.kind for a in third.actions}[2] is Kind.UPDATE_LOCAL
    assert dav.session(2).estado == "programada"
    assert {a.kind for a in dav.sync().actions} <= {Kind.UNCHANGED}
    assert len(list(_phone(dav).events())) == 3


# -- discovery: well-known and principal URLs --------------------------------------------


@pytest.mark.parametrize("entry", ["well-known", "principal"])
def test_well_known_and_principal_urls_are_followed(
    caldav_env: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    server: Radicale,
    entry: str,
    migrated_url: str,
) -> None:
    make_tiny_planner(migrated_url)
    principal = server.principal
    url = server.url + (".well-known/caldav" if entry == "well-known" else principal)
    monkeypatch.setenv("PLANCTL_CALDAV_URL", url)
    monkeypatch.setenv("PLANCTL_CALDAV_USER", server.user)
    monkeypatch.setenv("PLANCTL_CALDAV_CALENDAR", f"Discovery {entry} {migrated_url[-8:]}")
    synced = cli("sync")
    assert synced.exit_code == 0, synced.stderr
    run = cli("sync", "check")
    assert run.exit_code == 0, run.stderr
    assert "reachable, 3 events" in run.stdout
    assert f"principal:  /{principal}" in run.stdout
    assert "planctl's:  /" in run.stdout


# -- quiet under -q, one line on failure (a real process: the library's root logging) ----


def test_quiet_run_prints_nothing_and_a_failure_one_line(
    radicale: Radicale, migrated_url: str, tmp_path: Path
) -> None:
    make_tiny_planner(migrated_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_")}
    env.update(
        DATABASE_URL=migrated_url,
        PLANCTL_LOG_DIR=str(tmp_path / "logs"),
        PLANCTL_SYNC_BACKEND="caldav",
        PLANCTL_CALDAV_URL=radicale.url,
        PLANCTL_CALDAV_USER="trainer",
        PLANCTL_CALDAV_CALENDAR=f"Quiet {tmp_path.name}",
    )

    def planctl(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "planctl", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    run = planctl("-q", "sync")  # creates the calendar and three events
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    failed = planctl("-q", "sync", PLANCTL_CALDAV_URL=f"http://127.0.0.1:{free_port()}/")
    assert failed.returncode == 1 and failed.stdout == ""
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach CalDAV server")
    close_service_loggers()
    log = (tmp_path / "logs" / "sincronizacion.log").read_text(encoding="utf-8")
    assert "session 1: created event" in log and "sync failed: cannot reach" in log
    assert "sync sync" not in log


def test_another_calendar_in_place_of_the_synced_one_changes_nothing(dav: DavWorld) -> None:
    from dataclasses import replace as replaced

    from planctl.sync.engine import UnsafeRunError

    dav.sync()
    before = table_contents(dav.url)
    assert dav.settings_ is not None
    dav.settings_ = replaced(dav.settings_, caldav_calendar=dav.settings_.caldav_calendar + " B")
    with pytest.raises(UnsafeRunError, match="does not list 3 of the 3 events"):
        dav.sync()
    assert table_contents(dav.url) == before  # no session cancelled
