"""The keys table at every desk width (issue 26): from 1024 px up every column is on
screen with no sideways scroll of the table or the page, with 1, 10 and 60 keys of
realistic descriptions; the expiration date is picked from a calendar with the keyboard."""

import itertools
import random
from datetime import date, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from keys.models import ApiKey
from tests.browser.test_pane_daily import SCREENSHOTS, check_screen, dialog

pytestmark = pytest.mark.browser

WIDTHS = {"1024": (1024, 768), "1280": (1280, 800), "1920": (1920, 1080)}
WORDS = [
    "ERP",
    "nightly",
    "inventory",
    "feed",
    "for",
    "the",
    "Stockholm",
    "warehouse",
    "and",
    "web",
    "shop",
    "prices",
    "customer",
    "loyalty",
    "sync",
    "Shopify",
    "storefront",
    "orders",
    "returns",
    "from",
    "stores",
    "marketing",
    "newsletter",
    "signups",
    "finance",
    "export",
    "to",
    "SAP",
]


def descriptions(count: int) -> list[str]:
    """Two to eight words each, as integration administrators write them."""
    rng = random.Random(count)
    return [" ".join(rng.sample(WORDS, rng.randint(2, 8))) for _ in range(count)]


@pytest.mark.parametrize(("width", "count"), list(itertools.product(WIDTHS, [1, 10, 60])))
def test_every_column_is_on_screen_without_sideways_scroll(login, administrator, make_key, width, count):
    soon = timezone.now() + timedelta(days=3)
    for n, text in enumerate(descriptions(count)):
        key = make_key(description=text, allowed_for_all=n % 3 == 0, is_active=n % 5 != 4)
        if n % 4 == 1:
            ApiKey.objects.filter(pk=key.pk).update(expires_at=soon, last_used_at=timezone.now())
    page = login(administrator)
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    page.reload()
    table = page.locator("#key-table table")
    expect(table).to_be_visible()
    viewport = page.viewport_size["width"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"widths-{width}-{count}.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport
    scroller = page.evaluate(
        "() => { const t = document.querySelector('#key-table table');"
        " let e = t; while (e && e !== document.body) {"
        " if (e.scrollWidth > e.clientWidth + 1) return [e.tagName, e.className, e.scrollWidth, e.clientWidth];"
        " e = e.parentElement; } return null; }"
    )
    assert scroller is None, f"scrolls sideways: {scroller}"
    headers = table.locator("thead th").all()
    assert len(headers) == 8
    for header in headers:
        box = header.bounding_box()
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= viewport + 0.5, f"{header.inner_text()!r} ends at {box['x'] + box['width']}"


@pytest.mark.parametrize("size", ["desk", "phone"])
def test_expiration_date_is_chosen_from_a_calendar_with_the_keyboard(login, administrator, size):
    page: Page = login(administrator)
    page.set_viewport_size({"desk": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}[size])
    page.get_by_role("button", name="new").click()
    box = dialog(page)
    box.get_by_label("is active").check()
    box.get_by_label("allowed for all").check()
    box.get_by_label("logged for all").check()
    box.get_by_role("button", name="set expiration date").first.click()
    field = box.get_by_label("logging until", exact=True)
    expect(field).to_be_focused()
    assert field.get_attribute("placeholder") == "YYYY-MM-DD"  # shown and typed in ISO form
    page.keyboard.press("Tab")  # to the calendar button beside the field
    opener = box.get_by_role("button", name="calendar for the logging end date", exact=True)
    expect(opener).to_be_focused()
    page.keyboard.press("Enter")
    calendar = page.get_by_role("dialog", name="choose a date for logging until")
    expect(calendar).to_be_visible()
    today = date.today()
    expect(calendar.locator(f'button[data-date="{today.isoformat()}"]')).to_be_focused()
    check_screen(page, "calendar", size)
    page.keyboard.press("ArrowDown")  # a week on
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    target = today + timedelta(days=10)
    expect(calendar.locator(f'button[data-date="{target.isoformat()}"]')).to_be_focused()
    page.keyboard.press("PageDown")
    page.keyboard.press("PageUp")  # a month on and back: the same day
    page.keyboard.press("Enter")
    expect(calendar).to_be_hidden()
    expect(field).to_have_value(target.isoformat())
    expect(field).to_be_focused()
    # Escape closes the calendar alone, never the API key dialog around it.
    opener.click()
    expect(calendar).to_be_visible()
    page.keyboard.press("Escape")
    expect(calendar).to_be_hidden()
    expect(box).to_be_visible()
    box.get_by_label("description").fill("calendar")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()
    assert ApiKey.objects.get().logging_until == target
