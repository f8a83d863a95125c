"""Exports: CSV of any table, iCalendar of sessions, PDF reports."""
