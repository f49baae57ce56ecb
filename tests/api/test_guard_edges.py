"""The guard's edges, where a broken guard would otherwise pass the suite
(found by mutation testing: each test here kills mutants that survived)."""

import itertools
import json
import time
import uuid
from unittest import mock

import pytest
from django.test import override_settings

from keys.access import Reason, authenticate, parse_key
from keys.guard import bookkeeping, refusal_counts
from keys.models import ApiDocument
from tests.api_calls import post

pytestmark = pytest.mark.django_db


def test_authenticate_tells_each_refusal_apart(decision_cache, make_key):
    active, inactive = make_key(), make_key(is_active=False)
    assert authenticate("not-a-guid").reason == Reason.MALFORMED_KEY
    assert authenticate(None).reason == Reason.MALFORMED_KEY
    assert authenticate(str(uuid.uuid4())).reason == Reason.UNKNOWN_KEY
    refused = authenticate(str(inactive.value))
    assert (refused.allowed, refused.reason, refused.key_id) == (False, Reason.INACTIVE_KEY, inactive.pk)
    allowed = authenticate(str(active.value))
    assert (allowed.allowed, allowed.reason, allowed.key_id) == (True, Reason.ALLOWED, active.pk)
    assert authenticate(active.value).allowed  # a UUID object as well as its text


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        ("not-a-guid", 401, "The ApiKey header is missing or is not a GUID."),
        (None, 401, "The ApiKey header is missing or is not a GUID."),
        ("00000000-0000-4000-8000-000000000000", 401, "The API key is not known."),
    ],
)
def test_status_refusals_say_which(decision_cache, key, status, message):
    response = post("/chqapi/status", key, raw=json.dumps({"ApiDocumentId": str(uuid.uuid4())}))
    assert (response.status_code, response.json()) == (status, {"Message": message})


def test_status_of_an_inactive_key_is_refused(decision_cache, make_key):
    key = make_key(is_active=False, allowed_for_all=True, logged_for_all=True)
    response = post("/chqapi/status", key.value, raw=json.dumps({"ApiDocumentId": str(uuid.uuid4())}))
    assert (response.status_code, response.json()["Message"]) == (401, "The API key is inactive.")


def test_key_header_length_edge():
    value = str(uuid.uuid4())
    padded_64 = value + " " * (64 - len(value))
    assert parse_key(padded_64) == uuid.UUID(value)
    assert parse_key(padded_64 + " ") is None  # 65 characters: refused before parsing
    assert parse_key("{" + value + "}") == uuid.UUID(value)
    assert parse_key(uuid.UUID(value)) == uuid.UUID(value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"Source": "\xff"}', "The request body is not UTF-8 text."),
        (b"[1, 2]", "The request body must be a JSON object."),
        (b'"text"', "The request body must be a JSON object."),
        (
            b"{broken",
            "The request body is not valid JSON: Expecting property name enclosed in double quotes at line 1.",
        ),
    ],
)
def test_bodies_that_are_not_a_json_object(make_key, raw, message):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    response = post("/chqapi/export/apidocument", key.value, raw=raw)
    assert (response.status_code, response.json()["ModelState"]) == (400, {"apiRequest": [message]})
    document = ApiDocument.objects.get()
    assert (document.status_code, document.status) == (400, ApiDocument.Status.ERROR)
    assert document.error_message == f"The request is invalid. apiRequest: {message}"


def test_whitespace_body_is_an_empty_request(make_key):
    key = make_key(allowed_for_all=True)
    assert post("/chqapi/export/apidocument", key.value, raw=b"  \n ").status_code == 200


@override_settings(KEYS_MAX_BODY_BYTES=100, DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_chunked_body_over_the_limit_is_still_411(make_key):
    key = make_key(allowed_for_all=True)
    response = post(
        "/chqapi/export/apidocument",
        key.value,
        raw="{}" + " " * 500,
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert response.status_code == 411


@override_settings(KEYS_THROTTLE_REFUSALS=2, KEYS_THROTTLE_BLOCK=60)
def test_throttle_at_a_limit_of_two_and_retry_after_lower_bound():
    client = {"REMOTE_ADDR": "203.0.113.77"}
    assert [post("/chqapi/export/inventory", "x", **client).status_code for _ in range(3)] == [401, 401, 429]
    # Just under a second of the block left:
    with mock.patch("time.time", return_value=time.time() + 60 - 0.9):
        blocked = post("/chqapi/export/inventory", "x", **client)
    assert blocked["Retry-After"] == "1"  # never 0: "retry now" would be a lie


def test_stored_duration_is_in_milliseconds(make_key, monkeypatch):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    ticks = itertools.chain([100.0], itertools.repeat(100.25))  # the handler takes 0.25 s
    monkeypatch.setattr(bookkeeping.time, "perf_counter", lambda: next(ticks))
    post("/chqapi/export/apidocument", key.value)
    assert ApiDocument.objects.get().duration_ms == pytest.approx(250.0)


def test_refusal_counts_per_reason(make_key, customer_import, inventory_export):
    key = make_key(grants=[customer_import.pk])
    post("/chqapi/export/inventory", key.value)
    post("/chqapi/export/inventory", "x")
    post("/chqapi/export/inventory", uuid.uuid4())
    post("/chqapi/export/nothing", key.value)
    counts = refusal_counts()
    assert counts == {
        "malformed_key": 1,
        "unknown_key": 1,
        "inactive_key": 0,
        "expired_key": 0,
        "unknown_api_type": 1,
        "api_type_not_allowed": 1,
        "address_not_allowed": 0,
        "over_rate": 0,
        "out_of_quota": 0,
    }


def test_api_type_not_allowed_names_the_type_and_is_403(make_key, customer_import):
    key = make_key(grants=[customer_import.pk])
    response = post("/chqapi/export/inventory", key.value)
    assert response.status_code == 403
    assert response.json() == {"Message": "The API key is not allowed to call Inventory Export."}
    assert "WWW-Authenticate" not in response
    unauthorized = post("/chqapi/export/inventory", "x")
    assert unauthorized["WWW-Authenticate"] == 'ApiKey realm="chqapi"'


def test_last_used_with_a_shared_cache_is_written_once_among_processes(settings, make_key, django_assert_num_queries):
    from keys import services, usage

    settings.KEYS_SHARED_COUNTERS = "cache"  # as with Redis: the cache decides among processes
    key = make_key(allowed_for_all=True)
    with django_assert_num_queries(1):
        services.api_key_touch(key_id=key.pk, grant_id=None)
        usage.flush()  # written by the usage flush, not in the call
    services._touched.clear()  # another process: its own memory is empty, the shared cache is not
    with django_assert_num_queries(0):
        services.api_key_touch(key_id=key.pk, grant_id=None)
        usage.flush()  # written by the usage flush, not in the call
    settings.KEYS_SHARED_COUNTERS = "file"  # no shared cache: each process writes once an interval
    services._touched.clear()
    with django_assert_num_queries(1):
        services.api_key_touch(key_id=key.pk, grant_id=None)
        usage.flush()  # written by the usage flush, not in the call
    with django_assert_num_queries(0):
        services.api_key_touch(key_id=key.pk, grant_id=None)
        usage.flush()  # written by the usage flush, not in the call


def test_a_first_call_of_a_key_writes_nothing_in_the_call(make_key):
    """ "Last used" waits for the usage flush: a call must never wait for a write lock
    another process holds (SQLite's busy timeout would hold its answer up to 5 s)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from keys import usage

    key = make_key(allowed_for_all=True)
    with CaptureQueriesContext(connection) as queries:
        response = post("/chqapi/export/inventory", key.value)
    assert response.status_code == 501
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert writes == []
    usage.flush()
    key.refresh_from_db()
    assert key.last_used_at is not None
