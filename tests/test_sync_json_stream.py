"""``sync --dry-run --json`` is written as a stream: one action at a time, never the
whole document in memory (29.6 MB at 200,000 sessions before issue 20)."""

from __future__ import annotations

import io
import json
import tracemalloc

from planctl.sync.report import Action, Kind, SyncReport

SESSIONS = 10_000


def _report() -> SyncReport:
    actions = [
        Action(Kind.CREATE_REMOTE, session_id, "new session", None, None, None)
        for session_id in range(1, SESSIONS + 1)
    ]
    return SyncReport(
        backend="simulated", calendar="c", mode="sync", policy="fail", dry_run=True,
        actions=actions,
    )


class _Sink(io.TextIOBase):
    """Counts what it is given and keeps nothing (stdout piped to a file)."""

    def __init__(self) -> None:
        self.size = 0
        self.largest = 0

    def write(self, text: str) -> int:
        self.size += len(text)
        self.largest = max(self.largest, len(text))
        return len(text)


def test_the_json_report_is_written_in_small_pieces_with_the_same_text() -> None:
    report = _report()
    text = "".join(report.json_chunks())
    assert text == json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    assert len(json.loads(text)["actions"]) == SESSIONS
    tracemalloc.start()
    try:
        sink = _Sink()
        sink.writelines(report.json_chunks())
        _, streamed_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size == len(text) > 1_000_000  # a document of ~1.4 MB …
    assert sink.largest < 1_000  # … handed over in pieces of at most one action
    assert streamed_peak < len(text) / 20  # … and never held whole (nor its dicts)
