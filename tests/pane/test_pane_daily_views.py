"""The daily-tool parts of the pane (issue 13) through the test client: the keys
search, the state of each key, history in the pane's words, the log viewer's
type filter. The browser tests walk the same parts in Chromium."""

import json
import re
from datetime import date, datetime, timedelta
from html import unescape as html_unescape

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from keys.access import key_problems
from keys.audit import Actor, describe
from keys.models import ApiKey, ApiType, KeyAudit
from keys.services import GrantSpec, api_key_change, api_key_remove
from tests.api_calls import post

pytestmark = pytest.mark.django_db


def shown_ids(response) -> set[int]:
    return {int(i) for i in re.findall(r'<tr data-id="(\d+)"', response.content.decode())}


# --- search --------------------------------------------------------------------------


def test_search_by_description_words_in_any_order(administrator_client, make_key):
    shop = make_key(description="Shopify orders EU")
    make_key(description="ERP stock")
    response = administrator_client.get(reverse("keys:pane"), {"q": "eu SHOPIFY"})
    assert shown_ids(response) == {shop.pk}


@pytest.mark.parametrize("part", ["last4", "hyphenated", "whole", "whole-bare", "upper"])
def test_search_by_value(administrator_client, make_key, part):
    key, other = make_key(), make_key()
    value = str(key.value)
    query = {
        "last4": value[-4:],
        "hyphenated": value[4:13],
        "whole": value,
        "whole-bare": value.replace("-", ""),
        "upper": value[-6:].upper(),
    }[part]
    assert query not in str(other.value)
    assert shown_ids(administrator_client.get(reverse("keys:pane"), {"q": query})) == {key.pk}


def test_search_with_nothing_found_says_so_and_keeps_the_query(administrator_client, make_key):
    make_key(description="present")
    html = administrator_client.get(reverse("keys:pane"), {"q": "absent"}).content.decode()
    assert "No key matches the search." in html
    assert 'value="absent"' in html


def search(client, q: str):
    """The search box as htmx sends it: a POST from the search form."""
    return client.post(reverse("keys:pane"), {"q": q}, HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="key-search-form")


@pytest.mark.parametrize("form", ["hyphenated", "bare", "upper", "a long part"])
def test_a_search_for_a_key_value_finds_it_and_the_value_never_reaches_an_address(administrator_client, make_key, form):
    key, other = make_key(description="shop"), make_key(description="shop")
    value = str(key.value)
    typed = {"hyphenated": value, "bare": key.value.hex, "upper": value.upper(), "a long part": value[:23]}[form]
    response = search(administrator_client, f"shop {typed}")
    assert shown_ids(response) == {key.pk}
    assert response["HX-Push-Url"] == f"{reverse('keys:pane')}?q=shop"  # the rest of the search, not the value
    html = response.content.decode()
    addresses = re.findall(r'(?:href|hx-get|hx-post|action)="([^"]*)"', html)
    assert addresses  # the sort links are there
    assert not [a for a in addresses if typed.lower() in a.lower()]
    # The table reloading itself after a change posts the whole search again: it keeps finding the key.
    state = json.loads(html_unescape(re.search(r'hx-vals="([^"]*)"', html).group(1)))
    assert state == {"q": f"shop {typed}"}
    reloaded = administrator_client.post(
        reverse("keys:pane"), state, HTTP_HX_REQUEST="true", HTTP_HX_TRIGGER="key-table"
    )
    assert shown_ids(reloaded) == {key.pk}
    assert "HX-Push-Url" not in reloaded  # a reload is no step for the back button
    assert other.pk not in shown_ids(reloaded)


def test_a_search_without_a_value_keeps_its_words_in_the_address_and_the_sort_links(administrator_client, make_key):
    shop = make_key(description="shopify EU")
    make_key(description="erp")
    response = search(administrator_client, "shopify " + str(shop.value)[-4:])
    assert shown_ids(response) == {shop.pk}
    pushed = response["HX-Push-Url"]
    assert pushed == f"{reverse('keys:pane')}?q=shopify+{str(shop.value)[-4:]}"
    assert "q=shopify" in re.search(r'<th[^>]*>\s*<a href="([^"]*)"', response.content.decode()).group(1)
    assert shown_ids(administrator_client.get(pushed)) == {shop.pk}  # reload and back land on the same keys


def test_a_search_after_the_session_ended_sends_to_the_login_without_the_value(client, make_key):
    value = str(make_key().value)
    response = search(client, value)
    assert response.status_code in (200, 302)
    assert reverse("login") in (response.get("Location", "") + response.get("HX-Redirect", ""))
    assert value not in str(response.headers)


def test_the_search_box_posts_and_a_post_without_the_csrf_token_is_refused(administrator, make_key):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(administrator)
    html = browser.get(reverse("keys:pane")).content.decode()
    form = re.search(r'<form id="key-search-form"[^>]*>', html).group(0)
    assert 'method="post"' in form
    assert "hx-post=" in form
    assert "hx-get" not in form
    assert "hx-push-url" not in form
    assert browser.post(reverse("keys:pane"), {"q": "x"}).status_code == 403
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    assert browser.post(reverse("keys:pane"), {"q": "x", "csrfmiddlewaretoken": token}).status_code == 200


def test_an_old_address_with_a_value_finds_the_key_but_its_links_drop_the_value(administrator_client, make_key):
    key = make_key()
    response = administrator_client.get(reverse("keys:pane"), {"q": str(key.value), "sort": "-created_at"})
    assert shown_ids(response) == {key.pk}
    links = re.findall(r'href="([^"]*)"', response.content.decode())
    assert [link for link in links if "sort=" in link]
    assert not [link for link in links if str(key.value) in link]


def test_search_is_bounded(administrator_client):
    assert administrator_client.get(reverse("keys:pane"), {"q": "x" * 201}).status_code == 400


def test_state_column_cannot_be_sorted(administrator_client):
    response = administrator_client.get(reverse("keys:pane"), {"sort": "state"})
    assert response.status_code == 400
    assert "sort must be one of" in response.content.decode()


# --- the state of a key ----------------------------------------------------------------


def test_key_problems_follow_the_decision_rules(make_key, inventory_export):
    today = timezone.localdate()
    assert key_problems(make_key(is_active=False, allowed_for_all=True)) == ["inactive"]
    assert key_problems(make_key()) == ["calls nothing"]
    assert key_problems(make_key(grants=[GrantSpec(inventory_export.pk)])) == []
    ended = GrantSpec(inventory_export.pk, logged=True, logging_until=today - timedelta(days=1))
    assert key_problems(make_key(grants=[ended])) == ["logging ended"]
    # "until today" still logs today.
    assert key_problems(make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=today)])) == []
    all_ended = make_key(allowed_for_all=True, logged_for_all=True, logging_until=today - timedelta(days=1))
    assert key_problems(all_ended) == ["logging ended"]
    # A kept per-type grant is ignored while allowed for all, as judge() ignores it.
    assert key_problems(make_key(allowed_for_all=True, grants=[ended])) == []


def test_table_shows_each_keys_state(administrator_client, make_key, inventory_export):
    off = make_key(is_active=False, description="off")
    fine = make_key(grants=[GrantSpec(inventory_export.pk)], description="fine")
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    rows = {int(i): row for i, row in re.findall(r'<tr data-id="(\d+)".*?>(.*?)</tr>', html, re.S)}
    assert "inactive" in rows[off.pk]
    assert "calls nothing" in rows[off.pk]
    assert "calls allowed" in rows[fine.pk]


def test_saving_an_unusable_key_still_saves(administrator_client):
    response = administrator_client.post(reverse("keys:new"), {"description": "later"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert ApiKey.objects.get().description == "later"


# --- history in the pane's words ---------------------------------------------------------


def test_describe_every_change_in_the_panes_words():
    changes = {
        "is active": [False, True],
        "logging until": [None, "2026-12-15"],
        "api_types": {
            "Inventory Export": [None, {"logged": True, "logging until": "2026-12-15"}],
            "Customer Import": [{"logged": False, "logging until": None}, None],
        },
    }
    assert describe(changes) == [
        "is active: no → yes",
        "logging until: (none) → 2026-12-15",
        "Inventory Export: not selected → selected, logged until 2026-12-15",
        "Customer Import: selected, not logged → not selected",
    ]


def test_history_page_shows_logging_until_and_yes_no(administrator_client, make_key, inventory_export):
    key = make_key(is_active=False, grants=[GrantSpec(inventory_export.pk)])
    api_key_change(
        key=key,
        actor=Actor(name="ops"),
        is_active=True,
        add_grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2026, 12, 15))],
    )
    html = administrator_client.get(reverse("keys:history", args=[key.pk])).content.decode()
    assert "is active: no → yes" in html
    assert "Inventory Export: selected, not logged → selected, logged until 2026-12-15" in html
    assert "True" not in html
    assert "False" not in html


def test_removal_and_type_rename_entries_are_described(make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    api_key_remove(key=key, actor=Actor(name="ops"))
    removed = KeyAudit.objects.get(action=KeyAudit.Action.REMOVED)
    assert "Inventory Export: selected, logged → not selected" in describe(removed.changes)
    assert describe({"API type": ["A (export/a)", "B (export/a)"]}) == ["API type: A (export/a) → B (export/a)"]


# --- the log viewer -----------------------------------------------------------------------


def test_log_filter_lists_only_types_the_key_has_called(
    administrator_client, make_key, inventory_export, customer_import
):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True), GrantSpec(customer_import.pk, logged=True)])
    post("/chqapi/export/inventory", key.value)
    html = administrator_client.get(reverse("keys:logs", args=[key.pk])).content.decode()
    options = re.findall(r"<option value=\"(\d*)\"[^>]*>([^<]*)</option>", html)
    assert options == [("", "all API types"), (str(inventory_export.pk), "Inventory Export")]
    # A type the key never called is not a valid choice either.
    response = administrator_client.get(reverse("keys:logs", args=[key.pk]), {"api_type": customer_import.pk})
    assert response.status_code == 400


def test_log_filter_types_query_count_does_not_grow(administrator_client, make_key, django_assert_max_num_queries):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    api = Client()
    for api_type in ApiType.objects.filter(direction="export")[:20]:
        post(api_type.path, key.value, client=api)
    with django_assert_max_num_queries(8):
        response = administrator_client.get(reverse("keys:logs", args=[key.pk]))
    assert response.content.decode().count("<option value=") == 21


def test_dates_in_the_dialog_are_iso_text(administrator_client, make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True, logging_until=date(2099, 1, 31))
    html = administrator_client.get(reverse("keys:edit", args=[key.pk])).content.decode()
    assert re.search(r'<input type="text" name="logging_until" id="id_logging_until" value="2099-01-31"', html)
    assert 'type="date"' not in html
    assert 'placeholder="YYYY-MM-DD"' in html


def test_key_problems_at_a_given_moment(make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2026, 1, 1))])
    before_the_end = timezone.make_aware(datetime(2025, 12, 31, 12, 0))
    assert key_problems(key, at=before_the_end) == []
    assert key_problems(key, at=before_the_end + timedelta(days=2)) == ["logging ended"]
