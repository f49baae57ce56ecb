"""The documented steps of CHQ's "How to manage API keys", walked in Chromium
by role and accessible name."""

import re
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from keys.models import ApiKey
from keys.services import GrantSpec

pytestmark = pytest.mark.browser


def dialog(page: Page):
    return page.get_by_role("dialog")


def row_of(page: Page, key: ApiKey):
    return page.locator(f'#key-table tr[data-id="{key.pk}"]')


def test_navigate_from_settings(login, administrator):
    page = login(administrator)
    page.get_by_role("link", name="settings", exact=True).click()
    toggle = page.get_by_role("button", name="integrations")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    page.get_by_role("link", name="keys", exact=True).last.click()
    expect(page.get_by_role("heading", name="keys")).to_be_visible()
    expect(page.get_by_text("Press new to create the first key.")).to_be_visible()


def test_create_key_with_selected_and_logged_types(login, administrator):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    expect(box.get_by_role("heading", name="API key")).to_be_visible()
    box.get_by_label("is active").check()
    box.get_by_label("selected: Inventory Export").check()
    box.get_by_label("selected: Customer Import").check()
    box.get_by_label("logged: Inventory Export").check()
    row = box.locator("tr", has=page.get_by_label("logged: Inventory Export"))
    row.get_by_role("button", name="set expiration date").click()
    box.get_by_label("logging until: Inventory Export").fill("2027-03-31")
    box.get_by_label("description").fill("Shopify inventory and customers")
    box.get_by_role("button", name="save").click()

    expect(box).to_be_hidden()
    expect(page.locator("#key-table")).to_contain_text("Shopify inventory and customers")
    key = ApiKey.objects.get()
    assert key.is_active
    assert {(g.api_type.name, g.logged, g.logging_until) for g in key.grants.select_related("api_type")} == {
        ("Inventory Export", True, date(2027, 3, 31)),
        ("Customer Import", False, None),
    }
    # The new key is selected, so edit works straight away.
    expect(row_of(page, key)).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("button", name="edit")).to_be_enabled()


def test_search_by_full_and_partial_name_keeps_selections(login, administrator):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    search = box.get_by_label("search")
    visible_rows = box.locator("tr[data-type-row]:visible")

    search.fill("Inventory Price Export")
    expect(visible_rows).to_have_count(1)
    box.get_by_label("selected: Inventory Price Export").check()
    expect(box.get_by_text("showing 1 of 126 · 1 selected")).to_be_visible()

    search.fill("tax zone")
    # Tax Zone and Tax Zone Line (import and export), Tax Zone Jurisdiction (export).
    expect(visible_rows).to_have_count(5)
    box.get_by_label("selected: Tax Zone Export").check()

    search.fill("")
    expect(visible_rows).to_have_count(126)
    expect(box.get_by_label("selected: Inventory Price Export")).to_be_checked()
    expect(box.get_by_text("showing 126 of 126 · 2 selected")).to_be_visible()

    search.fill("no such api")
    expect(box.get_by_text("No API type matches.")).to_be_visible()
    # Saving with a filter on still saves the hidden selections.
    box.get_by_label("description").fill("filtered")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    assert set(ApiKey.objects.get().grants.values_list("api_type__name", flat=True)) == {
        "Inventory Price Export",
        "Tax Zone Export",
    }


def test_allowed_for_all_then_logged_for_all_then_expiration(login, administrator):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    logged_for_all = box.get_by_label("logged for all")
    expect(logged_for_all).to_be_disabled()
    box.get_by_label("allowed for all").check()
    expect(logged_for_all).to_be_enabled()
    expect(box.locator("#types")).to_have_attribute("aria-disabled", "true")
    expiry = box.locator("#all-logging").get_by_role("button", name="set expiration date")
    expect(expiry).to_be_disabled()
    logged_for_all.check()
    expiry.click()
    box.get_by_label("logging until", exact=True).fill("2027-06-30")
    box.get_by_label("description").fill("everything")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    key = ApiKey.objects.get()
    assert (key.allowed_for_all, key.logged_for_all, key.logging_until) == (True, True, date(2027, 6, 30))


def test_invalid_save_keeps_dialog_and_input(login, administrator):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    box.get_by_label("description").fill("x" * 300)
    # maxlength stops typing past 255 in a browser; force it to show the server's message.
    box.get_by_label("description").evaluate("el => { el.removeAttribute('maxlength'); el.value = 'x'.repeat(300); }")
    box.get_by_label("selected: Coupon Export").check()
    box.get_by_role("button", name="save").click()
    expect(box.get_by_role("alert")).to_be_visible()
    expect(box.get_by_text(re.compile("at most 255 characters"))).to_be_visible()
    expect(box.get_by_label("selected: Coupon Export")).to_be_checked()
    assert not ApiKey.objects.exists()


def test_escape_closes_without_saving(login, administrator):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    dialog(page).get_by_label("description").fill("never saved")
    page.keyboard.press("Escape")
    dialog(page).get_by_role("button", name="discard").click()  # it asks first: there are changes
    expect(dialog(page)).to_be_hidden()
    assert not ApiKey.objects.exists()


def test_edit_selected_key(login, administrator, make_key, inventory_export):
    key = make_key(description="before", grants=[inventory_export.pk])
    page = login(administrator)
    edit = page.get_by_role("button", name="edit")
    expect(edit).to_be_disabled()
    row_of(page, key).click()
    expect(row_of(page, key)).to_have_attribute("aria-selected", "true")
    edit.click()
    box = dialog(page)
    expect(box.get_by_label("description")).to_have_value("before")
    expect(box.get_by_label("selected: Inventory Export")).to_be_checked()
    box.get_by_label("description").fill("after")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    expect(row_of(page, key)).to_contain_text("after")
    key.refresh_from_db()
    assert key.description == "after"


def test_keyboard_moves_selection_enter_edits_delete_removes(login, administrator, make_key):
    first, second = make_key(description="first"), make_key(description="second")
    page = login(administrator)
    row_of(page, second).click()  # newest first
    page.keyboard.press("ArrowDown")
    expect(row_of(page, first)).to_have_attribute("aria-selected", "true")
    expect(row_of(page, first)).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog(page).get_by_label("description")).to_have_value("first")
    page.keyboard.press("Escape")
    expect(dialog(page)).to_be_hidden()
    expect(row_of(page, first)).to_be_focused()
    page.keyboard.press("Delete")
    expect(dialog(page).get_by_role("heading", name="remove API key")).to_be_visible()


def test_remove_with_yes(login, administrator, make_key):
    key = make_key(description="to remove")
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="remove").click()
    box = dialog(page)
    expect(box.get_by_role("heading", name="remove API key")).to_be_visible()
    expect(box).to_contain_text(str(key.value))
    expect(box).to_contain_text("to remove")
    box.get_by_role("button", name="no").click()
    expect(box).to_be_hidden()
    assert ApiKey.objects.filter(pk=key.pk).exists()
    page.get_by_role("button", name="remove").click()
    dialog(page).get_by_role("button", name="yes").click()
    expect(row_of(page, key)).to_have_count(0)
    expect(page.get_by_text("API key removed.")).to_be_visible()
    assert not ApiKey.objects.exists()


def test_copy_button_puts_value_on_clipboard(login, administrator, make_key):
    key = make_key(description="copy me")
    page = login(administrator)
    page.get_by_role("button", name=f"copy {key.value}").click()
    expect(page.get_by_text("API key value copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == str(key.value)


def test_value_is_plain_selectable_text(login, administrator, make_key):
    key = make_key()
    page = login(administrator)
    value = row_of(page, key).locator(".key-value")
    value.select_text()
    assert page.evaluate("String(window.getSelection())") == str(key.value)


def test_double_click_value_shows_api_types(login, administrator, make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2099, 1, 31))])
    page = login(administrator)
    row_of(page, key).locator(".key-value").dblclick()
    box = dialog(page)
    expect(box.get_by_role("heading", name="API types of the key")).to_be_visible()
    row = box.get_by_role("row", name=re.compile("Inventory Export"))
    expect(row).to_contain_text("2099-01-31")
    expect(row.get_by_role("cell").first).to_have_text("yes")


def test_read_only_user_sees_pane_and_details_but_cannot_change(login, viewer, make_key):
    key = make_key(allowed_for_all=True, description="read only")
    page = login(viewer)
    expect(page.locator("#key-table")).to_contain_text("read only")
    for name in ("new", "edit", "remove"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    row_of(page, key).locator(".key-value").dblclick()
    expect(dialog(page)).to_contain_text("allowed for all")
    # The server refuses a change even when the page is bypassed.
    status = page.evaluate(
        """async (url) => {
            const token = document.body.getAttribute('hx-headers').match(/"x-csrftoken": "([^"]+)"/)[1];
            const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}});
            return r.status;
        }""",
        f"/settings/integrations/keys/{key.pk}/remove/",
    )
    assert status == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_conflicting_edit_is_refused_with_reload(login, administrator, make_key):
    from keys.audit import Actor
    from keys.services import api_key_change

    key = make_key(description="start")
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = dialog(page)
    box.get_by_label("description").fill("mine")
    api_key_change(key=key, actor=Actor(name="colleague"), description="theirs")  # someone else saves first
    box.get_by_role("button", name="save").click()
    expect(box.get_by_role("alert")).to_contain_text("This API key was changed by")
    expect(box.get_by_label("description")).to_have_value("mine")
    box.get_by_role("button", name="reload").click()
    expect(box.get_by_label("description")).to_have_value("theirs")
    box.get_by_label("description").fill("merged")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    key.refresh_from_db()
    assert key.description == "merged"


def test_history_of_selected_key(login, administrator, make_key):
    key = make_key(description="tracked")
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="history").click()
    box = dialog(page)
    expect(box.get_by_role("heading", name="history of the key")).to_be_visible()
    expect(box).to_contain_text("created")


def test_logs_of_selected_key(login, viewer, make_key, inventory_export):
    from django.test import Client

    key = make_key(description="logged", grants=[GrantSpec(inventory_export.pk, logged=True)])
    api = Client()
    for source in ("erp-1", "erp-2"):
        api.post(
            "/chqapi/export/inventory", {"Source": source}, content_type="application/json", HTTP_APIKEY=str(key.value)
        )
    page = login(viewer)
    row_of(page, key).click()
    page.get_by_role("button", name="logs").click()
    expect(page.get_by_role("heading", name="logs")).to_be_visible()
    table = page.get_by_role("table", name="stored calls")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").first).to_contain_text("erp-2")  # newest first
    table.get_by_role("button", name="open").first.click()
    box = dialog(page)
    expect(box.get_by_role("heading", name="stored call")).to_be_visible()
    expect(box).to_contain_text('"Source": "erp-2"')
    page.keyboard.press("Escape")
    page.get_by_label("status code").fill("200")
    page.get_by_role("button", name="filter").click()
    expect(table.locator("tbody tr.empty")).to_contain_text("No stored calls match.")
    expect(page.get_by_role("link", name="export CSV")).to_have_attribute(
        "href", re.compile(r"logs\.csv\?.*status=200")
    )
