# ruff: noqa: F811 - the fixtures imported from offsite_support are redefined as arguments
"""Remote failures as a user meets them: ``planctl backup push`` against real servers that
refuse, lack the bucket, cannot be reached, never answer or run out of space. Each
classified failure is one line on stderr and exit 1 (GuardedStore, failures.classify_store);
a bug behind the store (a KeyError while parsing a listing page) is not dressed up as a
remote failure: it is an internal error, exit 70, its traceback under --debug."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .helpers import free_port, planctl_env, run_planctl
from .offsite_support import ACCESS_KEY, S3Server, SFTPServer, sftp_server  # noqa: F401


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A SQLite planner database with one local backup: (DATABASE_URL, backup directory)."""
    work = tmp_path_factory.mktemp("failures")
    url = f"sqlite:///{work / 'planner.db'}"
    env = planctl_env(url, work / "backups", work / "logs")
    # Uncompressed: the data file spans several SFTP write requests (the disk-full case).
    for args in (("db-upgrade",), ("backup", "--compress", "none")):
        done = run_planctl(*args, env=env)
        assert done.returncode == 0, done.stderr
    return url, work / "backups"


@dataclass
class Remote:
    """What a case gives ``backup push``: environment variables for the remote."""

    env: dict[str, str]


def s3_env(server_endpoint: str, bucket: str = "planctl", secret: str = "") -> dict[str, str]:
    from .offsite_support import SECRET_KEY

    return {
        "PLANCTL_BACKUP_REMOTE": f"s3://{bucket}/site-a",
        "AWS_ENDPOINT_URL": server_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret or SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def sftp_env(server: SFTPServer, tmp_path: Path) -> dict[str, str]:
    """Key and known_hosts in ~/.ssh, as a cron job has them."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    shutil.copy(server.client_key, home / ".ssh" / "id_ed25519")
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    shutil.copy(server.known_hosts, home / ".ssh" / "known_hosts")
    return {"HOME": str(home), "PLANCTL_BACKUP_REMOTE": server.url()}


@pytest.fixture
def s3(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], S3Server]]:
    """Start an S3 server of a kind (moto, rclone) with the bucket 'planctl'."""
    started: list[S3Server] = []

    def start(kind: str) -> S3Server:
        root = tmp_path / f"{kind}-root"
        root.mkdir()
        server = S3Server(kind, root).start()
        started.append(server)
        server.make_bucket("planctl")
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port whose kernel completes the TCP handshake and then nothing answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def auth_refused(ctx: Context) -> dict[str, str]:
    server = ctx.s3("rclone")  # rclone checks signatures (moto accepts any key)
    return s3_env(server.endpoint, secret="wrong-secret")


def bucket_missing(ctx: Context) -> dict[str, str]:
    return s3_env(ctx.s3("moto").endpoint, bucket="no-such-bucket")


def s3_unreachable(ctx: Context) -> dict[str, str]:
    return s3_env(f"http://127.0.0.1:{free_port()}")


def sftp_unreachable(ctx: Context) -> dict[str, str]:
    env = sftp_env(ctx.sftp, ctx.tmp_path)
    ctx.sftp.kill()
    return env


def s3_timeout(ctx: Context) -> dict[str, str]:
    return {**s3_env(f"http://127.0.0.1:{ctx.black_hole}"), "PLANCTL_BACKUP_REMOTE_TIMEOUT": "1"}


def sftp_timeout(ctx: Context) -> dict[str, str]:
    env = sftp_env(ctx.sftp, ctx.tmp_path)
    return {**env, "PLANCTL_BACKUP_REMOTE": env["PLANCTL_BACKUP_REMOTE"].replace(
        f":{ctx.sftp.port}/", f":{ctx.black_hole}/"
    ), "PLANCTL_BACKUP_REMOTE_TIMEOUT": "1"}  # fmt: skip


def sftp_disk_full(ctx: Context) -> dict[str, str]:
    ctx.sftp.kill()
    # The backup is far larger. asyncssh acknowledges a short write (the first 32 KB
    # request, cut at the limit) as a success: the next request meets EFBIG.
    ctx.sftp.start(port=ctx.sftp.port, max_file_bytes=1024)
    return sftp_env(ctx.sftp, ctx.tmp_path)


@dataclass
class Context:
    tmp_path: Path
    s3: Callable[[str], S3Server]
    sftp: SFTPServer
    black_hole: int


#: (case, remote set-up, what the one line says)
CASES = [
    ("auth refused", auth_refused, "the credentials were refused (SignatureDoesNotMatch)"),
    ("bucket missing", bucket_missing, "bucket 'no-such-bucket' does not exist"),
    ("S3 endpoint unreachable", s3_unreachable, "cannot reach the S3 endpoint"),
    ("SFTP host unreachable", sftp_unreachable, "cannot reach sftp://planctl@127.0.0.1"),
    ("S3 timeout", s3_timeout, "no answer within 1 s"),
    ("SFTP timeout", sftp_timeout, "no answer within 1 s"),
    ("SFTP disk full", sftp_disk_full, "the server is out of space"),
]


@pytest.mark.parametrize("case, setup, says", CASES, ids=[c[0] for c in CASES])
def test_each_remote_failure_is_one_line_and_exit_1(
    case: str,
    setup: Callable[[Context], dict[str, str]],
    says: str,
    backed_up: tuple[str, Path],
    tmp_path: Path,
    s3: Callable[[str], S3Server],
    sftp_server: SFTPServer,
    black_hole: int,
) -> None:
    url, backups = backed_up
    remote = setup(Context(tmp_path, s3, sftp_server, black_hole))
    env = {**planctl_env(url, backups, tmp_path / "logs"), **remote}
    done = run_planctl("backup", "push", env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert says in lines[0]
    assert "wrong-secret" not in done.stderr and "Traceback" not in done.stderr
    debug = run_planctl("--debug", "backup", "push", env=env)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr  # the library's own error, chained
    assert "The above exception was the direct cause" in debug.stderr or (
        "raise translate" in debug.stderr
    )


class _SizeDroppingProxy(BaseHTTPRequestHandler):
    """An S3-compatible server that leaves ``<Size>`` out of its listings (in front of
    moto): the page parses, the store's code then meets a KeyError."""

    upstream = 0

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        connection = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = f"127.0.0.1:{self.upstream}"
        connection.request(self.command, self.path, body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
        if "list-type=2" in self.path:
            import re

            data = re.sub(rb"<Size>\d+</Size>", b"", data)
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_bug_while_parsing_a_listing_is_an_internal_error_not_a_remote_failure(
    backed_up: tuple[str, Path], tmp_path: Path, s3: Callable[[str], S3Server]
) -> None:
    url, backups = backed_up
    moto = s3("moto")
    handler = type("Proxy", (_SizeDroppingProxy,), {"upstream": moto.port})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        # The first push uploads through moto directly: the listing then has an object.
        direct = {**planctl_env(url, backups, tmp_path / "logs"), **s3_env(moto.endpoint)}
        assert run_planctl("backup", "push", env=direct).returncode == 0
        env = {**direct, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.server_port}"}
        done = run_planctl("backup", "push", env=env)
        debug = run_planctl("--debug", "backup", "push", env=env)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert done.returncode == 70, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: internal error: KeyError"), lines
    assert "listing" not in done.stderr and "Traceback" not in done.stderr
    assert "--debug" in lines[0]  # the hint: how to get the traceback to report
    assert debug.returncode == 70
    assert "Traceback" in debug.stderr and "KeyError: 'Size'" in debug.stderr
    assert "error: listing" not in debug.stderr and "listing s3:" not in debug.stderr


def test_a_dropped_sftp_connection_is_tried_again_on_a_fresh_one(
    sftp_server: SFTPServer, tmp_path: Path
) -> None:
    """GuardedStore: a lost connection is transient; the next attempt reconnects (the old
    SSH session is dead for good), so a server restarted between calls costs nothing."""
    from planctl.backup.remote import open_remote

    store = open_remote(
        sftp_server.url(), ssh_key=sftp_server.client_key, known_hosts=sftp_server.known_hosts
    )
    try:
        payload = tmp_path / "one.bin"
        payload.write_bytes(b"x" * 100_000)
        store.upload(payload, "one.bin")
        sftp_server.kill()
        sftp_server.start(port=sftp_server.port)
        assert [o.name for o in store.list()] == ["one.bin"]
        assert store.sha256("one.bin") == hashlib.sha256(b"x" * 100_000).hexdigest()
    finally:
        store.close()


def test_every_store_failure_has_a_message_for_any_store() -> None:
    """translate() falls back to the ("", failure) line: each failure has one."""
    from planctl.backup.stores import _MESSAGES
    from planctl.failures import StoreFailure

    assert {failure for scheme, failure in _MESSAGES if scheme == ""} == set(StoreFailure)
