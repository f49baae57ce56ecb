"""The API type this installation serves itself: API Document Export, the calling
key's own API documents, exactly as the reference's page describes it."""

from typing import Any

from django.db.models import Q
from django.db.models.functions import Lower

from .. import counts
from ..guard import ApiCall, register
from ..models import ApiDocument, ApiType
from ..text import printable, storable
from . import documents, openapi
from .export_request import MAX_ID, Filter, InvalidRequest, parse, whole_number
from .exports import ExportResult
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
# API Document Export's Request Example #1 (without its ApiDocumentId, which would be taken the second
# time Swagger's "Try it out" sends it).
EXAMPLE_REQUEST = {
    "Source": "Integrator",
    "Data": {
        "Request": {
            "Filters": [{"Field": "ApiType", "Operator": "Equal", "Value": "location-export"}],
            "SortDescriptions": [{"Direction": "Ascending", "Name": "RecModified"}],
            "Top": 10,
            "Skip": 0,
        }
    },
}


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
        code = whole_number(part) if part.isascii() and part.isdigit() else STATUS_BY_NAME.get(part.lower())
        if code not in ApiDocument.Status.values:
            names = ", ".join(f"{c.value} ({c.label})" for c in ApiDocument.Status)
            raise InvalidRequest({item.path: [f"{printable(part, 40)!r} is not a status; use {names}."]})
        codes.append(code)
    return codes


def _api_types(item: Filter) -> tuple[set[int], set[str]]:
    """An ApiType filter's values: numeric ids, and names (the "<api-id>-<direction>" form or a display name)."""
    ids, names = set(), set()
    for part in _values(item):
        if not (part.isascii() and part.isdigit()):
            names.add(storable(part, 160))
        elif (number := whole_number(part)) is not None:
            ids.add(number)
        else:
            raise InvalidRequest({item.path: [f"{printable(part, 40)!r} is not an API type id (0 to {MAX_ID})."]})
    return ids, names


# SQLite's LOWER folds only ASCII letters, PostgreSQL's every letter (in a UTF-8 locale): a name is
# looked for in both folds, so it is found, in any case, by either database's LOWER of the column.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _folded(names: set[str]) -> set[str]:
    # Plain strings, not Lower(Value(...)): compiling 10,000 expressions cost seconds a query.
    return {fold for name in names for fold in (name.lower(), name.translate(_ASCII_LOWER))}


def _type_ids_by_name(names: set[str]) -> dict[str, set[int]]:
    """The ids of the API types currently named so (any case), by folded name: one query for
    every name of the request."""
    found: dict[str, set[int]] = {}
    if names:
        rows = ApiType.objects.alias(folded=Lower("name")).filter(folded__in=_folded(names))
        for pk, name in rows.values_list("pk", "name"):
            for fold in _folded({name}):
                found.setdefault(fold, set()).add(pk)
    return found


def _read(item: Filter) -> Any:
    """A filter's values: status codes, sources, or an ApiType filter's (ids, names)."""
    if item.field == "Status":
        return set(_status_codes(item))
    if item.field == "Source":
        return {storable(v, 200) for v in _values(item)}
    return _api_types(item)


def _conditions(filters: list[Filter]) -> list[tuple[str, Q]]:
    """Every filter as (its field, its condition), with one query for all ApiType names: per
    filter a clone and per name a query made a request of thousands of filters quadratic. Each
    is one condition of at most three IN lists, however many values it lists, written for
    ApiDocument's columns (and so for the kept counts', which have the same names; the folded
    names are counts.FOLDED's aliases)."""
    # Every value is read before the database is asked: a bad one is a 400 that cost no query.
    read = [(item, _read(item)) for item in filters]
    type_ids = _type_ids_by_name({name for item, values in read if item.field == "ApiType" for name in values[1]})
    conditions = []
    for item, values in read:
        if item.field == "Status":
            condition = Q(status__in=values)
        elif item.field == "Source":
            condition = Q(source__in=values)
        else:
            ids, names = values
            folds = _folded(names)
            # A document of a type since renamed still answers to the type's current names. No type
            # has id 0, which the kept counts use for "no type": it must not match those there.
            ids = ids.union(*(type_ids.get(fold, ()) for fold in folds)) - {0}
            condition = Q(api_type_id__in=ids, request_folded__in=folds, type_name_folded__in=folds, _connector=Q.OR)
        conditions.append((item.field, ~condition if item.operator == "Notequal" else condition))
    return conditions


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


_LINE_DATES = {"RecCreated": openapi.TIMESTAMP, "RecModified": openapi.TIMESTAMP, "StreamingDate": openapi.TIMESTAMP}
# item()'s fields, for the OpenAPI document: those item() leaves out when they have no value are not required.
ITEM_SCHEMA = {
    "title": "ApiDocument",
    "type": "object",
    "description": "One API document, as API Document Export's page lists its fields.",
    "properties": {
        **_LINE_DATES,
        "APIDocumentId": {"type": "string", "format": "uuid"},
        "APIType": {"type": "string", "example": "location-export"},
        "Area": {"type": "integer", "format": "int32"},
        "Source": {"type": "string"},
        "Receiver": {"type": "string", "example": RECEIVER},
        "Progress": {"type": "number", "format": "double"},
        "TotalRecords": {"type": "integer", "format": "int32"},
        "AcceptedRecords": {"type": "integer", "format": "int32"},
        "ElapsedTime": openapi.TIMESPAN,
        "IsSynchronously": {"type": "boolean"},
        "Status": {
            "type": "integer",
            "format": "int32",
            "enum": ApiDocument.Status.values,
            "description": ", ".join(f"{c.value} {c.label}" for c in ApiDocument.Status),
            # The names generated clients give the values (openapi-python-client reads this extension).
            "x-enum-varnames": ApiDocument.Status.names,
        },
        "ParentAPIDocumentId": {"type": "string", "format": "uuid"},
        "UseApiVersion": {"type": "integer", "format": "int32"},
        "ApiDocumentLines": {"type": "array", "items": openapi.ref("ApiDocumentLine")},
    },
    "required": [
        "RecCreated",
        "RecModified",
        "StreamingDate",
        "APIDocumentId",
        "APIType",
        "Area",
        "Source",
        "Receiver",
        "IsSynchronously",
        "Status",
        "UseApiVersion",
    ],
    "$defs": {
        "ApiDocumentLine": {
            "title": "ApiDocumentLine",
            "type": "object",
            "properties": {
                **_LINE_DATES,
                "APIDocumentLineId": {"type": "string", "format": "uuid"},
                # As the import's handler answered them: any JSON value.
                "EntityNo": {"description": "The entity's number, as the import answered it."},
                "EntityId": {"description": "The entity's id, as the import answered it."},
            },
            "required": list(_LINE_DATES),
        }
    },
}


# From this Skip on, a page's ids are found before its rows (api_document_export).
DEFERRED_SKIP = 1000


@register(
    "export",
    "apidocument",
    request_schema=openapi.export_request(FILTERS, SORTS, title="ApiDocumentExportRequest", example=EXAMPLE_REQUEST),
    response_schema=openapi.export_answer("ApiDocuments", ITEM_SCHEMA, title="ApiDocumentExportAnswer"),
)
def api_document_export(call: ApiCall) -> ExportResult:
    """The calling key's API documents: filtered, sorted, skipped and cut to Top."""
    request = parse(call.body, filters=FILTERS, sorts=set(SORTS))
    documents.expire()  # a document whose worker died is listed as the Error it is

    key_id = call.decision.key_id
    conditions = _conditions(request.filters)
    # TotalRecords from the kept counts, with the same conditions: exact, without a COUNT(*).
    total = counts.total(key_id, [condition for _, condition in conditions])
    # An ApiType condition (an OR over an id and two folded names) becomes the exact columns that
    # meet it, which the indexes serve; the others are indexed as they are.
    types = iter(counts.resolved(key_id, [c for field, c in conditions if field == "ApiType"]))
    found = ApiDocument.objects.filter(
        *(next(types) if field == "ApiType" else c for field, c in conditions), key_id=key_id
    )
    # Without a sort, in the order they were made: a stable order to page through with Skip.
    order = [f"-{SORTS[s.name]}" if s.descending else SORTS[s.name] for s in request.sorts] + ["id"]
    page = found.order_by(*order)
    if request.skip >= total:
        page = page.none()  # nothing there: no query, where an index scan would read to the end first
    elif request.top is not None and request.skip >= DEFERRED_SKIP:
        # The page's ids first, then its rows: the skipped entries are read from the index alone
        # (an index-only scan, every column it needs in it), not each one's row from the table
        # as well. Skip 1,000,000 at 10,000,000 documents: the million heap reads were most of it.
        ids = page.values("pk")[request.skip : request.skip + request.top]
        page = ApiDocument.objects.filter(pk__in=ids).order_by(*order)
    elif request.top is not None:
        page = page[request.skip : request.skip + request.top]
    else:
        page = page[request.skip :]
    return ExportResult(
        collection="ApiDocuments",
        request=request,
        total=total,
        rows=(item(document) for document in page.iterator(chunk_size=500)),
    )
