"""The pane in a fresh startproject host (tests/hostproject.py; the app from its wheel, the
host's own catalog and guarded views from tests/host_widgets) in Chromium: an administrator
makes a key for the host's own API type, and that key opens the host's own guarded view."""

import json
import urllib.request

from playwright.sync_api import Page, expect


def test_a_key_made_in_the_hosts_pane_opens_the_hosts_own_guarded_view(page: Page, served):
    base, cookie = served
    name, value = cookie.split("=", 1)
    page.context.add_cookies([{"name": name, "value": value, "url": base}])
    page.goto(f"{base}/settings/integrations/keys/")
    expect(page.get_by_role("heading", name="keys")).to_be_visible()

    page.get_by_role("button", name="new").click()
    box = page.locator("dialog#dialog")
    expect(box.get_by_role("heading", name="API key")).to_be_visible()
    # The host's catalog, not CHQ's: its file's two types and the one registered in code.
    expect(box.get_by_label("selected: Widgets Export")).to_be_visible()
    expect(box.get_by_label("selected: Gadgets Export")).to_be_visible()
    expect(box.get_by_label("selected: Inventory Export")).to_have_count(0)
    box.get_by_label("is active").check()
    box.get_by_label("selected: Widgets Export").check()
    box.get_by_label("logged: Widgets Export").check()
    box.get_by_label("description").fill("made in the host's pane")
    box.get_by_role("button", name="save").click()
    expect(box).to_be_hidden()

    row = page.locator("#key-table tr", has_text="made in the host's pane")
    key_value = row.locator(".key-value").inner_text().strip()
    row.locator(".key-value").dblclick()
    expect(box.get_by_role("row", name="Widgets Export")).to_be_visible()

    request = urllib.request.Request(
        f"{base}/widgets/drf", data=b"{}", headers={"ApiKey": key_value, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        assert json.loads(answer.read())["Kind"] == "drf"
        assert answer.headers["ApiDocumentId"]  # logged, as the dialog said
