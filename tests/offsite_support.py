"""Real servers on loopback for the offsite tests: two S3 servers and an SFTP server.

- moto in server mode (``moto_server``), in memory, accepts any credentials;
- rclone ``serve s3`` over a local directory, with one access key pair;
- asyncssh's SFTP server (tests/offsite_sftp_server.py) with a temporary host
  key, a temporary client key and a known_hosts file naming the host key.

Each runs as its own process so a test can kill it mid-transfer. Missing
tools skip outside CI and fail in CI (conftest.skip_or_fail).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import skip_or_fail
from .helpers import free_port, wait_for_port

__all__ = ["free_port", "wait_for_port"]  # re-exported for the offsite tests

BIN = Path(sys.executable).parent
ACCESS_KEY = "AKIAPLANCTLTEST00001"
SECRET_KEY = "planctl-test-secret-key-0001"
SFTP_SERVER_SCRIPT = Path(__file__).with_name("offsite_sftp_server.py")


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if not found:
        skip_or_fail(f"{name} is not installed (pip install -e .[test])")
    assert found
    return found


@dataclass
class S3Server:
    """One S3 server process on loopback; restartable on the same port and data."""

    kind: str
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        if self.kind == "moto":
            argv = [tool("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            argv = [
                tool("rclone"), "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
                "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--config", "/dev/null",
                str(self.root),
            ]  # fmt: skip
        log = open(self.root.parent / f"{self.kind}-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_for_port(self.port, self.process)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def session(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name="us-east-1"
        )

    def client(self) -> Any:
        return self.session().client("s3", endpoint_url=self.endpoint)

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def aws_env(self) -> dict[str, str]:
        """The standard AWS variables a user would set for this server (for child processes)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        return env


@pytest.fixture(params=["moto", "rclone"])
def s3_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[S3Server]:
    """A fresh S3 server of each implementation, with an empty bucket 'planctl'."""
    root = tmp_path / "s3root"
    root.mkdir()
    server = S3Server(request.param, root).start()
    try:
        server.make_bucket("planctl")
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def shared_s3_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, S3Server]]:
    """One long-lived server of each kind (bucket 'planctl') for tests that do not stop it."""
    servers: dict[str, S3Server] = {}
    try:
        for kind in ("moto", "rclone"):
            root = tmp_path_factory.mktemp(f"shared-{kind}") / "s3root"
            root.mkdir()
            servers[kind] = S3Server(kind, root).start()
            servers[kind].make_bucket("planctl")
        yield servers
    finally:
        for server in servers.values():
            server.kill()


@dataclass
class SFTPServer:
    root: Path
    host_key: Path
    authorized_keys: Path
    client_key: Path
    known_hosts: Path
    host_public: str
    port: int = 0
    process: subprocess.Popen[str] | None = None

    def start(self, port: int = 0, max_file_bytes: int | None = None) -> SFTPServer:
        """Start on *port* (0: any); with *max_file_bytes*, under that file-size limit."""
        argv = [sys.executable, str(SFTP_SERVER_SCRIPT), str(self.root), str(self.host_key)]
        argv += [str(self.authorized_keys), str(port)]
        argv += [str(max_file_bytes)] if max_file_bytes is not None else []
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip():
            raise RuntimeError("the SFTP server did not start")
        self.port = int(line)
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_public}\n")
        return self

    def url(self, path: str = "/backups") -> str:
        return f"sftp://planctl@127.0.0.1:{self.port}{path}"

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def make_ssh_key(path: Path) -> str:
    """Write an unencrypted ed25519 private key; return its public line."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    return key.export_public_key().decode().strip()


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SFTPServer]:
    root = tmp_path / "sftproot"
    root.mkdir()
    keys = tmp_path / "keys"
    keys.mkdir()
    host_public = make_ssh_key(keys / "host_key")
    client_public = make_ssh_key(keys / "client_key")
    (keys / "authorized_keys").write_text(client_public + "\n")
    server = SFTPServer(
        root, keys / "host_key", keys / "authorized_keys", keys / "client_key",
        keys / "known_hosts", host_public,
    ).start()  # fmt: skip
    try:
        yield server
    finally:
        server.kill()


def age_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        skip_or_fail(f"{name} is not installed (Debian package age)")
    assert found
    return found


@pytest.fixture
def age_key(tmp_path: Path) -> tuple[Path, str]:
    """An identity written by age-keygen, and its public key."""
    key = tmp_path / "key.txt"
    subprocess.run([age_tool("age-keygen"), "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        [age_tool("age-keygen"), "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return key, public
