"""Streaming compression: round trips, independent readers, detection, damage."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from planctl.backup.compress import (
    Compression,
    CompressionError,
    compressing,
    decompressing,
    detect,
    parse_compression,
)
from planctl.backup.store import BackupInfo, parse_metadata
from planctl.errors import UsageError

from .conftest import skip_or_fail

DATA = b"".join(b"%06d,sesion,2026-01-%02d,09:00,13:00,programada\n" % (i, i % 28 + 1)
                for i in range(50000))  # fmt: skip


def compress(data: bytes, method: Compression, level: int | None = None) -> bytes:
    out = io.BytesIO()
    with compressing(out, method, level) as sink:
        for start in range(0, len(data), 65000):
            sink.write(data[start : start + 65000])
    assert not out.closed  # the caller's stream stays open
    return out.getvalue()


@pytest.mark.parametrize(
    "method, level",
    [(Compression.ZSTD, None), (Compression.ZSTD, 9), (Compression.GZIP, 1),
     (Compression.GZIP, None), (Compression.NONE, None)],
)  # fmt: skip
def test_round_trip_and_detection(method: Compression, level: int | None) -> None:
    packed = compress(DATA, method, level)
    if method is not Compression.NONE:
        assert len(packed) < len(DATA) // 4
    assert detect(packed[:4]) is method
    assert decompressing(io.BytesIO(packed)).read() == DATA


def test_independent_readers(tmp_path: Path) -> None:
    """gzip output reads with Python's gzip and `gzip -t`; zstd output with the zstd CLI."""
    assert gzip.decompress(compress(DATA, Compression.GZIP)) == DATA
    zst = tmp_path / "d.zst"
    zst.write_bytes(compress(DATA, Compression.ZSTD))
    gz = tmp_path / "d.gz"
    gz.write_bytes(compress(DATA, Compression.GZIP))
    subprocess.run(["gzip", "-t", str(gz)], check=True)
    if not shutil.which("zstd"):
        skip_or_fail("the zstd command-line tool is not installed (Debian package zstd)")
    out = subprocess.run(["zstd", "-dc", str(zst)], check=True, capture_output=True).stdout
    assert out == DATA


@pytest.mark.parametrize("method", [Compression.ZSTD, Compression.GZIP])
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damage_is_an_error_not_a_short_read(method: Compression, damage: str) -> None:
    packed = bytearray(compress(DATA, method))
    if damage == "truncated":
        packed = packed[: len(packed) * 2 // 3]
    else:
        packed[len(packed) // 2] ^= 0x10
    with pytest.raises(CompressionError):
        decompressing(io.BytesIO(bytes(packed))).read()


def test_plain_and_tiny_inputs() -> None:
    for raw in (b"", b"a", b"SQLite format 3\x00..."):
        assert decompressing(io.BytesIO(raw)).read() == raw
        assert decompressing(io.BytesIO(compress(raw, Compression.ZSTD))).read() == raw


def test_parse_compression() -> None:
    assert parse_compression("zstd") == (Compression.ZSTD, 3)
    assert parse_compression("GZIP", 9) == (Compression.GZIP, 9)
    assert parse_compression("none") == (Compression.NONE, 0)
    with pytest.raises(UsageError, match="unknown compression 'xz'"):
        parse_compression("xz")
    with pytest.raises(UsageError, match="out of range"):
        parse_compression("gzip", 12)


@pytest.mark.parametrize(
    ("stored", "method"),
    [(True, Compression.GZIP), (False, Compression.NONE), ("zstd", Compression.ZSTD)],
)
def test_the_metadata_keeps_what_every_version_wrote(stored: object, method: Compression) -> None:
    """``compressed`` in a backup's metadata: true (gzip), false (none) or "zstd"; planctl
    reads it into the enum and writes the same value back."""
    assert Compression.from_stored(stored) is method and method.stored == stored
    info = BackupInfo(
        "b",
        "full",
        "sqlite",
        "2026-12-07T00:00:00+00:00",
        "b.sqlite",
        "0" * 64,
        1,
        "",
        None,
        compressed=method,
    )
    data = info.as_dict()
    assert data["compressed"] == stored
    again = parse_metadata("b.json", json.dumps(data).encode())
    assert again is not None and again.compressed is method


@pytest.mark.parametrize("stored", ["lz4", None, 1, [], {"method": "gzip"}])
def test_metadata_with_an_unknown_compression_is_not_well_typed(stored: object) -> None:
    data = BackupInfo(
        "b", "full", "sqlite", "2026-12-07T00:00:00+00:00", "b.sqlite", "0" * 64, 1, "", None
    ).as_dict()
    data["compressed"] = stored
    assert parse_metadata("b.json", json.dumps(data).encode()) is None
