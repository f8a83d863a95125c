"""Calendar sync: sessions to and from a calendar backend, in both directions.

- :mod:`planctl.sync.content` — the synced content of an event, its hash, and
  the mapping between sessions and events (built on the iCalendar export).
- :mod:`planctl.sync.backend` — the small protocol every backend implements,
  and the registry that finds ``planctl.sync.backends.<name>``.
- :mod:`planctl.sync.engine` — the two-way decision table, dry-run plans,
  conflict policies, and the state kept in ``planctl_sync_states``.

The functions a Python user needs are :func:`planctl.sync.engine.run_sync`,
:func:`planctl.sync.engine.sync_status` and :func:`planctl.sync.backend.open_backend`.
"""
