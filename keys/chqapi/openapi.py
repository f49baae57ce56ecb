"""The OpenAPI 3 document of /chqapi/, made from the API-type catalog and the
handler registry, for CHQ's Swagger page (/integration/api/index) and for
schemathesis in the test suite.

Operations are tagged with each type's Swagger group from the catalog file
(`swagger_group`, the groups CHQ's Swagger UI shows); a type without one is in
Common, with API Document Export, status and getdata. A type no handler serves
is listed with its 501 answer, so the page tells the truth about this
installation.
"""

from collections.abc import Iterable
from typing import Any

from ..guard import registration_for
from .export_request import MAX_DIGITS, MAX_FILTERS, MAX_ROWS, MAX_VALUES
from .handlers import FILTERS, SORTS
from .wire import INVALID_REQUEST, MAX_PROBLEMS

COMMON = "Common"
GROUPS = [
    "Adjustment",
    "Catalog",
    "Common",
    "ECommerce",
    "ItemsAvailability",
    "Purchase",
    "Report",
    "Reserve",
    "Sales",
    "Settings",
    "Snapshot",
]
# API Document Export's Request Example #1 (without its ApiDocumentId, which would be taken the second time).
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
STATUS_NAMES = ["InQueue", "Validation", "InProcess", "Successful", "Error"]
OPERATOR_NAMES = ["Equal", "Notequal", "Greaterthan", "Greaterthanorequal", "Lessthan", "Lessthanorequal", "Contains"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "nullable": True, **more}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _request_schema(filters: dict[str, set[str]] | None = None, sorts: Iterable[str] | None = None) -> dict:
    field = {"type": "string", "enum": sorted(filters)} if filters else {"type": "string"}
    sort_name = {"type": "string", "enum": sorted(sorts)} if sorts else {"type": "string"}
    return {
        "type": "object",
        "properties": {
            "Source": {"type": "string", "example": "Integrator"},
            "Data": {
                "type": "object",
                "properties": {
                    "ApiDocumentId": {"type": "string", "format": "uuid"},
                    "Request": {
                        "type": "object",
                        "properties": {
                            "Settings": {
                                "type": "array",
                                "maxItems": MAX_FILTERS,
                                "items": {
                                    "type": "object",
                                    "properties": {"Key": {"type": "string"}, "Value": {"type": "string"}},
                                    "required": ["Key"],
                                },
                            },
                            "Filters": {
                                "type": "array",
                                "maxItems": MAX_FILTERS,
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "Field": field,
                                        "Operator": {"type": "string", "enum": OPERATOR_NAMES},
                                        "Value": {
                                            "type": "string",
                                            "description": (
                                                "One value; for Contains a comma-separated list of at most "
                                                f"{MAX_VALUES}. A number has at most {MAX_DIGITS} digits."
                                            ),
                                        },
                                    },
                                    "required": ["Field", "Value"],
                                },
                            },
                            "SortDescriptions": {
                                "type": "array",
                                "maxItems": MAX_FILTERS,
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "Name": sort_name,
                                        "Direction": {"type": "string", "enum": ["Ascending", "Descending"]},
                                    },
                                    "required": ["Name"],
                                },
                            },
                            "Ties": {"type": "boolean"},
                            "Top": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
                            "Skip": {"type": "integer", "minimum": 0, "maximum": MAX_ROWS},
                        },
                    },
                },
            },
        },
    }


def _schemas() -> dict[str, Any]:
    timestamp = {"type": "string", "example": "2021-02-12T14:04:40.730Z"}
    return {
        "Message": {"type": "object", "properties": {"Message": {"type": "string"}}, "required": ["Message"]},
        "InvalidRequest": {
            "type": "object",
            "properties": {
                "Message": {"type": "string", "example": INVALID_REQUEST},
                "ModelState": {
                    "type": "object",
                    "description": (
                        f"Each bad part's path and its messages: the first {MAX_PROBLEMS}, and under "
                        '"apiRequest" how many more there were.'
                    ),
                    "maxProperties": MAX_PROBLEMS + 1,
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["Message"],
        },
        "StandardResponse": {
            "type": "object",
            "description": "CHQ's standard response: In Process, Error, or a result without data.",
            "properties": {
                "Id": {"type": "string", "format": "uuid"},
                "Status": {"type": "string", "enum": STATUS_NAMES},
                "Progress": _nullable("number"),
                "TotalRecords": _nullable("integer"),
                "AcceptedRecords": _nullable("integer"),
                "ErrorRecords": _nullable("integer"),
                "ElapsedTime": _nullable("string", example="00:00:00.0300000"),
                "ErrorMessage": _nullable("string"),
                "Lines": _nullable("array", items={"type": "object"}),
                "ApiType": {"type": "string", "example": "location-export"},
                "Source": {"type": "string"},
            },
            "required": ["Id", "Status", "ApiType"],
        },
        "ExportSuccess": {
            "type": "object",
            "properties": {
                "ApiDocument": {
                    "type": "object",
                    "properties": {
                        "ApiDocumentId": {"type": "string", "format": "uuid"},
                        "Status": {"type": "string", "enum": ["Successful"]},
                        "ApiRequestType": {"type": "string", "example": "location-export"},
                        "TotalRecords": {"type": "integer"},
                        "RecordsCount": {"type": "integer"},
                        "ElapsedTime": {"type": "string", "example": "00:00:00.0300000"},
                        "StartDateTime": timestamp,
                        "EndDateTime": timestamp,
                        "Response": {"type": "object"},
                    },
                    "required": ["ApiDocumentId", "Status", "ApiRequestType", "TotalRecords", "RecordsCount"],
                }
            },
            "required": ["ApiDocument"],
        },
        "ApiDocumentExportSuccess": {
            "allOf": [
                _ref("ExportSuccess"),
                {
                    "type": "object",
                    "properties": {
                        "ApiDocument": {
                            "type": "object",
                            "properties": {
                                "Response": {
                                    "type": "object",
                                    "properties": {"ApiDocuments": {"type": "array", "items": _ref("ApiDocument")}},
                                    "required": ["ApiDocuments"],
                                }
                            },
                        }
                    },
                },
            ]
        },
        "ApiDocument": {
            "type": "object",
            "description": "One API document, as API Document Export's page lists its fields.",
            "properties": {
                "RecCreated": timestamp,
                "RecModified": timestamp,
                "StreamingDate": timestamp,
                "APIDocumentId": {"type": "string", "format": "uuid"},
                "APIType": {"type": "string"},
                "Area": {"type": "integer", "format": "int32"},
                "Source": {"type": "string"},
                "Receiver": {"type": "string"},
                "Progress": {"type": "number", "format": "double"},
                "TotalRecords": {"type": "integer", "format": "int32"},
                "AcceptedRecords": {"type": "integer", "format": "int32"},
                "ElapsedTime": {"type": "string"},
                "IsSynchronously": {"type": "boolean"},
                "Status": {
                    "type": "integer",
                    "format": "int32",
                    "enum": [0, 1, 2, 3, 4],
                    "description": "0 InQueue, 1 Validation, 2 InProcess, 3 Successful, 4 Error",
                },
                "ParentAPIDocumentId": {"type": "string", "format": "uuid"},
                "UseApiVersion": {"type": "integer", "format": "int32"},
                "ApiDocumentLines": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["RecCreated", "RecModified", "APIDocumentId", "APIType", "IsSynchronously", "Status"],
        },
        "DocumentRequest": {
            "description": 'The document to ask about: {"ApiDocumentId": ...}, {"documentId": ...} or a bare GUID.',
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"ApiDocumentId": {"type": "string", "format": "uuid"}},
                    "required": ["ApiDocumentId"],
                },
                {
                    "type": "object",
                    "properties": {"documentId": {"type": "string", "format": "uuid"}},
                    "required": ["documentId"],
                },
                {"type": "string", "format": "uuid"},
            ],
        },
        "DocumentData": {
            "type": "object",
            "properties": {
                "ApiDocumentId": {"type": "string", "format": "uuid"},
                "Status": {"type": "string", "enum": STATUS_NAMES},
                "ApiType": {"type": "string"},
                "Source": {"type": "string"},
                "Request": {"description": "The request body as sent (JSON), while kept.", "nullable": True},
                "Response": {"description": "The answer's body (JSON), while kept.", "nullable": True},
                "Truncated": {"type": "boolean"},
            },
            "required": ["ApiDocumentId", "Status", "ApiType"],
        },
    }


def _errors(*extra: int) -> dict[str, Any]:
    message = _ref("Message")
    answers = {
        "400": _json(_ref("InvalidRequest"), "The request is invalid: ModelState names each bad part."),
        "401": _json(message, "No ApiKey header, or a key that is unknown, inactive or expired."),
        "411": _json(message, "A chunked body: send a Content-Length."),
        "413": _json(message, "The body is larger than the installation allows."),
        "429": _json(message, "Too many refused keys from this address; see Retry-After."),
        "503": _json(message, "The database cannot be reached for a moment; see Retry-After."),
    }
    meanings = {
        403: "The key may not call this API type.",
        404: "No such document for this key.",
        409: "The ApiDocumentId is taken.",
        410: "The document's content was not kept.",
        501: "The key may call this type, but this installation does not serve it.",
    }
    for code in extra:
        answers[str(code)] = _json(message, meanings[code])
    return answers


def _operation(api_type: dict, *, is_async: bool) -> dict[str, Any]:
    direction, api_id, name = api_type["direction"], api_type["api_id"], api_type["name"]
    registration = registration_for(direction, api_id)
    served = registration is not None
    own = (direction, api_id) == ("export", "apidocument")
    responses = _errors(403, 409, 501) if served else _errors(403, 501)
    if served and (is_async or registration.asynchronous):
        responses["200"] = _json(_ref("StandardResponse"), "In Process: poll /chqapi/status with the Id.")
    elif served and direction == "export":
        success = _ref("ApiDocumentExportSuccess") if own else _ref("ExportSuccess")
        responses["200"] = _json(success, "Successful: the rows in Response.")
    elif served:
        responses["200"] = _json({"type": "object"}, "The import's answer.")
    summary = f"{name}{' (asynchronous)' if is_async else ''}"
    if not served:
        summary += " — not served by this installation (501)"
    request = _request_schema(FILTERS, SORTS) if own else _request_schema()
    return {
        "tags": [api_type.get("swagger_group") or COMMON],
        "summary": summary,
        "operationId": f"{direction}-{api_id}{'-async' if is_async else ''}".replace("/", "-"),
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": request, "example": EXAMPLE_REQUEST if own else {"Data": {}}}},
        },
        "responses": responses,
    }


def _about_a_document(summary: str, answer: dict[str, Any], *codes: int) -> dict[str, Any]:
    responses = _errors(404, *codes)
    responses["200"] = _json(answer, "The document's state or data.")
    return {
        "tags": [COMMON],
        "summary": summary,
        "operationId": summary.split()[0].lower(),
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("DocumentRequest")}}},
        "responses": responses,
    }


def build(api_types: Iterable[dict]) -> dict[str, Any]:
    """The document for these catalog entries (direction, api_id, name, swagger_group)."""
    paths: dict[str, Any] = {}
    for api_type in sorted(api_types, key=lambda t: (t.get("swagger_group") or COMMON, t["name"])):
        base = f"/chqapi/{api_type['direction']}/{api_type['api_id']}"
        paths[base] = {"post": _operation(api_type, is_async=False)}
        if api_type["direction"] == "export":
            paths[f"{base}/async"] = {"post": _operation(api_type, is_async=True)}
    status_answer = {"anyOf": [_ref("StandardResponse"), _ref("ExportSuccess")]}
    paths["/chqapi/status"] = {"post": _about_a_document("Status of an API document", status_answer)}
    paths["/chqapi/getdata"] = {
        "post": _about_a_document("Getdata of a finished API document", _ref("DocumentData"), 410)
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "CHQ API",
            "version": "6.41",
            "description": (
                "Teamwork Commerce CHQ's integration API, as this installation serves it. Every call sends the "
                "ApiKey header; dates are UTC (2021-02-12T14:04:40.730Z), elapsed times hh:mm:ss.fffffff."
            ),
        },
        "tags": [{"name": group} for group in GROUPS],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "ApiKey"}},
        },
        "security": [{"ApiKey": []}],
    }


def for_installation() -> dict[str, Any]:
    """The document for the API types this installation knows, with their catalog Swagger groups."""
    from ..catalog import declared
    from ..models import ApiType

    groups = {(e["direction"], e["api_id"]): e.get("swagger_group", "") for e in declared()}
    return build(
        {
            "direction": t.direction,
            "api_id": t.api_id,
            "name": t.name,
            "swagger_group": groups.get((t.direction, t.api_id), ""),
        }
        for t in ApiType.objects.all()
    )
