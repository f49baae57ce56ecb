"""What one export request may ask (keys/chqapi/export_request.py's MAX_FILTERS, MAX_VALUES,
MAX_DIGITS) and what an invalid one costs to answer (wire.MAX_PROBLEMS,
documents.MAX_ERROR_MESSAGE): past a limit the answer is a 400 with ModelState before the
database is asked, on SQLite as on PostgreSQL; up to it the work is linear, with one query
for every ApiType name."""

import json
import sqlite3

import pytest
from django.db import connection

from keys.chqapi import documents
from keys.chqapi.export_request import MAX_FILTERS, MAX_VALUES
from keys.chqapi.wire import MAX_PROBLEMS
from keys.guard import ApiError, registry
from keys.models import ApiDocument, ApiType
from tests.api.test_documents import EXPORT, queue
from tests.api_calls import post
from tests.conftest import stored_documents

pytestmark = pytest.mark.django_db

REQUEST = "apiRequest.Data.Request"


@pytest.fixture
def key(make_key):
    """An unlogged key whose decision is cached: a call's queries are the export's own."""
    key = make_key(allowed_for_all=True)
    post(EXPORT, key.value)
    return key


def export(key, **request):
    return post(EXPORT, key.value, {"Data": {"Request": request}})


def contains(field, values, operator="Contains"):
    return {"Field": field, "Operator": operator, "Value": ",".join(map(str, values))}


# --- items 4 and 5: bounded before the database, linear up to the bound ---------------------------


@pytest.mark.parametrize(
    ("request_part", "path", "says"),
    [
        (
            {"Filters": [{"Field": "Status", "Value": "3"}] * 1200},
            f"{REQUEST}.Filters",
            f"At most {MAX_FILTERS} items; 1200 were sent.",
        ),
        (
            {"Filters": [contains("ApiType", range(1, 1201))]},
            f"{REQUEST}.Filters[0].Value",
            f"At most {MAX_VALUES} values in a list; 1200 were sent.",
        ),
        (
            {"SortDescriptions": [{"Name": "RecModified"}] * 1200},
            f"{REQUEST}.SortDescriptions",
            f"At most {MAX_FILTERS} items; 1200 were sent.",
        ),
    ],
    ids=["1200-filters", "1200-api-type-ids", "1200-sorts"],
)
def test_past_a_limit_is_400_naming_it_before_the_database_is_asked(
    key, django_assert_num_queries, request_part, path, says
):
    # Before the limits these reached SQLite's expression depth limit (a 503 "cannot be reached").
    with django_assert_num_queries(0):
        response = export(key, **request_part)
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"Message": "The request is invalid.", "ModelState": {path: [says]}}


def test_the_largest_allowed_request_is_answered_with_one_query_for_its_names(key, django_assert_max_num_queries):
    stored_documents(key, 3, request_type="apidocument-export")
    own = ApiType.objects.get(direction="export", api_id="apidocument")
    names = [t.name.upper() for t in ApiType.objects.order_by("pk")[: MAX_VALUES // 2 - 1]]
    ids = list(range(10**6, 10**6 + MAX_VALUES // 2))
    every_value = [*names, *ids, "apidocument-export"]
    assert len(every_value) == MAX_VALUES
    filters = [contains("ApiType", every_value) for _ in range(MAX_FILTERS - 2)]
    filters += [contains("Status", [0, 1, 2, 3]), contains("Source", [f"s{n}" for n in range(MAX_VALUES)], "Notequal")]
    # The export's own four (stale documents, the ApiType filters resolved through the kept counts,
    # their sum for TotalRecords, the page) and one for all 2,400 names; the old code made one
    # query per name, and cloned the whole query per filter.
    with django_assert_max_num_queries(5):
        response = export(key, Filters=filters)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["ApiDocument"]["TotalRecords"] == 3
    with django_assert_max_num_queries(5):
        by_id = export(key, Filters=[contains("ApiType", [*ids[:-1], own.pk])] * MAX_FILTERS)
    assert by_id.json()["ApiDocument"]["TotalRecords"] == 0  # stored_documents have no api_type_id


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="checks SQLite's parameter and expression limits, which PostgreSQL does not have",
)
def test_the_largest_allowed_request_fits_sqlites_default_limits(key):
    # Every name in two case folds (non-ASCII capitals), in two columns: the most parameters a
    # request can make. Debian's SQLite allows 250,000; a default build 32,766.
    connection.ensure_connection()
    own_limit = connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    stored_documents(key, 2, request_type="apidocument-export")
    names = [[f"Ä{f}-{n}" for n in range(MAX_VALUES - 1)] for f in range(MAX_FILTERS)]
    try:
        response = export(key, Filters=[contains("ApiType", [*listed, "apidocument-export"]) for listed in names])
    finally:
        connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, own_limit)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["ApiDocument"]["TotalRecords"] == 2


def test_names_in_one_list_keep_their_case_insensitive_match(key):
    # One IN list of folded names instead of iexact per name: a capital SQLite does not fold
    # (it folds ASCII only) is still found as written, and ASCII in any case.
    stored_documents(key, 1, api_type_name="Über Export", request_type="uber-export")
    assert export(key, Filters=[contains("ApiType", ["Über Export"])]).json()["ApiDocument"]["TotalRecords"] == 1
    assert export(key, Filters=[contains("ApiType", ["ÜBER EXPORT"])]).json()["ApiDocument"]["TotalRecords"] == 1
    assert export(key, Filters=[contains("ApiType", ["Über export"])]).json()["ApiDocument"]["TotalRecords"] == 1
    assert export(key, Filters=[contains("ApiType", ["UBER-EXPORT"])]).json()["ApiDocument"]["TotalRecords"] == 1
    assert export(key, Filters=[contains("ApiType", ["Uber Export"])]).json()["ApiDocument"]["TotalRecords"] == 0


# --- item 6: numbers Python will not read ----------------------------------------------------------


@pytest.mark.parametrize(
    ("request_part", "path", "says"),
    [
        ({"Top": "1" * 5000}, f"{REQUEST}.Top", "is not a whole number from 0 to 2147483647."),
        ({"Skip": "9" * 5000}, f"{REQUEST}.Skip", "is not a whole number from 0 to 2147483647."),
        ({"Filters": [{"Field": "Status", "Value": "3" * 5000}]}, f"{REQUEST}.Filters[0].Value", "is not a status"),
        ({"Filters": [contains("Status", ["3", "4" * 5000])]}, f"{REQUEST}.Filters[0].Value", "is not a status"),
        (
            {"Filters": [{"Field": "ApiType", "Operator": "Equal", "Value": "99999999999999999999"}]},
            f"{REQUEST}.Filters[0].Value",
            "'99999999999999999999' is not an API type id (0 to 9223372036854775807).",
        ),
        (
            {"Filters": [contains("ApiType", ["location-export", "7" * 5000])]},
            f"{REQUEST}.Filters[0].Value",
            "is not an API type id",
        ),
    ],
    ids=["top", "skip", "status", "status-list", "api-type-past-64-bits", "api-type-5000-digits"],
)
def test_a_number_too_long_to_read_is_400_at_its_path(key, request_part, path, says):
    response = export(key, **request_part)
    assert response.status_code == 400, response.content[:300]
    [message] = response.json()["ModelState"][path]
    assert says in message
    assert len(message) < 200  # the value is quoted cut, not whole


def test_the_largest_api_type_id_is_read(key):
    assert (
        export(key, Filters=[{"Field": "ApiType", "Value": str(2**63 - 1)}]).json()["ApiDocument"]["TotalRecords"] == 0
    )


# --- item 7: an invalid request's answer is not amplified ------------------------------------------


def test_100000_bad_filters_are_one_problem_in_a_small_answer(key):
    sent = json.dumps({"Data": {"Request": {"Filters": [0] * 100_000}}})
    response = post(EXPORT, key.value, raw=sent)
    assert response.status_code == 400
    assert len(response.content) < 1024  # was 9.7 MB, 48 times the 200 KB sent
    assert response.json()["ModelState"] == {f"{REQUEST}.Filters": [f"At most {MAX_FILTERS} items; 100000 were sent."]}


def test_an_answer_lists_the_first_problems_and_counts_the_rest(key):
    response = export(key, Filters=[0] * MAX_FILTERS, Top=-1)
    model_state = response.json()["ModelState"]
    assert len(model_state) == MAX_PROBLEMS + 1
    assert list(model_state)[:MAX_PROBLEMS] == [f"{REQUEST}.Filters[{n}]" for n in range(MAX_PROBLEMS)]
    problems = MAX_FILTERS + 1
    assert model_state["apiRequest"] == [f"{problems - MAX_PROBLEMS} more problems are not listed ({problems} in all)."]
    assert len(response.content) < 4096


@pytest.mark.parametrize("sent", [MAX_FILTERS, 100_000])
def test_an_async_document_stores_the_listed_problems_only(key, sent):
    document_id = queue(key, {"Data": {"Request": {"Filters": [0] * sent}}})
    documents.run(document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    assert (document.status, document.status_code) == (ApiDocument.Status.ERROR, 400)
    assert len(document.error_message) < 2048  # was 9 MB for 100,000, sent again by every status call
    assert len(document.response_body) < 4096
    if sent == MAX_FILTERS:
        assert document.error_message.endswith(f"{sent - MAX_PROBLEMS} more problems are not listed ({sent} in all).")
    assert len(json.loads(document.response_body)["ModelState"]) <= MAX_PROBLEMS + 1
    answer = post("/chqapi/status", key.value, document_id)
    assert answer.json()["ErrorMessage"] == document.error_message


def test_a_long_error_message_is_cut_where_it_is_stored(key, monkeypatch):
    def failing(call):
        raise ApiError(422, "x" * 100_000)

    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(failing))
    document_id = queue(key)
    documents.run(document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    assert len(document.error_message) == documents.MAX_ERROR_MESSAGE
    assert document.error_message.endswith("x…")
    assert len(json.loads(document.response_body)["Message"]) == documents.MAX_ERROR_MESSAGE


def test_the_limits_are_in_the_openapi_document():
    from keys.chqapi import openapi

    operation = openapi.build([{"direction": "export", "api_id": "apidocument", "name": "API Document Export"}])
    schemas = operation["components"]["schemas"]
    schema = operation["paths"]["/chqapi/export/apidocument"]["post"]["requestBody"]["content"]["application/json"]
    assert schema["schema"] == openapi.ref("ApiDocumentExportRequest")
    request = schemas["ApiDocumentExportRequest"]["properties"]["Data"]["properties"]["Request"]["properties"]
    assert request["Filters"]["maxItems"] == request["SortDescriptions"]["maxItems"] == MAX_FILTERS
    assert request["Filters"]["items"] == openapi.ref("ApiDocumentExportRequestFilter")
    value = schemas["ApiDocumentExportRequestFilter"]["properties"]["Value"]
    assert f"at most {MAX_VALUES}" in value["description"]
    assert f"at most {MAX_VALUES}" in schemas["Filter"]["properties"]["Value"]["description"]
    model_state = schemas["InvalidRequest"]["properties"]["ModelState"]
    assert model_state["maxProperties"] == MAX_PROBLEMS + 1
