"""Streaming compression of backup data files: zstd, gzip or none.

Writing takes a method and a level; reading detects the method by its magic
number, so a restore needs no setting. Both directions stream in bounded
memory. A truncated or damaged compressed stream is an error when read (zstd
frames carry a content checksum, gzip its CRC-32 and length), never a short
plaintext.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, BinaryIO, cast

from planctl.errors import PlanctlError, UsageError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class CompressionError(PlanctlError):
    """A compressed stream is damaged or truncated, or its library is missing."""


class Compression(StrEnum):
    """How a backup's data file is compressed. Compare with ``is``: every member,
    ``NONE`` included, is a non-empty string and so true."""

    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"

    @classmethod
    def from_stored(cls, value: object) -> Compression:
        """The compression a backup's metadata records as ``compressed``: ``True`` is
        gzip (backups before ``--compress METHOD``), ``False`` none, else the method's
        name. Anything else is a ValueError (metadata that is not well typed)."""
        if isinstance(value, bool):
            return cls.GZIP if value else cls.NONE
        if isinstance(value, str):
            return cls(value)
        raise ValueError(f"not a stored compression: {value!r}")

    @property
    def stored(self) -> bool | str:
        """What the metadata's ``compressed`` holds (readable by every planctl version)."""
        if self is Compression.GZIP:
            return True
        return False if self is Compression.NONE else self.value


DEFAULT_LEVELS = {Compression.ZSTD: 3, Compression.GZIP: 6, Compression.NONE: 0}
LEVEL_RANGES = {Compression.ZSTD: (1, 19), Compression.GZIP: (1, 9), Compression.NONE: (0, 0)}


def parse_compression(method: str, level: int | None = None) -> tuple[Compression, int]:
    """Validate ``--compress`` and its level; returns the method and the level to use."""
    try:
        chosen = Compression(method.strip().lower())
    except ValueError as error:
        raise UsageError(
            f"unknown compression {method!r}", hint="use zstd, gzip or none"
        ) from error
    if level is None:
        return chosen, DEFAULT_LEVELS[chosen]
    low, high = LEVEL_RANGES[chosen]
    if not low <= level <= high:
        raise UsageError(
            f"compression level {level} is out of range for {chosen.value}",
            hint=f"use {low}..{high}",
        )
    return chosen, level


def detect(head: bytes) -> Compression:
    """The compression of a stream from its first bytes (anything unknown is ``none``)."""
    if head.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP
    return Compression.NONE


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as error:
        raise CompressionError(
            "zstd compression needs the zstandard library", hint="pip install zstandard"
        ) from error
    return zstandard


@contextmanager
def compressing(
    dest: BinaryIO, method: Compression, level: int | None = None
) -> Iterator[BinaryIO]:
    """Yield a writable stream whose bytes reach *dest* compressed; *dest* stays open."""
    level = DEFAULT_LEVELS[method] if level is None else level
    if method is Compression.NONE:
        yield dest
        return
    if method is Compression.GZIP:
        # mtime=0 and no file name: the output depends on the data only.
        with gzip.GzipFile(fileobj=dest, mode="wb", compresslevel=level, mtime=0) as sink:
            yield cast(BinaryIO, sink)  # a binary stream; typeshed does not declare it BinaryIO
        return
    compressor = _zstandard().ZstdCompressor(level=level, write_checksum=True)
    with compressor.stream_writer(dest, closefd=False) as sink:
        yield sink


class _ZstdReader(io.RawIOBase):
    """zstd frames → plaintext; truncation (a frame without its end) is an error."""

    def __init__(self, src: BinaryIO, head: bytes) -> None:
        self._src = src
        self._zstd = _zstandard()
        self._obj = self._zstd.ZstdDecompressor().decompressobj()
        self._pending = head
        self._out = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._done:
            data = self._pending or self._src.read(_CHUNK)
            self._pending = b""
            if not data:
                if not self._obj.eof:
                    raise CompressionError("zstd stream is truncated (its last frame has no end)")
                self._done = True
                break
            if self._obj.eof:  # a following frame
                self._obj = self._zstd.ZstdDecompressor().decompressobj()
            try:
                self._out = self._obj.decompress(data)
            except self._zstd.ZstdError as error:
                raise CompressionError(f"zstd stream is damaged: {error}") from error
            if self._obj.eof and self._obj.unused_data:
                self._pending = self._obj.unused_data
        count = min(len(buffer), len(self._out))
        buffer[:count] = self._out[:count]
        self._out = self._out[count:]
        return count


class _GzipReader(io.RawIOBase):
    """gzip members → plaintext, with one-line errors for damage and truncation."""

    def __init__(self, src: BinaryIO, head: bytes) -> None:
        self._file = gzip.GzipFile(fileobj=_Prefixed(src, head), mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._file.readinto(buffer)
        except EOFError as error:
            raise CompressionError("gzip stream is truncated") from error
        except (OSError, zlib.error) as error:
            raise CompressionError(f"gzip stream is damaged: {error}") from error


class _Prefixed(io.RawIOBase):
    """*head* (already read for detection) followed by the rest of *src*."""

    def __init__(self, src: BinaryIO, head: bytes) -> None:
        self._src = src
        self._head = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._src.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def decompressing(src: BinaryIO) -> BinaryIO:
    """A readable plaintext stream over *src*, whatever its compression (by magic)."""
    head = src.read(len(ZSTD_MAGIC))
    method = detect(head)
    raw: io.RawIOBase
    if method is Compression.ZSTD:
        raw = _ZstdReader(src, head)
    elif method is Compression.GZIP:
        raw = _GzipReader(src, head)
    else:
        raw = _Prefixed(src, head)
    return io.BufferedReader(raw, _CHUNK)


SUFFIXES = {Compression.ZSTD: ".zst", Compression.GZIP: ".gz", Compression.NONE: ""}
