"""``planctl sync`` through the command line with the simulated calendar."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from planctl.logs import close_service_loggers

from .conftest import Cli
from .helpers import table_contents
from .sync_support import World, make_tiny_planner


@pytest.fixture
def tiny(migrated_url: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    make_tiny_planner(migrated_url)
    store = workdir / "calendario.json"
    monkeypatch.setenv("PLANCTL_SYNC_STORE", str(store))
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return World(migrated_url, store)


def test_sync_prints_a_summary_and_logs_the_run(tiny: World, cli: Cli, tmp_path: Path) -> None:
    run = cli("sync")
    assert run.exit_code == 0, run.stderr
    assert "Sync summary" in run.stdout and "created" in run.stdout
    assert sorted(tiny.events_by_session()) == [1, 2, 3]
    again = cli("sync")
    assert again.exit_code == 0
    assert "3" in again.stdout.split("sessions")[-1]  # three unchanged sessions
    close_service_loggers()
    log = (tmp_path / "logs" / "sincronizacion.log").read_text(encoding="utf-8")
    assert "session 1: created event" in log and "unchanged 3" in log


def test_dry_run_shows_the_plan_and_writes_nothing(tiny: World, cli: Cli) -> None:
    before = table_contents(tiny.url)
    run = cli("sync", "--dry-run")
    assert run.exit_code == 0, run.stderr
    assert "Plan (sync" in run.stdout and "create on calendar" in run.stdout
    assert "nothing written" in run.stdout
    assert not tiny.store.exists()
    assert table_contents(tiny.url) == before and tiny.states() == {}
    # each session's time with its UTC offset in PLANCTL_TIMEZONE (Europe/Madrid)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d \+0[12]00", run.stdout), run.stdout


@pytest.mark.parametrize("mode", ["push", "pull"])
def test_options_before_push_or_pull_are_applied(tiny: World, cli: Cli, mode: str) -> None:
    """`planctl sync --dry-run push` is a dry push: it once pushed for real."""
    before = table_contents(tiny.url)
    run = cli("sync", "--dry-run", mode)
    assert run.exit_code == 0, run.stderr
    assert f"Plan ({mode}" in run.stdout and "nothing written" in run.stdout
    assert not tiny.store.exists()
    assert table_contents(tiny.url) == before and tiny.states() == {}
    as_json = cli("sync", "--dry-run", "--json", mode)
    assert json.loads(as_json.stdout)["dry_run"] is True


def test_an_option_the_sub_command_does_not_take_is_refused(tiny: World, cli: Cli) -> None:
    run = cli("sync", "--allow-mass-cancel", "push")
    assert run.exit_code == 2
    assert "--allow-mass-cancel is an option of 'planctl sync' itself" in run.stderr
    run = cli("sync", "--dry-run", "remote", "list")
    assert run.exit_code == 2 and "not of 'planctl sync remote'" in run.stderr
    assert not tiny.store.exists()


def test_push_pull_and_status(tiny: World, cli: Cli) -> None:
    assert cli("sync", "push").exit_code == 0
    assert cli("sync", "remote", "edit", "2", "--start", "10:00", "--end", "12:00").exit_code == 0
    run = cli("sync", "status", "--json")
    assert run.exit_code == 0, run.stderr
    status = json.loads(run.stdout)
    assert (status["in_sync"], status["pending"], status["conflicting"]) == (2, 1, 0)
    assert status["last_run"]["mode"] == "push" and status["last_run"]["result"] == "ok"
    assert status["pending_sessions"][0]["session"] == 2
    push = cli("sync", "push")
    assert "left for pull" in push.stdout
    assert tiny.session(2).hora_inicio.hour == 9
    assert cli("sync", "pull").exit_code == 0
    assert tiny.session(2).hora_inicio.hour == 10
    human = cli("sync", "status")
    assert "in sync" in human.stdout and "last run" in human.stdout and "pull" in human.stdout


def test_status_all_lists_events_planctl_leaves_alone(tiny: World, cli: Cli) -> None:
    cli("sync")
    added = cli(
        "sync", "remote", "add", "--summary", "Dentista", "--date", "2026-11-23",
        "--start", "18:00", "--end", "19:00",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    run = cli("sync", "status", "--all")
    assert "Dentista" in run.stdout and "Events planctl leaves alone" in run.stdout
    data = json.loads(cli("sync", "status", "--all", "--json").stdout)
    assert [o["summary"] for o in data["others"]] == ["Dentista"]
    listed = json.loads(cli("sync", "remote", "list", "--json").stdout)
    assert sorted(e["summary"] for e in listed)[0] == "Dentista" and len(listed) == 4
    assert cli("sync", "remote", "list").exit_code == 0


def test_conflict_fail_exits_1_with_one_line(tiny: World, cli: Cli) -> None:
    cli("sync")
    tiny.execute("UPDATE sesiones SET hora_inicio = '08:00' WHERE id = 1")
    assert cli("sync", "remote", "edit", "1", "--start", "10:00").exit_code == 0
    before = table_contents(tiny.url)
    run = cli("sync", "--conflict", "fail")
    assert run.exit_code == 1
    assert "changed on both sides" in run.stderr and "--conflict local" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) <= 2
    assert table_contents(tiny.url) == before
    assert cli("sync", "--conflict", "remote").exit_code == 0
    assert tiny.session(1).hora_inicio.hour == 10


def test_remote_delete_cancels_the_session(tiny: World, cli: Cli) -> None:
    cli("sync")
    assert cli("sync", "remote", "delete", "sesion-3").exit_code == 0
    run = cli("sync")
    assert run.exit_code == 0
    assert tiny.session(3).estado == "cancelada"
    missing = cli("sync", "remote", "delete", "999")
    assert missing.exit_code == 3 and "no event '999'" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "--conflict", "mine"], "unknown conflict policy 'mine'"),
        (["sync", "--since", "2026-13-01"], "invalid date '2026-13-01'"),
        (["sync", "--since", "2026-12-01", "--until", "2026-11-01"], "is after"),
        (["sync", "remote", "edit", "1", "--start", "25:00"], "invalid time '25:00'"),
        (["sync", "remote", "edit", "1", "--status", "done"], "unknown status 'done'"),
    ],
)
def test_usage_errors_exit_2(tiny: World, cli: Cli, args: list[str], message: str) -> None:
    run = cli(*args)
    assert run.exit_code == 2, run.stdout
    assert message in run.stderr and "Traceback" not in run.stderr


def test_unknown_backend_is_named(tiny: World, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANCTL_SYNC_BACKEND", "outlook")
    run = cli("sync")
    assert run.exit_code == 1
    assert "unknown sync backend 'outlook'" in run.stderr
    assert "caldav, google, simulated" in run.stderr


def test_remote_commands_are_for_the_simulated_calendar_only(
    tiny: World, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANCTL_SYNC_BACKEND", "caldav")
    run = cli("sync", "remote", "list")
    assert run.exit_code == 2 and "simulated calendar" in run.stderr


def test_database_without_the_sync_migration(db_url: str, cli: Cli, workdir: Path) -> None:
    from planctl.db import migrate

    migrate.upgrade(db_url, "4150a15fd00a")
    run = cli("sync", url=db_url)
    assert run.exit_code == 1 and "db-upgrade" in run.stderr
    assert not [p for p in workdir.iterdir() if "calenda" in p.name]  # no store, no file


def test_check_the_simulated_calendar(tiny: World, cli: Cli) -> None:
    run = cli("sync", "check")
    assert run.exit_code == 0 and "will be created on the first sync" in run.stdout
    cli("sync")
    assert "3 events" in cli("sync", "check").stdout


def test_json_output_has_english_keys(tiny: World, cli: Cli) -> None:
    run = cli("sync", "--json")
    assert run.exit_code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["summary"]["calendar_created"] == 3 and data["dry_run"] is False
    assert {a["action"] for a in data["actions"]} == {"create_remote"}
    status = json.loads(cli("sync", "status", "--json").stdout)
    assert set(status["last_run"]["counts"]) == {
        "created", "updated", "deleted", "unchanged", "conflicts", "errors"
    }  # fmt: skip
    assert status["last_run"]["counts"]["created"] == 3


def test_push_exits_0_when_only_a_pull_has_a_problem(tiny: World, cli: Cli) -> None:
    assert cli("sync").exit_code == 0
    # an overnight event cannot become a session: a pull's error, pending for a push
    moved = cli("sync", "remote", "edit", "2", "--start", "22:00", "--end", "01:00")
    assert moved.exit_code == 0, moved.stderr
    push = cli("sync", "push")
    assert push.exit_code == 0, push.stderr
    assert "left for pull" in push.stdout
    pull = cli("sync", "pull")
    assert pull.exit_code == 1 and "not one slot within a day" in pull.stderr
    assert len(pull.stderr.strip().splitlines()) == 1


def test_a_long_plan_is_summarised_unless_verbose(tiny: World, cli: Cli) -> None:
    tiny.execute(
        "INSERT INTO sesiones (contratacion_id, fecha, hora_inicio, hora_fin, estado) "
        "SELECT 1, fecha, hora_inicio, hora_fin, 'programada' FROM sesiones WHERE id = 1"
    )
    for _ in range(5):  # 3 → 2^5 + 2 sessions to create, more than a screenful
        tiny.execute(
            "INSERT INTO sesiones (contratacion_id, fecha, hora_inicio, hora_fin, estado) "
            "SELECT contratacion_id, fecha, hora_inicio, hora_fin, estado FROM sesiones "
            "WHERE estado != 'cancelada'"
        )
    short = cli("sync", "--dry-run")
    assert short.exit_code == 0
    assert "create on calendar" in short.stdout and "-v or --json lists them" in short.stdout
    assert len(short.stdout.splitlines()) < 30
    long = cli("-v", "sync", "--dry-run")
    assert long.stdout.count("create on calendar") > 20


def test_status_all_tells_the_truth_about_an_event_cancelled_on_the_phone(
    tiny: World, cli: Cli
) -> None:
    assert cli("sync").exit_code == 0
    assert cli("sync", "remote", "edit", "2", "--status", "cancelled").exit_code == 0
    assert cli("-q", "sync").exit_code == 0
    assert tiny.session(2).estado == "cancelada"
    data = json.loads(cli("sync", "status", "--all", "--json").stdout)
    assert (data["in_sync"], data["pending"], data["conflicting"]) == (3, 0, 0)
    assert data["orphans"] == [] and data["others"] == [] and data["duplicates"] == []
    human = cli("sync", "status", "--all")
    assert "never synced" not in human.stdout


def test_phone_times_read_as_a_phone_reads_them(tiny: World, cli: Cli) -> None:
    """An end before the start is the next day's (22:00–01:00); an edit that would leave
    an event ending before it starts, or a zero-length one, is refused and changes nothing."""
    assert cli("sync", "push").exit_code == 0
    before = tiny.store.read_bytes()
    zero = ["--summary", "x", "--date", "2026-01-01", "--start", "10:00", "--end", "10:00"]
    run = cli("sync", "remote", "add", *zero)
    assert run.exit_code == 2 and "starts and ends at 10:00" in run.stderr
    run = cli("sync", "remote", "edit", "1", "--start", "23:30")
    assert run.exit_code == 2 and "before it starts at 23:30" in run.stderr
    assert tiny.store.read_bytes() == before
    night = ["--summary", "guardia", "--date", "2026-01-01", "--start", "22:00", "--end", "01:00"]
    assert cli("sync", "remote", "add", *night).exit_code == 0
    listed = json.loads(cli("sync", "remote", "list", "--json").stdout)
    event = next(e for e in listed if e.get("summary") == "guardia")
    assert event["start"]["dateTime"].startswith("2026-01-01T22:00")
    assert event["end"]["dateTime"].startswith("2026-01-02T01:00")
