"""Remote stores against real servers on loopback: moto and rclone (S3), asyncssh (SFTP)."""
# ruff: noqa: F811 - the fixtures imported from offsite_support are redefined as arguments

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from planctl.backup.remote import RemoteStore, open_remote
from planctl.errors import (
    ConfigError,
    NothingToDoError,
    PlanctlError,
    RemoteError,
    VerificationError,
)

from .offsite_support import (  # noqa: F401 - fixtures
    ACCESS_KEY,
    S3Server,
    SFTPServer,
    s3_server,
    sftp_server,
    shared_s3_servers,
)

MB = 1 << 20


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_file(path: Path, size: int, seed: int = 0) -> Path:
    """Incompressible-ish but deterministic content (a sha256 counter stream)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    path.write_bytes(bytes(out[:size]))
    return path


def s3_store(
    server: S3Server, bucket: str = "planctl", prefix: str = "site-a/set1", **kwargs: Any
) -> RemoteStore:
    return open_remote(
        f"s3://{bucket}/{prefix}",
        s3_session=server.session(),
        s3_endpoint_url=server.endpoint,
        timeout=5,
        **kwargs,
    )


def sftp_store(server: SFTPServer, **kwargs: Any) -> RemoteStore:
    return open_remote(
        server.url(),
        ssh_key=server.client_key,
        known_hosts=server.known_hosts,
        timeout=5,
        **kwargs,
    )


StoreAndServer = tuple[RemoteStore, "S3Server | SFTPServer", str]


@pytest.fixture(params=["s3-moto", "s3-rclone", "sftp"])
def store_and_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreAndServer]:
    """Each store kind on its own real server."""
    if request.param == "sftp":
        server = request.getfixturevalue("sftp_server")
        store = sftp_store(server)
        prefix = "backups"
    else:  # long-lived servers, a fresh prefix per test
        server = request.getfixturevalue("shared_s3_servers")[request.param.split("-")[1]]
        prefix = f"{uuid.uuid4().hex[:8]}/set1"
        store = s3_store(server, prefix=prefix)
    yield store, server, prefix
    store.close()


def test_round_trip_lists_downloads_and_deletes(
    store_and_server: StoreAndServer, tmp_path: Path
) -> None:
    store, server, _ = store_and_server
    small = data_file(tmp_path / "small.bin", 1000)
    big = data_file(tmp_path / "big.bin", 12 * MB + 123, seed=1)
    assert store.list() == []
    store.upload(small, "b-0001.db.age")
    uploaded = store.upload(big, "b-0002.db.age")
    assert uploaded.size == big.stat().st_size
    assert [(o.name, o.size) for o in store.list()] == [
        ("b-0001.db.age", 1000),
        ("b-0002.db.age", big.stat().st_size),
    ]
    restored = tmp_path / "restored" / "b.bin"
    restored.parent.mkdir()
    store.download("b-0002.db.age", restored, expected_sha256=sha(big))
    assert sha(restored) == sha(big)
    assert store.sha256("b-0001.db.age") == sha(small)
    assert [p.name for p in restored.parent.iterdir()] == ["b.bin"]  # no temp left
    store.delete("b-0001.db.age")
    store.delete("b-0001.db.age")  # already gone: not an error
    assert [o.name for o in store.list()] == ["b-0002.db.age"]
    assert "secret" not in store.describe().lower()
    if isinstance(server, SFTPServer):  # backups stay private on the server (issue 19)
        assert (server.root / "backups" / "b-0002.db.age").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("kind", ["moto", "rclone"])
def test_multipart_upload_is_checked_on_both_s3_servers(
    shared_s3_servers: dict[str, S3Server], kind: str, tmp_path: Path
) -> None:
    """5 MB parts: the server's composite checksum (moto) or a read-back (rclone) is compared."""
    s3_server = shared_s3_servers[kind]
    prefix = f"{uuid.uuid4().hex[:8]}/set1"
    store = s3_store(s3_server, prefix=prefix, s3_multipart_mb=5)
    big = data_file(tmp_path / "big.bin", 11 * MB, seed=2)
    store.upload(big, "multi.bin")
    head = s3_server.client().head_object(
        Bucket="planctl", Key=f"{prefix}/multi.bin", ChecksumMode="ENABLED"
    )
    assert head["ContentLength"] == 11 * MB
    assert {k.lower(): v for k, v in head["Metadata"].items()}["sha256"] == sha(big)
    assert store.sha256("multi.bin") == sha(big)


def test_missing_object_is_nothing_to_do(store_and_server: StoreAndServer, tmp_path: Path) -> None:
    store, _, _ = store_and_server
    with pytest.raises(NothingToDoError):
        store.download("absent.bin", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.glob(".x.*")) == []


def test_bad_names_are_refused(store_and_server: StoreAndServer, tmp_path: Path) -> None:
    store, _, _ = store_and_server
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(RemoteError, match="invalid remote file name"):
            store.upload(data_file(tmp_path / "f", 10), bad)


def test_only_regular_files_are_uploaded(store_and_server: StoreAndServer, tmp_path: Path) -> None:
    store, _, _ = store_and_server
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, why in ((fifo, "not a regular file"), (tmp_path, "not a regular file"),
                      (tmp_path / "missing", "No such file")):  # fmt: skip
        with pytest.raises(RemoteError, match=why):
            store.upload(path, "x.bin")
    assert store.list() == []


def flip_byte_on_server(server: S3Server | SFTPServer, prefix: str, name: str) -> None:
    """Bit rot on the server's side, behind the client's back."""
    if isinstance(server, SFTPServer):
        path = server.root / prefix / name
    elif server.kind == "rclone":
        path = server.root / "planctl" / prefix / name
    else:  # moto keeps objects in memory: another program rewrites the object
        client = server.client()
        key = f"{prefix}/{name}"
        data = bytearray(client.get_object(Bucket="planctl", Key=key)["Body"].read())
        data[len(data) // 2] ^= 0x01
        client.put_object(Bucket="planctl", Key=key, Body=bytes(data))
        return
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_on_server_is_detected(
    store_and_server: StoreAndServer, tmp_path: Path
) -> None:
    store, server, prefix = store_and_server
    original = data_file(tmp_path / "orig.bin", 3 * MB, seed=3)
    store.upload(original, "rot.bin")
    flip_byte_on_server(server, prefix, "rot.bin")
    assert store.sha256("rot.bin") != sha(original)  # what verify --remote compares
    target = tmp_path / "restore" / "rot.bin"
    target.parent.mkdir()
    with pytest.raises(VerificationError, match="damaged"):
        store.download("rot.bin", target, expected_sha256=sha(original))
    assert list(target.parent.iterdir()) == []  # nothing half-restored
    assert VerificationError.exit_code == 5


# -- faults -----------------------------------------------------------------


def test_s3_server_stopped_mid_upload(s3_server: S3Server, tmp_path: Path) -> None:
    big = data_file(tmp_path / "big.bin", 16 * MB, seed=4)

    def kill_server_after_first_part(sent: int) -> None:
        if sent >= 5 * MB:
            s3_server.kill()

    store = s3_store(s3_server, s3_multipart_mb=5, on_upload_progress=kill_server_after_first_part)
    with pytest.raises(RemoteError) as caught:
        store.upload(big, "cut.bin")
    assert "\n" not in str(caught.value)
    s3_server.start()  # same port; rclone keeps its directory, moto starts empty
    if s3_server.kind == "moto":
        s3_server.make_bucket("planctl")
    retry = s3_store(s3_server, s3_multipart_mb=5)
    assert retry.list() == []  # nothing partial is listed
    retry.upload(big, "cut.bin")
    assert [(o.name, o.size) for o in retry.list()] == [("cut.bin", 16 * MB)]
    assert retry.sha256("cut.bin") == sha(big)


def test_sftp_server_stopped_mid_upload(sftp_server: SFTPServer, tmp_path: Path) -> None:
    big = data_file(tmp_path / "big.bin", 16 * MB, seed=5)

    def kill_server(sent: int) -> None:
        if sent >= 4 * MB:
            sftp_server.kill()

    store = sftp_store(sftp_server, on_upload_progress=kill_server)
    with pytest.raises(RemoteError) as caught:
        store.upload(big, "cut.bin")
    assert "\n" not in str(caught.value)
    sftp_server.start(port=sftp_server.port)
    retry = sftp_store(sftp_server)
    assert retry.list() == []
    retry.upload(big, "cut.bin")
    assert [(o.name, o.size) for o in retry.list()] == [("cut.bin", 16 * MB)]
    assert sha(sftp_server.root / "backups" / "cut.bin") == sha(big)
    assert not (sftp_server.root / "backups" / ".cut.bin.partial").exists()


UPLOADER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from planctl.backup.remote import open_remote

    def progress(sent):
        if sent >= 6 * 2**20:
            print("uploading", flush=True)

    url, path = sys.argv[1], Path(sys.argv[2])
    extra = {}
    if len(sys.argv) > 3:
        extra = dict(ssh_key=Path(sys.argv[3]), known_hosts=Path(sys.argv[4]))
    store = open_remote(url, s3_multipart_mb=5, on_upload_progress=progress, **extra)
    store.upload(path, "killed.bin")
    print("finished", flush=True)
    """
)


def kill_uploader_midway(argv: list[str], env: dict[str, str] | None) -> None:
    """Run a real uploading process and kill -9 it once it is well into the upload."""
    child = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, *argv], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    assert child.stdout.readline().startswith("uploading")  # (threads may print twice)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL


def test_s3_kill_9_during_upload_lists_nothing_and_the_next_upload_completes(
    s3_server: S3Server, tmp_path: Path
) -> None:
    big = data_file(tmp_path / "big.bin", 40 * MB, seed=6)
    # The child gets endpoint and credentials from the standard AWS variables.
    kill_uploader_midway(["s3://planctl/site-a/set1", str(big)], s3_server.aws_env())
    store = s3_store(s3_server)
    assert store.list() == []
    assert store.cleanup_partial() == 1  # the killed multipart upload's parts
    assert s3_server.client().list_multipart_uploads(Bucket="planctl").get("Uploads", []) == []
    store.upload(big, "killed.bin")
    assert [(o.name, o.size) for o in store.list()] == [("killed.bin", 40 * MB)]
    assert store.sha256("killed.bin") == sha(big)


def test_sftp_kill_9_during_upload_lists_nothing_and_the_next_upload_completes(
    sftp_server: SFTPServer, tmp_path: Path
) -> None:
    big = data_file(tmp_path / "big.bin", 40 * MB, seed=7)
    argv = [sftp_server.url(), str(big), str(sftp_server.client_key), str(sftp_server.known_hosts)]
    kill_uploader_midway(argv, None)
    store = sftp_store(sftp_server)
    assert store.list() == []
    assert (sftp_server.root / "backups" / ".killed.bin.partial").exists()
    store.upload(big, "killed.bin")  # overwrites the partial file
    assert store.cleanup_partial() == 0
    assert [(o.name, o.size) for o in store.list()] == [("killed.bin", 40 * MB)]
    assert sha(sftp_server.root / "backups" / "killed.bin") == sha(big)


def test_s3_wrong_credentials(tmp_path: Path) -> None:
    """rclone checks signatures (moto in server mode accepts any key, so it is not used here)."""
    root = tmp_path / "s3root"
    root.mkdir()
    server = S3Server("rclone", root).start()
    try:
        server.make_bucket("planctl")
        store = open_remote(
            "s3://planctl/x",
            s3_session=server.session(ACCESS_KEY, "wrong-secret"),
            s3_endpoint_url=server.endpoint,
        )
        with pytest.raises(RemoteError, match="credentials were refused") as caught:
            store.list()
        assert "wrong-secret" not in str(caught.value)
        with pytest.raises(RemoteError, match="credentials were refused"):
            store.upload(data_file(tmp_path / "f", 100), "f.bin")
    finally:
        server.kill()


@pytest.mark.parametrize("kind", ["moto", "rclone"])
def test_s3_missing_bucket(
    shared_s3_servers: dict[str, S3Server], kind: str, tmp_path: Path
) -> None:
    store = s3_store(shared_s3_servers[kind], bucket="no-such-bucket")
    with pytest.raises(RemoteError, match="bucket 'no-such-bucket' does not exist"):
        store.list()
    with pytest.raises(RemoteError, match="does not exist"):
        store.upload(data_file(tmp_path / "f", 100), "f.bin")


def test_s3_unreachable(tmp_path: Path) -> None:
    from .helpers import free_port

    store = open_remote(
        "s3://planctl/x",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        s3_session=S3Server("moto", tmp_path).session(),
        timeout=2,
    )
    with pytest.raises(RemoteError, match="cannot reach the S3 endpoint"):
        store.list()


def test_sftp_unknown_host_key_is_refused(sftp_server: SFTPServer) -> None:
    sftp_server.known_hosts.write_text("")
    with pytest.raises(RemoteError, match=r"is not in .*known_hosts: refusing") as caught:
        sftp_store(sftp_server)
    assert "ssh-keyscan" in str(caught.value)


def test_sftp_host_key_mismatch_is_refused(sftp_server: SFTPServer, tmp_path: Path) -> None:
    from .offsite_support import make_ssh_key

    impostor = make_ssh_key(tmp_path / "other_host_key")
    sftp_server.known_hosts.write_text(f"[127.0.0.1]:{sftp_server.port} {impostor}\n")
    with pytest.raises(RemoteError, match="does NOT match"):
        sftp_store(sftp_server)


def test_sftp_wrong_key_is_refused(sftp_server: SFTPServer, tmp_path: Path) -> None:
    from .offsite_support import make_ssh_key

    make_ssh_key(tmp_path / "stranger")
    with pytest.raises(RemoteError, match="key authentication refused"):
        open_remote(
            sftp_server.url(), ssh_key=tmp_path / "stranger", known_hosts=sftp_server.known_hosts
        )


def test_sftp_unreachable(tmp_path: Path) -> None:
    from .helpers import free_port

    (tmp_path / "kh").write_text("")
    with pytest.raises(RemoteError, match="cannot reach"):
        open_remote(f"sftp://u@127.0.0.1:{free_port()}/x", known_hosts=tmp_path / "kh", timeout=2)


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://host/x", "unsupported backup remote"),
        ("sftp://user:hunter2@host/x", "must not hold a password"),
        ("sftp://host/x", "needs a user and a host"),
        ("s3:///prefix", "no bucket"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        open_remote(url)
    assert "hunter2" not in str(caught.value)


def test_errors_are_planctl_errors() -> None:
    assert issubclass(RemoteError, PlanctlError)
