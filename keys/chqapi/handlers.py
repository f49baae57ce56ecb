"""The API type this installation serves itself: API Document Export, the calling
key's own API documents, exactly as the reference's page describes it."""

from typing import Any

from django.db.models import Q, QuerySet

from ..models import ApiDocument, ApiType
from ..text import printable, storable
from . import documents
from .export_request import Filter, InvalidRequest, parse
from .exports import ExportResult
from .guard import ApiCall, register
from .wire import API_VERSION, RECEIVER, chq_datetime, elapsed_seconds, timespan

# The page's filters and their operators. Notequal is accepted too: the reference lists it
# among every export's operators, and it is the same list read the other way.
FILTERS = {
    "Status": {"Equal", "Notequal", "Contains"},
    "Source": {"Equal", "Notequal", "Contains"},
    "ApiType": {"Equal", "Notequal", "Contains"},
}
SORTS = {"RecModified": "modified_at"}
STATUS_BY_NAME = {choice.label.lower(): choice.value for choice in ApiDocument.Status}


def _values(item: Filter) -> list[str]:
    """Equal takes one value; Contains a comma-separated list (the page's words)."""
    raw = item.value
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidRequest({item.path: [f"{printable(raw, 40)!r} is not a value for {item.field}."]})
    text = str(raw)
    parts = [p.strip() for p in text.split(",")] if item.operator == "Contains" else [text.strip()]
    if not all(parts):
        raise InvalidRequest({item.path: [f"{item.field}: an empty value in {printable(text, 60)!r}."]})
    return parts


def _status_codes(item: Filter) -> list[int]:
    codes = []
    for part in _values(item):
        code = int(part) if part.isascii() and part.isdigit() else STATUS_BY_NAME.get(part.lower())
        if code not in ApiDocument.Status.values:
            names = ", ".join(f"{c.value} ({c.label})" for c in ApiDocument.Status)
            raise InvalidRequest({item.path: [f"{printable(part, 40)!r} is not a status; use {names}."]})
        codes.append(code)
    return codes


def _api_type_condition(item: Filter) -> Q:
    """An API type as its number, its "<api-id>-<direction>" name, or its display name."""
    condition = Q(pk__in=[])
    for part in _values(item):
        if part.isascii() and part.isdigit():
            condition |= Q(api_type_id=int(part))
            continue
        name = storable(part, 160)
        condition |= Q(request_type__iexact=name) | Q(api_type_name__iexact=name)
        # A document of a type since renamed still answers to the type's current names.
        for api_type in ApiType.objects.filter(name__iexact=name):
            condition |= Q(api_type_id=api_type.pk)
    return condition


def _filtered(queryset: QuerySet[ApiDocument], filters: list[Filter]) -> QuerySet[ApiDocument]:
    for item in filters:
        if item.field == "Status":
            condition = Q(status__in=_status_codes(item))
        elif item.field == "Source":
            condition = Q(source__in=[storable(v, 200) for v in _values(item)])
        else:
            condition = _api_type_condition(item)
        queryset = queryset.exclude(condition) if item.operator == "Notequal" else queryset.filter(condition)
    return queryset


def item(document: ApiDocument) -> dict[str, Any]:
    """One Response.ApiDocuments entry. Fields without a value are left out, as in the page's examples."""
    fields = {
        "RecCreated": chq_datetime(document.created_at),
        "RecModified": chq_datetime(document.modified_at),
        "StreamingDate": chq_datetime(document.modified_at),
        "APIDocumentId": str(document.document_id).upper(),
        "APIType": document.request_type,
        "Area": 0,
        "Source": document.source,
        "Receiver": RECEIVER,
        "Progress": document.progress,
        "TotalRecords": document.total_records,
        "AcceptedRecords": document.accepted_records,
        "ElapsedTime": timespan(elapsed_seconds(document)) if document.finished else None,
        "IsSynchronously": not document.is_async,
        "Status": document.status,
        # ParentAPIDocumentId: no document here has a parent, so it is always left out.
        "UseApiVersion": API_VERSION,
        "ApiDocumentLines": [
            {
                "RecCreated": chq_datetime(document.created_at),
                "RecModified": chq_datetime(document.modified_at),
                "StreamingDate": chq_datetime(document.modified_at),
                **{k: line[k] for k in ("APIDocumentLineId", "EntityNo", "EntityId") if k in line},
            }
            for line in document.lines
        ]
        or None,
    }
    return {name: value for name, value in fields.items() if value is not None}


@register("export", "apidocument")
def api_document_export(call: ApiCall) -> ExportResult:
    """The calling key's API documents: filtered, sorted, skipped and cut to Top."""
    request = parse(call.body, filters=FILTERS, sorts=set(SORTS))
    documents.expire()  # a document whose worker died is listed as the Error it is

    found = _filtered(ApiDocument.objects.filter(key_id=call.decision.key_id), request.filters)
    # Without a sort, in the order they were made: a stable order to page through with Skip.
    order = [f"-{SORTS[s.name]}" if s.descending else SORTS[s.name] for s in request.sorts] + ["id"]
    page = found.order_by(*order)
    page = page[request.skip : request.skip + request.top] if request.top is not None else page[request.skip :]
    return ExportResult(
        collection="ApiDocuments",
        request=request,
        total=found.count(),
        rows=(item(document) for document in page.iterator(chunk_size=500)),
    )
