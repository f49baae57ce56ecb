"""Hostile input: property-based tests over the dialog and /chqapi/, refused-key
throttling, and oversized bodies. Never a 500, never a partial save."""

import json
import uuid

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys.models import ApiDocument, ApiKey, ApiKeyGrant, KeyAudit
from tests.api_calls import post

pytestmark = pytest.mark.django_db

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def db_state():
    return (
        list(ApiKey.objects.order_by("pk").values()),
        list(ApiKeyGrant.objects.order_by("pk").values()),
        ApiDocument.objects.count(),
        KeyAudit.objects.count(),
    )


field_names = (
    st.sampled_from(
        [
            "description",
            "is_active",
            "allowed_for_all",
            "logged_for_all",
            "logging_until",
            "selected",
            "logged",
            "version",
        ]
    )
    | st.from_regex(r"until-[0-9a-z\-]{0,8}", fullmatch=True)
    | st.text(max_size=12)
)
field_values = st.text(max_size=300) | st.integers(-(10**12), 10**12).map(str) | st.dates().map(str)
form_data = st.dictionaries(field_names, st.lists(field_values, min_size=1, max_size=3), max_size=10)


@PROPERTY
@given(data=form_data, edit=st.booleans())
def test_dialog_post_never_500_and_never_half_saves(client, administrator, make_key, data, edit):
    client.force_login(administrator)
    key = ApiKey.objects.first() or make_key(description="target")
    url = reverse("keys:edit", args=[key.pk]) if edit else reverse("keys:new")
    before = db_state()
    response = client.post(url, data, HTTP_HX_REQUEST="true")
    assert response.status_code in (204, 400, 409, 422), response.status_code
    if response.status_code != 204:
        assert db_state() == before


api_paths = st.sampled_from(["import", "export", "export-async"]).flatmap(
    lambda kind: st.text(st.characters(codec="ascii", exclude_characters="?#%"), min_size=0, max_size=40).map(
        lambda api_id: (kind, api_id)
    )
)
header_values = st.none() | st.text(max_size=80) | st.uuids().map(str)
bodies = (
    st.binary(max_size=2000)
    | st.text(max_size=500).map(str.encode)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode())
)


@PROPERTY
@override_settings(KEYS_THROTTLE_REFUSALS=0)
@given(path=api_paths, header=header_values, body=bodies, use_real_key=st.booleans())
def test_chqapi_never_500_and_refusals_change_nothing(make_key, path, header, body, use_real_key):
    key = ApiKey.objects.filter(description="api target").first() or make_key(
        description="api target", allowed_for_all=True, logged_for_all=True
    )
    kind, api_id = path
    url = {"import": f"/chqapi/import/{api_id}", "export": f"/chqapi/export/{api_id}"}.get(
        kind, f"/chqapi/export/{api_id}/async"
    )
    headers = {}
    value = str(key.value) if use_real_key else header
    if value is not None:
        headers["HTTP_APIKEY"] = value.encode("latin-1", "replace").decode("latin-1")
    before = db_state()
    response = Client().post(url, body, content_type="application/json", **headers)
    assert response.status_code in (200, 400, 401, 403, 404, 405, 413, 429, 501), response.status_code
    assert str(key.value) not in response.content.decode("utf-8", "replace") or response.status_code == 200
    if response.status_code in (401, 403, 404, 405, 413, 429):
        assert db_state() == before


@PROPERTY
@override_settings(KEYS_THROTTLE_REFUSALS=0)
@given(body=bodies, header=header_values)
def test_status_endpoint_never_500(make_key, body, header):
    headers = {"HTTP_APIKEY": header.encode("latin-1", "replace").decode("latin-1")} if header else {}
    response = Client().post("/chqapi/status", body, content_type="application/json", **headers)
    assert response.status_code in (200, 400, 401, 404, 413, 429)


# --- throttling ------------------------------------------------------------------------


@override_settings(KEYS_THROTTLE_REFUSALS=5, KEYS_THROTTLE_WINDOW=60, KEYS_THROTTLE_BLOCK=120)
def test_refused_keys_from_one_address_get_429(make_key):
    good = make_key(allowed_for_all=True)
    attacker, other = Client(REMOTE_ADDR="203.0.113.9"), Client(REMOTE_ADDR="198.51.100.4")
    statuses = [post("/chqapi/export/inventory", uuid.uuid4(), client=attacker).status_code for _ in range(7)]
    assert statuses == [401, 401, 401, 401, 401, 429, 429]
    blocked = post("/chqapi/export/inventory", good.value, client=attacker)
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= 120
    assert blocked.json()["Message"].startswith("Too many calls")
    # A valid key from another address is unaffected.
    fine = post("/chqapi/export/inventory", good.value, client=other)
    assert fine.status_code == 501


@override_settings(KEYS_THROTTLE_REFUSALS=3)
def test_403_and_404_do_not_count_towards_the_block(make_key, customer_import):
    key = make_key(grants=[customer_import.pk])
    client = Client(REMOTE_ADDR="203.0.113.10")
    for _ in range(5):
        assert post("/chqapi/export/inventory", key.value, client=client).status_code == 403
    assert post("/chqapi/import/customer", key.value, client=client).status_code == 501


# --- size ------------------------------------------------------------------------------------


@override_settings(KEYS_MAX_BODY_BYTES=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_oversized_body_is_413_before_any_work(make_key, django_assert_num_queries):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    with django_assert_num_queries(0):
        response = post("/chqapi/export/inventory", key.value, raw="x" * 1001)
    assert response.status_code == 413
    assert not ApiDocument.objects.exists()
    ok = post("/chqapi/export/inventory", key.value)
    assert ok.status_code == 501


# --- with a valid, allowed, logged key: every handler, every filter field ---------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**62, max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["²", "\x00", "\ud800", "2024-02-30T00:00:00", "2026-01-01T00:00:00", "200", "-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
filter_items = st.fixed_dictionaries(
    {},
    optional={
        "Field": st.sampled_from(["ApiType", "CreatedAt", "StatusCode", "Source"]) | json_values,
        "Operator": st.sampled_from(
            ["Equal", "NotEqual", "Contains", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual"]
        )
        | json_values,
        "Value": json_values | st.datetimes().map(lambda d: d.isoformat()),
    },
)
export_requests = st.fixed_dictionaries(
    {},
    optional={
        "Top": st.integers(-5, 2**64) | json_values,
        "Skip": st.integers(-5, 2**64) | json_values,
        "Filters": st.lists(filter_items | json_values, max_size=3) | json_values,
    },
)
api_bodies = st.fixed_dictionaries(
    {},
    optional={
        "Source": json_values,
        "Data": st.fixed_dictionaries({}, optional={"Request": export_requests | json_values}) | json_values,
        "ApiDocumentId": st.uuids().map(str) | json_values,
    },
)
GUARDED = ["/chqapi/export/apidocument", "/chqapi/export/apidocument/async", "/chqapi/import/customer"]


@PROPERTY
@override_settings(KEYS_THROTTLE_REFUSALS=0)
@given(path=st.sampled_from([*GUARDED, "/chqapi/status"]), body=api_bodies)
def test_valid_logged_key_never_500_and_every_call_stored_once(make_key, path, body):
    key = ApiKey.objects.filter(description="logged target").first() or make_key(
        description="logged target", allowed_for_all=True, logged_for_all=True
    )
    before = ApiDocument.objects.count()
    response = post(path, key.value, body=body)
    assert response.status_code in (200, 400, 404, 409, 501), (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    assert isinstance(response.json(), dict)
    if path in GUARDED:
        assert ApiDocument.objects.count() == before + 1
        assert ApiDocument.objects.order_by("-id").first().status_code == response.status_code
