"""The keys pane as a daily tool (issue 13), at a desk and on a phone: every
test runs at 1280×800 and at 390×844 in a real Chromium."""

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from keys.audit import Actor
from keys.models import ApiKey, ApiKeyGrant, ApiType
from keys.services import NO_CONTACT, NO_LIMITS, GrantSpec, api_key_update

pytestmark = pytest.mark.browser

SIZES = {"desk": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(params=list(SIZES))
def size(request, page: Page) -> str:
    page.set_viewport_size(SIZES[request.param])
    return request.param


def dialog(page: Page):
    """The pane's one <dialog> (a calendar opened inside it is a dialog of its own)."""
    return page.locator("dialog#dialog")


def row_of(page: Page, key: ApiKey):
    return page.locator(f'#key-table tr[data-id="{key.pk}"]')


def type_row(page: Page, name: str):
    return dialog(page).locator("tr[data-type-row]", has=page.get_by_label(f"selected: {name}", exact=True))


def matching(query: str) -> list[str]:
    """The type names a search should show: every word in the name, API id or path."""
    words = query.lower().split()
    types = ApiType.objects.order_by("name")
    return [t.name for t in types if all(w in f"{t.name} {t.api_id} {t.path}".lower() for w in words)]


def assert_fits(page: Page) -> None:
    """Nothing wider than the window, and the dialog's buttons (if one is open) on screen."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page is {width}px wide"
    box = dialog(page)
    if box.count() and box.is_visible():
        for button in box.locator(".dialog-actions button, .dialog-actions a").all():
            if button.is_visible():
                b = button.bounding_box()
                assert b["x"] >= 0
                assert b["x"] + b["width"] <= page.viewport_size["width"] + 0.5
                assert b["y"] >= 0
                assert b["y"] + b["height"] <= page.viewport_size["height"] + 0.5


def check_screen(page: Page, name: str, size: str) -> None:
    """Fits the window, passes axe-core's WCAG 2 A/AA rules, and is kept as a screenshot to look at."""
    assert_fits(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}-{size}.png")
    # Evaluated through the DevTools protocol, so the page's Content Security Policy stays as strict as served.
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    problems = [f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in result["violations"]]
    assert problems == [], f"{name} at {size}"


def open_menu_if_folded(page: Page) -> None:
    toggle = page.get_by_role("button", name="settings menu")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false":
        toggle.click()


# --- 1. every action of CHQ's page at both sizes ---------------------------------------


def test_every_action_fits_and_works(login, administrator, size, inventory_export, customer_import):
    page = login(administrator)
    assert_fits(page)
    if size == "phone":
        expect(page.locator(".sidebar")).to_be_hidden()  # folded into the menu
        open_menu_if_folded(page)
        expect(page.get_by_role("navigation", name="settings").get_by_role("link", name="keys")).to_be_visible()
        page.get_by_role("button", name="settings menu").click()

    page.get_by_role("button", name="new").click()
    box = dialog(page)
    expect(box.get_by_role("heading", name="API key")).to_be_visible()
    assert_fits(page)
    box.get_by_label("is active").check()
    box.get_by_label("selected: Inventory Export").check()
    box.get_by_label("logged: Inventory Export").check()
    box.get_by_label("description").fill("phone and desk")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    key = ApiKey.objects.get()
    row = row_of(page, key)
    expect(row).to_contain_text("phone and desk")
    expect(row.locator(".key-value")).to_be_in_viewport()
    assert_fits(page)

    page.get_by_role("button", name="edit").click()
    box.get_by_label("selected: Customer Import").check()
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    assert set(key.grants.values_list("api_type__name", flat=True)) == {"Inventory Export", "Customer Import"}

    row.get_by_role("button", name=re.compile("^copy")).click()
    assert page.evaluate("navigator.clipboard.readText()") == str(key.value)

    row.locator(".key-value").dblclick()
    expect(box.get_by_role("heading", name="API types of the key")).to_be_visible()
    assert_fits(page)
    box.get_by_role("button", name="close").click()

    page.get_by_role("button", name="history").click()
    expect(box.get_by_role("heading", name="history of the key")).to_be_visible()
    assert_fits(page)
    box.get_by_role("button", name="close").click()

    page.get_by_role("button", name="remove").click()
    expect(box.get_by_role("heading", name="remove API key")).to_be_visible()
    assert_fits(page)
    box.get_by_role("button", name="yes").click()
    expect(box).to_be_hidden()
    expect(page.locator("#key-table")).to_contain_text("No API keys yet.")
    assert not ApiKey.objects.exists()


def test_screens_fit_pass_axe_and_are_kept(login, administrator, size, make_key, inventory_export, customer_import):
    from django.test import Client

    key = make_key(
        description="ERP inventory",
        is_active=True,
        grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2099, 1, 31))],
    )
    make_key(description="switched off", is_active=False)
    Client().post(
        "/chqapi/export/inventory", {"Source": "erp"}, content_type="application/json", HTTP_APIKEY=str(key.value)
    )
    grants = [
        GrantSpec(inventory_export.pk, logged=True, logging_until=date(2099, 2, 28)),
        GrantSpec(customer_import.pk),
    ]
    api_key_update(
        key=ApiKey.objects.get(pk=key.pk),
        actor=Actor(name="ops"),
        description="ERP inventory feed",
        grants=grants,
        is_active=True,
        expires_at=None,
        allowed_for_all=False,
        logged_for_all=False,
        logging_until=None,
        **NO_LIMITS,
        **NO_CONTACT,
    )
    page = login(administrator)
    check_screen(page, "pane", size)
    if size == "phone":
        open_menu_if_folded(page)
        check_screen(page, "pane-menu", size)
        page.get_by_role("button", name="settings menu").click()
    box = dialog(page)

    page.get_by_role("button", name="new").click()
    expect(box.get_by_role("heading", name="API key")).to_be_visible()
    check_screen(page, "dialog-new", size)
    box.get_by_role("button", name="cancel").click()
    expect(box).to_be_hidden()

    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    expect(box.get_by_role("heading", name="API key")).to_be_visible()
    check_screen(page, "dialog-edit", size)
    box.get_by_role("button", name="cancel").click()

    row_of(page, key).locator(".key-value").dblclick()
    expect(box.get_by_role("heading", name="API types of the key")).to_be_visible()
    check_screen(page, "details", size)
    box.get_by_role("button", name="close").click()

    page.get_by_role("button", name="history").click()
    expect(box.get_by_role("heading", name="history of the key")).to_be_visible()
    check_screen(page, "history", size)
    box.get_by_role("button", name="close").click()

    page.get_by_role("button", name="remove").click()
    expect(box.get_by_role("heading", name="remove API key")).to_be_visible()
    check_screen(page, "remove", size)
    box.get_by_role("button", name="no").click()

    page.get_by_role("button", name="roll").click()
    expect(box.get_by_role("heading", name="roll API key")).to_be_visible()
    check_screen(page, "roll", size)
    box.get_by_role("button", name="cancel").click()

    page.get_by_role("button", name="logs").click()
    expect(page.get_by_role("heading", name="logs")).to_be_visible()
    check_screen(page, "logs", size)
    page.get_by_role("button", name="open").first.click()
    expect(box.get_by_role("heading", name="stored call")).to_be_visible()
    check_screen(page, "log-entry", size)


# --- 2. big selections ------------------------------------------------------------------


def test_edit_opens_on_the_selection_and_selected_only_hides_the_rest(login, administrator, size, make_key):
    last = ApiType.objects.order_by("-name")[:2]
    key = make_key(grants=[GrantSpec(t.pk) for t in last])
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = dialog(page)
    rows = box.locator("tr[data-type-row]")
    # Selected types first, in name order, and on screen without scrolling.
    names = sorted(t.name for t in last)
    for i, name in enumerate(names):
        expect(rows.nth(i).get_by_label(f"selected: {name}", exact=True)).to_be_checked()
        expect(rows.nth(i)).to_be_in_viewport()
    box.get_by_label("selected only").check()
    expect(box.locator("tr[data-type-row]:visible")).to_have_count(2)
    expect(box.locator("[data-type-count]")).to_contain_text("showing 2 of")
    box.get_by_label("selected only").uncheck()
    expect(box.locator("tr[data-type-row]:visible")).to_have_count(ApiType.objects.count())


def test_search_then_select_shown_then_log_all_selected(login, administrator, size):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    box.get_by_label("is active").check()
    box.get_by_role("searchbox", name="search").fill("inventory export")
    shown = box.locator("tr[data-type-row]:visible")
    expected = matching("inventory export")
    expect(shown).to_have_count(len(expected))
    box.get_by_role("button", name="select shown", exact=True).click()
    box.get_by_role("searchbox", name="search").fill("")
    box.get_by_label("selected only").check()
    expect(shown).to_have_count(len(expected))
    box.get_by_label("until", exact=True).fill("2099-06-30")
    box.get_by_role("button", name="log all selected").click()
    for name in expected:
        expect(box.get_by_label(f"logged: {name}", exact=True)).to_be_checked()
        expect(box.get_by_label(f"logging until: {name}", exact=True)).to_have_value("2099-06-30")
    box.get_by_role("button", name="unselect shown").click()
    expect(box.locator("[data-type-count]")).to_contain_text("0 selected")
    box.get_by_label("selected only").uncheck()
    box.get_by_role("searchbox", name="search").fill("inventory export")
    box.get_by_role("button", name="select shown", exact=True).click()
    box.get_by_role("button", name="log all selected").click()
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    grants = ApiKeyGrant.objects.filter(key=ApiKey.objects.get()).select_related("api_type")
    assert sorted((g.api_type.name, g.logged, g.logging_until) for g in grants) == sorted(
        (name, True, date(2099, 6, 30)) for name in expected
    )


# --- 3. search ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "must_show"),
    [
        ("apidocument", "API Document Export"),
        ("/chqapi/export/asn", None),
        ("invent exp", "Inventory Export"),
        ("EXPORT inventory", "Inventory Export"),
    ],
)
def test_type_search_matches_name_id_and_path_in_any_order(login, administrator, size, query, must_show):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    box.get_by_role("searchbox", name="search").fill(query)
    expected = set(matching(query))
    assert expected, "the query must match something in the catalog"
    if must_show:
        assert must_show in expected
    shown = box.locator("tr[data-type-row]:visible th")
    expect(shown).to_have_count(len(expected))
    names = {re.sub(r"\s+/chqapi/.*$", "", text.split("\n")[0]).strip() for text in shown.all_inner_texts()}
    assert names == expected


def test_full_name_shows_that_type_first(login, administrator, size):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    box.get_by_role("searchbox", name="search").fill("Inventory Export")
    first = box.locator("tr[data-type-row]:visible").first
    expect(first.get_by_label("selected: Inventory Export", exact=True)).to_be_visible()


def test_keys_table_search_by_description_and_last_four(login, administrator, size, make_key):
    shop = make_key(description="Shopify orders")
    erp = make_key(description="ERP stock")
    page = login(administrator)
    search = page.get_by_role("searchbox", name="search keys")
    search.fill("shopify")
    expect(row_of(page, shop)).to_be_visible()
    expect(row_of(page, erp)).to_have_count(0)
    search.fill(str(erp.value)[-4:])
    expect(row_of(page, erp)).to_be_visible()
    expect(page).to_have_url(re.compile(rf"q={str(erp.value)[-4:]}"))
    search.fill("nothing-like-this")
    expect(page.locator("#key-table")).to_contain_text("No key matches the search.")


def test_keys_table_search_by_a_whole_value_never_puts_it_in_an_address(login, administrator, make_key):
    shop = make_key(description="Shopify orders")
    wanted = make_key(description="Shopify returns")
    value = str(wanted.value)
    page = login(administrator)
    addresses = []
    page.on("request", lambda request: addresses.append(request.url))
    search = page.get_by_role("searchbox", name="search keys")
    search.fill("shopify")
    expect(row_of(page, shop)).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?q=shopify$"))

    search.fill(value)  # as pasted from an integrator's message
    expect(row_of(page, shop)).to_have_count(0)
    expect(row_of(page, wanted)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/settings/integrations/keys/$"))
    # A change reloads the table with the same search (posted again, not put in an address).
    row_of(page, wanted).click()
    page.get_by_role("button", name="edit").click()
    dialog(page).get_by_label("description").fill("Shopify returns EU")
    dialog(page).get_by_role("button", name="save").click()
    expect(row_of(page, wanted)).to_contain_text("Shopify returns EU")
    expect(row_of(page, shop)).to_have_count(0)

    page.go_back()  # the search before
    expect(page).to_have_url(re.compile(r"\?q=shopify$"))
    expect(row_of(page, shop)).to_be_visible()
    page.reload()
    expect(row_of(page, shop)).to_be_visible()
    for part in (value, wanted.value.hex, value[:23]):
        assert not [address for address in addresses if part in address], part


# --- 4. history ----------------------------------------------------------------------------


def test_history_shows_every_fact_in_the_panes_words(login, administrator, size, make_key, inventory_export):
    key = make_key(description="before", is_active=False, grants=[GrantSpec(inventory_export.pk)])
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = dialog(page)
    box.get_by_label("is active").check()
    box.get_by_label("logged: Inventory Export").check()
    type_row(page, "Inventory Export").get_by_role("button", name="set expiration date").click()
    box.get_by_label("logging until: Inventory Export").fill("2026-12-15")
    box.get_by_label("description").fill("after")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    page.get_by_role("button", name="history").click()
    entry = box.locator(".history-list > li").first
    expect(entry).to_contain_text("is active: no → yes")
    expect(entry).to_contain_text("description: before → after")
    expect(entry).to_contain_text("Inventory Export: selected, not logged → selected, logged until 2026-12-15")
    expect(box).not_to_contain_text("True")
    expect(box).not_to_contain_text("False")


# --- 5. unusable keys ----------------------------------------------------------------------


def test_warnings_before_saving_and_state_in_the_table(login, administrator, size, inventory_export):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    warnings = box.get_by_role("status").filter(has_text="You can save")
    expect(warnings).to_contain_text("is inactive")
    expect(warnings).to_contain_text("calls nothing")
    box.get_by_label("is active").check()
    box.get_by_label("selected: Inventory Export").check()
    expect(warnings).to_be_hidden()
    box.get_by_label("logged: Inventory Export").check()
    type_row(page, "Inventory Export").get_by_role("button", name="set expiration date").click()
    yesterday = (timezone.localdate() - timedelta(days=2)).isoformat()
    box.get_by_label("logging until: Inventory Export").fill(yesterday)
    expect(warnings).to_contain_text("logging until date in the past")
    box.get_by_label("is active").uncheck()
    box.get_by_role("button", name="save").click()  # save stays possible
    expect(box).to_be_hidden()
    key = ApiKey.objects.get()
    state = row_of(page, key).locator("td.state-cell")
    expect(state).to_contain_text("inactive")
    expect(state).to_contain_text("logging ended")


# --- 6. no lost edits ----------------------------------------------------------------------


def ask_before_closing(page: Page, key: ApiKey, way_out: str) -> None:
    """Leaving an unchanged dialog closes it; leaving a changed one asks, keeps or discards."""
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = dialog(page)
    expect(box.get_by_label("description")).to_have_value("kept")

    def leave():
        if way_out == "escape":
            page.keyboard.press("Escape")
        elif way_out == "cancel":
            box.get_by_role("button", name="cancel").click()
        else:
            page.mouse.click(2, 2)  # on the backdrop

    leave()
    expect(box).to_be_hidden()
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box.get_by_label("description").fill("typed but not saved")
    leave()
    ask = box.get_by_role("alertdialog")
    expect(ask).to_contain_text("Discard your changes?")
    ask.get_by_role("button", name="keep editing").click()
    expect(box.get_by_label("description")).to_have_value("typed but not saved")
    leave()
    box.get_by_role("button", name="discard").click()
    expect(box).to_be_hidden()
    key.refresh_from_db()
    assert key.description == "kept"


@pytest.mark.parametrize("way_out", ["escape", "cancel"])
def test_closing_with_changes_asks_first(login, administrator, size, make_key, way_out):
    key = make_key(description="kept")
    ask_before_closing(login(administrator), key, way_out)


def test_click_outside_with_changes_asks_first(login, administrator, make_key):
    # At desk size only: on a phone the dialog fills the screen, so there is no outside to click.
    key = make_key(description="kept")
    ask_before_closing(login(administrator), key, "outside")


# --- 7. the dialog stays put -----------------------------------------------------------------


def test_dialog_does_not_move_while_searching_or_switching(login, administrator, size):
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    save = box.get_by_role("button", name="save")
    expect(save).to_be_visible()
    where = [box.bounding_box(), save.bounding_box()]
    box.get_by_role("searchbox", name="search").fill("inventory export")
    assert [box.bounding_box(), save.bounding_box()] == where
    box.get_by_role("searchbox", name="search").fill("no type has this name")
    assert [box.bounding_box(), save.bounding_box()] == where
    box.get_by_label("allowed for all").check()
    expect(box.locator("[data-all-note]")).to_be_visible()
    assert [box.bounding_box(), save.bounding_box()] == where


# --- 8. triple-click --------------------------------------------------------------------------


def test_triple_click_selects_the_guid_and_opens_nothing(login, administrator, size, make_key):
    key = make_key()
    page = login(administrator)
    row_of(page, key).locator(".key-value").click(click_count=3)
    page.wait_for_timeout(700)  # longer than the pane waits for a third click
    expect(dialog(page)).to_be_hidden()
    assert page.evaluate("String(window.getSelection())").strip() == str(key.value)
    row_of(page, key).locator(".key-value").dblclick()
    expect(dialog(page).get_by_role("heading", name="API types of the key")).to_be_visible()


# --- 9. smaller ---------------------------------------------------------------------------------


def test_per_type_last_used_is_shown(login, administrator, size, make_key, inventory_export):
    key = make_key(is_active=True, grants=[GrantSpec(inventory_export.pk)])
    used = timezone.now().replace(second=0, microsecond=0)
    ApiKeyGrant.objects.filter(key=key).update(last_used_at=used)
    shown = timezone.localtime(used).strftime("%Y-%m-%d %H:%M")
    page = login(administrator)
    row_of(page, key).locator(".key-value").dblclick()
    box = dialog(page)
    expect(box.get_by_role("row", name=re.compile("Inventory Export"))).to_contain_text(shown)
    box.get_by_role("button", name="close").click()
    page.get_by_role("button", name="edit").click()
    expect(type_row(page, "Inventory Export")).to_contain_text(f"last used {shown}")


def test_log_filter_lists_called_types_and_keys_stays_marked(
    login, administrator, size, make_key, inventory_export, customer_import
):
    from django.test import Client

    key = make_key(is_active=True, grants=[GrantSpec(inventory_export.pk, logged=True), GrantSpec(customer_import.pk)])
    Client().post("/chqapi/export/inventory", {}, content_type="application/json", HTTP_APIKEY=str(key.value))
    page = login(administrator)
    page.goto(f"/settings/integrations/keys/{key.pk}/logs/")
    options = page.get_by_label("API type").locator("option")
    expect(options).to_have_text(["all API types", "Inventory Export"])
    open_menu_if_folded(page)
    expect(page.get_by_role("navigation", name="settings").get_by_role("link", name="keys")).to_have_attribute(
        "aria-current", "true"
    )
    # Dates are written and shown as the tables show them.
    page.get_by_label("from (YYYY-MM-DD)").fill("2026-01-02")
    page.get_by_role("button", name="filter").click()
    expect(page.get_by_label("from (YYYY-MM-DD)")).to_have_value("2026-01-02")


def test_dates_are_iso_and_a_cleared_selection_hides_its_date(login, administrator, size, make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2099, 1, 31))])
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = dialog(page)
    until = box.get_by_label("logging until: Inventory Export")
    expect(until).to_have_value("2099-01-31")
    expect(until).to_have_attribute("placeholder", "YYYY-MM-DD")
    box.get_by_label("selected: Inventory Export").uncheck()
    expect(until).to_be_hidden()
    box.get_by_label("selected: Inventory Export").check()
    box.get_by_label("logged: Inventory Export").check()
    expect(until).to_be_visible()
    expect(until).to_have_value("2099-01-31")


def test_narrowest_supported_window_still_fits(login, administrator, page, make_key):
    """360 px, the narrowest phone the pane supports: the table and the dialog still fit."""
    make_key(description="a description long enough to wrap onto a second line on a small phone")
    page.set_viewport_size({"width": 360, "height": 640})
    login(administrator)
    assert_fits(page)
    page.get_by_role("button", name="new").click()
    expect(dialog(page).get_by_role("heading", name="API key")).to_be_visible()
    assert_fits(page)
    expect(dialog(page).get_by_role("button", name="save")).to_be_in_viewport()


# --- keys that expire (issue 14, part 1) -------------------------------------------------------


def test_expiry_set_in_the_dialog_warned_and_shown(login, administrator, size, make_key):
    key = make_key(allowed_for_all=True, description="expiring")
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = dialog(page)
    expires = box.get_by_label("expires")
    expect(expires).to_have_attribute("placeholder", "YYYY-MM-DD HH:MM")
    expires.fill("2001-01-01 00:00")
    warnings = box.get_by_role("status").filter(has_text="You can save")
    expect(warnings).to_contain_text("has expired")
    soon = timezone.localtime() + timedelta(days=3, hours=2)
    expires.fill(soon.strftime("%Y-%m-%d %H:%M"))
    expect(warnings).to_be_hidden()
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    expect(row_of(page, key).locator("td.state-cell")).to_contain_text("expires in 3 days")
    row_of(page, key).locator(".key-value").dblclick()
    expect(box).to_contain_text("expires in 3 days")


# --- rolling a key (issue 14, part 2) ------------------------------------------------------------


def test_roll_with_a_grace_then_stop_the_old_value(login, administrator, size, make_key):
    key = make_key(allowed_for_all=True, description="rolling")
    old = key.value
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="roll").click()
    box = dialog(page)
    expect(box.get_by_role("heading", name="roll API key")).to_be_visible()
    assert_fits(page)
    box.get_by_label("1 hour").check()
    box.get_by_role("button", name="roll").click()
    expect(box).to_be_hidden()
    key.refresh_from_db()
    assert key.previous_value == old
    row = row_of(page, key)
    expect(row.locator(".key-value")).to_have_text(str(key.value))
    expect(row.locator("td.state-cell")).to_contain_text(f"old value …{old.hex[-4:]} works until")
    row.locator(".key-value").dblclick()
    box.get_by_role("button", name="stop the old value now").click()
    expect(box).to_be_hidden()
    expect(row.locator("td.state-cell")).not_to_contain_text("old value")
    key.refresh_from_db()
    assert key.previous_until <= timezone.now()


def test_usage_chart_table_and_seven_day_calls(login, administrator, size, make_key):
    from keys.models import KeyUsage

    key, idle = make_key(description="busy ERP"), make_key(description="idle")
    today = timezone.localdate()
    types = list(ApiType.objects.order_by("name")[:7])  # more than the chart's five colours
    for n, api_type in enumerate(types):
        for day in range(0, 30, n + 1):
            KeyUsage.objects.create(
                key=key, api_type=api_type, day=today - timedelta(days=day), succeeded=10 * (7 - n), client_errors=n
            )
    page = login(administrator)
    expect(row_of(page, key).locator('td[data-label="calls, 7 days"]')).not_to_have_text("0")
    expect(row_of(page, idle).locator('td[data-label="calls, 7 days"]')).to_have_text("0")
    row_of(page, key).click()
    page.get_by_role("button", name="usage").click()
    box = dialog(page)
    expect(box.get_by_role("heading", name="usage of the key")).to_be_visible()
    chart = box.get_by_role("img", name=re.compile("Calls per day over the last 30 days"))
    expect(chart).to_be_visible()  # one drawing per screen width; the other is not displayed
    expect(box.locator("svg:visible")).to_have_count(1)
    expect(box.locator("svg:visible rect.bar").first).to_be_visible()
    expect(box.locator(".legend li")).to_have_count(6)  # five busiest types and "2 other types"
    expect(box.locator(".legend li").last).to_have_text("2 other types")
    expect(box.get_by_role("table", name="Calls by API type, busiest first").locator("tbody tr")).to_have_count(7)
    check_screen(page, "usage", size)
    box.get_by_text("calls per day", exact=True).click()
    expect(box.get_by_role("table", name="Calls per day, all API types").locator("tbody tr")).to_have_count(30)
    box.get_by_role("button", name="close").click()
    expect(box).to_be_hidden()
    row_of(page, idle).click()
    page.get_by_role("button", name="usage").click()
    expect(box.get_by_text("No calls with this key in the last 30 days.")).to_be_visible()
