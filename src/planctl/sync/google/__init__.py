"""Google Calendar API v3: a thin REST client, OAuth for a command-line tool, and an emulator.

``client``   the Calendar v3 REST shapes over http.client (backoff, batch, sync tokens)
``oauth``    the installed-app flow, the authorized-user token file, refresh and revoke
``store``    the emulator's SQLite store (calendars, events, grants)
``emulator`` the emulator: Google's paths, error bodies, etags, sync tokens, OAuth, faults
"""
