"""The API types this installation serves itself: API Document Export (the
calling key's logged calls) and the status of one logged call."""

import json
import re
import uuid
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from ..models import ApiCallLog
from ..text import printable, storable
from .guard import ApiCall, ApiError, register

MAX_TOP = 1000
DEFAULT_TOP = 100
# Beyond any table this holds, and inside every database's 64-bit OFFSET.
MAX_SKIP = 2**31 - 1
STATUS_CODE = re.compile(r"[1-5][0-9]{2}")

# Filter field -> (model field, operators allowed, value parser)
OPERATORS = {
    "Equal": "exact",
    "NotEqual": None,  # handled as exclude
    "Contains": "icontains",
    "GreaterThan": "gt",
    "GreaterThanOrEqual": "gte",
    "LessThan": "lt",
    "LessThanOrEqual": "lte",
}


def _parse_datetime(value: Any) -> datetime:
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but not a real date or time, such as 2024-02-30
        parsed = None
    if parsed is None:
        raise ApiError(400, f"CreatedAt filter value {str(value)[:40]!r} is not an ISO 8601 date and time.")
    return parsed


def _parse_status(value: Any) -> int:
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if isinstance(value, bool) or not isinstance(value, int | str) or not STATUS_CODE.fullmatch(str(value)):
        raise ApiError(400, f"StatusCode filter value {printable(value, 40)!r} is not a status code (100-599).")
    return int(value)


def _parse_text(value: Any) -> str:
    # Stored text holds U+FFFD where a caller sent NUL or a lone surrogate (keys.text.storable);
    # the filter value is made the same way, so it matches what was stored and PostgreSQL accepts it.
    return storable(value if isinstance(value, str) else json.dumps(value), 500)


FIELDS = {
    "ApiType": ("api_type_name", {"Equal", "NotEqual", "Contains"}, _parse_text),
    "CreatedAt": ("created_at", {"GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual"}, _parse_datetime),
    "StatusCode": ("status_code", {"Equal", "NotEqual", "GreaterThanOrEqual", "LessThan"}, _parse_status),
    "Source": ("source", {"Equal", "NotEqual", "Contains"}, _parse_text),
}


def _filtered(queryset: QuerySet[ApiCallLog], filters: Any) -> QuerySet[ApiCallLog]:
    if filters is None:
        return queryset
    if not isinstance(filters, list):
        raise ApiError(400, "Data.Request.Filters must be a list of {Field, Operator, Value} objects.")
    for n, item in enumerate(filters, 1):
        if not isinstance(item, dict):
            raise ApiError(400, f"Filter {n} must be an object with Field, Operator and Value.")
        name, operator, value = item.get("Field"), item.get("Operator", "Equal"), item.get("Value")
        if not isinstance(name, str) or name not in FIELDS:
            raise ApiError(400, f"Filter {n}: Field must be one of {', '.join(FIELDS)}.")
        model_field, allowed, parse = FIELDS[name]
        if not isinstance(operator, str) or operator not in allowed:
            raise ApiError(400, f"Filter {n}: {name} takes the operators {', '.join(sorted(allowed))}.")
        parsed = parse(value)
        if operator == "NotEqual":
            queryset = queryset.exclude(**{model_field: parsed})
        else:
            queryset = queryset.filter(Q(**{f"{model_field}__{OPERATORS[operator]}": parsed}))
    return queryset


def _whole(value: Any, name: str, default: int, maximum: int | None = None) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SKIP:
        raise ApiError(400, f"{name} must be a whole number from 0 to {MAX_SKIP}.")
    return min(value, maximum) if maximum else value


def document(log: ApiCallLog) -> dict[str, Any]:
    return {
        "ApiDocumentId": str(log.document_id),
        "ApiType": log.api_type_name,
        "CreatedAt": log.created_at.isoformat(),
        "Method": log.method,
        "Path": log.path,
        "Source": log.source,
        "StatusCode": log.status_code,
        "Status": "Successful" if log.succeeded else "Error",
        "DurationMs": round(log.duration_ms, 3),
    }


@register("export", "apidocument")
def api_document_export(call: ApiCall) -> dict[str, Any]:
    """The calling key's logged calls, newest first, CHQ-style paging with Top and Skip."""
    data = call.body.get("Data") or {}
    request = data.get("Request") if isinstance(data, dict) else None
    if request is None:
        request = {}
    if not isinstance(request, dict):
        raise ApiError(400, "Data.Request must be an object.")
    top = _whole(request.get("Top"), "Top", DEFAULT_TOP, MAX_TOP)
    skip = _whole(request.get("Skip"), "Skip", 0)
    logs = _filtered(ApiCallLog.objects.filter(key_id=call.decision.key_id), request.get("Filters"))
    page = list(logs.order_by("-id")[skip : skip + top])
    return {
        "ApiDocuments": [document(log) for log in page],
        "Total": logs.count(),
        "Top": top,
        "Skip": skip,
    }


def status(call: ApiCall) -> dict[str, Any]:
    """The status of one logged call of the calling key, by its ApiDocumentId."""
    raw = call.body.get("ApiDocumentId")
    if raw is None:
        raise ApiError(400, 'Send {"ApiDocumentId": "<id>"} to ask for the status of a logged call.')
    try:
        document_id = uuid.UUID(str(raw))
    except ValueError:
        raise ApiError(400, "ApiDocumentId must be a GUID.") from None
    log = ApiCallLog.objects.filter(key_id=call.decision.key_id, document_id=document_id).first()
    if log is None:
        raise ApiError(
            404, "No logged call of this API key has that ApiDocumentId. Calls are stored only while logging is on."
        )
    answer = document(log)
    try:
        answer["Response"] = json.loads(log.response_body) if log.response_body and not log.truncated else None
    except json.JSONDecodeError:
        answer["Response"] = log.response_body
    return answer
