"""CHQ's Swagger page in a real Chromium: CHQ's groups, an operation opened from
the keyboard, and a call tried with an API key, under the site's strict CSP
(the autouse fixture fails the test on any CSP violation or page error)."""

import json

import pytest
from playwright.sync_api import Page, expect

from keys.models import ApiType
from keys.services import GrantSpec, api_key_create

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["desk", "phone"])
def test_swagger_page_tries_api_document_export_with_a_key(page: Page, viewport):
    page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    own = ApiType.objects.get(direction="export", api_id="apidocument")
    key = api_key_create(is_active=True, description="swagger", grants=[GrantSpec(own.pk)])
    page.goto("/integration/api/index")
    tags = page.locator(".opblock-tag")
    expect(tags.first).to_be_visible()
    assert tags.all_inner_texts()[:3] == ["Adjustment", "Catalog", "Common"]
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]  # no sideways scrolling

    page.get_by_role("button", name="Authorize").click()
    page.locator(".auth-container input").fill(str(key.value))
    page.locator(".auth-btn-wrapper .authorize").click()
    page.locator(".btn-done").click()

    page.locator("#operations-tag-Common").click()
    operation = page.locator("#operations-Common-export-apidocument")
    operation.locator(".opblock-summary-control").focus()
    page.keyboard.press("Enter")
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("textarea.body-param__text").fill(json.dumps({"Data": {"Request": {"Top": 5}}}))
    operation.get_by_role("button", name="Execute").click()
    response = operation.locator(".live-responses-table .response .response-col_status").first
    expect(response).to_have_text("200")
    expect(operation.locator(".live-responses-table .microlight").first).to_contain_text('"ApiRequestType"')
