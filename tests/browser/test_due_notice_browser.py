"""The pane's notice of keys that end soon, in Chromium at desk and phone sizes: it fits,
passes axe-core, opens the key's dialog, and goes away once the end is moved out of reach."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from keys.services import GrantSpec
from tests.browser.test_pane_daily import SIZES, check_screen, dialog

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.KEYS_EXPIRY_WARNING_DAYS = [14, 3]


@pytest.mark.parametrize("size", list(SIZES))
def test_the_notice_fits_opens_the_key_and_follows_a_change(login, administrator, size, make_key, inventory_export):
    soon = make_key(
        description="nightly inventory feed for the Stockholm warehouse and the web shop prices",
        allowed_for_all=True,
        expires_at=timezone.now() + timedelta(days=2, hours=3),
    )
    make_key(
        description="customer loyalty sync",
        grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=timezone.localdate() + timedelta(days=6))],
    )
    page = login(administrator)
    page.set_viewport_size(SIZES[size])
    notice = page.get_by_role("region", name="ending soon")
    expect(notice.get_by_role("listitem")).to_have_count(2)
    expect(notice.get_by_role("listitem").first).to_contain_text("expires ")
    expect(notice.get_by_role("listitem").first).to_contain_text("in 2 days")
    expect(notice.get_by_role("listitem").last).to_contain_text(f"logging of {inventory_export.name} ends after")
    check_screen(page, "due-notice", size)

    notice.get_by_role("button", name=soon.description).click()
    box = dialog(page)
    expires = box.get_by_label("expires")
    expect(expires).to_be_visible()
    expires.fill((timezone.localtime() + timedelta(days=60)).strftime("%Y-%m-%d %H:%M"))
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    expect(notice.get_by_role("listitem")).to_have_count(1)
    expect(notice).not_to_contain_text(soon.description)
