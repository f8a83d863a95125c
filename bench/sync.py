"""Calendar sync benchmark: a first sync of N sessions, then a no-op second run.

    python bench/sync.py [--sessions 5000] [--no-radicale]

Seeds a SQLite planner with N sessions (db-seed --scale N), then times
``planctl -q sync`` twice against the simulated calendar and against a
Radicale server on 127.0.0.1 (temporary storage, no auth). The second run
must write no event: writes are counted on the server side (the simulated
store's etag counter; every href and etag of the CalDAV collection before and
after). Appends a table to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLANCTL, env_for, record


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def simulated_writes(store: Path) -> int:
    """The store's etag counter: it moves by one on every write the server accepts."""
    return int(json.loads(store.read_text(encoding="utf-8"))["next_etag"]) - 1


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--no-radicale", action="store_true")
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="planctl-bench-sync-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'planner.db'}"
        env = env_for(url, work)
        subprocess.run([PLANCTL, "-q", "db-upgrade"], env=env, check=True)
        subprocess.run(
            [PLANCTL, "-q", "db-seed", "--scale", str(args.sessions)], env=env, check=True
        )
        store = work / "calendar.json"
        sim = {**env, "PLANCTL_SYNC_STORE": str(store)}
        first = timed([PLANCTL, "-q", "sync"], sim)
        events = simulated_writes(store)
        second = timed([PLANCTL, "-q", "sync"], sim)
        rewritten = simulated_writes(store) - events
        rows.append(
            f"| simulated | {events:,} | {first:.2f} | {second:.2f} | "
            f"{second / first:.2f} | {rewritten} |"
        )
        if not args.no_radicale:
            process, dav_url = start_radicale(work)
            try:
                dav = {
                    **env,
                    "PLANCTL_SYNC_BACKEND": "caldav",
                    "PLANCTL_CALDAV_URL": dav_url,
                    "PLANCTL_CALDAV_USER": "bench",
                    "PLANCTL_CALDAV_CALENDAR": "Bench",
                }
                first = timed([PLANCTL, "-q", "sync"], dav)
                before = caldav_snapshot(dav)
                second = timed([PLANCTL, "-q", "sync"], dav)
                after = caldav_snapshot(dav)
                rewritten = sum(1 for href, etag in after.items() if before.get(href) != etag)
                rewritten += len(set(before) - set(after))
                rows.append(
                    f"| CalDAV (Radicale {radicale_version()}, loopback) | {len(after):,} | "
                    f"{first:.2f} | {second:.2f} | {second / first:.2f} | {rewritten} |"
                )
            finally:
                process.terminate()
                process.wait(timeout=10)
    record(
        f"calendar sync, {args.sessions:,} seeded sessions (SQLite)",
        "| backend | events | first sync s | no-op second run s | ratio | events rewritten "
        "by the second run |",
        rows,
    )


def radicale_version() -> str:
    from importlib.metadata import version

    return version("radicale")


if __name__ == "__main__":
    main()
