"""The planner's side of one session: its event, content hash and cheap fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields

from icalendar import Event

from planctl import __version__
from planctl.calendar.events import session_uid
from planctl.calendar.sessions import SessionView
from planctl.sync.backend import EventPayload
from planctl.sync.content import EventContent, session_event

CANCELLED = "cancelled"  # the token of a cancelled session or event, whatever its content
FINGERPRINT = "~"  # what starts a fingerprint (older state rows hold a content hash)
# What a session's event is made of: every field of the view but its timestamps.
FINGERPRINT_FIELDS = tuple(
    f.name for f in fields(SessionView) if f.name not in ("created_at", "updated_at")
)


@dataclass
class LocalItem:
    """A session in scope; its event and hash are computed once, when active."""

    view: SessionView
    timezone: str
    _event: tuple[Event, EventContent] | None = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return self.view.estado != "cancelada"

    def _built(self) -> tuple[Event, EventContent]:
        if self._event is None:
            self._event = session_event(self.view, self.timezone)
        return self._event

    @property
    def content(self) -> EventContent:
        return self._built()[1]

    @property
    def digest(self) -> str:
        return self.content.digest()

    @property
    def token(self) -> str:
        """The event's content hash, or CANCELLED (builds the event: about a millisecond)."""
        return self.digest if self.active else CANCELLED

    @property
    def fingerprint(self) -> str:
        """A hash of everything the session's event is made from (microseconds, no event built).

        ``~`` marks it apart from the content hashes older state rows hold.
        The planctl version is part of it: a new export format is a change.
        """
        if self._fingerprint is None:
            values = [getattr(self.view, name) for name in FINGERPRINT_FIELDS]
            data = repr((__version__, self.timezone, values)).encode("utf-8")
            self._fingerprint = FINGERPRINT + hashlib.sha256(data).hexdigest()[:63]
        return self._fingerprint

    @property
    def state_token(self) -> str:
        """What the state row keeps for the planner's side: the fingerprint, or CANCELLED."""
        return self.fingerprint if self.active else CANCELLED

    def release(self) -> None:
        """Drop the built event (it is built again if asked): a run keeps one Action per
        session written, not its event."""
        self._event = None

    def payload(self) -> EventPayload:
        event, content = self._built()
        return EventPayload(
            session_id=self.view.id,
            uid=session_uid(self.view.id),
            content=content,
            vevent=event,
            timezone=self.timezone,
        )
