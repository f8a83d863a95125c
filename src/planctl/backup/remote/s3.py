"""S3-compatible offsite store (AWS, MinIO, Garage, rclone, Ceph …) through boto3.

Uploads send per-part SHA-256 checksums (the server rejects a damaged part)
and the file's sha256 as object metadata. After the upload, the object's
size and the checksum the server reports (whole-object or composite
"checksum of part checksums"; else its ETag, the MD5 it computed of what it
received, single or multipart) are compared with what was computed locally;
a server that reports neither gets a read-back hash instead. A multipart
upload is invisible until completed, so a killed upload never lists.

Failures are boto3's and botocore's own exceptions: the store's wrapper
(:class:`~planctl.backup.stores.GuardedStore`) retries and words them. botocore
itself never retries (one attempt per call), so retries happen in one place.
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
from planctl.errors import RemoteError, VerificationError
from planctl.failures import StoreFailure, classify_store, s3_code
from planctl.text import plural


@dataclass(frozen=True)
class _LocalDigests:
    sha256: str
    whole_b64: str
    composite_b64: str
    size: int
    #: The ETags an S3 server computes from the bytes it received: the MD5 of a single
    #: PUT, and "MD5 of the parts' MD5s-N" of a multipart upload of *part_size* parts.
    etags: tuple[str, str]


def _digests(path: Path, part_size: int) -> _LocalDigests:
    """sha256 and MD5 of the file, and S3's composite checksums for *part_size* parts, in
    one pass."""
    whole = hashlib.sha256()
    whole_md5 = hashlib.md5(usedforsecurity=False)
    parts: list[bytes] = []
    part_md5s: list[bytes] = []
    size = 0
    with open(path, "rb") as handle:
        while True:
            part = hashlib.sha256()
            part_md5 = hashlib.md5(usedforsecurity=False)
            read = 0
            while read < part_size and (chunk := handle.read(min(CHUNK, part_size - read))):
                for digest in (whole, part, whole_md5, part_md5):
                    digest.update(chunk)
                read += len(chunk)
            if not read:
                break
            size += read
            parts.append(part.digest())
            part_md5s.append(part_md5.digest())
    composite = hashlib.sha256(b"".join(parts)).digest()
    multipart = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return _LocalDigests(
        whole.hexdigest(),
        base64.b64encode(whole.digest()).decode(),
        base64.b64encode(composite).decode(),
        size,
        (whole_md5.hexdigest(), f"{multipart}-{len(part_md5s)}"),
    )


class S3Store:
    """A bucket and key prefix on an S3-compatible service (connected by :meth:`connect`)."""

    scheme = "s3"

    def __init__(
        self,
        session: Any,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        multipart_mb: int = 64,
        timeout: float = 15.0,
        on_progress: Callable[[int], None] = lambda sent: None,
    ) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._timeout = timeout
        self._client: Any = None
        self.bucket = bucket
        self.prefix = prefix
        self._part_size = max(5, multipart_mb) << 20
        self._on_progress = on_progress
        self.library_errors = _boto_errors()

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
        except ImportError as error:
            raise RemoteError(
                "an s3:// remote needs the boto3 library", hint="pip install boto3"
            ) from error
        return cls(
            session or boto3.session.Session(),
            bucket,
            prefix + "/" if prefix else "",
            endpoint_url=endpoint_url,
            multipart_mb=multipart_mb,
            timeout=timeout,
            on_progress=on_progress,
        )

    def connect(self) -> None:
        from botocore.config import Config

        config = Config(
            connect_timeout=self._timeout,
            read_timeout=self._timeout,
            retries={"total_max_attempts": 1},  # GuardedStore retries, once for every store
            max_pool_connections=_CONCURRENCY + 2,
        )
        self._client = self._session.client("s3", endpoint_url=self._endpoint_url, config=config)

    def facts(self) -> dict[str, str]:
        return {"bucket": self.bucket}

    def describe(self) -> str:
        endpoint = self._client.meta.endpoint_url if self._client else self._endpoint_url
        return f"s3://{self.bucket}/{self.prefix} ({endpoint or 'default endpoint'})"

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def list(self) -> list[RemoteObject]:
        found: list[RemoteObject] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if "/" in name or name.startswith("."):
                    continue
                tag = str(item.get("ETag") or item.get("LastModified") or "")
                found.append(RemoteObject(name, int(item["Size"]), tag))
        return sorted(found, key=lambda o: o.name)

    def upload(self, local_path: Path, name: str) -> RemoteObject:
        key = self._key(name)
        check_local_file(local_path)
        from boto3.s3.transfer import TransferConfig

        local = _digests(Path(local_path), self._part_size)
        config = TransferConfig(
            multipart_threshold=self._part_size,
            multipart_chunksize=self._part_size,
            max_concurrency=_CONCURRENCY,
        )
        sent = [0]
        lock = threading.Lock()

        def progress(count: int) -> None:  # s3transfer reports increments, from its threads
            with lock:
                sent[0] += count
                total = sent[0]
            self._on_progress(total)

        self._client.upload_file(
            str(local_path),
            self.bucket,
            key,
            ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": local.sha256}},
            Config=config,
            Callback=progress,
        )
        head = self._client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        size = int(head["ContentLength"])
        tag = str(head.get("ETag") or head.get("LastModified") or "")
        reported = (head.get("ChecksumSHA256") or "").split("-")[0]
        if size != local.size:
            problem = f"{plural(size, 'byte')} arrived instead of {local.size:,}"
        elif reported:
            ok = reported in (local.whole_b64, local.composite_b64)
            problem = "" if ok else "the server's SHA-256 checksum differs from the local file's"
        elif tag.strip('"') in local.etags:
            # No SHA-256 kept (rclone), but the server's own MD5 of what it received
            # matches: a server checksum, no read-back needed. (An ETag that is no MD5 —
            # SSE-KMS, some gateways — never matches, and gets the read-back below.)
            problem = ""
        else:  # the server keeps no checksum of its own: read the object back
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
        body = self._client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        yield from body.iter_chunks(CHUNK)

    def read(self, name: str) -> Iterator[bytes]:
        return self._chunks(name)

    def stat(self, name: str) -> RemoteObject | None:
        from botocore.exceptions import ClientError

        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as error:
            if classify_store(error) is StoreFailure.NOT_FOUND:
                return None
            raise
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
        self._client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def cleanup_partial(self) -> int:
        """Abort the multipart uploads under the prefix (a bucket lifecycle rule does it too)."""
        from botocore.exceptions import ClientError

        aborted = 0
        try:
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except ClientError as error:
            if s3_code(error) in ("NoSuchUpload", "NotImplemented"):
                # rclone serve s3 answers ListMultipartUploads with NoSuchUpload until a
                # multipart upload exists: there is nothing to clean up.
                return aborted
            raise
        return aborted

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()


#: Parts sent at once by a multipart upload (s3transfer's threads; the connection pool
#: is sized to match).
_CONCURRENCY = 10


def _boto_errors() -> tuple[type[BaseException], ...]:
    """What boto3, botocore and s3transfer raise (their own types, and the socket's)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, Boto3Error, OSError)
