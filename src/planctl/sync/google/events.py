"""Google Calendar's event resource as planctl writes and reads it.

A session's identity travels in ``extendedProperties.private`` (``planctlSessionId``),
never in the title; its categories in ``planctlCategories`` (JSON). Times are
``dateTime`` with the planner's ``timeZone``. A deleted event is ``status:
cancelled`` (a tombstone).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from planctl.calendar.zones import zone_info
from planctl.sync.backend import EventPayload, RemoteEvent
from planctl.sync.content import EventContent, clean_text, session_id_from_uid

SESSION_PROPERTY = "planctlSessionId"
CATEGORIES_PROPERTY = "planctlCategories"
STATUS_TO_GOOGLE = {"CONFIRMED": "confirmed", "TENTATIVE": "tentative"}
STATUS_FROM_GOOGLE = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE"}

Resource = dict[str, Any]


@dataclass(frozen=True)
class ListedEvent:
    """One simulated event as a person reads it; ``start`` is None for a tombstone."""

    id: str
    session_id: int | None
    status: str
    etag: str | None
    summary: str
    start: dt.datetime | None
    end: dt.datetime | None


def listed(event: Resource, timezone: str) -> ListedEvent:
    """*event* (Google Calendar's resource shape) as a :class:`ListedEvent`."""
    remote = remote_event(event, timezone)
    content = remote.content
    return ListedEvent(
        id=str(event["id"]),
        session_id=remote.session_id,
        status=str(event.get("status") or "confirmed"),
        etag=event.get("etag"),
        summary=content.summary if content else "",
        start=content.start if content else None,
        end=content.end if content else None,
    )


def when(moment: dt.datetime, timezone: str) -> Resource:
    return {"dateTime": moment.isoformat(), "timeZone": timezone}


def session_property(event: Resource) -> str | None:
    private = (event.get("extendedProperties") or {}).get("private") or {}
    value = private.get(SESSION_PROPERTY)
    return str(value) if value is not None else None


def resource_from_payload(payload: EventPayload) -> Resource:
    """The Google-style event body for a session."""
    content = payload.content
    body: Resource = {
        "iCalUID": payload.uid,
        "summary": content.summary,
        "start": when(content.start, payload.timezone),
        "end": when(content.end, payload.timezone),
        "status": STATUS_TO_GOOGLE.get(content.status, "confirmed"),
        "extendedProperties": {
            "private": {
                SESSION_PROPERTY: str(payload.session_id),
                CATEGORIES_PROPERTY: json.dumps(list(content.categories), ensure_ascii=False),
            }
        },
    }
    if content.location is not None:
        body["location"] = content.location
    if content.description is not None:
        body["description"] = content.description
    if content.url is not None:
        body["source"] = {"url": content.url, "title": "planctl"}
    return body


def parse_when(value: Resource, timezone: str) -> dt.datetime:
    if "dateTime" in value:
        moment = dt.datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone_info(str(value.get("timeZone") or timezone)))
        return moment
    day = dt.date.fromisoformat(str(value["date"]))  # all-day event
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone_info(timezone))


def content_from_resource(event: Resource, timezone: str) -> EventContent:
    private = (event.get("extendedProperties") or {}).get("private") or {}
    try:
        categories = tuple(json.loads(private.get(CATEGORIES_PROPERTY) or "[]"))
    except ValueError:
        categories = ()
    return EventContent(
        start=parse_when(event["start"], timezone),
        end=parse_when(event["end"], timezone),
        summary=clean_text(event.get("summary")) or "",
        location=clean_text(event.get("location")),
        description=clean_text(event.get("description")),
        status=STATUS_FROM_GOOGLE.get(str(event.get("status", "confirmed")), "CANCELLED"),
        url=clean_text((event.get("source") or {}).get("url")),
        categories=categories,
        recurring=bool(event.get("recurrence")),
    )


def remote_event(event: Resource, timezone: str, *, with_content: bool = True) -> RemoteEvent:
    property_value = session_property(event)
    session_id = (
        int(property_value)
        if property_value is not None and property_value.isdigit()
        else session_id_from_uid(event.get("iCalUID"))
    )
    deleted = event.get("status") == "cancelled"
    return RemoteEvent(
        id=str(event["id"]),
        etag=event.get("etag"),
        session_id=session_id,
        content=None if deleted or not with_content else content_from_resource(event, timezone),
        deleted=deleted,
    )
