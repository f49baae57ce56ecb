"""API documents in detail (keys/chqapi/documents.py): what an async call stores,
how the worker's run records its outcome, the timeout, the forms of a status or
getdata request, and API Document Export's filter values. The reference's
examples are in test_wire_format.py; real worker processes in test_async_worker.py."""

import gc
import json
import logging
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from keys.access import MESSAGES, Reason
from keys.chqapi import documents
from keys.guard import ApiError, registry
from keys.models import ApiDocument, ApiDocumentChunk, ApiType
from keys.services import GrantSpec, api_key_change, api_key_remove
from tests.api_calls import post
from tests.conftest import stored_documents

pytestmark = pytest.mark.django_db

EXPORT = "/chqapi/export/apidocument"
Status = ApiDocument.Status


def queue(key, body=None) -> str:
    return post(f"{EXPORT}/async", key.value, body).json()["Id"]


@pytest.fixture
def key(make_key):
    return make_key(allowed_for_all=True, description="integrator")


def test_an_async_document_records_who_called_what_and_how(key):
    body = json.dumps({"Source": "ERP", "Data": {"Request": {"Top": 1}}})
    document_id = post(f"{EXPORT}/async", key.value, raw=body, REMOTE_ADDR="10.1.2.3").json()["Id"]
    document = ApiDocument.objects.get()
    own = ApiType.objects.get(direction="export", api_id="apidocument")
    assert str(document.document_id) == document_id
    assert (document.key_id, document.key_last4, document.key_description) == (
        key.pk,
        key.value.hex[-4:],
        "integrator",
    )
    assert (document.api_type_id, document.api_type_name, document.request_type) == (
        own.pk,
        "API Document Export",
        "apidocument-export",
    )
    assert (document.method, document.path, document.source) == ("POST", f"{EXPORT}/async", "ERP")
    assert (document.is_async, document.status, document.status_code) == (True, Status.IN_QUEUE, 200)
    assert (document.duration_ms, document.started_at, document.ended_at) == (0.0, None, None)
    assert document.client_address == "10.1.2.3"
    assert document.keep_content is False
    assert document.request_body == body  # whole, for the worker
    assert document.modified_at == document.created_at


def test_an_async_source_that_is_not_text_is_stored_as_json(key):
    queue(key, {"Source": {"system": "ERP"}})
    assert ApiDocument.objects.get().source == '{"system": "ERP"}'


def test_running_one_document_claims_only_that_one(key):
    first, second = queue(key), queue(key)
    documents.run(first)
    assert ApiDocument.objects.get(document_id=second).status == Status.IN_QUEUE
    done = ApiDocument.objects.get(document_id=first)
    assert done.status == Status.SUCCESSFUL
    assert done.created_at < done.started_at <= done.ended_at
    assert done.modified_at == done.ended_at


def test_a_successful_run_stores_its_counts_and_answer(key):
    queue(key)
    document_id = queue(key, {"Data": {"Request": {"Top": 1}}})
    documents.run(document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    # The key's two documents match; Top 1 sends one.
    assert (document.status_code, document.total_records, document.records_count) == (200, 2, 1)
    answer = json.loads(document.response_text())["ApiDocument"]
    assert (answer["ApiDocumentId"], answer["RecordsCount"]) == (document_id.upper(), 1)
    assert document.error_message == ""
    assert document.duration_ms > 0


def test_a_run_is_never_repeated(key, django_assert_num_queries):
    document_id = queue(key)
    documents.run(document_id)
    with django_assert_num_queries(1):  # the claim finds nothing to claim, and stops
        documents.run(document_id)


@pytest.mark.parametrize(
    ("failure", "status_code", "message"),
    [
        (ApiError(418, "short and stout"), 418, "short and stout"),
        (RuntimeError("boom"), 500, "The server failed while carrying out the call."),
    ],
)
def test_a_failing_handler_leaves_an_error_document(key, monkeypatch, caplog, failure, status_code, message):
    def failing(call):
        raise failure

    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(failing))
    document_id = queue(key)
    with caplog.at_level(logging.ERROR, logger="keys.api"):
        documents.run(document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    assert (document.status, document.status_code, document.error_message) == (Status.ERROR, status_code, message)
    assert json.loads(document.response_body) == {"Message": message}
    logged = [r for r in caplog.records if r.name == "keys.api"]
    assert bool(logged) is (status_code == 500)
    answer = post("/chqapi/status", key.value, document_id).json()
    assert (answer["Status"], answer["ErrorMessage"]) == ("Error", message)


def test_a_document_whose_type_is_no_longer_served_is_an_error(key, monkeypatch):
    document_id = queue(key)
    monkeypatch.delitem(registry._handlers, ("export", "apidocument"))
    documents.run(document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    assert (document.status, document.status_code) == (Status.ERROR, 501)
    assert document.error_message == "This installation no longer serves apidocument-export."


def test_an_invalid_async_request_stores_the_model_state(key):
    document_id = queue(key, {"Data": {"Request": {"Top": -1}}})
    documents.run(document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    assert (document.status, document.status_code) == (Status.ERROR, 400)
    assert document.error_message.startswith("The request is invalid. apiRequest.Data.Request.Top: ")
    answer = json.loads(document.response_body)
    assert answer["Message"] == "The request is invalid."
    assert list(answer["ModelState"]) == ["apiRequest.Data.Request.Top"]


# --- the timeout -------------------------------------------------------------------------------


def _started(document_id, seconds_ago):
    started = timezone.now() - timedelta(seconds=seconds_ago)
    ApiDocument.objects.filter(document_id=document_id).update(status=Status.IN_PROCESS, started_at=started)


def test_expiring_marks_only_documents_running_past_the_timeout(key, settings):
    settings.KEYS_ASYNC_TIMEOUT_SECONDS = 60
    stale, fresh, waiting = queue(key), queue(key), queue(key)
    _started(stale, 61)
    _started(fresh, 59)
    assert documents.expire() == 1
    statuses = dict(ApiDocument.objects.values_list("document_id", "status"))
    assert statuses == {
        uuid.UUID(stale): Status.ERROR,
        uuid.UUID(fresh): Status.IN_PROCESS,
        uuid.UUID(waiting): Status.IN_QUEUE,  # waiting for a worker is not running too long
    }
    expired = ApiDocument.objects.get(document_id=stale)
    assert expired.status_code == 504
    assert expired.error_message == documents.TIMED_OUT.format(seconds=60)
    assert expired.ended_at == expired.modified_at
    assert documents.expire() == 0


def test_a_status_call_expires_only_the_document_it_asks_about(key, settings):
    settings.KEYS_ASYNC_TIMEOUT_SECONDS = 60
    asked, other = queue(key), queue(key)
    _started(asked, 61)
    _started(other, 61)
    assert post("/chqapi/status", key.value, asked).json()["Status"] == "Error"
    assert ApiDocument.objects.get(document_id=other).status == Status.IN_PROCESS


def test_api_document_export_lists_a_timed_out_document_as_error(key, settings):
    settings.KEYS_ASYNC_TIMEOUT_SECONDS = 60
    document_id = queue(key)
    _started(document_id, 61)
    items = post(EXPORT, key.value).json()["ApiDocument"]["Response"]["ApiDocuments"]
    assert [(i["APIDocumentId"], i["Status"]) for i in items] == [(document_id.upper(), 4)]


# --- what status and getdata accept and answer -----------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        lambda i: {"apidocumentid": i},
        lambda i: {"DOCUMENTID": i},
        lambda i: {"Id": i},  # the In Process answer sent back as it came
        lambda i: {"Data": {"documentId": i}},
        lambda i: f"  {i.upper()}  ",
    ],
)
def test_more_forms_of_the_document_asked_about(key, body):
    document_id = queue(key)
    assert post("/chqapi/status", key.value, body(document_id)).json()["Id"] == document_id


@pytest.mark.parametrize(
    "body",
    [{"ApiDocumentId": 5}, {"ApiDocumentId": "nope"}, {"Data": "x"}, {"Other": "x"}, [1], 5, "nope"],
)
def test_a_request_naming_no_document_is_400(key, body):
    response = post("/chqapi/status", key.value, body)
    assert response.status_code == 400
    assert response.json()["Message"] == "The request is invalid."
    assert list(response.json()["ModelState"]) == ["apiRequest.ApiDocumentId"]


def test_getdata_answers_every_field_and_a_logged_document_keeps_its_content(make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    document_id = queue(key, {"Source": "ERP", "Data": {"Request": {"Top": 1}}})
    documents.run(document_id)
    for _ in range(2):
        data = post("/chqapi/getdata", key.value, document_id).json()
        assert set(data) == {"ApiDocumentId", "Status", "ApiType", "Source", "Request", "Response", "Truncated"}
        assert (data["ApiDocumentId"], data["Status"], data["ApiType"], data["Source"]) == (
            document_id,
            "Successful",
            "apidocument-export",
            "ERP",
        )
        assert data["Truncated"] is False
        assert data["Request"] == {"Source": "ERP", "Data": {"Request": {"Top": 1}}}
        assert data["Response"]["ApiDocument"]["Status"] == "Successful"
    document = ApiDocument.objects.get(document_id=document_id)
    assert document.request_body
    assert json.loads(document.response_text())["ApiDocument"]["ApiDocumentId"] == document_id.upper()


def test_getdata_delivers_an_unlogged_documents_content_once(key):
    document_id = queue(key)
    documents.run(document_id)
    first = post("/chqapi/getdata", key.value, document_id)
    assert first.status_code == 200
    assert first.json()["Response"]["ApiDocument"]["ApiDocumentId"] == document_id.upper()
    document = ApiDocument.objects.get(document_id=document_id)
    assert (document.request_body, document.response_body) == ("", "")
    gone = post("/chqapi/getdata", key.value, document_id)
    assert gone.status_code == 410
    assert gone.json()["Message"] == documents.GONE
    # The document itself stays, without its content.
    assert post("/chqapi/status", key.value, document_id).json()["Status"] == "Successful"


def test_getdata_of_a_stored_body_cut_at_the_limit_gives_the_text(make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    document_id = post(EXPORT, key.value)["ApiDocumentId"]
    ApiDocument.objects.filter(document_id=document_id).update(response_body='{"cut', truncated=True)
    data = post("/chqapi/getdata", key.value, document_id).json()
    assert (data["Response"], data["Truncated"]) == ('{"cut', True)


def test_status_of_an_error_document_keeps_no_content_it_was_not_asked_to(key):
    document_id = queue(key, {"Data": {"Request": {"Top": -1}}})
    documents.run(document_id)
    post("/chqapi/status", key.value, document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    assert (document.request_body, document.response_body) == ("", "")


# --- API Document Export's filter values -----------------------------------------------------


@pytest.fixture
def mixed(key):
    """Two successful, one failed, one queued document, with different sources."""
    for source in ("alpha", "beta"):
        documents.run(queue(key, {"Source": source}))
    documents.run(queue(key, {"Source": "gamma", "Data": {"Request": {"Top": -1}}}))
    queue(key, {"Source": "delta"})
    return key


def _count(key, field, operator, value):
    request = {"Filters": [{"Field": field, "Operator": operator, "Value": value}]}
    response = post(EXPORT, key.value, {"Data": {"Request": request}})
    assert response.status_code == 200, response.content
    return response.json()["ApiDocument"]["TotalRecords"]


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("Status", "Equal", 3, 2),
        ("Status", "Equal", "successful", 2),
        ("Status", "Contains", " 0 , 4 ", 2),
        ("Status", "Contains", "InQueue,Error", 2),
        ("Status", "Notequal", "3", 2),
        ("Source", "Equal", " alpha ", 1),
        ("Source", "Equal", "alpha,beta", 0),  # Equal takes one value: the comma is part of it
        ("Source", "Contains", "alpha,beta", 2),
        ("Source", "Notequal", "alpha", 3),
        ("ApiType", "Contains", "apidocument-export,location-export", 4),
        ("ApiType", "Equal", "API Document Export", 4),
    ],
)
def test_filter_values(mixed, field, operator, value, expected):
    assert _count(mixed, field, operator, value) == expected


def test_api_type_filter_by_numeric_ids_in_a_list(mixed):
    own = ApiType.objects.get(direction="export", api_id="apidocument")
    other = ApiType.objects.get(direction="export", api_id="location")
    assert _count(mixed, "ApiType", "Contains", f"{other.pk},{own.pk}") == 4
    assert _count(mixed, "ApiType", "Equal", str(other.pk)) == 0


def test_api_type_filter_by_a_types_new_name_finds_documents_made_before_the_rename(mixed):
    ApiType.objects.filter(direction="export", api_id="apidocument").update(name="Documents Export")
    assert _count(mixed, "ApiType", "Equal", "documents export") == 4
    assert _count(mixed, "ApiType", "Equal", "API Document Export") == 4  # the name they were made under


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("Status", "7", "'7' is not a status"),
        ("Status", "Done", "'Done' is not a status"),
        ("Status", True, "is not a value for Status"),
        ("Source", ["a"], "is not a value for Source"),
        ("Source", None, "is not a value for Source"),
        ("ApiType", "a,,b", "ApiType: an empty value"),
    ],
)
def test_bad_filter_values_are_400_at_their_path(key, field, value, says):
    request = {"Filters": [{"Field": field, "Operator": "Contains", "Value": value}]}
    response = post(EXPORT, key.value, {"Data": {"Request": request}})
    assert response.status_code == 400
    [message] = response.json()["ModelState"]["apiRequest.Data.Request.Filters[0].Value"]
    assert says in message


# --- the answer's edges ----------------------------------------------------------------------


def test_up_to_the_limit_an_answer_is_whole_and_beyond_it_streamed(key):
    from keys.chqapi.exports import STREAM_ABOVE

    stored_documents(key, STREAM_ABOVE)
    whole = post(EXPORT, key.value)
    assert not whole.streaming
    assert whole.json()["ApiDocument"]["RecordsCount"] == STREAM_ABOVE
    stored_documents(key, 1)
    streamed = post(EXPORT, key.value)
    assert streamed.streaming
    assert streamed["Content-Type"] == "application/json"
    assert streamed["X-Records-Count"] == str(STREAM_ABOVE + 1)
    answer = json.loads(b"".join(streamed.streaming_content))["ApiDocument"]
    assert answer["ApiDocumentId"] == streamed["ApiDocumentId"].upper()
    assert (answer["Status"], answer["ApiRequestType"]) == ("Successful", "apidocument-export")
    assert answer["StartDateTime"] <= answer["EndDateTime"]
    assert answer["ElapsedTime"].startswith("00:00:")  # seconds, not the clock's whole reading


def test_an_items_progress_and_the_elapsed_time_of_only_a_finished_document(key):
    stored_documents(key, 1, progress=0.5, status=Status.IN_PROCESS, started_at=timezone.now())
    [item] = post(EXPORT, key.value, {"Data": {"Request": {"Top": 1}}}).json()["ApiDocument"]["Response"][
        "ApiDocuments"
    ]
    assert (item["Progress"], item["Status"]) == (0.5, 2)
    assert "ElapsedTime" not in item  # still running: no elapsed time yet
    assert "ParentAPIDocumentId" not in item


def test_document_lines_carry_their_documents_dates(key):
    line = {"APIDocumentLineId": str(uuid.uuid4()), "EntityNo": "7", "EntityId": str(uuid.uuid4())}
    stored_documents(key, 1, lines=[line])
    [item] = post(EXPORT, key.value).json()["ApiDocument"]["Response"]["ApiDocuments"]
    [shown] = item["ApiDocumentLines"]
    assert shown == {
        "RecCreated": item["RecCreated"],
        "RecModified": item["RecModified"],
        "StreamingDate": item["RecModified"],
        **line,
    }


@pytest.mark.parametrize(("top", "sent"), [("1", 1), (" 2 ", 2), (2**31 - 1, 3)])
def test_top_as_digits_and_up_to_the_largest(key, top, sent):
    stored_documents(key, 3)
    answer = post(EXPORT, key.value, {"Data": {"Request": {"Top": top}}}).json()["ApiDocument"]
    assert answer["RecordsCount"] == sent


@pytest.mark.parametrize("top", [2**31, -1, 1.5, "x1", True, "²"])
def test_top_out_of_range_says_what_it_got(key, top):
    response = post(EXPORT, key.value, {"Data": {"Request": {"Top": top}}})
    [message] = response.json()["ModelState"]["apiRequest.Data.Request.Top"]
    assert message == f"{str(top)!r} is not a whole number from 0 to {2**31 - 1}."


# --- an async export's answer, stored in chunks and read back in them ------------------------


def _chunks(document_id):
    return ApiDocumentChunk.objects.filter(document__document_id=document_id).count()


def test_the_stored_envelope_is_the_text_of_the_whole_one(monkeypatch):
    """Head and rows, in pieces of any size, make exactly the JSON of envelope()."""
    from keys.chqapi import exports
    from keys.chqapi.export_request import parse

    monkeypatch.setattr(exports.time, "perf_counter", lambda: 7.25)
    monkeypatch.setattr(exports.timezone, "now", lambda: datetime(2026, 12, 1, 8, tzinfo=UTC))
    document_id, started = uuid.uuid4(), datetime(2026, 12, 1, 7, tzinfo=UTC)
    for rows in ([], [{"A": 1}], [{"A": i, "B": 'é"x', "C": [None, 0.5]} for i in range(40)]):

        def result(rows=rows):
            return exports.ExportResult("Things", parse({}, filters={}, sorts=set()), len(rows), iter(rows))

        whole = json.dumps(exports.envelope(document_id, "thing-export", result(), started, 5.0))
        head = exports.envelope_head(document_id, "thing-export", result(), started, 5.0)
        for size, count in ((1, len(rows) + 1), (300, None), (exports.PIECE_CHARS, 1)):
            pieces = list(exports.envelope_rows(result(), size))
            assert head + "".join(pieces) == whole
            assert count is None or len(pieces) == count
            assert all(len(piece) < size + 100 for piece in pieces)  # cut near the size, at a row's end


ENVELOPE_FIELDS = [
    "ApiDocumentId", "Status", "ApiRequestType", "TotalRecords", "RecordsCount", "StartDateTime", "ElapsedTime",
    "EndDateTime", "Response",
]  # fmt: skip


@pytest.fixture
def large_export(key):
    """A finished async export of more rows than an answer is sent whole with."""
    from keys.chqapi.exports import STREAM_ABOVE

    stored_documents(key, STREAM_ABOVE + 1)
    document_id = queue(key)
    documents.run(document_id)
    return document_id


def test_a_large_async_export_is_stored_in_chunks_and_streamed_back_once(key, large_export):
    document = ApiDocument.objects.get(document_id=large_export)
    assert (document.status, document.response_body) == (Status.SUCCESSFUL, "")
    assert _chunks(large_export) > 2
    response = post("/chqapi/status", key.value, large_export)
    assert response.streaming
    assert (response["Content-Type"], response["X-Records-Count"]) == ("application/json", str(document.records_count))
    assert _chunks(large_export) > 2  # cleared once the last piece is out, not before
    answer = json.loads(b"".join(response.streaming_content))["ApiDocument"]
    assert list(answer) == ENVELOPE_FIELDS  # the order the whole answer had
    items = answer["Response"]["ApiDocuments"]
    assert (answer["ApiDocumentId"], answer["RecordsCount"], len(items)) == (
        large_export.upper(),
        ApiDocument.objects.filter(key=key).count(),
        document.records_count,
    )
    assert len({item["APIDocumentId"] for item in items}) == len(items)
    assert _chunks(large_export) == 0  # logging was off: delivered once
    again = post("/chqapi/status", key.value, large_export)
    assert not again.streaming
    assert (again.json()["Status"], again.json()["TotalRecords"]) == ("Successful", document.total_records)


def test_a_status_stream_cut_off_midway_delivers_nothing(key, large_export):
    response = post("/chqapi/status", key.value, large_export)
    next(iter(response.streaming_content))
    del response  # the caller went away: its answer's generator is closed (here by the collector)
    gc.collect()
    assert _chunks(large_export) > 2
    answer = post("/chqapi/status", key.value, large_export)
    assert json.loads(b"".join(answer.streaming_content))["ApiDocument"]["ApiDocumentId"] == large_export.upper()


def test_a_small_async_export_is_answered_whole_as_before(key):
    document_id = queue(key)
    documents.run(document_id)
    response = post("/chqapi/status", key.value, document_id)
    assert not response.streaming
    assert list(response.json()["ApiDocument"]) == ENVELOPE_FIELDS
    assert response["Content-Length"] == str(len(response.content))
    assert _chunks(document_id) == 0


@pytest.mark.parametrize("logged", [True, False])
def test_getdata_of_a_large_export_streams_it_and_keeps_it_only_when_logged(make_key, logged):
    from keys.chqapi.exports import STREAM_ABOVE

    key = make_key(allowed_for_all=True, logged_for_all=logged)
    stored_documents(key, STREAM_ABOVE + 1)
    document_id = queue(key, {"Source": "ERP"})
    documents.run(document_id)
    for _ in range(2 if logged else 1):
        response = post("/chqapi/getdata", key.value, document_id)
        assert response.streaming
        data = json.loads(b"".join(response.streaming_content))
        assert list(data) == ["ApiDocumentId", "Status", "ApiType", "Source", "Request", "Response", "Truncated"]
        assert (data["ApiDocumentId"], data["Status"], data["Source"], data["Truncated"]) == (
            document_id,
            "Successful",
            "ERP",
            False,
        )
        assert data["Request"] == {"Source": "ERP"}
        assert data["Response"]["ApiDocument"]["RecordsCount"] == STREAM_ABOVE + 2
    assert bool(_chunks(document_id)) is logged
    if not logged:
        assert post("/chqapi/getdata", key.value, document_id).status_code == 410


def test_an_export_given_up_on_while_it_ran_keeps_no_answer(key, monkeypatch):
    """A document the timeout marked Error while its rows were read stays Error, without chunks."""
    from keys.chqapi import handlers

    real = handlers.api_document_export

    def slow(call):
        result = real(call)
        rows = result.rows

        def timed_out_midway():
            yield next(rows)
            ApiDocument.objects.filter(document_id=call.document_id).update(status=Status.ERROR, status_code=504)
            yield from rows

        result.rows = timed_out_midway()
        return result

    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(slow))
    stored_documents(key, 5)
    document_id = queue(key)
    documents.run(document_id)
    assert ApiDocument.objects.get(document_id=document_id).status_code == 504
    assert _chunks(document_id) == 0


def _peak(step) -> int:
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_async_exports_memory_does_not_grow_with_its_rows(make_key, monkeypatch):
    """The worker storing the answer and the web worker sending it back: tracemalloc's peak
    for ten times the rows stays under 1.5 times the peak (it was 5 to 6 times: linear)."""
    from keys.chqapi.exports import PIECE_CHARS

    monkeypatch.setattr(documents, "SPOOL_IN_MEMORY", PIECE_CHARS)  # both sizes spool to disk, as large ones do
    peaks = {}
    for rows in (1_500, 15_000):
        key = make_key(allowed_for_all=True)
        stored_documents(key, rows)
        document_id = queue(key)
        worker = _peak(lambda document_id=document_id: documents.run(document_id))

        def answer(key=key, document_id=document_id, rows=rows):
            response = post("/chqapi/status", key.value, document_id)
            parts = response.streaming_content if response.streaming else [response.content]
            assert sum(len(part) for part in parts) > rows * 300

        peaks[rows] = (worker, _peak(answer))
    (small_worker, small_status), (large_worker, large_status) = peaks[1_500], peaks[15_000]
    assert large_worker < 1.5 * small_worker, peaks
    assert large_status < 1.5 * small_status, peaks


# --- what the worker gives a handler -----------------------------------------------------------


def test_the_worker_gives_the_handler_the_call_as_it_came(make_key, monkeypatch):
    key = make_key(allowed_for_all=True, logged_for_all=True, description="integrator")
    seen = {}

    def recording(call):
        document = ApiDocument.objects.get(document_id=call.document_id)
        seen.update(call=call, status=document.status, started=document.started_at, modified=document.modified_at)
        return {"ok": True}

    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(recording))
    document_id = queue(key, {"Source": "ERP", "Data": {"Request": {}}})
    documents.run(document_id)
    call = seen["call"]
    own = ApiType.objects.get(direction="export", api_id="apidocument")
    assert (call.request, call.direction, call.api_id, call.is_async) == (None, "export", "apidocument", True)
    assert (str(call.document_id), call.body) == (document_id, {"Source": "ERP", "Data": {"Request": {}}})
    decision = call.decision
    assert (decision.allowed, decision.reason, decision.logged) == (True, "allowed", True)
    assert (decision.key_id, decision.api_type_id) == (key.pk, own.pk)
    assert (decision.key_description, decision.api_type_name) == ("integrator", "API Document Export")
    # While it runs, the document says so, since when.
    assert seen["status"] == Status.IN_PROCESS
    assert seen["started"] == seen["modified"]
    assert seen["started"] is not None


# --- the worker asks the access decision again -------------------------------------------------


def _refused_run(document_id, status_code, reason):
    documents.run(document_id)
    document = ApiDocument.objects.get(document_id=document_id)
    message = documents.NOT_RUN.format(message=MESSAGES[reason])
    assert (document.status, document.status_code, document.error_message) == (Status.ERROR, status_code, message)
    assert json.loads(document.response_body) == {"Message": message}
    return document


def test_a_key_deactivated_while_its_work_waits_is_refused_when_the_worker_comes(key, monkeypatch):
    ran = []
    monkeypatch.setitem(
        registry._handlers, ("export", "apidocument"), registry.Registration(lambda call: ran.append(call))
    )
    first, second = queue(key), queue(key)
    documents.run(first)  # the worker's decision cache now holds the key, active
    api_key_change(key=key, is_active=False)
    _refused_run(second, 401, Reason.INACTIVE_KEY)
    assert len(ran) == 1  # the handler never saw the refused one
    api_key_change(key=key, is_active=True)  # so that its status call is answered
    answer = post("/chqapi/status", key.value, second).json()
    assert (answer["Status"], answer["ErrorMessage"]) == (
        "Error",
        documents.NOT_RUN.format(message=MESSAGES[Reason.INACTIVE_KEY]),
    )


def test_a_key_expired_while_its_work_waits_is_refused(key):
    document_id = queue(key)
    api_key_change(key=key, expires_at=timezone.now() - timedelta(seconds=1))
    _refused_run(document_id, 401, Reason.EXPIRED_KEY)


def test_a_type_withdrawn_while_its_work_waits_is_refused(make_key):
    own = ApiType.objects.get(direction="export", api_id="apidocument")
    key = make_key(grants=[GrantSpec(own.pk)])
    document_id = queue(key)
    api_key_change(key=key, remove_type_ids=[own.pk])
    _refused_run(document_id, 403, Reason.API_TYPE_NOT_ALLOWED)


def test_a_removed_keys_work_is_refused_and_lists_no_removed_keys_documents(make_key):
    mine, other = make_key(allowed_for_all=True), make_key(allowed_for_all=True)
    stored_documents(other, 3)
    document_id = queue(mine)
    api_key_remove(key=other)
    api_key_remove(key=mine)
    document = _refused_run(document_id, 401, Reason.UNKNOWN_KEY)
    assert document.key_id is None
    assert (document.total_records, document.records_count) == (None, None)


def test_a_document_without_a_source_stores_an_empty_source(key):
    queue(key, {"Data": {}})
    assert ApiDocument.objects.get().source == ""


def test_an_async_id_taken_is_409_by_the_unique_index_alone(key, django_assert_num_queries):
    document_id = str(uuid.uuid4())
    queue(key, {"Data": {"ApiDocumentId": document_id}})
    response = post(f"{EXPORT}/async", key.value, {"Data": {"ApiDocumentId": document_id}})
    assert response.status_code == 409
    assert response.json()["Message"] == documents.DUPLICATE
    assert ApiDocument.objects.count() == 1


def test_a_logged_async_call_is_written_once_by_its_start(make_key, monkeypatch):
    from keys import services

    def not_again(**fields):
        raise AssertionError("the guard's bookkeeping stored the async document again")

    monkeypatch.setattr(services, "api_call_record", not_again)
    key = make_key(allowed_for_all=True, logged_for_all=True)
    queue(key)
    document = ApiDocument.objects.get()
    assert document.keep_content is True


def test_a_refused_task_leaves_a_503_error_document(key, settings, monkeypatch, caplog):
    from django_tasks.backends.immediate import ImmediateBackend

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

    def refused(*args, **kwargs):
        raise ConnectionError("queue down")

    monkeypatch.setattr(ImmediateBackend, "enqueue", refused)
    with caplog.at_level(logging.ERROR, logger="keys.api"):
        assert post(f"{EXPORT}/async", key.value).status_code == 503
    document = ApiDocument.objects.get()
    assert (document.status, document.status_code) == (Status.ERROR, 503)
    assert document.modified_at > document.created_at
    [record] = [r for r in caplog.records if r.name == "keys.api"]
    assert record.getMessage() == f"API document {document.document_id}: the task queue refused it"
