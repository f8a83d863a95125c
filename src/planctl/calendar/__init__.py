"""The session → calendar-event model that the exports and sync share.

- :mod:`~planctl.calendar.sessions`: the joined view of sessions
  (:class:`SessionView`), its filters and the streaming query.
- :mod:`~planctl.calendar.events`: a session as an RFC 5545 VEVENT (UID,
  stamps, SEQUENCE, text escaping) and the calendar header around events.
- :mod:`~planctl.calendar.tzrules`: the VTIMEZONE of a zone over a range of years.
- :mod:`~planctl.calendar.zones`: IANA zone lookup and UTC conversion
  (standard library only, cheap to import).

Nothing here imports :mod:`planctl.export` or :mod:`planctl.sync`; both import
from here (a test walks the imports).
"""
