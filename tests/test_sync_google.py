"""The ``google`` backend against planctl's Calendar API emulator running as a real process.

OAuth end to end (the printed URL opened by an HTTP client), sync tokens, etags,
batches, backoff, kill -9 mid-batch; phone edits made with google-api-python-client,
whose discovery document the emulator's answers are validated against.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from planctl.config import Settings
from planctl.db.engine import connect
from planctl.db.schema import sesiones
from planctl.errors import SyncError
from planctl.sync.backends.google import GoogleBackend, open_backend, pick_calendar
from planctl.sync.engine import Kind, SyncOptions, SyncReport, UnsafeRunError, run_sync
from planctl.sync.google.client import Backoff

from .google_support import (
    EmulatorProcess,
    authorise,
    copy_token,
    discovery,
    google_env,
    phone_service,
    start_emulator,
    validate,
    wait_for,
)
from .helpers import run_planctl, spawn_planctl, table_contents, target_of
from .sync_support import TZ, make_tiny_planner


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    base = tmp_path_factory.mktemp("emulator")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_") and k != "DATABASE_URL"
    }
    yield from start_emulator(base, {**env, "PLANCTL_LOG_DIR": str(base / "logs")})


@pytest.fixture(scope="module")
def grant(emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One OAuth grant for the module: the token file and what `sync auth` printed."""
    base = tmp_path_factory.mktemp("grant")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_") and k != "DATABASE_URL"
    }
    token = base / "token.json"
    printed = authorise(emulator, token, {**env, "PLANCTL_LOG_DIR": str(base / "logs")})
    return token, printed


@dataclass
class GWorld:
    url: str
    tmp: Path
    emulator: EmulatorProcess
    token: Path
    calendar: str

    def settings(self) -> Settings:
        return Settings(
            target=target_of(self.url),
            timezone=TZ,
            sync_backend="google",
            google_api_url=self.emulator.root,
            google_token=self.token,
            google_calendar=self.calendar,
        )

    def env(self) -> dict[str, str]:
        return google_env(self.url, self.tmp, self.emulator, self.token, self.calendar)

    def backend(self, *, create_calendar: bool = True) -> GoogleBackend:
        return open_backend(self.settings(), create_calendar=create_calendar)

    def sync(self, backend: GoogleBackend | None = None, **options: Any) -> tuple[SyncReport, int]:
        """A run; its report and the HTTP requests it sent."""
        backend = backend or self.backend()
        try:
            report = run_sync(target_of(self.url), backend, SyncOptions(timezone=TZ, **options))
        finally:
            backend.close()
        return report, backend.client.requests

    def phone(self) -> Any:
        return phone_service(self.emulator, self.token)

    def calendar_id(self) -> str:
        items = self.phone().calendarList().list().execute()["items"]
        return str(pick_calendar(items, self.calendar, "emulator"))

    def events(self, *, deleted: bool = False) -> list[dict[str, Any]]:
        answer = (
            self.phone()
            .events()
            .list(calendarId=self.calendar_id(), showDeleted=deleted, maxResults=2500)
            .execute()
        )
        return list(answer["items"])

    def events_by_session(self) -> dict[int, list[dict[str, Any]]]:
        found: dict[int, list[dict[str, Any]]] = {}
        for event in self.events():
            private = (event.get("extendedProperties") or {}).get("private") or {}
            if "planctlSessionId" in private:
                found.setdefault(int(private["planctlSessionId"]), []).append(event)
        return found

    def session(self, session_id: int) -> Any:
        return table_contents(self.url)["sesiones"][session_id - 1]


@pytest.fixture
def world(
    migrated_url: str, tmp_path: Path, emulator: EmulatorProcess, grant: tuple[Path, str]
) -> Iterator[GWorld]:
    make_tiny_planner(migrated_url)
    token = copy_token(grant[0], tmp_path / "config" / "token.json")
    yield GWorld(migrated_url, tmp_path, emulator, token, f"Planificador {uuid.uuid4().hex[:8]}")
    emulator.clear_faults()


def _add_sessions(url: str, count: int, first_id: int = 10) -> None:
    rows = [
        {
            "id": first_id + n,
            "contratacion_id": 1,
            "fecha": dt.date(2027, 1, 1) + dt.timedelta(days=n % 300),
            "hora_inicio": dt.time(9 + n % 5),
            "hora_fin": dt.time(15),
            "estado": "programada",
        }
        for n in range(count)
    ]
    with connect(target_of(url)) as connection:
        connection.execute(insert(sesiones), rows)


# -- OAuth -----------------------------------------------------------------------


def test_oauth_flow_saves_an_authorized_user_token_0600(
    emulator: EmulatorProcess, grant: tuple[Path, str]
) -> None:
    token, printed = grant
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    info = json.loads(token.read_text())
    assert {"token", "refresh_token", "client_id", "client_secret", "token_uri", "scopes"} <= set(
        info
    )
    assert info["token_uri"] == emulator.root + "/token"
    from google.oauth2.credentials import Credentials

    assert Credentials.from_authorized_user_file(str(token)).refresh_token == info["refresh_token"]
    url = next(line for line in printed.splitlines() if line.startswith("http"))
    assert url.startswith(emulator.root + "/o/oauth2/auth?") and "code_challenge=" in url
    secret = json.loads(emulator.client_secrets.read_text())["installed"]["client_secret"]
    for hidden in (secret, info["refresh_token"], info["token"]):
        assert hidden not in printed


def test_an_expired_access_token_is_refreshed_and_saved(
    emulator: EmulatorProcess, grant: tuple[Path, str], tmp_path: Path
) -> None:
    token = copy_token(grant[0], tmp_path / "token.json")
    info = json.loads(token.read_text())
    info["expiry"] = "2020-01-01T00:00:00Z"
    token.write_text(json.dumps(info))
    env = google_env(f"sqlite:///{tmp_path / 'p.db'}", tmp_path, emulator, token, "Planificador")
    run = run_planctl("sync", "check", env=env)
    assert run.returncode == 0, run.stderr
    assert "reachable, authorised" in run.stdout
    refreshed = json.loads(token.read_text())
    assert refreshed["token"] != info["token"] and refreshed["expiry"] > "2026"
    assert refreshed["refresh_token"] == info["refresh_token"]
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_a_revoked_grant_is_one_line_and_revoke_deletes_the_token(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_") and k != "DATABASE_URL"
    }
    env["PLANCTL_LOG_DIR"] = str(tmp_path / "logs")
    token = tmp_path / "own" / "token.json"
    authorise(emulator, token, env)
    info = json.loads(token.read_text())
    # The user removes planctl's access in their Google account: the grant is revoked there.
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(
            emulator.root + "/revoke", data=f"token={info['refresh_token']}".encode()
        ),
        timeout=10,
    ).close()
    info["expiry"] = "2020-01-01T00:00:00Z"
    token.write_text(json.dumps(info))
    run_env = google_env(
        f"sqlite:///{tmp_path / 'p.db'}", tmp_path, emulator, token, "Planificador"
    )
    run = run_planctl("sync", "check", env=run_env)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid_grant" in lines[0] and "planctl sync auth" in lines[0], (
        run.stderr
    )
    assert info["refresh_token"] not in run.stderr + run.stdout
    # `sync auth --revoke` on a live grant: revoked at the server, the file deleted
    other = tmp_path / "other" / "token.json"
    authorise(emulator, other, env)
    refresh = json.loads(other.read_text())["refresh_token"]
    revoked = run_planctl(
        "sync", "auth", "--revoke", env={**run_env, "PLANCTL_GOOGLE_TOKEN": str(other)}
    )
    assert revoked.returncode == 0 and "Revoked" in revoked.stdout, revoked.stderr
    assert not other.exists()
    again = urllib.request.Request(
        emulator.root + "/token",
        data=(f"grant_type=refresh_token&refresh_token={refresh}&client_id=x").encode(),
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(again, timeout=10)


# -- sync ---------------------------------------------------------------------------


def test_first_sync_then_a_no_op_run_is_one_request(world: GWorld) -> None:
    report, _ = world.sync()
    assert report.count(Kind.CREATE_REMOTE) == 3
    events = world.events_by_session()
    assert sorted(events) == [1, 2, 3] and all(len(e) == 1 for e in events.values())
    for (event,) in events.values():
        assert "sesion-" not in event["summary"] and event["iCalUID"].startswith("sesion-")
    # a dedicated calendar, the primary one untouched
    calendars = world.phone().calendarList().list().execute()["items"]
    primary = next(c for c in calendars if c.get("primary"))
    assert world.phone().events().list(calendarId=primary["id"]).execute()["items"] == []
    states = world_states(world)
    before = world.emulator.requests()
    again, requests = world.sync()
    assert requests == 1 and world.emulator.requests() - before == 1
    assert again.summary()["unchanged"] == 3 and world_states(world) == states


def world_states(world: GWorld) -> Any:
    from .sync_support import World

    return World(world.url, world.tmp / "unused.json").states()


def test_phone_edits_with_google_api_python_client_come_back(world: GWorld) -> None:
    world.sync()
    phone, calendar_id = world.phone(), world.calendar_id()
    doc = discovery()
    listing = (
        phone.events()
        .list(calendarId=calendar_id, privateExtendedProperty="planctlSessionId=2")
        .execute()
    )
    validate(listing, {"$ref": "Events"}, doc)
    validate(phone.calendarList().list().execute(), {"$ref": "CalendarList"}, doc)
    (event,) = listing["items"]
    moved = (
        phone.events()
        .patch(
            calendarId=calendar_id,
            eventId=event["id"],
            body={
                "start": {"dateTime": "2026-11-24T10:00:00+01:00"},
                "end": {"dateTime": "2026-11-24T14:00:00+01:00"},
            },
        )
        .execute()
    )
    validate(moved, {"$ref": "Event"}, doc)
    (third,) = world.events_by_session()[3]
    phone.events().delete(calendarId=calendar_id, eventId=third["id"]).execute()
    own = (
        phone.events()
        .insert(
            calendarId=calendar_id,
            body={
                "summary": "Dentista",
                "start": {"dateTime": "2026-11-25T18:00:00+01:00"},
                "end": {"dateTime": "2026-11-25T19:00:00+01:00"},
            },
        )
        .execute()
    )
    report, _ = world.sync()
    assert report.summary()["planner_updated"] == 1 and report.summary()["planner_cancelled"] == 1
    with connect(target_of(world.url)) as connection:
        rows = {r.id: r for r in connection.execute(sesiones.select())}
    assert (rows[2].hora_inicio, rows[2].hora_fin) == (dt.time(10), dt.time(14))
    assert rows[3].estado == "cancelada"
    assert (
        phone.events().get(calendarId=calendar_id, eventId=own["id"]).execute()["summary"]
        == "Dentista"
    )
    # `sync remote list` reads the same calendar through the API
    listed = run_planctl("sync", "remote", "list", "--json", env=world.env())
    assert listed.returncode == 0, listed.stderr
    assert {e["id"] for e in json.loads(listed.stdout)} >= {own["id"], event["id"]}


def test_an_expired_sync_token_is_one_full_listing(
    world: GWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.sync()
    world.emulator.fault(kind="expire_sync_tokens")
    backend = world.backend()
    with caplog.at_level("WARNING", logger="planctl.sync"):
        report, requests = world.sync(backend)
    said = [r.getMessage() for r in caplog.records if "sync token" in r.getMessage()]
    assert len(said) == 1 and "410" in said[0]
    assert backend.full_listings == 1 and requests == 2  # the 410, then the full listing
    assert report.summary()["unchanged"] == 3


def test_a_phone_edit_racing_an_update_is_a_412_decided_by_the_policy(world: GWorld) -> None:
    world.sync()
    with connect(target_of(world.url)) as connection:
        connection.execute(
            sesiones.update().where(sesiones.c.id == 1).values(hora_fin=dt.time(14))
        )
    (event,) = world.events_by_session()[1]
    phone, calendar_id = world.phone(), world.calendar_id()
    backend = world.backend()
    original = backend.update

    def racing_update(event_id: str, payload: Any, etag: str | None) -> Any:
        backend.update = original  # type: ignore[method-assign]  # once
        phone.events().patch(
            calendarId=calendar_id, eventId=event["id"], body={"location": "Aula 7"}
        ).execute()
        return original(event_id, payload, etag)

    backend.update = racing_update  # type: ignore[method-assign]
    report, _ = world.sync(backend, policy="fail")
    assert [a.session_id for a in report.conflicts] == [1]
    kept = phone.events().get(calendarId=calendar_id, eventId=event["id"]).execute()
    assert kept["location"] == "Aula 7"  # nothing overwritten
    report, _ = world.sync(policy="local")
    assert report.summary()["calendar_updated"] == 1
    final = phone.events().get(calendarId=calendar_id, eventId=event["id"]).execute()
    assert final["end"]["dateTime"].startswith("2026-11-23T14:00")


def test_rate_limits_and_5xx_are_retried_with_backoff_honouring_retry_after(world: GWorld) -> None:
    for fault in (
        {"kind": "rate_limit", "retry_after": 3},
        {"kind": "user_rate_limit"},
        {"kind": "too_many", "retry_after": 1},
        {"kind": "server", "status": 503},
    ):
        world.emulator.fault(**fault)
    sleeps: list[float] = []
    backend = world.backend()
    backend.client.backoff = Backoff(base=0.5, sleep=sleeps.append, jitter=lambda: 0.0)
    report, _ = world.sync(backend)
    assert report.count(Kind.CREATE_REMOTE) == 3 and len(world.events_by_session()) == 3
    assert backend.client.retries == 4
    assert sleeps == [3.0, 0.5, 1.0, 2.0]  # Retry-After wins over a shorter backoff step


def test_a_run_that_gives_up_is_bounded_and_changes_nothing(world: GWorld) -> None:
    world.emulator.fault(kind="too_many", count=1000)
    now = [0.0]
    backend = world.backend()
    backend.client.backoff = Backoff(
        total=30,
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
        jitter=lambda: 1.0,
    )
    before = table_contents(world.url)
    with pytest.raises(SyncError, match="gave up"):
        world.sync(backend)
    world.emulator.clear_faults()
    assert now[0] <= 30 and table_contents(world.url) == before and world_states(world) == {}


def test_first_sync_is_batched(world: GWorld) -> None:
    _add_sessions(world.url, 997)
    report, requests = world.sync()
    assert report.count(Kind.CREATE_REMOTE) == 1000
    assert requests <= 1000 / 40, requests
    by_session = world.events_by_session()
    assert len(by_session) == 1000 and all(len(e) == 1 for e in by_session.values())
    _, again = world.sync()
    assert again == 1


def test_kill_9_mid_batch_then_resume_without_duplicates(world: GWorld) -> None:
    _add_sessions(world.url, 147)
    world.emulator.fault(kind="stall", path="/batch", skip=1, after_parts=20, seconds=15)
    stats_before = world.emulator.admin("/emulator/stats")["stalled"]
    process = spawn_planctl("sync", env=world.env())
    try:
        wait_for(lambda: world.emulator.admin("/emulator/stats")["stalled"] > stats_before)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    world.emulator.clear_faults()
    assert len(world.events_by_session()) == 70  # one whole batch and 20 of the next
    resumed = run_planctl("sync", env=world.env())
    assert resumed.returncode == 0, resumed.stderr
    by_session = world.events_by_session()
    assert len(by_session) == 150 and all(len(e) == 1 for e in by_session.values())
    assert world_states(world).keys() == set(by_session)


def test_deleting_many_events_on_the_phone_is_refused_then_allowed(world: GWorld) -> None:
    _add_sessions(world.url, 12)
    world.sync()
    phone, calendar_id = world.phone(), world.calendar_id()
    from googleapiclient.http import BatchHttpRequest

    batch = BatchHttpRequest(batch_uri=world.emulator.root + "/batch/calendar/v3")
    removed = [events[0]["id"] for sid, events in sorted(world.events_by_session().items())[:8]]
    for event_id in removed:
        batch.add(phone.events().delete(calendarId=calendar_id, eventId=event_id))
    batch.execute()
    assert len(world.events_by_session()) == 7
    before = table_contents(world.url)
    with pytest.raises(UnsafeRunError, match="would cancel 8 of the 15 synced"):
        world.sync()
    assert table_contents(world.url) == before
    report, _ = world.sync(allow_mass_cancel=True)
    assert report.summary()["planner_cancelled"] == 8


def test_the_emulator_speaks_google_errors_to_an_independent_client(world: GWorld) -> None:
    from googleapiclient.errors import HttpError

    world.sync()
    phone, calendar_id = world.phone(), world.calendar_id()
    (event,) = world.events_by_session()[1]
    stale = phone.events().update(
        calendarId=calendar_id, eventId=event["id"], body={**event, "summary": "x"}
    )
    stale.headers["If-Match"] = '"1"'
    with pytest.raises(HttpError) as failed:
        stale.execute()
    assert failed.value.resp.status == 412
    assert json.loads(failed.value.content)["error"]["errors"][0]["reason"] == "conditionNotMet"
    with pytest.raises(HttpError) as missing:
        phone.events().get(calendarId=calendar_id, eventId="nosuchevent0").execute()
    assert missing.value.resp.status == 404


def test_a_calendar_is_named_by_id_or_summary_never_the_primary_by_default() -> None:
    calendars: list[dict[str, Any]] = [
        {"id": "ana@example.com", "summary": "Planificador", "primary": True},
        {"id": "abc@group.calendar.google.com", "summary": "Planificador"},
        {"id": "xyz@group.calendar.google.com", "summary": "Otro"},
    ]
    assert pick_calendar(calendars, "Planificador", "w") == "abc@group.calendar.google.com"
    assert (
        pick_calendar(calendars, "xyz@group.calendar.google.com", "w")
        == "xyz@group.calendar.google.com"
    )
    assert pick_calendar(calendars, "primary", "w") == "ana@example.com"
    assert pick_calendar(calendars[:1], "Planificador", "w") is None  # a new one is made
    with pytest.raises(SyncError, match="2 calendars are called 'Otro'"):
        pick_calendar(
            [*calendars, {"id": "q@group.calendar.google.com", "summary": "Otro"}], "Otro", "w"
        )


def test_the_emulator_command_refuses_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLANCTL_")}
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "planctl",
                "sync",
                "emulator",
                "--port",
                str(port),
                "--store",
                str(tmp_path / "s"),
            ],
            env={**env, "PLANCTL_LOG_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"127.0.0.1:{port}" in run.stderr


def test_the_mirror_keeps_tombstones_across_a_full_listing_and_aliases_until_moved(
    tmp_path: Path,
) -> None:
    from planctl.sync.google.mirror import Mirror

    mirror = Mirror(tmp_path / "m.sqlite")
    mirror.replace("cal", [("a", '"1"', 1, False), ("b", '"2"', 2, True)], "t1")
    mirror.record_write("c", '"3"', '"planctl-c"', 3)
    # a full listing (after a 410) where Google purged b's tombstone
    mirror.replace("cal", [("a", '"1"', 1, False), ("c", '"3"', 3, False)], "t2")
    assert sorted(mirror.rows()) == [
        ("a", '"1"', 1, False),
        ("b", '"2"', 2, True),
        ("c", '"planctl-c"', 3, False),
    ]
    mirror.apply([("c", '"9"', 3, False)], "t3")  # edited elsewhere: the server's etag shows
    assert ("c", '"9"', 3, False) in mirror.rows() and mirror.token_for("cal") == "t3"
    mirror.save(create=True)
    again = Mirror(tmp_path / "m.sqlite")
    assert sorted(again.rows()) == sorted(mirror.rows())
    assert stat.S_IMODE((tmp_path / "m.sqlite").stat().st_mode) == 0o600


def test_auth_and_sync_without_the_files_are_one_line_each(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANCTL_SYNC_BACKEND", "google")
    monkeypatch.setenv("PLANCTL_GOOGLE_TOKEN", str(tmp_path / "none" / "token.json"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    run = cli("sync", "auth", "--no-browser")
    assert run.exit_code == 1 and "PLANCTL_GOOGLE_CLIENT_SECRETS is not set" in run.stderr
    revoke = cli("sync", "auth", "--revoke")
    assert revoke.exit_code == 3 and "no Google token" in revoke.stderr
    check = cli("sync", "check")
    assert check.exit_code == 1 and "run planctl sync auth" in check.stderr
    assert len(check.stderr.strip().splitlines()) == 1
    (tmp_path / "client.json").write_text('{"web": {}}')
    monkeypatch.setenv("PLANCTL_GOOGLE_CLIENT_SECRETS", str(tmp_path / "client.json"))
    bad = cli("sync", "auth", "--no-browser")
    assert bad.exit_code == 1 and "not an OAuth client file" in bad.stderr


def test_cancelling_many_sessions_in_the_planner_is_refused_then_allowed(world: GWorld) -> None:
    _add_sessions(world.url, 12)
    world.sync()
    with connect(target_of(world.url)) as connection:
        connection.execute(
            sesiones.update().where(sesiones.c.id >= 10).values(estado="cancelada")
        )
    ids_before = {e["id"]: e["etag"] for e in world.events()}
    with pytest.raises(UnsafeRunError, match="allow-mass-delete"):
        world.sync()
    assert {e["id"]: e["etag"] for e in world.events()} == ids_before  # nothing written
    report, _ = world.sync(allow_mass_delete=True)
    assert report.summary()["calendar_deleted"] == 12
    assert sorted(world.events_by_session()) == [1, 2, 3]
