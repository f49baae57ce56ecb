"""The pane and the API key dialog through the Django test client: saving,
validation, hostile input, and query counts that do not grow with the data."""

import re
from datetime import date

import pytest
from django.urls import reverse

from keys.models import ApiKey, ApiKeyGrant, ApiType
from keys.services import GrantSpec
from tests.api_calls import post

pytestmark = pytest.mark.django_db


def post_new(client, **data):
    return client.post(reverse("keys:new"), data, HTTP_HX_REQUEST="true")


def test_create_key_with_types(administrator_client, administrator, inventory_export, customer_import):
    response = post_new(
        administrator_client,
        is_active="on",
        description="Shopify feed",
        selected=[inventory_export.pk, customer_import.pk],
        logged=[inventory_export.pk],
        **{f"until-{inventory_export.pk}": "2027-01-31"},
    )
    assert response.status_code == 204
    assert "keysChanged" in response["HX-Trigger"]
    key = ApiKey.objects.get()
    assert (key.description, key.is_active, key.created_by) == ("Shopify feed", True, administrator)
    grants = {g.api_type_id: (g.logged, g.logging_until) for g in key.grants.all()}
    assert grants == {inventory_export.pk: (True, date(2027, 1, 31)), customer_import.pk: (False, None)}


def test_create_allowed_for_all_logged_until(administrator_client):
    response = post_new(
        administrator_client, allowed_for_all="on", logged_for_all="on", logging_until="2027-02-01", description="all"
    )
    assert response.status_code == 204
    key = ApiKey.objects.get()
    assert (key.allowed_for_all, key.logged_for_all, key.logging_until) == (True, True, date(2027, 2, 1))


def test_table_partial_lists_new_key(administrator_client, make_key):
    key = make_key(description="partial row")
    response = administrator_client.get(reverse("keys:pane"), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert str(key.value) in html
    assert "<html" not in html
    assert 'id="key-table"' in html


def test_empty_state_says_how_to_start(administrator_client):
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    assert "No API keys yet. Press new to create the first key." in html


def test_empty_state_for_a_viewer(client, viewer):
    client.force_login(viewer)
    html = client.get(reverse("keys:pane")).content.decode()
    assert "Someone with the right Add/Edit Integration Settings CHQ can create one." in html


def test_edit_keeps_value_and_changes_fields(administrator_client, make_key, inventory_export):
    key = make_key(description="old", grants=[inventory_export.pk])
    response = administrator_client.post(
        reverse("keys:edit", args=[key.pk]), {"description": "new", "selected": []}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204
    edited = ApiKey.objects.get(pk=key.pk)
    assert (edited.value, edited.description, edited.is_active, edited.grants.count()) == (key.value, "new", False, 0)


def test_edit_dialog_is_filled_in(administrator_client, make_key, inventory_export):
    key = make_key(description="filled", grants=[inventory_export.pk])
    html = administrator_client.get(reverse("keys:edit", args=[key.pk])).content.decode()
    assert 'value="filled"' in html
    assert f'id="sel-{inventory_export.pk}" name="selected" value="{inventory_export.pk}" data-selected checked' in html
    assert str(key.value) in html


def test_remove(administrator_client, make_key):
    key = make_key()
    assert administrator_client.post(reverse("keys:remove", args=[key.pk])).status_code == 204
    assert not ApiKey.objects.exists()


def test_details_show_types_and_logging(administrator_client, make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2000, 1, 1))])
    html = administrator_client.get(reverse("keys:details", args=[key.pk])).content.decode()
    assert "Inventory Export" in html
    assert "2000-01-01" in html
    # The access decision says the logging has ended.
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells[:3] == ["yes", "2000-01-01", "no"]  # logged, logging until, logging now


def test_details_allowed_for_all(administrator_client, make_key):
    key = make_key(allowed_for_all=True)
    assert (
        "allowed for all</strong> API types"
        in administrator_client.get(reverse("keys:details", args=[key.pk])).content.decode()
    )


# --- hostile input: a 4xx or form errors, and nothing changes --------------------


def snapshot():
    return (
        list(ApiKey.objects.order_by("pk").values()),
        list(ApiKeyGrant.objects.order_by("pk").values()),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"selected": ["999999"]}, "Unknown API type(s): 999999"),
        ({"selected": ["abc"]}, "is not an API type id"),
        ({"logged": ["{inv}"]}, "logged needs selected."),
        ({"selected": ["{inv}"], "until-{inv}": "2027-01-01"}, "An expiration date needs logged."),
        ({"selected": ["{inv}"], "logged": ["{inv}"], "until-{inv}": "31/01/2027"}, "is not a date"),
        ({"until-424242": "2027-01-01"}, "Unknown API type(s): until-424242"),
        ({"logging_until": "not-a-date", "allowed_for_all": "on", "logged_for_all": "on"}, "Enter a valid date."),
        ({"logged_for_all": "on"}, "logged for all needs allowed for all."),
        ({"allowed_for_all": "on", "logging_until": "2027-01-01"}, "A logging expiration date needs logged for all."),
        ({"description": "x" * 256}, "Ensure this value has at most 255 characters"),
    ],
)
@pytest.mark.parametrize("target", ["new", "edit"])
def test_bad_input_changes_nothing(administrator_client, make_key, inventory_export, data, message, target):
    key = make_key(description="untouched")
    data = {
        k.replace("{inv}", str(inventory_export.pk)): (
            [v.replace("{inv}", str(inventory_export.pk)) for v in v] if isinstance(v, list) else v
        )
        for k, v in data.items()
    }
    data.setdefault("description", "changed")
    url = reverse("keys:new") if target == "new" else reverse("keys:edit", args=[key.pk])
    before = snapshot()
    response = administrator_client.post(url, data, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert message in response.content.decode()
    assert snapshot() == before


def test_bad_input_keeps_what_was_typed(administrator_client, inventory_export, customer_import):
    response = post_new(
        administrator_client,
        description="keep me",
        selected=[customer_import.pk],
        logged=[inventory_export.pk],
    )
    html = response.content.decode()
    assert 'value="keep me"' in html
    assert f'value="{customer_import.pk}" data-selected checked' in html


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("keys:edit", "get"),
        ("keys:edit", "post"),
        ("keys:remove", "get"),
        ("keys:remove", "post"),
        ("keys:details", "get"),
    ],
)
def test_missing_key_is_404(administrator_client, name, method):
    response = getattr(administrator_client, method)(reverse(name, args=[987654]), {"description": "x"})
    assert response.status_code == 404
    assert not ApiKey.objects.exists()


def test_post_carrying_another_keys_values_changes_only_the_url_key(administrator_client, make_key):
    mine, other = make_key(description="mine"), make_key(description="other")
    response = administrator_client.post(
        reverse("keys:edit", args=[mine.pk]),
        {"description": "edited", "value": str(other.value), "pk": other.pk, "id": other.pk, "key": other.pk},
    )
    assert response.status_code == 204
    mine_after, other_after = ApiKey.objects.get(pk=mine.pk), ApiKey.objects.get(pk=other.pk)
    assert (mine_after.description, mine_after.value) == ("edited", mine.value)
    assert (other_after.description, other_after.value) == ("other", other.value)


# --- query counts do not grow with the data -------------------------------------


@pytest.fixture
def many_keys(db):
    ApiKey.objects.bulk_create(ApiKey(description=f"key {i}", is_active=i % 2 == 0) for i in range(10_000))


@pytest.fixture
def many_types(db):
    ApiType.objects.bulk_create(
        ApiType(direction="export", api_id=f"bench-{i}", name=f"Bench Type {i:04d} Export") for i in range(1_000)
    )


def test_pane_queries_do_not_grow_with_10000_keys(administrator_client, many_keys, django_assert_max_num_queries):
    # session + user + permissions (2) + count + page = 6; allow a little slack, far below one-per-row.
    with django_assert_max_num_queries(8):
        response = administrator_client.get(reverse("keys:pane") + "?page=7&sort=description")
    assert response.status_code == 200
    assert response.content.decode().count("<tr data-id=") == 25


def test_dialog_queries_do_not_grow_with_1000_types(
    administrator_client, many_types, make_key, django_assert_max_num_queries
):
    key = make_key(grants=list(ApiType.objects.values_list("pk", flat=True)[:500]))
    with django_assert_max_num_queries(7):
        response = administrator_client.get(reverse("keys:edit", args=[key.pk]))
    assert response.content.decode().count("data-type-row") == ApiType.objects.count()
    with django_assert_max_num_queries(6):
        response = administrator_client.get(reverse("keys:new"))
    assert response.status_code == 200


def test_details_queries_constant(administrator_client, many_types, make_key, django_assert_max_num_queries):
    key = make_key(grants=list(ApiType.objects.values_list("pk", flat=True)[:300]))
    with django_assert_max_num_queries(7):
        response = administrator_client.get(reverse("keys:details", args=[key.pk]))
    assert response.status_code == 200


def test_pane_shows_refusal_counts(administrator_client):

    post("/chqapi/export/inventory", "not-a-key")
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    assert "Refused API calls counted by the cache:" in html
    assert "malformed key 1" in html
