"""The OpenAPI document and CHQ's Swagger page: the document is valid OpenAPI 3,
groups operations as CHQ's Swagger UI does, and schemathesis, with a valid key,
finds on every operation no 5xx (but the documented 501 of a type this
installation does not serve) and no answer that breaks the document."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from keys.chqapi import openapi
from keys.services import catalog_entries

# The document for the catalog file, as the installation's (its types are the catalog's) gives it.
DOCUMENT = openapi.build(catalog_entries())
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
        response = client.post(path, "{}", content_type="application/json", HTTP_APIKEY=str(key.value))
        assert response.status_code == 501, path
        assert "does not serve" in response.json()["Message"]
        assert client.post(path, "{}", content_type="application/json").status_code == 401


@pytest.mark.django_db
def test_the_installations_document_groups_types_as_chq_does():
    document = Client().get("/integration/api/openapi.json").json()
    assert document["openapi"] == "3.0.3"
    assert document["components"]["securitySchemes"]["ApiKey"] == {"type": "apiKey", "in": "header", "name": "ApiKey"}
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
