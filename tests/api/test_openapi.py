"""The OpenAPI document and CHQ's Swagger page: the document is valid OpenAPI 3,
made from what is registered at the paths the URLconf gives, groups operations as
CHQ's Swagger UI does, and schemathesis, with a valid key, finds on every
operation no 5xx (but the documented 501 of a type this installation does not
serve) and no answer that breaks the document."""

import datetime as dt
import json

import pytest
import schemathesis
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from django.urls import path as route
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from keys import catalog
from keys.chqapi import openapi
from keys.guard import registry as guard
from tests.api_calls import post

# The document for the catalog file, as the installation's (its types are the catalog's) gives it,
# with the types no handler serves listed.
DOCUMENT = openapi.build(catalog.read_file(catalog.CHQ), unserved="list")
APP = WSGIHandler()
UNSERVED = sorted(path for path, item in DOCUMENT["paths"].items() if "200" not in item["post"]["responses"])
# The operations this installation serves get every phase (examples, boundary coverage, fuzzing).
served = schemathesis.openapi.from_dict(DOCUMENT).exclude(path=UNSERVED)
# The 190-odd it does not serve answer 501 before reading the body: fuzzing alone shows that.
unserved = schemathesis.openapi.from_dict(DOCUMENT).include(path=UNSERVED)
unserved.config.phases.coverage.enabled = False


def no_undocumented_server_error(ctx, response, case):
    """No 5xx, except an answer the operation documents: the 501 of a type this installation
    does not serve, which it gives on purpose, after the key checks."""
    if response.status_code >= 500 and str(response.status_code) not in case.operation.definition.raw["responses"]:
        raise AssertionError(f"{case.operation.label} answered {response.status_code}: {response.text[:200]}")


CHECKS = [no_undocumented_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def key(db, make_key):
    return make_key(allowed_for_all=True, logged_for_all=True, description="schemathesis")


def call_and_validate(case, key, settings) -> None:
    settings.KEYS_THROTTLE_REFUSALS = 0
    case.call_and_validate(app=APP, headers={"ApiKey": str(key.value)}, checks=CHECKS)


@pytest.mark.django_db
@served.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_served_operation_answers_as_documented(case, key, settings, connections_kept):
    call_and_validate(case, key, settings)


@pytest.mark.django_db
@unserved.parametrize()
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_unserved_operation_answers_as_documented(case, key, settings, connections_kept):
    call_and_validate(case, key, settings)


@pytest.mark.django_db
def test_every_unserved_type_answers_501_in_json_after_the_key_check(key, settings):
    settings.KEYS_THROTTLE_REFUSALS = 0  # the keyless calls below would be throttled otherwise
    assert len(UNSERVED) > 100
    client = Client()
    for path in UNSERVED:
        response = post(path, key.value, client=client)
        assert response.status_code == 501, path
        assert "does not serve" in response.json()["Message"]
        assert client.post(path, "{}", content_type="application/json").status_code == 401


@pytest.mark.django_db
def test_the_installations_document_groups_types_as_chq_does():
    document = Client().get("/integration/api/openapi.json").json()
    assert document["openapi"] == "3.0.3"
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "ApiKey")
    operations = {path: item["post"] for path, item in document["paths"].items()}
    assert operations["/chqapi/export/apidocument"]["tags"] == ["Common"]
    assert operations["/chqapi/status"]["tags"] == ["Common"]
    assert operations["/chqapi/getdata"]["tags"] == ["Common"]
    assert {tag for op in operations.values() for tag in op["tags"]} <= set(openapi.GROUPS)
    # A type without a handler says so, and documents only its refusals and 501.
    location = operations["/chqapi/export/location"]
    assert "501" in location["responses"]
    assert "200" not in location["responses"]
    assert "not served" in location["summary"]
    assert "200" in operations["/chqapi/export/apidocument"]["responses"]
    assert "/chqapi/export/apidocument/async" in operations
    assert location["requestBody"]["content"]["application/json"]["schema"] == openapi.ref("ExportRequest")
    # Swagger's "Try it out" sends the example: a fixed ApiDocumentId in it would be taken (409) the second time.
    example = operations["/chqapi/export/apidocument"]["requestBody"]["content"]["application/json"]["example"]
    assert example["Data"]["Request"]["Filters"][0]["Value"] == "location-export"
    assert "ApiDocumentId" not in example["Data"]


@pytest.mark.django_db
def test_swagger_page_is_served_locally_under_a_strict_csp():
    response = Client().get("/integration/api/index")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "https://" not in html  # no CDN
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert Client().post("/integration/api/index").status_code == 405


# --- made from what is registered -------------------------------------------------------


def resolved(document: dict, schema: dict) -> dict:
    """`schema`, or the component its $ref names."""
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].removeprefix("#/components/schemas/")]
    return schema


def answer_schema(document: dict, path: str, method: str = "post") -> dict:
    answer = document["paths"][path][method]["responses"]["200"]
    return resolved(document, answer["content"]["application/json"]["schema"])


def test_shared_shapes_are_components_and_the_typed_export_answer_spells_out_its_envelope():
    schemas = DOCUMENT["components"]["schemas"]
    assert {"Filter", "SortDescription", "ExportRequest", "ExportAnswer", "Message", "StandardResponse"} <= set(schemas)
    assert "allOf" not in json.dumps(DOCUMENT)  # generators cannot merge an allOf of envelope and items
    answer = answer_schema(DOCUMENT, "/chqapi/export/apidocument")
    assert answer is schemas["ApiDocumentExportAnswer"]
    envelope = answer["properties"]["ApiDocument"]
    # Every field of the shared envelope, with the typed items in its Response.
    assert set(envelope["properties"]) == set(schemas["ExportAnswer"]["properties"]["ApiDocument"]["properties"])
    items = envelope["properties"]["Response"]["properties"]["ApiDocuments"]["items"]
    assert items == openapi.ref("ApiDocument")
    # The request: the shared envelope's shape, with API Document Export's own fields as enums.
    body = DOCUMENT["paths"]["/chqapi/export/apidocument"]["post"]["requestBody"]["content"]["application/json"]
    request = resolved(DOCUMENT, body["schema"])
    filters = request["properties"]["Data"]["properties"]["Request"]["properties"]["Filters"]["items"]
    own_filter = resolved(DOCUMENT, filters)["properties"]
    assert own_filter["Field"]["enum"] == ["ApiType", "Source", "Status"]
    assert own_filter["Operator"]["enum"] == ["Equal", "Notequal", "Contains"]  # the ones it reads
    assert len(schemas["Filter"]["properties"]["Operator"]["enum"]) == 7
    shared = schemas["ExportRequest"]["properties"]["Data"]["properties"]["Request"]["properties"]
    assert shared["Filters"]["items"] == openapi.ref("Filter")
    assert shared["SortDescriptions"]["items"] == openapi.ref("SortDescription")
    for code in ("401", "403", "501"):
        error = DOCUMENT["paths"]["/chqapi/export/apidocument"]["post"]["responses"][code]
        assert error["content"]["application/json"]["schema"] == openapi.ref("Message")


def test_dates_are_date_times():
    schemas = DOCUMENT["components"]["schemas"]
    envelope = schemas["ApiDocumentExportAnswer"]["properties"]["ApiDocument"]["properties"]
    item = schemas["ApiDocument"]["properties"]
    line = schemas["ApiDocumentLine"]["properties"]
    for field in (envelope["StartDateTime"], envelope["EndDateTime"], item["RecCreated"], item["RecModified"]):
        assert field["format"] == "date-time"
    assert {line[name]["format"] for name in ("RecCreated", "RecModified", "StreamingDate")} == {"date-time"}
    # Time spans are not dates.
    assert "format" not in envelope["ElapsedTime"]


@pytest.mark.django_db
def test_a_served_answer_matches_its_registered_schema(make_key, settings):
    """API Document Export's answer has every field its schema requires, dates in date-time form."""
    settings.KEYS_THROTTLE_REFUSALS = 0
    key = make_key(allowed_for_all=True, logged_for_all=True, description="schema")
    client = Client()
    post("/chqapi/export/apidocument", key.value, client=client)
    answer = post("/chqapi/export/apidocument", key.value, client=client).json()
    schemas = DOCUMENT["components"]["schemas"]
    envelope = answer["ApiDocument"]
    assert set(schemas["ApiDocumentExportAnswer"]["properties"]["ApiDocument"]["required"]) <= set(envelope)
    [item] = envelope["Response"]["ApiDocuments"]
    assert set(schemas["ApiDocument"]["required"]) <= set(item) <= set(schemas["ApiDocument"]["properties"])
    for name, field in schemas["ApiDocument"]["properties"].items():
        if field.get("format") == "date-time" and name in item:
            assert dt.datetime.fromisoformat(item[name]).tzinfo is not None


def test_unserved_types_are_left_out_unless_listed(settings):
    settings.KEYS_OPENAPI_UNSERVED = "omit"  # the app's default (keys/conf.py), which the demo replaces
    left_out = openapi.build(catalog.read_file(catalog.CHQ))
    assert sorted(left_out["paths"]) == [
        "/chqapi/export/apidocument",
        "/chqapi/export/apidocument/async",
        "/chqapi/getdata",
        "/chqapi/status",
    ]
    assert [tag["name"] for tag in left_out["tags"]] == ["Common"]  # only the groups that have operations
    settings.KEYS_OPENAPI_UNSERVED = "list"
    assert openapi.build(catalog.read_file(catalog.CHQ))["paths"].keys() == DOCUMENT["paths"].keys()
    assert len(DOCUMENT["paths"]) > 190
    settings.KEYS_OPENAPI_UNSERVED = "all"
    with pytest.raises(ImproperlyConfigured, match="KEYS_OPENAPI_UNSERVED must be one of list, omit, not 'all'"):
        openapi.build(catalog.read_file(catalog.CHQ))


def test_the_security_scheme_is_the_apikey_header_for_every_operation():
    scheme = DOCUMENT["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "ApiKey")
    assert 'auth_header_name="ApiKey", prefix=""' in scheme["description"]
    assert DOCUMENT["security"] == [{"ApiKey": []}]
    assert not any("security" in op for item in DOCUMENT["paths"].values() for op in item.values())


@pytest.mark.urls("tests.openapi_urls")
@pytest.mark.django_db
def test_the_paths_are_where_the_host_mounts_the_api(make_key, settings):
    settings.KEYS_OPENAPI_UNSERVED = "omit"
    document = Client().get("/docs/openapi.json").json()
    api_paths = [p for p in document["paths"] if not p.startswith("/host/")]
    assert sorted(api_paths) == [
        "/api/v2/chq/export/apidocument",
        "/api/v2/chq/export/apidocument/async",
        "/api/v2/chq/getdata",
        "/api/v2/chq/status",
    ]
    assert "/chqapi/" not in json.dumps(document)
    assert "poll /api/v2/chq/status" in json.dumps(document["paths"]["/api/v2/chq/export/apidocument/async"])
    # The documented path is the one that answers.
    key = make_key(allowed_for_all=True, description="mounted")
    response = post("/api/v2/chq/export/apidocument", key.value)
    assert response.status_code == 200
    assert "ApiDocuments" in response.json()["ApiDocument"]["Response"]
    # Types with ids holding "/" reverse to their own paths too.
    listed = openapi.build(catalog.read_file(catalog.CHQ), unserved="list", urlconf="tests.openapi_urls")
    assert "/api/v2/chq/import/echo/EcommQty" in listed["paths"]


def test_a_host_without_the_api_gets_its_guarded_views_only():
    document = openapi.build(catalog.read_file(catalog.CHQ), unserved="list", urlconf="tests.host_urls")
    assert "/host/inventory" in document["paths"]
    document = openapi.build(catalog.read_file(catalog.CHQ), unserved="list", urlconf=HostOnly)
    assert document["paths"] == {}


class HostOnly:
    """A URLconf (any object with urlpatterns) without the API, and no guarded view."""

    urlpatterns = [route("open", lambda request: None)]


@pytest.mark.urls("tests.openapi_urls")
def test_the_hosts_own_guarded_views_are_in_the_document():
    entries = catalog.read_file(catalog.CHQ)
    document = openapi.build(entries, unserved="omit")
    host = {path: item for path, item in document["paths"].items() if path.startswith("/host/")}
    assert sorted(host) == ["/host/customers", "/host/inventory", "/host/items/{number}"]  # not /host/open
    inventory = host["/host/inventory"]["post"]
    group = next(e.get("swagger_group") for e in entries if (e["direction"], e["api_id"]) == ("export", "inventory"))
    assert inventory["tags"] == [group or "Common"]
    assert inventory["summary"] == "Inventory Export"  # the type's name in the catalog
    assert set(inventory["responses"]) >= {"200", "401", "403", "429"}
    # Described: its method, its path parameter, its answer's schema as a component, its own group.
    item = host["/host/items/{number}"]
    assert list(item) == ["get"]
    [parameter] = item["get"]["parameters"]
    assert parameter == {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
    assert answer_schema(document, "/host/items/{number}", "get")["properties"]["Changed"]["format"] == "date-time"
    assert item["get"]["tags"] == ["Host"]
    assert "Host" in [tag["name"] for tag in document["tags"]]
    # A class-based view: the methods it defines.
    assert list(host["/host/customers"]) == ["post"]
    operation_ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def pydantic_models():
    """A host's own models (pydantic is optional for the app; plain dicts work the same)."""
    pydantic = pytest.importorskip("pydantic")

    class Widget(pydantic.BaseModel):
        Code: str
        Changed: dt.datetime | None = None

    class WidgetsAnswer(pydantic.BaseModel):
        Accepted: int
        Widgets: list[Widget]

    return Widget, WidgetsAnswer


def test_registered_schemas_become_components(monkeypatch):
    Widget, WidgetsAnswer = pydantic_models()

    def widgets(call):
        return {"Accepted": 0, "Widgets": []}

    registration = guard.Registration(
        widgets,
        request_schema={"title": "WidgetsImportRequest", "type": "object", "properties": {"Widgets": {}}},
        response_schema=WidgetsAnswer,
        summary="Import widgets",
    )
    monkeypatch.setitem(guard._handlers, ("import", "widgets"), registration)
    export_answer = openapi.export_answer("Widgets", Widget, title="WidgetsExportAnswer")
    monkeypatch.setitem(
        guard._handlers, ("export", "widgets"), guard.Registration(widgets, response_schema=export_answer)
    )
    entries = [
        {"direction": "import", "api_id": "widgets", "name": "Widgets Import", "swagger_group": "Widgets"},
        {"direction": "export", "api_id": "widgets", "name": "Widgets Export"},
    ]
    document = openapi.build(entries, unserved="omit")
    schemas = document["components"]["schemas"]
    operation = document["paths"]["/chqapi/import/widgets"]["post"]
    assert operation["summary"] == "Import widgets"
    assert operation["tags"] == ["Widgets"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == openapi.ref("WidgetsImportRequest")
    assert answer_schema(document, "/chqapi/import/widgets") is schemas["WidgetsAnswer"]
    assert schemas["WidgetsAnswer"]["properties"]["Widgets"]["items"] == openapi.ref("Widget")
    # pydantic's Optional is OpenAPI 3.0's nullable.
    changed = schemas["Widget"]["properties"]["Changed"]
    assert (changed["type"], changed["format"], changed["nullable"]) == ("string", "date-time", True)
    export = answer_schema(document, "/chqapi/export/widgets")
    assert export["properties"]["ApiDocument"]["properties"]["Response"]["properties"]["Widgets"]["items"] == (
        openapi.ref("Widget")
    )
    # Without a request schema, an export takes the shared request.
    body = document["paths"]["/chqapi/export/widgets"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == openapi.ref("ExportRequest")
    # An untitled schema stays inline; two different schemas of one name are a mistake said by name.
    untitled = guard.Registration(widgets, response_schema={"type": "array"})
    monkeypatch.setitem(guard._handlers, ("import", "widgets"), untitled)
    assert answer_schema(openapi.build(entries, unserved="omit"), "/chqapi/import/widgets") == {"type": "array"}
    clash = guard.Registration(widgets, response_schema={"title": "Message", "type": "string"})
    monkeypatch.setitem(guard._handlers, ("import", "widgets"), clash)
    with pytest.raises(ImproperlyConfigured, match="Two different OpenAPI schemas are both named 'Message'"):
        openapi.build(entries, unserved="omit")


def test_register_takes_the_schemas(monkeypatch):
    _, WidgetsAnswer = pydantic_models()
    monkeypatch.setattr(guard, "_handlers", {})

    @guard.register("import", "gadgets", request_schema={"type": "object"}, response_schema=WidgetsAnswer, summary="S")
    def gadgets(call):
        return {}

    found = guard.registration_for("import", "gadgets")
    assert (found.handler, found.request_schema, found.response_schema, found.summary) == (
        gadgets,
        {"type": "object"},
        WidgetsAnswer,
        "S",
    )


def test_the_429_documents_the_limits_and_their_headers():
    """A key's rate and quota answer 429 with Retry-After and the RateLimit fields; the 403
    says a client address can be the reason."""
    for item in DOCUMENT["paths"].values():
        responses = item["post"]["responses"]
        too_many = responses["429"]
        assert "rate" in too_many["description"]
        assert "quota" in too_many["description"]
        assert set(too_many["headers"]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
        assert too_many["headers"]["Retry-After"]["schema"] == {"type": "integer"}
        if "403" in responses:
            assert "client's address" in responses["403"]["description"]
