"""age encryption of backup data files: streaming, fail closed.

Recipients are age X25519 public keys (``age1…``) or SSH public keys
(``ssh-ed25519``/``ssh-rsa``); the identity (private key) is needed only to
decrypt. The files are plain age v1 files: ``age -d -i key.txt`` reads them and
planctl reads what ``age -e`` wrote.

The work is done by pyrage (Rust ``age``), whose ``encrypt_io``/``decrypt_io``
stream in 64 KiB chunks with constant memory. Their pull/push shape is turned
into the writable/readable streams the engines need with an OS pipe and one
thread (no fork); an error on either side reaches the caller as an
:class:`EncryptionError`, never as a silently short file.

age authenticates each 64 KiB chunk and the end of the stream, so a truncated
or tampered file fails *when the damaged part is read*: consumers of
:func:`decrypting` must write to a temporary file and keep it only once the
stream has been read to its end without an error.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from planctl.config import recipient_shape_error
from planctl.errors import EncryptionError
from planctl.failures import age_identity_mismatch
from planctl.fsutil import open_regular

AGE_MAGIC = b"age-encryption.org/v1\n"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"
_PIPE_CHUNK = 1 << 16


def _pyrage() -> Any:
    """Import pyrage or fail closed with one line (never fall back to plaintext)."""
    try:
        import pyrage
    except ImportError as error:
        raise EncryptionError(
            "age encryption is configured but the pyrage library cannot be imported "
            f"({error}); nothing was written",
            hint="install it with `pip install pyrage` or unset PLANCTL_BACKUP_RECIPIENTS",
        ) from error
    return pyrage


@dataclass(frozen=True)
class Recipient:
    """One parsed age recipient: its canonical text, kind and a fingerprint."""

    text: str
    kind: str
    fingerprint: str
    native: Any = field(repr=False, compare=False)


def recipient_fingerprint(canonical: str) -> str:
    """A short, stable id of a public key for metadata: ``sha256:`` + 16 hex digits.

    Computed over the key alone (an SSH key's comment, often ``user@host``, is
    dropped before), so the metadata holds no personal data.
    """
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


def _short(entry: str) -> str:
    return entry if len(entry) <= 24 else entry[:20] + "…"


def parse_recipient(entry: str) -> Recipient:
    """Parse one recipient (``age1…`` or an SSH public key line)."""
    pyrage = _pyrage()
    entry = entry.strip()
    parts = entry.split()
    try:
        shape = recipient_shape_error(entry)
        if shape:
            raise ValueError(shape)
        if len(parts) == 1:
            native = pyrage.x25519.Recipient.from_str(entry)
            canonical, kind = entry, "x25519"
        else:
            canonical, kind = f"{parts[0]} {parts[1]}", parts[0]
            native = pyrage.ssh.Recipient.from_str(canonical)
    except (ValueError, pyrage.RecipientError) as error:
        raise EncryptionError(
            f"bad age recipient {_short(entry)!r} in PLANCTL_BACKUP_RECIPIENTS: {error}",
            hint="use age1… keys from `age-keygen -y` or SSH public keys, separated by commas",
        ) from error
    return Recipient(canonical, kind, recipient_fingerprint(canonical), native)


def parse_recipients(value: str) -> list[Recipient]:
    """Parse ``PLANCTL_BACKUP_RECIPIENTS`` (comma separated); empty → no encryption."""
    entries = [e.strip() for e in value.split(",")]
    if not any(entries):
        return []
    if not all(entries):
        raise EncryptionError(
            f"empty entry in PLANCTL_BACKUP_RECIPIENTS {value!r}",
            hint="separate recipients with single commas",
        )
    recipients = [parse_recipient(e) for e in entries]
    unique = {r.text: r for r in recipients}
    return list(unique.values())


def load_identities(path: Path) -> list[Any]:
    """Read an age identity file (``AGE-SECRET-KEY-1…`` lines) or an unencrypted SSH key."""
    pyrage = _pyrage()
    hint = "set PLANCTL_BACKUP_IDENTITY to the file written by `age-keygen -o`"
    try:
        with open_regular(path, follow_symlinks=True) as handle:
            data = handle.read()
    except FileNotFoundError as error:
        raise EncryptionError(f"age identity file {path} does not exist", hint=hint) from error
    except OSError as error:
        raise EncryptionError(
            f"cannot read age identity file {path}: {error.strerror}", hint=hint
        ) from error
    try:
        if b"PRIVATE KEY-----" in data:
            return [pyrage.ssh.Identity.from_buffer(data)]
        keys = [
            line.strip()
            for line in data.decode("utf-8").splitlines()
            if line.strip().startswith("AGE-SECRET-KEY-")
        ]
        if not keys:
            raise ValueError("no AGE-SECRET-KEY-1… line and no SSH private key")
        return [pyrage.x25519.Identity.from_str(k) for k in keys]
    except (ValueError, UnicodeDecodeError, pyrage.IdentityError) as error:
        raise EncryptionError(
            f"age identity file {path} is not usable: {error}",
            hint=hint + " (passphrase-protected keys are not supported)",
        ) from error


def is_encrypted(path: Path) -> bool:
    """True when *path* starts with an age header (binary or ASCII armor)."""
    try:
        with open_regular(path, follow_symlinks=True) as handle:
            head = handle.read(len(ARMOR_MAGIC))
    except OSError as error:
        raise EncryptionError(f"cannot read {path}: {error.strerror}") from error
    return head.startswith(AGE_MAGIC) or head.startswith(ARMOR_MAGIC)


class _PipeReader(io.RawIOBase):
    """The read end of the pipe; at end of data it reports the other side's failure."""

    def __init__(self, fd: int, failure: list[BaseException], on_eof: Any) -> None:
        self._fd = fd
        self._failure = failure
        self._on_eof = on_eof

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = os.readv(self._fd, [buffer])
        if count == 0:
            self._on_eof()
            if self._failure:
                raise self._failure[0]
        return count

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _encryption_failed(error: BaseException) -> EncryptionError:
    if isinstance(error, EncryptionError):
        return error
    if isinstance(error, OSError) and error.strerror:
        return EncryptionError(f"age encryption failed writing the output: {error.strerror}")
    return EncryptionError(f"age encryption failed: {error}")


@contextmanager
def encrypting(dest: BinaryIO, recipients: Sequence[Recipient]) -> Iterator[BinaryIO]:
    """Yield a writable stream whose bytes reach *dest* age-encrypted.

    The ciphertext is complete when the ``with`` block ends without an error.
    If the block raises, the stream is aborted: *dest* holds no valid age file
    (its tail is missing) and the caller discards it. Constant memory.
    """
    if not recipients:
        raise EncryptionError("no age recipients given", hint="set PLANCTL_BACKUP_RECIPIENTS")
    pyrage = _pyrage()
    natives = [r.native for r in recipients]
    read_fd, write_fd = os.pipe()
    aborted: list[BaseException] = []
    failure: list[BaseException] = []
    reader = _PipeReader(read_fd, aborted, lambda: None)

    def run() -> None:
        try:
            pyrage.encrypt_io(io.BufferedReader(reader, _PIPE_CHUNK), dest, natives)
        except BaseException as error:  # reported to the writer below
            failure.append(error)
        finally:
            reader.close()

    worker = threading.Thread(target=run, name="age-encrypt", daemon=True)
    worker.start()
    writer = open(write_fd, "wb", buffering=_PIPE_CHUNK)  # noqa: SIM115 - closed below
    try:
        yield writer
        writer.close()
    except BaseException as error:
        aborted.append(EncryptionError("encryption aborted: the plaintext stream failed"))
        with suppress(OSError):
            writer.close()
        worker.join()
        if failure and isinstance(error, BrokenPipeError):
            raise _encryption_failed(failure[0]) from failure[0]
        raise
    worker.join()
    if failure:
        raise _encryption_failed(failure[0])


def _decryption_failed(error: BaseException) -> EncryptionError:
    if isinstance(error, EncryptionError):
        return error
    text = str(error) or type(error).__name__
    if age_identity_mismatch(error):
        return EncryptionError(
            "cannot decrypt: the age identity matches no recipient of this file "
            "(or the file's header is damaged)",
            hint="use the identity whose public key was in PLANCTL_BACKUP_RECIPIENTS",
        )
    return EncryptionError(
        f"cannot decrypt: the age file is damaged or truncated ({text})",
        hint="use another copy of this backup",
    )


@contextmanager
def decrypting(src: BinaryIO, identity_path: Path) -> Iterator[BinaryIO]:
    """Yield a readable stream of the plaintext of the age file *src*.

    A wrong identity fails on the first read; damage or truncation fails when
    the damaged chunk is reached (see the module docstring).
    """
    identities = load_identities(identity_path)
    with _decrypt_stream(src, identities) as stream:
        yield stream


@contextmanager
def _decrypt_stream(src: BinaryIO, identities: list[Any]) -> Iterator[BinaryIO]:
    pyrage = _pyrage()
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []
    done = threading.Event()
    writer = open(write_fd, "wb", buffering=_PIPE_CHUNK)  # noqa: SIM115 - closed by run()

    def run() -> None:
        try:
            pyrage.decrypt_io(src, writer, identities)
        except BaseException as error:
            failure.append(_decryption_failed(error))
        finally:
            with suppress(OSError):  # the reader went away early
                writer.close()
            done.set()

    worker = threading.Thread(target=run, name="age-decrypt", daemon=True)
    reader = _PipeReader(read_fd, failure, done.wait)
    worker.start()
    stream = io.BufferedReader(reader, _PIPE_CHUNK)
    try:
        yield stream
    finally:
        stream.close()  # an early exit makes the worker's next write fail: it stops
        worker.join()


def encrypt_file(src: Path, dest: BinaryIO, recipients: Sequence[Recipient]) -> None:
    """Encrypt the file *src* into *dest*: pyrage reads the file itself (no pipe, no thread).

    For a backup that exists as a file first (SQLite's backup API writes one).
    """
    if not recipients:
        raise EncryptionError("no age recipients given", hint="set PLANCTL_BACKUP_RECIPIENTS")
    pyrage = _pyrage()
    try:
        with open(src, "rb") as plain:
            pyrage.encrypt_io(plain, dest, [r.native for r in recipients])
    except EncryptionError:
        raise
    except (pyrage.EncryptError, OSError) as error:  # age's failure, or the file's
        raise _encryption_failed(error) from error


def decrypt_to(src: BinaryIO, identity_path: Path, dest: BinaryIO) -> int:
    """Decrypt *src* into *dest* entirely; returns the plaintext size. Raises on any damage."""
    total = 0
    with decrypting(src, identity_path) as plain:
        while chunk := plain.read(1 << 20):
            dest.write(chunk)
            total += len(chunk)
    return total
