"""S3-compatible offsite store (AWS, MinIO, Garage, rclone, Ceph …) through boto3.

Uploads send per-part SHA-256 checksums (the server rejects a damaged part)
and the file's sha256 as object metadata. After the upload, the object's
size and the checksum the server reports (whole-object or composite
"checksum of part checksums") are compared with what was computed locally;
a server that reports no checksum gets a read-back hash instead. A multipart
upload is invisible until completed, so a killed upload never lists.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planctl.backup.remote import (
    CHUNK,
    RemoteObject,
    check_local_file,
    check_name,
    write_atomically,
)
from planctl.backup.stores import TransientRemoteError
from planctl.errors import (
    NothingToDoError,
    PlanctlError,
    RemoteError,
    VerificationError,
)
from planctl.text import plural

_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "403",
    "Forbidden",
}


@dataclass(frozen=True)
class _LocalDigests:
    sha256: str
    whole_b64: str
    composite_b64: str
    size: int


def _digests(path: Path, part_size: int) -> _LocalDigests:
    """sha256 of the file, and S3's composite checksum for *part_size* parts, in one pass."""
    whole = hashlib.sha256()
    parts: list[bytes] = []
    size = 0
    with open(path, "rb") as handle:
        while True:
            part = hashlib.sha256()
            read = 0
            while read < part_size and (chunk := handle.read(min(CHUNK, part_size - read))):
                whole.update(chunk)
                part.update(chunk)
                read += len(chunk)
            if not read:
                break
            size += read
            parts.append(part.digest())
    composite = hashlib.sha256(b"".join(parts)).digest()
    return _LocalDigests(
        whole.hexdigest(),
        base64.b64encode(whole.digest()).decode(),
        base64.b64encode(composite).decode(),
        size,
    )


class S3Store:
    """A bucket and key prefix on an S3-compatible service."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        multipart_mb: int = 64,
        on_progress: Callable[[int], None] = lambda sent: None,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self._part_size = max(5, multipart_mb) << 20
        self._on_progress = on_progress

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        session: Any = None,
        endpoint_url: str | None = None,
        multipart_mb: int = 64,
        timeout: float = 15.0,
        on_progress: Callable[[int], None] = lambda sent: None,
    ) -> S3Store:
        # checked by planctl.config.check_remote_url (open_remote)
        bucket, _, prefix = url[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        try:
            import boto3
            from botocore.config import Config
        except ImportError as error:
            raise RemoteError(
                "an s3:// remote needs the boto3 library", hint="pip install boto3"
            ) from error
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        session = session or boto3.session.Session()
        client = session.client("s3", endpoint_url=endpoint_url, config=config)
        return cls(client, bucket, prefix + "/" if prefix else "", multipart_mb, on_progress)

    def describe(self) -> str:
        endpoint = self._client.meta.endpoint_url
        return f"s3://{self.bucket}/{self.prefix} ({endpoint})"

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _fail(self, error: BaseException, action: str) -> PlanctlError:
        return s3_error(error, action, self.bucket, self.describe())

    def list(self) -> list[RemoteObject]:
        found: list[RemoteObject] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    if "/" in name or name.startswith("."):
                        continue
                    tag = str(item.get("ETag") or item.get("LastModified") or "")
                    found.append(RemoteObject(name, int(item["Size"]), tag))
        except _ERRORS as error:
            raise self._fail(error, "listing") from error
        return sorted(found, key=lambda o: o.name)

    def upload(self, local_path: Path, name: str) -> RemoteObject:
        key = self._key(name)
        check_local_file(local_path)
        from boto3.s3.transfer import TransferConfig

        local = _digests(Path(local_path), self._part_size)
        config = TransferConfig(
            multipart_threshold=self._part_size, multipart_chunksize=self._part_size
        )
        sent = [0]
        lock = threading.Lock()

        def progress(count: int) -> None:  # s3transfer reports increments, from its threads
            with lock:
                sent[0] += count
                total = sent[0]
            self._on_progress(total)

        try:
            self._client.upload_file(
                str(local_path),
                self.bucket,
                key,
                ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": local.sha256}},
                Config=config,
                Callback=progress,
            )
            head = self._client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except _ERRORS as error:
            raise self._fail(error, f"uploading {name} to") from error
        size = int(head["ContentLength"])
        tag = str(head.get("ETag") or head.get("LastModified") or "")
        reported = (head.get("ChecksumSHA256") or "").split("-")[0]
        if size != local.size:
            problem = f"{plural(size, 'byte')} arrived instead of {local.size:,}"
        elif reported:
            ok = reported in (local.whole_b64, local.composite_b64)
            problem = "" if ok else "the server's SHA-256 checksum differs from the local file's"
        else:  # the server keeps no checksum: read the object back
            remote = self.sha256(name)
            problem = "" if remote == local.sha256 else "the read-back sha256 differs"
        if problem:
            self.delete(name)
            raise VerificationError(
                f"upload of {name} to {self.describe()} is damaged: {problem}; removed it",
                hint="retry the upload",
            )
        return RemoteObject(name, size, tag, local.sha256)

    def _chunks(self, name: str) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
            yield from body.iter_chunks(CHUNK)
        except _ERRORS as error:
            raise self._fail(error, f"reading {name} from") from error

    def read(self, name: str) -> Iterator[bytes]:
        return self._chunks(name)

    def stat(self, name: str) -> RemoteObject | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except _ERRORS as error:
            failure = self._fail(error, f"reading {name} from")
            if isinstance(failure, NothingToDoError):
                return None
            raise failure from error
        tag = str(head.get("ETag") or head.get("LastModified") or "")
        return RemoteObject(name, int(head["ContentLength"]), tag)

    def write(self, name: str, source: Path) -> RemoteObject:
        return self.upload(source, name)

    def download(self, name: str, local_path: Path, expected_sha256: str | None = None) -> None:
        endpoint = self._client.meta.endpoint_url
        where = f"s3://{self.bucket}/{self.prefix}{name} ({endpoint})"
        write_atomically(local_path, self._chunks(name), expected_sha256, where)

    def sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        for chunk in self._chunks(name):
            digest.update(chunk)
        return digest.hexdigest()

    def delete(self, name: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except _ERRORS as error:
            raise self._fail(error, f"deleting {name} from") from error

    def cleanup_partial(self) -> int:
        """Abort the multipart uploads under the prefix (a bucket lifecycle rule does it too)."""
        aborted = 0
        try:
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except _ERRORS as error:
            if _code(error) in ("NoSuchUpload", "NotImplemented"):
                # rclone serve s3 answers ListMultipartUploads with NoSuchUpload until a
                # multipart upload exists: there is nothing to clean up.
                return aborted
            raise self._fail(error, "cleaning up interrupted uploads in") from error
        return aborted

    def close(self) -> None:
        self._client.close()


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _boto_errors() -> tuple[type[BaseException], ...]:
    try:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # S3Store.from_url refuses to start without boto3
        return (OSError,)
    return (BotoCoreError, ClientError, Boto3Error, OSError)


#: What boto3, botocore and s3transfer raise (their own types, and the socket's).
_ERRORS = _boto_errors()


def s3_error(error: BaseException, action: str, bucket: str, where: str) -> PlanctlError:
    """One line for any boto3/botocore failure (the cause is often chained by boto3)."""
    from botocore import exceptions as bex

    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, bex.ClientError | bex.BotoCoreError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, bex.NoCredentialsError | bex.PartialCredentialsError):
        return RemoteError(
            f"no usable AWS credentials for {where}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    if isinstance(cause, bex.ClientError):
        code = str(cause.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket",):
            return RemoteError(
                f"bucket {bucket!r} does not exist at {where}",
                hint="create it or fix PLANCTL_BACKUP_REMOTE / AWS_ENDPOINT_URL",
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            return NothingToDoError(f"{action} {where}: no such file")
        if code in _AUTH_CODES:
            return RemoteError(
                f"{action} {where}: the credentials were refused ({code})",
                hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
            )
        message = cause.response.get("Error", {}).get("Message", "") or code
        return RemoteError(f"{action} {where} failed: {code}: {message}")
    if isinstance(
        cause,
        bex.EndpointConnectionError
        | bex.ConnectTimeoutError
        | bex.ReadTimeoutError
        | bex.ConnectionClosedError,
    ):
        return TransientRemoteError(
            f"{action} {where}: cannot reach the S3 endpoint ({type(cause).__name__})",
            hint="check AWS_ENDPOINT_URL and the network",
        )
    text = str(cause or error).splitlines()[0] if str(cause or error) else type(error).__name__
    return RemoteError(f"{action} {where} failed: {text}")
