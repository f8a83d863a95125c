"""A CalDAV run after a clean one asks the server only what changed (issue 20, point 4).

Radicale and Xandikos behind a counting proxy (tests/sync_support.py): what is
asserted is what planctl really sent. The "phone" is the caldav library talking
to the server directly.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from planctl.sync.engine import Kind
from planctl.sync.safety import UnsafeRunError

from . import sync_support
from .helpers import table_contents
from .sync_support import (
    CountingProxy,
    DavWorld,
    Radicale,
    add_sessions,
    caldav_settings,
    make_tiny_planner,
)

radicale, xandikos, server = sync_support.radicale, sync_support.xandikos, sync_support.server
EXTRA = 27  # 30 synced sessions: 1-3 and 10-36


@pytest.fixture
def proxied(server: Radicale, request: pytest.FixtureRequest) -> Iterator[CountingProxy]:
    refuse = getattr(request, "param", ())
    proxy = CountingProxy(server, refuse=refuse)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def synced(migrated_url: str, server: Radicale, proxied: CountingProxy, tmp_path: Path) -> DavWorld:
    """Thirty sessions synced through the proxy, then a clean run that confirmed a key."""
    make_tiny_planner(migrated_url)
    add_sessions(migrated_url, EXTRA)
    settings = caldav_settings(migrated_url, proxied.dav, f"Incremental {tmp_path.name}")
    world = DavWorld(migrated_url, tmp_path / "unused.json", settings)
    assert world.sync().count(Kind.CREATE_REMOTE) == 3 + EXTRA
    assert world.sync().remote_writes == 0  # lists in full once more, and confirms
    assert world.checkpoints.is_file()
    proxied.requests.clear()
    return world


def _phone(world: DavWorld, server: Radicale) -> Any:
    from caldav.davclient import DAVClient

    client = DAVClient(url=server.url, username=world.settings_.caldav_user, password="x")
    for calendar in client.principal().calendars():
        if calendar.get_display_name() == world.settings_.caldav_calendar:
            return calendar
    raise AssertionError("calendar not found")


def _listings(proxy: CountingProxy, world: DavWorld, server: Radicale) -> int:
    """PROPFINDs of the calendar's members (Depth 1 on the calendar itself)."""
    return proxy.count("PROPFIND", depth="1", path=_path(world, server))


def _path(world: DavWorld, server: Radicale) -> str:
    return unquote(urlsplit(str(_phone(world, server).url)).path)


def test_a_no_op_sends_one_report_and_loads_no_event(
    synced: DavWorld, proxied: CountingProxy, server: Radicale
) -> None:
    planner = table_contents(synced.url)
    report = synced.sync()
    assert report.remote_writes == 0 and report.local_writes == 0
    assert report.untouched == 3 + EXTRA
    assert proxied.count("REPORT", "sync-collection") == 1
    assert proxied.count("REPORT", "calendar-multiget") == 0 and proxied.count("GET") == 0
    assert proxied.count("PUT") == proxied.count("DELETE") == 0
    assert _listings(proxied, synced, server) == 0  # no PROPFIND of the calendar's members
    assert table_contents(synced.url) == planner


def test_a_phone_edit_is_the_only_event_loaded_and_reaches_the_planner(
    synced: DavWorld, proxied: CountingProxy, server: Radicale
) -> None:
    event = _phone(synced, server).event_by_uid("sesion-12@planctl")
    component = event.icalendar_component
    start = component.decoded("DTSTART")
    for name in ("DTSTART", "DTEND"):
        del component[name]
    component.add("DTSTART", start.replace(hour=16))
    component.add("DTEND", start.replace(hour=18))
    event.save()
    report = synced.sync()
    assert {a.session_id: a.kind for a in report.actions} == {12: Kind.UPDATE_LOCAL}
    session = synced.session(12)
    assert (session.hora_inicio, session.hora_fin) == (dt.time(16), dt.time(18))
    assert proxied.count("REPORT", "sync-collection") == 1
    assert proxied.count("REPORT", "calendar-multiget", data=True) == 1  # the edited one only
    assert report.untouched == 3 + EXTRA - 1
    proxied.requests.clear()
    assert synced.sync().remote_writes == 0
    assert proxied.count("REPORT", "calendar-multiget", data=True) == 0


def test_a_phone_that_deletes_90_percent_is_still_refused(
    synced: DavWorld, proxied: CountingProxy, server: Radicale
) -> None:
    phone = _phone(synced, server)
    doomed = [e for e in phone.events() if "sesion-1@" not in str(e.icalendar_component["UID"])]
    for event in doomed[:27]:
        event.delete()
    planner = table_contents(synced.url)
    for _ in range(2):  # a refused run confirms nothing: the next one sees the same deletes
        with pytest.raises(UnsafeRunError, match="27 of the 30"):
            synced.sync()
        assert table_contents(synced.url) == planner
    assert proxied.count("REPORT", "sync-collection") == 2
    done = synced.sync(allow_mass_cancel=True)
    assert done.count(Kind.CANCEL_LOCAL) == 27


def test_a_token_the_server_no_longer_accepts_gives_one_full_listing(
    synced: DavWorld, proxied: CountingProxy, server: Radicale, caplog: pytest.LogCaptureFixture
) -> None:
    data = json.loads(synced.checkpoints.read_text())
    token = data["checkpoints"][0]["token"]
    data["checkpoints"][0]["token"] = token[:-6] + (
        "000000" if token[-6:] != "000000" else "111111"
    )
    synced.checkpoints.write_text(json.dumps(data))
    synced.execute("UPDATE sesiones SET hora_fin = '12:00' WHERE id = 11")
    _phone(synced, server).event_by_uid("sesion-13@planctl").delete()
    with caplog.at_level(logging.WARNING, logger="planctl.sync"):
        report = synced.sync()
    lines = [r.getMessage() for r in caplog.records if "sync token" in r.getMessage()]
    assert lines == [
        "the calendar's sync token is no longer valid; listing the whole calendar once"
    ]
    kinds = {a.session_id: a.kind for a in report.actions}
    assert kinds == {11: Kind.UPDATE_REMOTE, 13: Kind.CANCEL_LOCAL}
    assert synced.session(13).estado == "cancelada"
    assert proxied.count("REPORT", "sync-collection") == 2  # refused, then from scratch
    proxied.requests.clear()
    assert synced.sync().remote_writes == 0  # and the run after is incremental again
    assert proxied.count("REPORT", "sync-collection") == 1
    # the write to session 11 came after the token: seen again, its body not loaded
    assert proxied.count("REPORT", "calendar-multiget", data=True) == 0


@pytest.mark.parametrize("proxied", [("sync-collection",)], indirect=True, ids=["no-sync"])
def test_a_server_without_sync_tokens_gets_a_ctag_check(
    synced: DavWorld, proxied: CountingProxy, server: Radicale
) -> None:
    # the run after the fixture's clean one: a ctag check, nothing listed or loaded
    assert synced.sync().remote_writes == 0
    assert proxied.count("REPORT", "sync-collection") == 0  # not asked again
    assert _listings(proxied, synced, server) == 0
    assert proxied.count("PROPFIND", depth="0", path=_path(synced, server)) == 1  # getctag
    assert proxied.count("REPORT", "calendar-multiget") == 0 and proxied.count("GET") == 0
    proxied.requests.clear()
    event = _phone(synced, server).event_by_uid("sesion-12@planctl")
    component = event.icalendar_component
    component["LOCATION"] = "Aula 9"
    event.save()
    report = synced.sync()
    assert {a.session_id: a.kind for a in report.actions} == {12: Kind.UPDATE_LOCAL}
    assert synced.session(12).direccion == "Aula 9"
    assert _listings(proxied, synced, server) == 1  # the ctag moved: hrefs and etags once
    assert proxied.count("REPORT", "calendar-multiget", data=True) == 1  # the edited one


def test_others_events_stay_counted_and_untouched(
    synced: DavWorld, proxied: CountingProxy, server: Radicale
) -> None:
    phone = _phone(synced, server)
    phone.save_event(
        dtstart=dt.datetime(2026, 12, 1, 8), dtend=dt.datetime(2026, 12, 1, 9),
        summary="Dentista", uid="dentista@phone",
    )  # fmt: skip
    for _ in range(2):  # listed as a change, then from the checkpoint
        report = synced.sync()
        assert [e.content.summary for e in report.foreign if e.content] == ["Dentista"]
        assert report.remote_writes == 0 and report.local_writes == 0
    assert proxied.count("REPORT", "sync-collection") == 2
    assert [str(e.icalendar_component["SUMMARY"]) for e in phone.search(uid="dentista@phone")] == [
        "Dentista"
    ]


def test_a_phone_that_puts_back_what_planctl_overwrote_is_seen(
    synced: DavWorld, proxied: CountingProxy, server: Radicale
) -> None:
    """The token kept predates the run's own writes; a server that diffs states (Xandikos)
    shows no change for an event put back byte for byte as it was at the token."""
    phone = _phone(synced, server)
    event = phone.event_by_uid("sesion-12@planctl")
    event.icalendar_component["STATUS"] = "CANCELLED"
    event.save()
    url = str(event.url)
    cancelled = phone.client.request(url, "GET").raw  # the bytes the server keeps
    assert synced.sync().count(Kind.CANCEL_LOCAL) == 1
    synced.execute("UPDATE sesiones SET estado = 'programada' WHERE id = 12")
    assert synced.sync().count(Kind.UPDATE_REMOTE) == 1  # planctl writes it back, confirmed
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    assert phone.client.request(url, "PUT", cancelled, headers).status in (200, 201, 204)
    assert phone.client.request(url, "GET").raw == cancelled
    report = synced.sync()
    assert {a.session_id: a.kind for a in report.actions} == {12: Kind.CANCEL_LOCAL}
    assert synced.session(12).estado == "cancelada"


def test_an_unreadable_token_file_is_a_full_listing_and_is_rewritten(
    synced: DavWorld, proxied: CountingProxy, server: Radicale
) -> None:
    synced.checkpoints.write_text("{not json", encoding="utf-8")
    _phone(synced, server).event_by_uid("sesion-13@planctl").delete()
    report = synced.sync()
    assert {a.session_id: a.kind for a in report.actions} == {13: Kind.CANCEL_LOCAL}
    data = json.loads(synced.checkpoints.read_text(encoding="utf-8"))
    assert len(data["checkpoints"]) == 1 and data["checkpoints"][0]["token"]
    assert synced.checkpoints.stat().st_mode & 0o777 == 0o600


def test_a_fifo_or_a_stranger_where_the_token_file_should_be_is_a_full_listing(
    tmp_path: Path,
) -> None:
    """The token file is a cache: a FIFO planted in its place never hangs the run (nothing
    remembered: a full listing), a directory or bad JSON is ignored too, and the next
    clean run replaces the FIFO with the file (0600) it reads back."""
    import os
    import threading

    from planctl.sync.checkpoints import Checkpoint, CheckpointFile

    path = tmp_path / "planctl-caldav-x.json"
    os.mkfifo(path)
    found: list[object] = []
    reader = threading.Thread(target=lambda: found.append(CheckpointFile(path).get("k")))
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "reading the token file hung on a FIFO"
    assert found == [None]
    CheckpointFile(path).put("k", Checkpoint("http://dav/cal/", token="t1"))
    assert path.is_file() and path.stat().st_mode & 0o777 == 0o600
    remembered = CheckpointFile(path).get("k")
    assert remembered is not None and remembered.token == "t1"
    path.unlink()
    path.mkdir()
    assert CheckpointFile(path).get("k") is None
    path.rmdir()
    path.write_text("{not json", encoding="utf-8")
    assert CheckpointFile(path).get("k") is None
