"""The guard's exact words, headers, log lines and stored fields: what
integrators' programs and operators read (mutation testing showed that tests
checking only status codes let wrong words and numbers through)."""

import json
import logging
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client, override_settings
from django.urls import path

from keys.guard import ApiError, api_key_required, refusals, registry
from keys.models import ApiDocument
from tests.api_calls import post

pytestmark = pytest.mark.django_db

EXPORT = "/chqapi/export/apidocument"


@pytest.fixture
def logged_key(make_key):
    return make_key(allowed_for_all=True, logged_for_all=True)


def test_api_error_carries_status_and_message():
    error = ApiError(418, "short and stout")
    assert (error.status, error.message, str(error)) == (418, "short and stout", "short and stout")


@pytest.mark.parametrize(
    ("extra", "raw", "status", "message"),
    [
        ({"CONTENT_LENGTH": "abc"}, "{}", 400, "The Content-Length header is not a number."),
        ({"CONTENT_LENGTH": "-1"}, "{}", 400, "The Content-Length header is not a number."),
        ({"HTTP_TRANSFER_ENCODING": "Chunked", "CONTENT_LENGTH": ""}, "{}", 411, None),
        ({}, '{"a": ' + "1" * 5000 + "}", 400, "The request body holds a number too long to read."),
        ({}, "[" * 100_000, 400, "The request body's JSON is nested too deeply."),
        ({}, "[]", 400, "The request body must be a JSON object."),
        ({}, b'{"a": "\xff"}', 400, "The request body is not UTF-8 text."),
    ],
)
def test_exact_refusals_of_a_body(logged_key, extra, raw, status, message):
    response = post(EXPORT, logged_key.value, raw=raw, **extra)
    assert response.status_code == status
    expected = message or "Send the request body with a Content-Length header (chunked bodies are refused)."
    if message and message.startswith("The request body"):  # read, but unreadable: CHQ's invalid request
        assert response.json() == {"Message": "The request is invalid.", "ModelState": {"apiRequest": [expected]}}
    else:  # refused before it is read
        assert response.json() == {"Message": expected}


@override_settings(KEYS_MAX_BODY_BYTES=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_413_exact_from_the_header(logged_key):
    response = post(EXPORT, logged_key.value, raw="x" * 1001)
    assert (response.status_code, response.json()) == (
        413,
        {"Message": "The request body is larger than 1000 bytes."},
    )


@override_settings(KEYS_MAX_BODY_BYTES=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=10)
def test_413_exact_while_reading(logged_key):
    # Django's own upload limit is the smaller one here: caught while the body is read.
    response = post(EXPORT, logged_key.value, raw='{"Source": "' + "x" * 50 + '"}')
    assert (response.status_code, response.json()) == (
        413,
        {"Message": "The request body is larger than 1000 bytes."},
    )


@override_settings(KEYS_MAX_BODY_BYTES=0)
def test_a_limit_of_zero_still_takes_an_empty_body(make_key):
    key = make_key(allowed_for_all=True)
    assert post(EXPORT, key.value, raw="", CONTENT_LENGTH="0").status_code == 200
    assert post(EXPORT, key.value, raw="{}").status_code == 413


def test_503_exact(logged_key, settings):
    settings.KEYS_RETRY_AFTER_SECONDS = 7
    with mock.patch("keys.guard.flow.decide", side_effect=OperationalError("down")):
        response = post(EXPORT, logged_key.value)
    assert response.status_code == 503
    assert response.json() == {"Message": "The service is unavailable for a moment (its database cannot be reached)."}
    assert response["Retry-After"] == "7"


def test_deliberate_answers_are_not_logged_again_by_django(caplog):
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        assert post(EXPORT, "x").status_code == 401
    assert not [r for r in caplog.records if r.name == "django.request"]


@override_settings(KEYS_THROTTLE_REFUSALS=3, KEYS_THROTTLE_BLOCK=60)
def test_blocking_is_logged_with_who_how_long_and_how_many(caplog):
    with caplog.at_level(logging.WARNING, logger="keys.security"):
        for _ in range(3):
            post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.9")
    assert "blocking 203.0.113.9 for 60 s after 3 refused API keys" in [r.getMessage() for r in caplog.records]


def test_refusal_log_lines_are_sampled_with_a_count(caplog, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(refusals.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="keys.security"):
        for _ in range(3):
            post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.20")
        clock[0] += 9.99
        post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.20")
        clock[0] += 0.01  # ten seconds after the first line
        post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.20")
    lines = [r.getMessage() for r in caplog.records if r.name == "keys.security"]
    assert lines == [
        "refused API call: malformed key; POST /chqapi/export/inventory from 203.0.113.20",
        "refused API call: malformed key; POST /chqapi/export/inventory from 203.0.113.20"
        " (and 3 more like it from there in the 10 s before, not written)",
    ]


def test_refusal_log_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(
        refusals, "_refusals_logged", {(str(n), refusals.Reason.UNKNOWN_KEY): (0.0, 0) for n in range(10_000)}
    )
    post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.21")
    assert len(refusals._refusals_logged) == 10_001  # at the bound: kept
    post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.22")
    assert len(refusals._refusals_logged) == 1  # over it: forgotten, then this one


@pytest.mark.parametrize(
    ("body", "source"),
    [
        ({"Source": "ERP"}, "ERP"),
        ({}, ""),
        ({"Source": {"system": "ERP"}}, '{"system": "ERP"}'),
        ({"Source": ["x" * 300]}, json.dumps(["x" * 300])[:200]),
        ({"Source": None}, "null"),
    ],
)
def test_stored_source(logged_key, body, source):
    post(EXPORT, logged_key.value, raw=json.dumps(body))
    assert ApiDocument.objects.get().source == source


def test_a_streamed_answer_is_stored_with_what_was_sent_once_it_has_gone(logged_key, monkeypatch):
    from django.http import StreamingHttpResponse

    def streamed(call):
        return StreamingHttpResponse(iter([b'{"a": ', b"1}"]))

    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(streamed))
    response = post(EXPORT, logged_key.value)
    assert not ApiDocument.objects.exists()  # nothing is recorded before the answer has gone
    assert b"".join(response.streaming_content) == b'{"a": 1}'
    log = ApiDocument.objects.get()
    assert (log.status_code, log.response_body, log.truncated) == (200, '{"a": 1}', False)


@override_settings(KEYS_MAX_BODY_BYTES=0)
def test_no_content_length_at_all_is_an_empty_body(make_key):
    key = make_key(allowed_for_all=True)
    response = Client().generic("POST", EXPORT, b"", HTTP_APIKEY=str(key.value))
    assert response.status_code == 200


def test_stored_source_of_a_body_that_is_not_json(logged_key):
    post(EXPORT, logged_key.value, raw="{broken")
    assert ApiDocument.objects.get().source == ""


def test_stored_answer_is_the_answer(logged_key):
    response = post(EXPORT, logged_key.value)
    log = ApiDocument.objects.get()
    assert json.loads(log.response_body) == response.json()
    assert log.status_code == 200


def test_failed_bookkeeping_is_reported_with_the_document_id(logged_key, caplog):
    with (
        caplog.at_level(logging.ERROR, logger="keys.security"),
        mock.patch("keys.guard.bookkeeping.services.api_key_touch", side_effect=RuntimeError("bug")),
    ):
        response = post(EXPORT, logged_key.value)
    assert response.status_code == 200
    assert f"bookkeeping of API call {response['ApiDocumentId']} failed" in [r.getMessage() for r in caplog.records]


def test_registered_handler_is_served(make_key, monkeypatch):
    monkeypatch.setattr(registry, "_handlers", {})

    @registry.register("export", "inventory")
    def inventory(call):
        return {"Items": [], "ApiId": call.api_id, "Direction": call.direction}

    assert registry.handler_for("export", "inventory") is inventory
    key = make_key(allowed_for_all=True)
    assert post("/chqapi/export/inventory", key.value).json() == {
        "Items": [],
        "ApiId": "inventory",
        "Direction": "export",
    }


@pytest.mark.urls("tests.api.test_guard_answers")
def test_a_host_view_guarded_for_one_type(make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    response = post("/stock", key.value)
    assert response.json() == {"key": key.pk, "type": inventory_export.pk, "document": None}


@api_key_required("export", "inventory")
def stock(request):
    from django.http import JsonResponse

    decision = request.api_call.decision
    return JsonResponse(
        {"key": decision.key_id, "type": decision.api_type_id, "document": request.api_call.document_id}
    )


urlpatterns = [path("stock", stock)]


def test_a_streamed_answer_closed_before_its_first_chunk_is_still_recorded(logged_key, monkeypatch, connections_kept):
    from django.http import StreamingHttpResponse

    monkeypatch.setitem(
        registry._handlers,
        ("export", "apidocument"),
        registry.Registration(lambda call: StreamingHttpResponse(iter([b"{}"]))),
    )
    response = post(EXPORT, logged_key.value)
    response.close()  # the client left: the server closes the response without reading it
    log = ApiDocument.objects.get()
    assert (log.status_code, log.status, log.response_body) == (499, ApiDocument.Status.ERROR, "")
    assert log.error_message == "The client closed the connection after 0 bytes of the answer."
