"""CHQ-style API calls checked by their ApiKey header: refusals, logging,
handlers, and the key kept out of logs and error bodies."""

import json
import logging
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from keys import usage
from keys.models import ApiDocument, ApiKey, ApiKeyGrant
from keys.services import KEY_FIELDS, GrantSpec, api_key_change, api_key_remove, api_key_update
from tests.api_calls import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    # Programs send no CSRF token; the API must not need one.
    return Client(enforce_csrf_checks=True)


@pytest.mark.parametrize(
    ("header", "status", "message"),
    [
        (None, 401, "The ApiKey header is missing or is not a GUID."),
        ("", 401, "The ApiKey header is missing or is not a GUID."),
        ("not-a-guid", 401, "The ApiKey header is missing or is not a GUID."),
        (str(uuid.uuid4()), 401, "The API key is not known."),
    ],
)
def test_bad_or_unknown_key_is_401(api, header, status, message):
    response = post("/chqapi/export/inventory", header, client=api)
    assert response.status_code == status
    assert response.json() == {"Message": message}
    assert response["WWW-Authenticate"].startswith("ApiKey")


def test_inactive_key_is_401_saying_inactive(api, make_key):
    key = make_key(is_active=False, allowed_for_all=True)
    response = post("/chqapi/export/inventory", key.value, client=api)
    assert response.status_code == 401
    assert response.json()["Message"] == "The API key is inactive."


def test_type_not_allowed_is_403_naming_the_type(api, make_key, customer_import):
    key = make_key(grants=[customer_import.pk])
    response = post("/chqapi/export/inventory", key.value, client=api)
    assert response.status_code == 403
    assert response.json()["Message"] == "The API key is not allowed to call Inventory Export."


def test_unknown_api_type_is_404(api, make_key):
    key = make_key(allowed_for_all=True)
    response = post("/chqapi/export/no-such-thing", key.value, client=api)
    assert response.status_code == 404
    assert "export/no-such-thing" in response.json()["Message"]


def test_allowed_type_without_handler_is_501_after_the_checks(api, make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    response = post("/chqapi/export/inventory", key.value, client=api)
    assert response.status_code == 501
    assert response.json()["Message"] == (
        "Your API key may call Inventory Export, but this installation does not serve that API type."
    )


def test_allowed_for_all_reaches_ids_with_slashes(api, make_key):
    key = make_key(allowed_for_all=True)
    assert post("/chqapi/import/echo/EcommQty", key.value, client=api).status_code == 501
    assert post("/chqapi/import/tasreport/stream", key.value, client=api).status_code == 501


def test_get_is_405(api, make_key):
    key = make_key(allowed_for_all=True)
    assert api.get("/chqapi/export/apidocument", HTTP_APIKEY=str(key.value)).status_code == 405


def test_malformed_json_is_400_after_the_key_check(api, make_key):
    key = make_key(allowed_for_all=True)
    response = post("/chqapi/export/apidocument", key.value, raw="{not json", client=api)
    assert response.status_code == 400
    assert response.json()["Message"] == "The request is invalid."
    assert response.json()["ModelState"]["apiRequest"][0].startswith("The request body is not valid JSON")
    assert post("/chqapi/export/apidocument", None, raw="{not json", client=api).status_code == 401


# --- logging -------------------------------------------------------------------


def test_logged_call_is_stored(api, make_key, inventory_export):
    key = make_key(description="erp", grants=[GrantSpec(inventory_export.pk, logged=True)])
    response = post("/chqapi/export/inventory", key.value, {"Source": "ERP-1"}, REMOTE_ADDR="10.1.2.3", client=api)
    log = ApiDocument.objects.get()
    assert response["ApiDocumentId"] == str(log.document_id)
    assert (log.key_id, log.key_last4, log.key_description) == (key.pk, key.value.hex[-4:], "erp")
    assert (log.api_type_id, log.api_type_name, log.method, log.path) == (
        inventory_export.pk,
        "Inventory Export",
        "POST",
        "/chqapi/export/inventory",
    )
    assert (log.source, log.status_code, log.client_address) == ("ERP-1", 501, "10.1.2.3")
    assert json.loads(log.request_body) == {"Source": "ERP-1"}
    assert "does not serve" in log.response_body
    assert log.duration_ms >= 0


def test_unlogged_and_refused_calls_are_not_stored(api, make_key, inventory_export, customer_import):
    key = make_key(grants=[inventory_export.pk])
    post("/chqapi/export/inventory", key.value, client=api)
    post("/chqapi/import/customer", key.value, client=api)
    post("/chqapi/export/inventory", uuid.uuid4(), client=api)
    assert not ApiDocument.objects.exists()


def test_logged_for_all(api, make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    post("/chqapi/import/customer", key.value, client=api)
    assert ApiDocument.objects.get().api_type_name == "Customer Import"


@override_settings(TIME_ZONE="America/New_York")
@pytest.mark.parametrize("for_all", [True, False])
def test_logging_through_the_last_day_and_not_after(api, make_key, inventory_export, for_all):
    until = date(2026, 7, 4)
    if for_all:
        key = make_key(allowed_for_all=True, logged_for_all=True, logging_until=until)
    else:
        key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=until)])
    # 23:59:59 on 4 July in New York is 03:59:59 UTC on 5 July.
    with time_machine.travel(datetime(2026, 7, 5, 3, 59, 59, tzinfo=UTC), tick=False):
        post("/chqapi/export/inventory", key.value, client=api)
    assert ApiDocument.objects.count() == 1
    with time_machine.travel(datetime(2026, 7, 5, 4, 0, 0, tzinfo=UTC), tick=False):
        response = post("/chqapi/export/inventory", key.value, client=api)
    assert response.status_code == 501  # still allowed ...
    assert ApiDocument.objects.count() == 1  # ... but no longer stored


def test_logs_outlive_the_key(api, make_key, inventory_export):
    key = make_key(description="gone soon", grants=[GrantSpec(inventory_export.pk, logged=True)])
    post("/chqapi/export/inventory", key.value, client=api)
    api_key_remove(key=key)
    log = ApiDocument.objects.get()
    assert log.key_id is None
    assert (log.key_last4, log.key_description, log.api_type_name) == (
        key.value.hex[-4:],
        "gone soon",
        "Inventory Export",
    )


@override_settings(KEYS_LOG_BODY_LIMIT=10)
def test_bodies_are_capped(api, make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    post("/chqapi/export/inventory", key.value, {"Source": "x" * 100}, client=api)
    log = ApiDocument.objects.get()
    assert len(log.request_body) == 10
    assert log.truncated is True


def test_last_used_is_written_at_most_once_a_minute(api, make_key, inventory_export, django_assert_num_queries):
    key = make_key(grants=[inventory_export.pk])
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        post("/chqapi/export/inventory", key.value, client=api)
    usage.flush()  # "last used" is written by the usage flush, never in the call
    key.refresh_from_db()
    assert key.last_used_at == start
    assert ApiKeyGrant.objects.get().last_used_at == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False), django_assert_num_queries(0):
        post("/chqapi/export/inventory", key.value, client=api)  # a warm decision, and no write
    assert usage.tally().touched == {}  # nothing new for the flush to write either
    key.refresh_from_db()
    assert key.last_used_at == start
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        post("/chqapi/export/inventory", key.value, client=api)
    usage.flush()
    key.refresh_from_db()
    assert key.last_used_at == start + timedelta(seconds=61)


def test_warm_logged_call_makes_exactly_one_write(api, make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    post("/chqapi/export/inventory", key.value, client=api)  # the first call also writes "last used"
    with CaptureQueriesContext(connection) as queries:
        post("/chqapi/export/inventory", key.value, client=api)
    # The test runs inside a transaction, so the INSERT gets a savepoint (keys.services._insert_alone);
    # in production's autocommit it does not. What is left: one INSERT.
    statements = [q["sql"] for q in queries if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 1  # the warm decision reads nothing
    assert 'INSERT INTO "keys_apidocument"' in statements[0]


# --- the key never shows up ------------------------------------------------------------


def test_key_never_in_server_logs_or_error_bodies(api, make_key, inventory_export, customer_import, caplog):
    active = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    inactive = make_key(is_active=False)
    secrets = {str(k.value) for k in (active, inactive)} | {k.value.hex for k in (active, inactive)}
    bodies = []
    with caplog.at_level(logging.DEBUG):
        for key, path in [
            (active, "/chqapi/export/inventory"),
            (active, "/chqapi/import/customer"),
            (active, "/chqapi/export/no-such"),
            (inactive, "/chqapi/export/inventory"),
            (str(active.value).upper(), "/chqapi/export/inventory"),
        ]:
            response = post(path, getattr(key, "value", key), raw="{broken", client=api)
            bodies.append(response.content.decode())
    text = "\n".join([r.getMessage() for r in caplog.records] + bodies)
    assert "refused API call: API type not allowed; POST /chqapi/import/customer" in text
    assert "refused API call: inactive key" in text
    for secret in secrets:
        assert secret.lower() not in text.lower()
    for log in ApiDocument.objects.all():
        assert str(active.value) not in json.dumps([log.request_body, log.response_body, log.path, log.key_last4])


# --- handlers -------------------------------------------------------------------------


@pytest.mark.urls("tests.host_urls")
def test_guard_on_a_host_view(api, make_key, inventory_export, customer_import):
    allowed = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    refused = make_key(grants=[customer_import.pk])
    response = post("/host/inventory", allowed.value, client=api)
    assert response.json() == {"Items": [], "Key": allowed.pk}
    assert ApiDocument.objects.get().path == "/host/inventory"
    assert post("/host/inventory", refused.value, client=api).status_code == 403
    assert post("/host/inventory", client=api).status_code == 401


# --- freshness ------------------------------------------------------------------------


def edit(key, grants=None, **changes):
    if grants is not None:
        api_key_update(key=key, grants=grants, **({n: getattr(key, n) for n in KEY_FIELDS} | changes))
    else:
        api_key_change(key=key, **changes)


@pytest.mark.django_db(transaction=True)  # on_commit hooks run, as in production
def test_changes_take_effect_on_the_very_next_call(
    api, migrated_data, decision_cache, inventory_export, customer_import, make_key
):
    key = make_key(grants=[inventory_export.pk])
    assert post("/chqapi/export/inventory", key.value, client=api).status_code == 501
    assert post("/chqapi/import/customer", key.value, client=api).status_code == 403

    edit(key, grants=[GrantSpec(customer_import.pk)])
    assert post("/chqapi/export/inventory", key.value, client=api).status_code == 403
    assert post("/chqapi/import/customer", key.value, client=api).status_code == 501

    edit(key, is_active=False)
    assert post("/chqapi/import/customer", key.value, client=api).status_code == 401

    edit(key, is_active=True, allowed_for_all=True, logged_for_all=True)
    post("/chqapi/export/inventory", key.value, client=api)
    assert ApiDocument.objects.count() == 1

    api_key_remove(key=ApiKey.objects.get(pk=key.pk))
    response = post("/chqapi/export/inventory", key.value, client=api)
    assert response.json()["Message"] == "The API key is not known."


def test_warm_decision_cache_makes_no_query(settings, make_key, inventory_export, django_assert_num_queries):
    from keys.access import decide

    settings.KEYS_DECISION_CACHE = True
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    decide(key.value, direction="export", api_id="inventory")  # warms the cache
    with django_assert_num_queries(0):
        decision = decide(key.value, direction="export", api_id="inventory")
    assert (decision.allowed, decision.logged, decision.api_type_name) == (True, True, "Inventory Export")
    with django_assert_num_queries(0):
        assert decide(key.value, direction="export", api_id="nope").reason == "unknown API type"
