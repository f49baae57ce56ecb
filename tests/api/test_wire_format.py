"""CHQ's documented API, example by example (../shared/reference/chq-api/):
the export envelope and its counts, Filters, SortDescriptions, Top and Skip,
the ModelState 400, API documents and their ids, async documents, status and
getdata. The async life cycle with a real worker process is in
test_async_worker.py."""

import json
import re
import uuid

import pytest
from django.test import Client

from keys.chqapi import documents
from keys.chqapi.export_request import ExportRequest
from keys.chqapi.wire import chq_datetime, timespan
from keys.models import ApiDocument
from tests.api_calls import post
from tests.conftest import stored_documents

pytestmark = pytest.mark.django_db

EXPORT = "/chqapi/export/apidocument"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# "2021-02-12T14:04:40.730" with the UTC designator this project always sends.
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TIMESPAN = re.compile(r"^\d\d:\d\d:\d\d\.\d{7}$")


def export(key, request=None, **data):
    return post(EXPORT, key, {"Source": "Integrator", "Data": {**data, "Request": request or {}}})


@pytest.fixture
def reader(make_key):
    return make_key(allowed_for_all=True, logged_for_all=True, description="reader")


@pytest.fixture
def ten_documents(reader, make_key):
    """Ten documents of the reader's own (location exports and inventory imports) and one of another key."""
    for n in range(10):
        path = "/chqapi/export/location" if n % 2 else "/chqapi/import/inventory"
        post(path, reader.value, {"Source": f"s{n}"})
    post("/chqapi/export/location", make_key(allowed_for_all=True, logged_for_all=True).value)
    return reader


# --- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(0.03, "00:00:00.0300000"), (0.0033333, "00:00:00.0033333"), (3725.5, "01:02:05.5000000"), (None, None)],
)
def test_elapsed_time_is_a_timespan_as_in_the_examples(seconds, written):
    assert timespan(seconds) == written


def test_datetimes_are_utc_milliseconds_with_the_zone_designator():
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2021, 2, 12, 16, 4, 40, 730500, tzinfo=timezone(timedelta(hours=2)))
    assert chq_datetime(moment) == "2021-02-12T14:04:40.730Z"
    assert chq_datetime(datetime(2019, 4, 22, 13, 3, 10, 833000, tzinfo=UTC)) == "2019-04-22T13:03:10.833Z"


@pytest.mark.parametrize(
    ("skip", "top", "records"),
    # The reference's four counting examples, with 10 matching records.
    [(None, None, 10), (None, 5, 5), (3, None, 7), (8, 5, 2)],
)
def test_the_four_counting_examples(ten_documents, skip, top, records):
    request = {k: v for k, v in {"Skip": skip, "Top": top}.items() if v is not None}
    answer = export(ten_documents.value, request).json()["ApiDocument"]
    assert (answer["TotalRecords"], answer["RecordsCount"]) == (10, records)
    assert len(answer["Response"]["ApiDocuments"]) == records


def test_records_count_never_goes_below_zero():
    assert ExportRequest(skip=20, top=5).records_count(10) == 0


# --- the export envelope (Response Example 4 and API Document Export's examples) ---------------


def test_success_envelope_has_the_documented_fields(ten_documents):
    document_id = "B39E44EE-FFB2-45AF-87C1-5DC9CEE77FE0"
    response = export(ten_documents.value, {"Top": 3}, ApiDocumentId=document_id)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert list(answer) == ["ApiDocument"]
    envelope = answer["ApiDocument"]
    assert set(envelope) == {
        "ApiDocumentId",
        "Status",
        "ApiRequestType",
        "TotalRecords",
        "RecordsCount",
        "ElapsedTime",
        "StartDateTime",
        "EndDateTime",
        "Response",
    }
    assert envelope["ApiDocumentId"] == document_id  # upper case, as the reference's envelopes write it
    assert (envelope["Status"], envelope["ApiRequestType"]) == ("Successful", "apidocument-export")
    assert TIMESPAN.match(envelope["ElapsedTime"])
    assert DATETIME.match(envelope["StartDateTime"])
    assert DATETIME.match(envelope["EndDateTime"])
    assert envelope["StartDateTime"] <= envelope["EndDateTime"]
    assert response["ApiDocumentId"] == document_id.lower()


def test_api_document_items_have_the_pages_fields(ten_documents):
    item = export(ten_documents.value, {"Top": 1}).json()["ApiDocument"]["Response"]["ApiDocuments"][0]
    # The page's schema: the fields a synchronous, finished, logged document has (no Progress,
    # ParentAPIDocumentId or lines: left out when empty, as in the page's examples).
    assert set(item) == {
        "RecCreated",
        "RecModified",
        "StreamingDate",
        "APIDocumentId",
        "APIType",
        "Area",
        "Source",
        "Receiver",
        "ElapsedTime",
        "IsSynchronously",
        "Status",
        "UseApiVersion",
    }
    assert GUID.match(item["APIDocumentId"])
    assert item["APIDocumentId"] == item["APIDocumentId"].upper()
    assert (item["APIType"], item["Source"], item["Status"]) == ("inventory-import", "s0", 4)  # 501: Error
    assert (item["Area"], item["Receiver"], item["UseApiVersion"], item["IsSynchronously"]) == (
        0,
        "ChqApiController",
        1,
        True,
    )
    for field in ("RecCreated", "RecModified", "StreamingDate"):
        assert DATETIME.match(item[field])


def test_request_example_1_api_type_location_export(ten_documents):
    """API Document Export's Request Example #1, as written there."""
    body = {
        "Source": "Integrator",
        "Data": {
            "ApiDocumentId": "B39E44EE-FFB2-45AF-87C1-5DC9CEE77FE0",
            "Request": {
                "Filters": [{"Field": "ApiType", "Operator": "Equal", "Value": "location-export"}],
                "SortDescriptions": [{"Direction": "Ascending", "Name": "RecModified"}],
                "Top": 10,
                "Skip": 0,
            },
        },
    }
    answer = post(EXPORT, ten_documents.value, body).json()["ApiDocument"]
    items = answer["Response"]["ApiDocuments"]
    assert answer["TotalRecords"] == 5
    assert {i["APIType"] for i in items} == {"location-export"}
    assert [i["RecModified"] for i in items] == sorted(i["RecModified"] for i in items)


def test_status_filter_3_as_in_response_example_3(ten_documents):
    export(ten_documents.value)  # a successful document: Status 3
    answer = export(ten_documents.value, {"Filters": [{"Field": "Status", "Operator": "Equal", "Value": "3"}]})
    items = answer.json()["ApiDocument"]["Response"]["ApiDocuments"]
    assert [(i["APIType"], i["Status"]) for i in items] == [("apidocument-export", 3)]


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("ApiType", "Equal", "location-export", 5),
        ("ApiType", "equal", "LOCATION-EXPORT", 5),
        ("ApiType", "Equal", "Location Export", 5),  # the display name
        ("ApiType", "Contains", "location-export, inventory-import", 10),
        ("ApiType", "Notequal", "location-export", 5),
        ("ApiType", "Not equal", "location-export", 5),
        ("Status", "Contains", "3,4", 10),
        ("Status", "Equal", "Error", 10),  # no handler serves these types: 501, Error
        ("Status", "Equal", 4, 10),
        ("Status", "Equal", 3, 0),
        ("Source", "Equal", "s1", 1),
        ("Source", "Contains", "s1,s2,s3", 3),
        ("Source", "Contains", "s", 0),  # a list of values, not a substring
    ],
)
def test_documented_filters(ten_documents, field, operator, value, expected):
    answer = export(ten_documents.value, {"Filters": [{"Field": field, "Operator": operator, "Value": value}]})
    assert answer.status_code == 200, answer.content
    assert answer.json()["ApiDocument"]["TotalRecords"] == expected


def test_api_type_filter_by_its_numeric_id(ten_documents):
    from keys.models import ApiType

    location = ApiType.objects.get(direction="export", api_id="location")
    answer = export(ten_documents.value, {"Filters": [{"Field": "ApiType", "Value": str(location.pk)}]})
    assert answer.json()["ApiDocument"]["TotalRecords"] == 5


def test_sort_descending_and_skip_page_through(ten_documents):
    sort = [{"Name": "RecModified", "Direction": "Descending"}]
    whole = export(ten_documents.value, {"SortDescriptions": sort}).json()["ApiDocument"]["Response"]["ApiDocuments"]
    assert [i["Source"] for i in whole] == [f"s{n}" for n in reversed(range(10))]
    # The first export is a (logged) document too, now the newest: skipping two skips it and s9.
    page = export(ten_documents.value, {"SortDescriptions": sort, "Skip": 2, "Top": 3}).json()["ApiDocument"]
    assert [i["Source"] for i in page["Response"]["ApiDocuments"]] == ["s8", "s7", "s6"]


def test_another_keys_documents_are_never_listed(ten_documents):
    answer = export(ten_documents.value).json()["ApiDocument"]
    assert answer["TotalRecords"] == 10


def test_invalid_direction_is_response_example_2(reader):
    """API Document Export's Response Example #2: the ModelState names the bad path."""
    response = export(reader.value, {"SortDescriptions": [{"Direction": "dess", "Name": "RecModified"}]})
    assert response.status_code == 400
    answer = response.json()
    assert answer["Message"] == "The request is invalid."
    [(path, [message])] = answer["ModelState"].items()
    assert path == "apiRequest.Data.Request.SortDescriptions[0].Direction"
    assert "dess" in message


@pytest.mark.parametrize(
    ("request_part", "path"),
    [
        ({"Top": -1}, "apiRequest.Data.Request.Top"),
        ({"Skip": "a"}, "apiRequest.Data.Request.Skip"),
        ({"Filters": "x"}, "apiRequest.Data.Request.Filters"),
        ({"Filters": [{"Field": "Nope", "Value": 1}]}, "apiRequest.Data.Request.Filters[0].Field"),
        (
            {"Filters": [{"Field": "Status", "Operator": "Greaterthan", "Value": 1}]},
            "apiRequest.Data.Request.Filters[0].Operator",
        ),
        (
            {"Filters": [{"Field": "Status", "Operator": "Bigger", "Value": 1}]},
            "apiRequest.Data.Request.Filters[0].Operator",
        ),
        ({"Filters": [{"Field": "Status", "Value": "7"}]}, "apiRequest.Data.Request.Filters[0].Value"),
        (
            {"Filters": [{"Field": "Status", "Operator": "Contains", "Value": "3,,4"}]},
            "apiRequest.Data.Request.Filters[0].Value",
        ),
        ({"SortDescriptions": [{"Name": "Source"}]}, "apiRequest.Data.Request.SortDescriptions[0].Name"),
        ("nope", "apiRequest.Data.Request"),
    ],
)
def test_invalid_requests_name_their_path(reader, request_part, path):
    response = post(EXPORT, reader.value, {"Data": {"Request": request_part}})
    assert response.status_code == 400
    assert path in response.json()["ModelState"]


def test_top_omitted_streams_every_row_in_bounded_memory(reader, settings):
    from keys.chqapi import exports

    stored_documents(reader, exports.STREAM_ABOVE + 5)
    response = export(reader.value)
    assert response.streaming
    answer = json.loads(b"".join(response.streaming_content))["ApiDocument"]
    expected = exports.STREAM_ABOVE + 5
    assert answer["TotalRecords"] == answer["RecordsCount"] == len(answer["Response"]["ApiDocuments"]) == expected
    assert TIMESPAN.match(answer["ElapsedTime"])
    assert DATETIME.match(answer["EndDateTime"])


# --- API documents and their ids --------------------------------------------------------------


def test_an_unlogged_sync_call_writes_nothing_but_returns_its_id(make_key, django_assert_num_queries):
    key = make_key(allowed_for_all=True)
    post(EXPORT, key.value)  # warm the decision cache
    # Reads only: stale documents to mark (none) and the export's kept count, which says there is
    # no page to read; nothing written.
    with django_assert_num_queries(2):
        response = export(key.value, {"Top": 5})
    assert GUID.match(response.json()["ApiDocument"]["ApiDocumentId"])
    assert response["ApiDocumentId"].upper() == response.json()["ApiDocument"]["ApiDocumentId"]
    assert not ApiDocument.objects.exists()


def test_the_callers_document_id_is_used_and_a_duplicate_is_409(reader):
    document_id = str(uuid.uuid4())
    assert export(reader.value, ApiDocumentId=document_id).status_code == 200
    assert ApiDocument.objects.get().document_id == uuid.UUID(document_id)
    again = export(reader.value, ApiDocumentId=document_id)
    assert again.status_code == 409
    assert "ApiDocumentId" in again.json()["Message"]
    assert ApiDocument.objects.filter(document_id=document_id).count() == 1


def test_a_document_id_that_is_not_a_guid_is_400(reader):
    response = export(reader.value, ApiDocumentId="not-a-guid")
    assert response.status_code == 400
    assert "apiRequest.Data.ApiDocumentId" in response.json()["ModelState"]


# --- async documents, status and getdata -----------------------------------------------------


def test_async_answers_in_process_and_always_stores_a_document(make_key):
    key = make_key(allowed_for_all=True)  # logging off
    response = post(f"{EXPORT}/async", key.value, {"Source": "string"})
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {
        "Id", "Status", "Progress", "TotalRecords", "AcceptedRecords", "ErrorRecords", "ElapsedTime",
        "ErrorMessage", "Lines", "ApiType", "Source",
    }  # fmt: skip
    assert (answer["Status"], answer["ApiType"], answer["Source"]) == ("InProcess", "apidocument-export", "string")
    document = ApiDocument.objects.get()
    assert (str(document.document_id), document.status, document.is_async) == (answer["Id"], 0, True)
    assert document.keep_content is False
    from django_tasks_db.models import DBTaskResult

    task = DBTaskResult.objects.get()
    # Queued with it, in one transaction.
    assert (task.task_path, task.args_kwargs["args"]) == ("keys.chqapi.tasks.run_document", [answer["Id"]])


@pytest.mark.parametrize("form", ["ApiDocumentId", "documentId", "bare", "Data"])
def test_status_takes_every_documented_form(make_key, form):
    key = make_key(allowed_for_all=True)
    document_id = post(f"{EXPORT}/async", key.value).json()["Id"]
    body = {
        "ApiDocumentId": {"ApiDocumentId": document_id},
        "documentId": {"documentId": document_id},
        "bare": document_id,
        "Data": {"Data": {"ApiDocumentId": document_id}},
    }[form]
    answer = post("/chqapi/status", key.value, body).json()
    assert (answer["Id"], answer["Status"]) == (document_id, "InProcess")


def test_async_life_cycle_in_process_then_the_export_envelope_then_content_cleared(make_key):
    key = make_key(allowed_for_all=True)  # logging off: content goes once delivered
    post(EXPORT, key.value)
    document_id = post(f"{EXPORT}/async", key.value, {"Data": {"Request": {"Top": 5}}}).json()["Id"]
    documents.run(document_id)  # what the worker does (test_async_worker.py runs a real one)
    answer = post("/chqapi/status", key.value, {"ApiDocumentId": document_id}).json()["ApiDocument"]
    assert (answer["ApiDocumentId"], answer["Status"], answer["TotalRecords"]) == (document_id.upper(), "Successful", 1)
    assert answer["ApiRequestType"] == "apidocument-export"
    document = ApiDocument.objects.get(document_id=document_id)
    assert (document.request_body, document.response_body) == ("", "")
    # Delivered: later polls get the standard success response, and getdata says it is gone.
    again = post("/chqapi/status", key.value, {"ApiDocumentId": document_id}).json()
    assert (again["Id"], again["Status"], again["TotalRecords"]) == (document_id, "Successful", 1)
    assert TIMESPAN.match(again["ElapsedTime"])
    assert post("/chqapi/getdata", key.value, {"ApiDocumentId": document_id}).status_code == 410


def test_getdata_gives_a_logged_documents_request_and_answer(reader):
    document_id = post(f"{EXPORT}/async", reader.value, {"Data": {"Request": {"Top": 1}}}).json()["Id"]
    assert post("/chqapi/getdata", reader.value, document_id).json()["Status"] == "InProcess"
    documents.run(document_id)
    for _ in range(2):  # kept: logging was on
        data = post("/chqapi/getdata", reader.value, {"ApiDocumentId": document_id}).json()
        assert data["Request"] == {"Data": {"Request": {"Top": 1}}}
        assert data["Response"]["ApiDocument"]["RecordsCount"] == 1
        post("/chqapi/status", reader.value, document_id)


def test_an_async_failure_is_the_standard_error_response(make_key):
    key = make_key(allowed_for_all=True)
    body = {"Data": {"Request": {"SortDescriptions": [{"Name": "RecModified", "Direction": "dess"}]}}}
    document_id = post(f"{EXPORT}/async", key.value, body).json()["Id"]
    documents.run(document_id)
    answer = post("/chqapi/status", key.value, document_id).json()
    assert (answer["Id"], answer["Status"]) == (document_id, "Error")
    assert "SortDescriptions[0].Direction" in answer["ErrorMessage"]


def test_a_document_running_past_the_timeout_is_reported_as_error(make_key, settings):
    from datetime import timedelta

    from django.utils import timezone

    key = make_key(allowed_for_all=True)
    document_id = post(f"{EXPORT}/async", key.value).json()["Id"]
    started = timezone.now() - timedelta(seconds=settings.KEYS_ASYNC_TIMEOUT_SECONDS + 1)
    ApiDocument.objects.filter(document_id=document_id).update(status=2, started_at=started)  # its worker died
    answer = post("/chqapi/status", key.value, document_id).json()
    assert answer["Status"] == "Error"
    assert "did not finish within" in answer["ErrorMessage"]
    documents.run(document_id)  # a late worker does not run it after all
    assert ApiDocument.objects.get(document_id=document_id).status == 4


def test_status_of_a_logged_sync_call_and_only_for_its_key(reader, make_key):
    first = export(reader.value, {"Top": 2})
    document_id = first["ApiDocumentId"]
    answer = post("/chqapi/status", reader.value, {"ApiDocumentId": document_id}).json()
    assert answer == first.json()
    other = make_key(allowed_for_all=True)
    assert post("/chqapi/status", other.value, {"ApiDocumentId": document_id}).status_code == 404
    assert post("/chqapi/getdata", other.value, {"ApiDocumentId": document_id}).status_code == 404
    assert post("/chqapi/status", reader.value, {}).status_code == 400
    assert post("/chqapi/status", reader.value, {"ApiDocumentId": "nope"}).status_code == 400
    assert Client().post("/chqapi/status", document_id, content_type="application/json").status_code == 401


def test_an_unlogged_sync_documents_status_is_404_saying_why(make_key):
    key = make_key(allowed_for_all=True)
    document_id = export(key.value)["ApiDocumentId"]
    response = post("/chqapi/status", key.value, document_id)
    assert response.status_code == 404
    assert "only while logging is on" in response.json()["Message"]


@pytest.mark.parametrize(("method", "path", "status"), [("get", EXPORT, 405), ("post", "/chqapi/nothing", 404)])
def test_404_and_405_are_json(method, path, status):
    response = getattr(Client(), method)(path)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert "Message" in response.json()


# --- an asynchronous import with lines (API Document Export's Response Example #4) -------------


@pytest.fixture
def async_location_import(monkeypatch):
    from keys.guard import registry

    def location_import(call):
        return {
            "TotalRecords": 1,
            "AcceptedRecords": 1,
            "ErrorRecords": 0,
            "Lines": [{"EntityNo": "0", "EntityId": "C5F703C8-F663-4A67-BDA8-E527EC25B3BB", "Status": "Successful"}],
        }

    monkeypatch.setitem(registry._handlers, ("import", "location"), registry.Registration(location_import, True))


def test_an_asynchronous_import_as_in_response_example_4(reader, async_location_import):
    answer = post("/chqapi/import/location", reader.value, {"Source": "string", "Data": {"Locations": []}}).json()
    assert (answer["Status"], answer["ApiType"]) == ("InProcess", "location-import")
    filters = {"Filters": [{"Field": "ApiType", "Operator": "Equal", "Value": "location-import"}]}
    [queued] = export(reader.value, filters).json()["ApiDocument"]["Response"]["ApiDocuments"]
    assert (queued["IsSynchronously"], queued["Status"]) == (False, 0)

    documents.run(answer["Id"])
    [item] = export(reader.value, filters).json()["ApiDocument"]["Response"]["ApiDocuments"]
    assert (item["Status"], item["TotalRecords"], item["AcceptedRecords"]) == (3, 1, 1)
    [line] = item["ApiDocumentLines"]
    assert set(line) == {"RecCreated", "RecModified", "StreamingDate", "APIDocumentLineId", "EntityNo", "EntityId"}
    assert (line["EntityNo"], line["EntityId"]) == ("0", "C5F703C8-F663-4A67-BDA8-E527EC25B3BB")
    assert GUID.match(line["APIDocumentLineId"])

    done = post("/chqapi/status", reader.value, answer["Id"]).json()
    assert (done["Status"], done["TotalRecords"], done["AcceptedRecords"], done["ErrorRecords"]) == (
        "Successful",
        1,
        1,
        0,
    )
    assert done["Lines"] == [
        {"EntityNo": "0", "EntityId": "C5F703C8-F663-4A67-BDA8-E527EC25B3BB", "Status": "Successful"}
    ]


def test_streaming_memory_does_not_grow_with_the_row_count(reader):
    """Reading the streamed answer of 2,000 rows and of 8,000 rows peaks at about the same memory."""
    import tracemalloc

    def peak_reading(rows: int) -> int:
        ApiDocument.objects.all().delete()
        stored_documents(reader, rows, source="s" * 100)
        response = export(reader.value)
        assert response.streaming
        tracemalloc.start()
        sent = sum(len(chunk) for chunk in response.streaming_content)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sent > rows * 300  # every row went out
        return peak

    small, large = peak_reading(2000), peak_reading(8000)
    print(f"streamed read peak: {small} B for 2,000 rows, {large} B for 8,000 rows")
    assert large < small * 1.5, (small, large)


IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@pytest.mark.django_db(transaction=True)  # the document commits before a non-database queue gets its task
def test_another_task_backend_is_given_the_task_after_the_document_commits(migrated_data, make_key, settings):
    settings.TASKS = IMMEDIATE  # runs the task at once, when it is given it: the document must exist by then
    key = make_key(allowed_for_all=True)
    answer = post(f"{EXPORT}/async", key.value).json()
    assert answer["Status"] == "InProcess"
    assert post("/chqapi/status", key.value, answer["Id"]).json()["ApiDocument"]["Status"] == "Successful"


def test_a_task_queue_that_does_not_answer_is_503_and_the_document_says_error(make_key, settings, monkeypatch):
    from django_tasks.backends.immediate import ImmediateBackend

    settings.TASKS = IMMEDIATE

    def refused(*args, **kwargs):
        raise ConnectionError("queue down")

    monkeypatch.setattr(ImmediateBackend, "enqueue", refused)
    key = make_key(allowed_for_all=True)
    response = post(f"{EXPORT}/async", key.value)
    assert response.status_code == 503
    assert "could not be queued" in response.json()["Message"]
    document = ApiDocument.objects.get()
    assert (document.status, document.error_message) == (4, documents.QUEUE_DOWN)
