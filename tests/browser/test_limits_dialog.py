"""The API key dialog's limits part in a real Chromium, at a desk (1280×800) and on a phone
(390×844): set, shown again, wrong input kept with its message by its field, axe-core clean."""

import pytest
from playwright.sync_api import Page, expect

from keys.models import ApiKey
from keys.services import GrantSpec
from tests.browser.test_pane_daily import check_screen, dialog, row_of, size  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


def open_limits(page: Page):
    box = dialog(page)
    limits = box.locator("details.limits")
    if limits.get_attribute("open") is None:
        limits.locator("summary").click()
    expect(box.get_by_label("calls per second")).to_be_visible()
    return box


def test_set_limits_and_contact_in_the_dialog(login, administrator, size, inventory_export):  # noqa: F811
    page = login(administrator)
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    expect(box.locator("details.limits summary")).to_contain_text("no limits, any address, no contact")
    box.get_by_label("is active").check()
    box.get_by_label("selected: Inventory Export").check()
    box.get_by_label("description").fill("ERP feed")
    open_limits(page)
    box.get_by_label("calls per second").fill("20")
    box.get_by_label("calls per day").fill("50000")
    box.get_by_label("client addresses").fill("198.51.100.0/24\n 2001:DB8::/32 \n")
    box.get_by_label("contact name").fill("ERP team")
    box.get_by_label("contact email").fill("erp@example.com")
    check_screen(page, "dialog-limits", size)
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    key = ApiKey.objects.get()
    assert (key.rate_per_second, key.rate_per_minute, key.quota_per_day) == (20, None, 50000)
    assert key.allowed_addresses == ["198.51.100.0/24", "2001:db8::/32"]
    assert (key.contact_name, key.contact_email) == ("ERP team", "erp@example.com")

    # Opened again, the part is open and says what is set.
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    expect(box.locator("details.limits")).to_have_attribute("open", "")
    expect(box.locator("details.limits summary")).to_contain_text("20 a second · 50000 a day · 2 client addresses")
    expect(box.get_by_label("client addresses")).to_have_value("198.51.100.0/24\n2001:db8::/32")


def test_wrong_limits_keep_what_was_typed_and_say_what_is_wrong(login, administrator, size, make_key):  # noqa: F811
    key = make_key(description="ERP", rate_per_second=5)
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = open_limits(page)
    box.get_by_label("description").fill("ERP, changed")
    box.get_by_label("calls per second").fill("0")
    box.get_by_label("calls per minute").fill("600")
    box.get_by_label("client addresses").fill("192.0.2.10\n10.0.0.1/8\nerp.example.com")
    box.get_by_label("contact email").fill("erp at example")
    box.get_by_role("button", name="save").click()

    expect(box.get_by_role("alert")).to_contain_text("Nothing was saved.")
    expect(box.get_by_label("calls per second")).to_have_attribute("aria-invalid", "true")
    per_second = box.locator(".field", has=page.get_by_label("calls per second"))
    expect(per_second).to_contain_text("Write a whole number of at least 1, or leave it empty for no limit.")
    addresses = box.locator(".field.addresses")
    expect(addresses).to_contain_text("line 2: “10.0.0.1/8” has bits set after its prefix length")
    expect(addresses).to_contain_text("line 3: “erp.example.com” is not an IP address or a CIDR range")
    expect(box.locator(".field", has=page.get_by_label("contact email"))).to_contain_text("Write an email address")
    # Everything typed is still there.
    expect(box.get_by_label("description")).to_have_value("ERP, changed")
    expect(box.get_by_label("calls per minute")).to_have_value("600")
    expect(box.get_by_label("client addresses")).to_have_value("192.0.2.10\n10.0.0.1/8\nerp.example.com")
    expect(box.get_by_role("alert")).to_contain_text(
        "In limits and contact, below: calls per second, client addresses, contact email."
    )
    check_screen(page, "dialog-limits-errors", size)
    addresses.scroll_into_view_if_needed()
    check_screen(page, "dialog-limits-errors-shown", size)
    saved = ApiKey.objects.get(pk=key.pk)
    assert (saved.description, saved.rate_per_second, saved.rate_per_minute) == ("ERP", 5, None)

    box.get_by_label("calls per second").fill("")
    box.get_by_label("client addresses").fill("192.0.2.10\n10.0.0.0/8")
    box.get_by_label("contact email").fill("erp@example.com")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    saved = ApiKey.objects.get(pk=key.pk)
    assert (saved.description, saved.rate_per_second, saved.rate_per_minute) == ("ERP, changed", None, 600)
    assert saved.allowed_addresses == ["192.0.2.10/32", "10.0.0.0/8"]


def test_a_types_own_rate_is_shown_in_its_row(login, administrator, size, make_key, inventory_export):  # noqa: F811
    key = make_key(grants=[GrantSpec(inventory_export.pk, rate_per_second=5)])
    page = login(administrator)
    row_of(page, key).click()
    page.get_by_role("button", name="edit").click()
    box = dialog(page)
    row = box.locator("tr[data-type-row]", has=page.get_by_label("selected: Inventory Export", exact=True))
    expect(row).to_contain_text("at most 5 calls per second")
    box.get_by_label("description").fill("rated")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    assert key.grants.get().rate_per_second == 5


def test_details_show_the_limits(login, administrator, size, make_key, inventory_export):  # noqa: F811
    key = make_key(
        description="ERP",
        rate_per_second=20,
        quota_per_day=50000,
        allowed_addresses=["198.51.100.0/24", "2001:db8:85a3::/48"],
        contact_name="ERP team",
        contact_email="erp-team@example.com",
        grants=[GrantSpec(inventory_export.pk, rate_per_minute=60)],
    )
    page = login(administrator)
    row_of(page, key).locator(".key-value").dblclick()
    box = dialog(page)
    expect(box.get_by_role("heading", name="API types of the key")).to_be_visible()
    expect(box.locator("dl.limits-shown")).to_contain_text("at most 20 calls per second")
    expect(box.locator("dl.limits-shown")).to_contain_text("198.51.100.0/24, 2001:db8:85a3::/48")
    expect(box.locator("dl.limits-shown")).to_contain_text("ERP team erp-team@example.com")
    expect(box.locator(".types-table")).to_contain_text("at most 60 calls per minute")
    check_screen(page, "details-limits", size)
