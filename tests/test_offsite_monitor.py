"""Monitoring: durations, pings seen by a real loopback HTTP server, the last-run record."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from planctl.backup.monitor import (
    LAST_RUN_FILE,
    LastRun,
    is_stale,
    parse_duration,
    ping,
    read_last_run,
    write_last_run,
)
from planctl.errors import UsageError

from .helpers import free_port


@pytest.mark.parametrize(
    "text, expected",
    [("26h", timedelta(hours=26)), ("2d", timedelta(days=2)), ("90m", timedelta(minutes=90)),
     ("1w", timedelta(weeks=1)), ("1d12h", timedelta(hours=36)), ("45s", timedelta(seconds=45)),
     ("1.5h", timedelta(minutes=90))],
)  # fmt: skip
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "26", "h", "2x", "-1h", "0h", "1h junk"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


@pytest.fixture
def ping_server() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = _record

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/abc-123", seen
    server.shutdown()
    server.server_close()


def test_pings_in_healthchecks_style(ping_server: tuple[str, list]) -> None:
    url, seen = ping_server
    assert ping(url, "start")
    assert ping(url + "/", "success", message="backup 42 ok")
    assert ping(url, "fail", message="disk full")
    assert seen == [
        ("GET", "/ping/abc-123/start", b""),
        ("POST", "/ping/abc-123", b"backup 42 ok"),
        ("POST", "/ping/abc-123/fail", b"disk full"),
    ]


def test_ping_to_a_hanging_server_returns_within_its_timeout() -> None:
    """The server accepts the connection and never answers; another trickles bytes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            if len(held) == 2:  # the second client gets a byte every 0.3 s, forever
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    while not stop.is_set():
                        conn.sendall(b"X-Slow: y\r\n")
                        time.sleep(0.3)
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/p"
    try:
        for _ in range(2):
            started = time.monotonic()
            assert ping(url, "success", timeout=1.0) is False
            assert time.monotonic() - started < 1.8
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()


def test_ping_failures_never_raise() -> None:
    assert ping(f"http://127.0.0.1:{free_port()}/x", "start", timeout=1) is False
    assert ping("not a url", "fail") is False
    assert ping("", "success") is False


def test_last_run_round_trip(tmp_path: Path) -> None:
    backup_dir = tmp_path / "backups"
    assert read_last_run(backup_dir) is None
    when = datetime(2026, 11, 25, 3, 0, 1, 123456, tzinfo=UTC)
    path = write_last_run(backup_dir, LastRun("failure", when, "disk full", None))
    assert path == backup_dir / LAST_RUN_FILE
    on_disk = json.loads(path.read_text())
    assert on_disk["outcome"] == "failure" and on_disk["finished"] == when.isoformat()
    assert read_last_run(backup_dir) == LastRun("failure", when, "disk full", None)
    write_last_run(backup_dir, LastRun("success", when + timedelta(days=1), "", "b-0002"))
    assert read_last_run(backup_dir) == LastRun("success", when + timedelta(days=1), "", "b-0002")
    assert sorted(p.name for p in backup_dir.iterdir()) == [LAST_RUN_FILE]  # no temp left


NAIVE_TIME = '{"outcome": "success", "finished": "2026-01-01T00:00:00"}'


BAD_RECORDS = ["", "{", '{"outcome": "meh", "finished": "x"}', "[]", NAIVE_TIME]


@pytest.mark.parametrize("content", BAD_RECORDS)
def test_unreadable_last_run_is_none(tmp_path: Path, content: str) -> None:
    (tmp_path / LAST_RUN_FILE).write_text(content)
    assert read_last_run(tmp_path) is None


def test_is_stale() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    day = timedelta(hours=26)
    assert is_stale(None, day, now)
    assert not is_stale(now - timedelta(hours=25), day, now)
    assert is_stale(now - timedelta(hours=27), day, now)
    assert not is_stale(now + timedelta(hours=3), day, now)  # clock went back
