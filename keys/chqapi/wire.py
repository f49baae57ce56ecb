"""CHQ's wire format: how dates, time spans, statuses and the standard answers
are written (the reference's "How to make an export request" and "JSON data
types" pages). Every answer of /chqapi/ is shaped here, so each choice the
reference leaves open is made once:

- dates and times are UTC, written `2021-02-12T14:04:40.730Z` (milliseconds, and
  the `Z` designator, which the reference's datetime format allows, so a client
  never has to guess the zone);
- elapsed times are .NET TimeSpans, `00:00:00.0300000` (seven fraction digits);
- a document's status is a name (`"InProcess"`) in the standard answers and an
  integer (keys.models.ApiDocument.Status) in API Document Export's items, as
  the reference's examples show;
- every error is JSON: `{"Message": ...}` (Response Example 5), and an invalid
  request `{"Message": "The request is invalid.", "ModelState": {path: [...]}}`.
"""

import datetime as dt
from typing import Any

# The answers' JSON shapes are the guard's (keys/guard/answers.py), which answers in them for any view.
from ..guard.answers import (  # noqa: F401 (the wire format's names for them)
    INVALID_REQUEST,
    MAX_PROBLEMS,
    invalid,
    invalid_body,
    invalid_message,
    json_response,
    listed,
    message_response,
)
from ..models import ApiDocument

# Where the reference's examples say it: "Receiver", "Area" and "UseApiVersion" of a document.
RECEIVER = "ChqApiController"
API_VERSION = 1


def chq_datetime(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def timespan(seconds: float | None) -> str | None:
    """Seconds as a .NET TimeSpan: hh:mm:ss.fffffff (days folded into the hours)."""
    if seconds is None:
        return None
    ticks = max(0, round(seconds * 10_000_000))
    whole, fraction = divmod(ticks, 10_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:07d}"


def status_name(code: int) -> str:
    return ApiDocument.Status(code).label


def request_type(direction: str, api_id: str) -> str:
    """CHQ's name for an API type in answers and filters: "location-export"."""
    return f"{api_id}-{direction}"


def elapsed_seconds(document: ApiDocument) -> float | None:
    if document.started_at is None:
        return None
    end = document.ended_at or document.modified_at
    return (end - document.started_at).total_seconds()


def standard(document: ApiDocument) -> dict[str, Any]:
    """The standard response (In Process, Error, or success without data) for a document."""
    return {
        "Id": str(document.document_id),
        "Status": "InProcess" if not document.finished else status_name(document.status),
        "Progress": document.progress,
        "TotalRecords": document.total_records,
        "AcceptedRecords": document.accepted_records,
        "ErrorRecords": document.error_records,
        "ElapsedTime": timespan(elapsed_seconds(document)) if document.finished else None,
        "ErrorMessage": document.error_message or None,
        "Lines": [{k: v for k, v in line.items() if k != "APIDocumentLineId"} for line in document.lines] or None,
        "ApiType": document.request_type,
        "Source": document.source,
    }
