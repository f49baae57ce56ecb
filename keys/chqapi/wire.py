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
import functools
import itertools
import json
from typing import Any

from django.http import HttpResponse

from ..models import ApiDocument

INVALID_REQUEST = "The request is invalid."
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


def json_response(data: Any, status: int = 200, encoder: type[json.JSONEncoder] | None = None) -> HttpResponse:
    # json.dumps directly: JsonResponse's DjangoJSONEncoder is slower, and these are plain values.
    # Bytes, not text: HttpResponse encodes text by a settings lookup per response (3 µs of a call's ~100).
    return _json_bytes(json.dumps(data, cls=encoder).encode(), status)


@functools.lru_cache(maxsize=256)
def _message_body(message: str) -> bytes:
    return json.dumps({"Message": message}).encode()


def message_response(message: str, status: int) -> HttpResponse:
    """CHQ's error answer `{"Message": ...}` (the reference's Response Example 5). The same few
    messages answer most refusals, so their JSON is made once (a bounded cache: some carry the
    caller's path)."""
    return _json_bytes(_message_body(message), status)


def _json_bytes(body: bytes, status: int) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json", status=status)
    if status >= 400:
        # A deliberate answer: keys.security records refusals (without the key), and failures are
        # logged where they happen; django.request need not build a log record for each.
        response._has_been_logged = True
    return response


# An invalid request's answer lists this many problems and counts the rest: one entry per bad item
# made a 200 KB body of 100,000 bad filters a 9.7 MB answer, stored again by an async document.
# The first 20 are enough to correct a request by; the rest are most often the same mistake.
MAX_PROBLEMS = 20


def listed(model_state: dict[str, list[str]]) -> dict[str, list[str]]:
    """The ModelState an answer shows: the first MAX_PROBLEMS paths, and how many more there were."""
    if len(model_state) <= MAX_PROBLEMS:
        return model_state
    shown = {path: model_state[path] for path in itertools.islice(model_state, MAX_PROBLEMS)}
    more = f"{len(model_state) - MAX_PROBLEMS} more problems are not listed ({len(model_state)} in all)."
    shown["apiRequest"] = [*shown.get("apiRequest", ()), more]
    return shown


def invalid_body(model_state: dict[str, list[str]]) -> dict[str, Any]:
    """The body of the reference's API Document Export Response Example #2."""
    return {"Message": INVALID_REQUEST, "ModelState": listed(model_state)}


def invalid_message(model_state: dict[str, list[str]]) -> str:
    """An invalid request in one line, for a document's error message."""
    details = " ".join(f"{path}: {' '.join(texts)}" for path, texts in listed(model_state).items())
    return f"{INVALID_REQUEST} {details}"


def invalid(model_state: dict[str, list[str]]) -> HttpResponse:
    """400 in the shape of the reference's API Document Export Response Example #2."""
    return json_response(invalid_body(model_state), status=400)
