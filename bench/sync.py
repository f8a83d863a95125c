"""Calendar sync benchmark: first sync and no-op rerun, against the bare caldav library.

    python bench/sync.py [--sessions 1000] [--big 200000] [--no-caldav]

Seeds a SQLite planner with N sessions (db-seed --scale N), then times
``planctl -q sync`` (a real process, as cron runs it) twice against the
simulated calendar, and twice against a Radicale server on 127.0.0.1
(temporary storage, no auth). The reference for the CalDAV first sync is a
bare caldav-library loop in this same run: the same event bodies PUT one by
one (``If-None-Match: *``) through ``DAVClient.request`` into a fresh calendar
of the same server, so the server's own cost is the floor both pay.

The second run must write no event: writes are counted on the server side
(the simulated store's etag counter; every href and etag of the CalDAV
collection before and after). Wall-clock seconds are shown with the
process's CPU seconds (user + system), which the other load on the machine
moves much less. ``--big N`` adds a no-op run over N sessions
on the simulated calendar (the first sync of those is timed too). Appends a
table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, env_for, record

CPU: list[float] = []  # CPU seconds (user + system) of each timed run, in order
RSS: list[float] = []  # peak RSS in MB of each timed run (GNU time's %M), in order
GNU_TIME = "/usr/bin/time"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall-clock seconds of one planctl process; its CPU seconds go to CPU, its peak RSS to RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if Path(GNU_TIME).exists() else cmd
        started = time.perf_counter()
        subprocess.run(wrapped, env=env, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        text = Path(rss.name).read_text().strip()
        RSS.append(int(text.splitlines()[-1]) / 1024 if text else float("nan"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return elapsed


def simulated_writes(store: Path) -> int:
    """The store's write sequence (etags): it moves by one on every write the server accepts."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
    return int(row[0]) - 1


def store_events(store: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def caldav_snapshot(env: dict[str, str]) -> dict[str, str | None]:
    code = (
        "import json\n"
        "from planctl.config import load_settings\n"
        "from planctl.sync.backends.caldav import open_backend\n"
        "b = open_backend(load_settings(), create_calendar=False)\n"
        "print(json.dumps({e.id: e.etag for e in b.list()}))\n"
        "b.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    )
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


def bare_caldav_loop(env: dict[str, str], name: str) -> tuple[int, float]:
    """The reference: planctl's event bodies PUT by a plain caldav-library loop.

    Bodies are built before the clock starts (the same ones planctl writes);
    the timed part is one conditional PUT per event into a new calendar.
    """
    code = r"""
import json, sys, time
from urllib.parse import quote
from caldav.davclient import DAVClient
from planctl.config import load_settings
from planctl.calendar.sessions import SessionFilter, iter_sessions
from planctl.db.engine import connect
from planctl.sync.backends.caldav import CalDAVBackend
from planctl.sync.engine import LocalItem

settings = load_settings()
with connect(settings.target) as connection:
    items = [LocalItem(v, settings.timezone) for v in
             iter_sessions(connection, SessionFilter(include_cancelled=False))]
writer = CalDAVBackend(settings)
bodies = [(i.payload().uid, writer._body(i.payload())) for i in items]
client = DAVClient(url=settings.caldav_url, username=settings.caldav_user, password="x")
calendar = client.principal().make_calendar(name=sys.argv[1])
base = str(calendar.url)
headers = {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"}
started = time.perf_counter()
for uid, body in bodies:
    response = client.request(base + quote(uid) + ".ics", "PUT", body, headers)
    assert response.status in (200, 201, 204), response.status
print(json.dumps([len(bodies), time.perf_counter() - started]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code, name], env=env, check=True, capture_output=True, text=True
    )
    count, seconds = json.loads(done.stdout)
    return int(count), float(seconds)


def start_radicale(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = work / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = none\n"
        f"[storage]\nfilesystem_folder = {work / 'collections'}\n[logging]\nlevel = warning\n"
    )
    process = subprocess.Popen([sys.executable, "-m", "radicale", "--config", str(config)])
    for _ in range(300):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}/"
        time.sleep(0.1)
    process.kill()
    raise SystemExit("Radicale did not start")


def seeded(work: Path, name: str, sessions: int) -> dict[str, str]:
    url = f"sqlite:///{work / name}"
    env = env_for(url, work)
    subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
    subprocess.run([PLANCTL, "-q", "db-seed", "--scale", str(sessions)], env=env, check=True)
    return env


def simulated_rows(work: Path, sessions: int, label: str) -> list[str]:
    env = seeded(work, f"planner-{sessions}.db", sessions)
    store = work / f"calendar-{sessions}.json"
    sim = {**env, "PLANCTL_SYNC_STORE": str(store)}
    # the whole plan as JSON (every session a create), streamed to stdout
    full_dry = timed([PLANCTL, "-q", "sync", "--dry-run", "--json"], sim)
    rss_full_dry = RSS[-1]
    first = timed([PLANCTL, "-q", "sync"], sim)
    writes = simulated_writes(store)
    events = store_events(store)
    second = timed([PLANCTL, "-q", "sync"], sim)
    rewritten = simulated_writes(store) - writes
    dry = timed([PLANCTL, "-q", "sync", "--dry-run", "--json"], sim)
    cpu_first, cpu_second, _ = CPU[-3:]
    rss_first, rss_second, rss_dry = RSS[-3:]
    csv = timed([PLANCTL, "-q", "export", "csv", "sesiones", "-o", str(work / "s.csv")], env)
    cpu_csv = CPU[-1]
    ical = timed([PLANCTL, "-q", "export", "ical", "-o", str(work / "s.ics")], env)
    cpu_ical = CPU[-1]
    return [
        f"| simulated, {label} | {events:,} | {first:.2f} (CPU {cpu_first:.2f}, "
        f"RSS {rss_first:.0f} MB) | {second:.2f} (CPU {cpu_second:.2f}, RSS {rss_second:.0f} MB)"
        f" | `export csv sesiones` {csv:.2f} s (CPU {cpu_csv:.2f}) → no-op **{second / csv:.2f}×**"
        f" (CPU **{cpu_second / cpu_csv:.2f}×**); `export ical` {ical:.2f} s (CPU {cpu_ical:.2f})"
        f" → no-op **{second / ical:.2f}×** (CPU **{cpu_second / cpu_ical:.2f}×**); "
        f"`--dry-run --json` {dry:.2f} s, "
        f"RSS {rss_dry:.0f} MB; before the first sync (every session a create) "
        f"{full_dry:.2f} s, RSS {rss_full_dry:.0f} MB | {rewritten} |"
    ]


def google_rows(work: Path, sessions: int) -> list[str]:
    """The google backend against `planctl sync emulator` (a real process, loopback HTTP,
    OAuth through the printed URL); the reference is `planctl export ical` in the same run."""
    import urllib.request

    env = seeded(work, f"planner-google-{sessions}.db", sessions)
    base = work / "emulator"
    base.mkdir()
    process = subprocess.Popen(
        [
            PLANCTL,
            "sync",
            "emulator",
            "--port",
            "0",
            "--store",
            str(base / "store.sqlite"),
            "--client-secrets",
            str(base / "client.json"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        root = process.stdout.readline().strip().rsplit("=", 1)[1]
        google = {
            **env,
            "PLANCTL_SYNC_BACKEND": "google",
            "PLANCTL_GOOGLE_API_URL": root,
            "PLANCTL_GOOGLE_CLIENT_SECRETS": str(base / "client.json"),
            "PLANCTL_GOOGLE_TOKEN": str(base / "token.json"),
        }
        auth = subprocess.Popen(
            [PLANCTL, "sync", "auth", "--no-browser"], env=google, stdout=subprocess.PIPE, text=True
        )
        assert auth.stdout is not None
        for line in auth.stdout:
            if line.startswith("http"):
                urllib.request.urlopen(line.strip(), timeout=30).close()
                break
        auth.wait(timeout=60)

        def requests() -> int:
            with urllib.request.urlopen(root + "/emulator/stats", timeout=30) as answer:
                return int(json.loads(answer.read())["requests"])

        before = requests()
        first = timed([PLANCTL, "-q", "sync"], google)
        first_requests = requests() - before
        writes = int(json.loads(urllib.request.urlopen(root + "/emulator/stats").read())["writes"])
        second = timed([PLANCTL, "-q", "sync"], google)
        second_requests = requests() - before - first_requests
        cpu_first, cpu_second = CPU[-2:]
        ical = timed([PLANCTL, "-q", "export", "ical", "-o", str(work / "all.ics")], env)
        cpu_ical = CPU[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
    return [
        f"| google → `sync emulator` (loopback HTTP), {sessions:,} sessions | {writes:,} | "
        f"{first:.2f} (CPU {cpu_first:.2f}); **{first_requests} requests** "
        f"(sessions/40 = {sessions / 40:.0f}) | {second:.2f} (CPU {cpu_second:.2f}); "
        f"{second_requests} request | `planctl export ical` {ical:.2f} s (CPU {cpu_ical:.2f}) "
        f"→ no-op **{second / ical:.2f}×** | — |"
    ]


def bare_listing(env: dict[str, str]) -> float:
    """The reference for a CalDAV no-op: one process that lists hrefs and etags (PROPFIND)."""
    code = (
        "from caldav.davclient import DAVClient\n"
        "from planctl.config import load_settings\n"
        "s = load_settings()\n"
        "c = DAVClient(url=s.caldav_url, username=s.caldav_user, password='x')\n"
        "cal = [k for k in c.principal().calendars() if k.get_display_name() == "
        "s.caldav_calendar][0]\n"
        "body = '<d:propfind xmlns:d=\"DAV:\"><d:prop><d:getetag/></d:prop></d:propfind>'\n"
        "r = c.request(str(cal.url), 'PROPFIND', body, {'Depth': '1'})\n"
        "assert r.status == 207\n"
    )
    return min(timed([sys.executable, "-c", code], env) for _ in range(3))


def import_floor_rows(env: dict[str, str]) -> list[str]:
    """What any no-op run pays before sync starts: the interpreter and its imports."""
    rows = []
    for label, modules in (
        ("simulated", "sqlalchemy, typer, rich.table, icalendar"),
        ("CalDAV", "sqlalchemy, typer, rich.table, icalendar, caldav"),
    ):
        wall = min(timed([sys.executable, "-c", f"import {modules}"], env) for _ in range(3))
        cpu = min(CPU[-3:])
        rows.append(
            f"| floor for a {label} no-op: `python -c 'import {modules}'` (best of 3) | — | — | "
            f"{wall:.2f} (CPU {cpu:.2f}) | — | — |"
        )
    return rows


def caldav_rows(work: Path, sessions: int) -> list[str]:
    env = seeded(work, "planner-caldav.db", sessions)
    process, dav_url = start_radicale(work)
    try:
        dav = {
            **env,
            "PLANCTL_SYNC_BACKEND": "caldav",
            "PLANCTL_CALDAV_URL": dav_url,
            "PLANCTL_CALDAV_USER": "bench",
            "PLANCTL_CALDAV_CALENDAR": "Bench",
        }
        # the reference before and after planctl (Radicale's cost drifts as it fills)
        count, loop_before = bare_caldav_loop(dav, "Reference before")
        first = timed([PLANCTL, "-q", "sync"], dav)
        cpu_first = CPU[-1]
        _, loop_after = bare_caldav_loop(dav, "Reference after")
        loop = (loop_before + loop_after) / 2
        before = caldav_snapshot(dav)
        second = timed([PLANCTL, "-q", "sync"], dav)  # lists in full (no key yet), confirms
        cpu_second = CPU[-1]
        third = timed([PLANCTL, "-q", "sync"], dav)  # after a clean run: sync-collection
        cpu_third = CPU[-1]
        listing = bare_listing(dav)
        cpu_listing = min(CPU[-3:])
        after = caldav_snapshot(dav)
        rewritten = sum(1 for href, etag in after.items() if before.get(href) != etag)
        rewritten += len(set(before) - set(after))
        assert len(after) == count, (len(after), count)
        return [
            f"| CalDAV (Radicale {radicale_version()}, loopback) | {len(after):,} | "
            f"{first:.2f} (CPU {cpu_first:.2f}) | {second:.2f} (CPU {cpu_second:.2f}) | "
            f"bare caldav PUT loop {loop_before:.2f} s before, {loop_after:.2f} s after "
            f"→ **{first / loop:.2f}×** their mean; no-op vs one bare listing process "
            f"(caldav import + PROPFIND, best of 3) {listing:.2f} s (CPU {cpu_listing:.2f}) "
            f"→ **{second / listing:.2f}×**"
            f"; the run after that (incremental, one sync-collection REPORT) {third:.2f} s "
            f"(CPU {cpu_third:.2f}) → **{third / listing:.2f}×**"
            f" | {rewritten} |"
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--big", type=int, default=0, help="also a no-op run over N sessions")
    parser.add_argument("--no-caldav", action="store_true")
    parser.add_argument("--no-google", action="store_true")
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="planctl-bench-sync-") as tmp:
        work = Path(tmp)
        rows += import_floor_rows(env_for(f"sqlite:///{work / 'none.db'}", work))
        rows += simulated_rows(work, args.sessions, f"{args.sessions:,} sessions")
        if not args.no_google:
            rows += google_rows(work, args.sessions)
        if not args.no_caldav:
            rows += caldav_rows(work, args.sessions)
        if args.big:
            rows += simulated_rows(work, args.big, f"{args.big:,} sessions")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows.append(f"| (load average at the end: {load}) | | | | | |")
    record(
        f"calendar sync, {args.sessions:,} seeded sessions (SQLite), planctl -q sync processes",
        "| backend | events | first sync s | no-op second run s | reference (same run) "
        "| events rewritten by the second run |",
        rows,
    )


def radicale_version() -> str:
    from importlib.metadata import version

    return version("radicale")


if __name__ == "__main__":
    main()
