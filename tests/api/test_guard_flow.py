"""The guard's own flow (keys.guard.flow.guarded_call and authenticated_call), called directly:
what reaches the view, what is answered when the view fails, and what is logged."""

import json
import logging

import pytest
from django.db import DatabaseError
from django.http import JsonResponse
from django.test import RequestFactory

from keys.guard import ApiError, authenticated_call, guarded_call

factory = RequestFactory()


def api_request(key, body: bytes = b"{}", path: str = "/chqapi/export/inventory"):
    """A request as a program sends it (RequestFactory): the flow is called directly, with no client."""
    return factory.post(path, body, content_type="application/json", HTTP_APIKEY=str(key))


def echo(request, *args, **kwargs):
    return JsonResponse(
        {
            "args": list(args),
            "kwargs": kwargs,
            "last4": request.api_call.key_last4 if hasattr(request, "api_call") else None,
        }
    )


def failing(exc: Exception):
    def view(request, *args, **kwargs):
        raise exc

    return view


@pytest.fixture
def logged_key(make_key):
    return make_key(allowed_for_all=True, logged_for_all=True)


def call_guarded(key, view, *args, **kwargs):
    return guarded_call(api_request(key), "export", "inventory", view, args, kwargs)


# --- guarded_call ---------------------------------------------------------------------------


def test_the_view_gets_the_positional_and_keyword_arguments(make_key):
    key = make_key(allowed_for_all=True)
    response = call_guarded(key.value, echo, "a", 2, api_id="inventory")
    assert json.loads(response.content)["args"] == ["a", 2]
    assert json.loads(response.content)["kwargs"] == {"api_id": "inventory"}


@pytest.mark.parametrize(
    "spelling",
    [
        lambda v: "{" + str(v).upper() + "}",  # braces and capitals, as some clients send a GUID
        lambda v: v.hex[:30] + "-" + v.hex[30:],  # uuid.UUID takes hyphens anywhere
        lambda v: f"  {v}  ",
    ],
)
def test_the_last_four_are_taken_from_the_value_however_it_is_spelled(make_key, spelling):
    key = make_key(allowed_for_all=True)
    assert json.loads(call_guarded(spelling(key.value), echo).content)["last4"] == key.value.hex[-4:]


def test_a_logged_call_names_its_document_in_a_header_spelled_as_chq_does(logged_key):
    response = call_guarded(logged_key.value, echo)
    assert "ApiDocumentId" in dict(response.items())


def test_a_database_failure_in_the_view_is_a_503_and_logged_with_the_document(logged_key, caplog):
    with caplog.at_level(logging.WARNING, logger="keys.outages"):
        response = call_guarded(logged_key.value, failing(DatabaseError("gone")))
        again = call_guarded(logged_key.value, failing(DatabaseError("gone")))
    assert response.status_code == again.status_code == 503
    assert response["Retry-After"]
    first, second = [r for r in caplog.records if r.name == "keys.outages"]
    assert first.getMessage() == (
        f"API call {response['ApiDocumentId']}: the database cannot be reached; calls are answered 503 until it is back"
    )
    assert first.exc_info  # the outage's one traceback
    assert second.getMessage() == (
        f"API call {again['ApiDocumentId']}: 503, the database still cannot be reached (DatabaseError)"
    )
    assert not second.exc_info


def test_a_view_that_fails_is_a_json_500_and_logged_with_the_document(logged_key, caplog):
    with caplog.at_level(logging.ERROR, logger="keys.api"):
        response = call_guarded(logged_key.value, failing(RuntimeError("bug")))
    assert response.status_code == 500
    assert json.loads(response.content) == {"Message": "The server failed while carrying out the call."}
    [record] = [r for r in caplog.records if r.name == "keys.api"]
    assert record.getMessage() == f"API call {response['ApiDocumentId']}: the handler failed"
    assert record.exc_info


# --- authenticated_call ------------------------------------------------------------------------


def status(key, view, *args, body: bytes = b"{}", **kwargs):
    return authenticated_call(api_request(key, body, "/chqapi/status"), view, args, kwargs)


def test_authenticated_view_gets_its_arguments(make_key):
    key = make_key()
    response = status(key.value, echo, "x", page=3)
    assert json.loads(response.content)["args"] == ["x"]
    assert json.loads(response.content)["kwargs"] == {"page": 3}


def test_authenticated_call_refuses_an_over_long_body_before_anything_else(make_key, settings):
    settings.KEYS_MAX_BODY_BYTES = 10
    assert status(make_key().value, echo, body=b"{" + b" " * 20 + b"}").status_code == 413


def test_authenticated_call_answers_an_api_error_with_its_status_and_message(make_key):
    response = status(make_key().value, failing(ApiError(409, "Already there.")))
    assert response.status_code == 409
    assert json.loads(response.content) == {"Message": "Already there."}


def test_authenticated_call_database_failure_is_a_503_logged_with_the_path(make_key, caplog):
    with caplog.at_level(logging.WARNING, logger="keys.outages"):
        response = status(make_key().value, failing(DatabaseError("gone")))
    assert response.status_code == 503
    [record] = [r for r in caplog.records if r.name == "keys.outages"]
    assert record.getMessage().startswith("API call /chqapi/status: the database cannot be reached")
    assert record.exc_info


# --- one round trip to the shared cache ---------------------------------------------------------


class CountingCache:
    """The real cache, counting the reads a call makes (each is a round trip with Redis)."""

    def __init__(self, real):
        self.real, self.reads, self.asked = real, [], []

    def __getattr__(self, name):
        attribute = getattr(self.real, name)
        if name in {"get", "get_many", "has_key"}:

            def counted(*args, **kwargs):
                self.reads.append(name)
                self.asked.append(args[0] if args else None)
                return attribute(*args, **kwargs)

            return counted
        return attribute


@pytest.fixture
def redis_like(settings, monkeypatch):
    """Marker and throttle counts in the shared cache, as when Redis is configured."""
    from django.core.cache import cache

    from keys import freshness, shared
    from keys.guard import throttle

    settings.KEYS_CHANGE_MARKER = "cache"
    settings.KEYS_SHARED_COUNTERS = "cache"
    counting = CountingCache(cache)
    for module in (throttle, freshness, shared):
        monkeypatch.setattr(module, "cache", counting)
    return counting


def test_a_warm_call_reads_the_shared_cache_once(make_key, redis_like):
    key = make_key(allowed_for_all=True)
    assert call_guarded(key.value, echo).status_code == 200  # warms this process's decisions
    redis_like.reads.clear()
    assert call_guarded(key.value, echo).status_code == 200
    assert redis_like.reads == ["get_many"]  # the client's block and the change marker together


def test_a_change_is_obeyed_at_once_with_the_marker_in_the_shared_cache(make_key, redis_like):
    from keys import services

    key = make_key(allowed_for_all=True)
    assert call_guarded(key.value, echo).status_code == 200
    services.api_key_change(key=key, is_active=False)
    assert call_guarded(key.value, echo).status_code == 401


def test_a_blocked_client_is_refused_before_its_key_is_looked_at(make_key, redis_like, settings):
    settings.KEYS_THROTTLE_REFUSALS = 3
    key = make_key(allowed_for_all=True)
    for _ in range(3):
        assert guarded_call(api_request("not-a-key"), "export", "inventory", echo, (), {}).status_code == 401
    response = call_guarded(key.value, echo)
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert status(key.value, echo).status_code == 429  # the status call too


def test_without_throttling_only_the_marker_is_read(make_key, redis_like, settings):
    from keys import freshness

    settings.KEYS_THROTTLE_REFUSALS = 0
    key = make_key(allowed_for_all=True)
    call_guarded(key.value, echo)
    redis_like.reads.clear()
    redis_like.asked.clear()
    assert call_guarded(key.value, echo).status_code == 200
    assert (redis_like.reads, redis_like.asked) == (["get_many"], [[freshness.CACHE_KEY]])


def test_a_warm_status_call_reads_the_shared_cache_once(make_key, redis_like):
    key = make_key()
    assert status(key.value, echo).status_code == 200
    redis_like.reads.clear()
    assert status(key.value, echo).status_code == 200
    assert redis_like.reads == ["get_many"]


def block(settings, request) -> None:
    """Block the request's client as too many refusals would."""
    import time

    from keys import shared
    from keys.guard import throttle

    subject = throttle._block_key(throttle.throttle_subject(throttle.client_address(request)))
    shared.set_until(subject, time.time() + 60, time.time() + 60)


def test_with_throttling_off_an_old_block_no_longer_refuses(make_key, settings):
    key = make_key(allowed_for_all=True)
    block(settings, api_request(key.value))
    assert call_guarded(key.value, echo).status_code == 429
    settings.KEYS_THROTTLE_REFUSALS = 0
    assert call_guarded(key.value, echo).status_code == 200


def test_a_block_in_the_file_counts_is_seen_with_the_marker_in_the_cache(make_key, settings):
    settings.KEYS_CHANGE_MARKER = "cache"  # the marker in the cache, the throttle's counts in the shared file
    settings.KEYS_SHARED_COUNTERS = "file"
    key = make_key(allowed_for_all=True)
    block(settings, api_request(key.value))
    assert call_guarded(key.value, echo).status_code == 429
