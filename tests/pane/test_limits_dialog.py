"""The API key dialog's limits part through the Django test client: saved through the
service, each wrong field named by the field, everything typed kept, nothing half-saved."""

import re

import pytest
from django.urls import reverse

from keys.models import ApiKey, ApiKeyGrant, KeyAudit
from keys.services import GrantSpec

pytestmark = pytest.mark.django_db


def post(client, url, **data):
    return client.post(url, data, HTTP_HX_REQUEST="true")


def snapshot():
    return (list(ApiKey.objects.order_by("pk").values()), list(ApiKeyGrant.objects.order_by("pk").values()))


def test_new_key_with_limits_and_contact(administrator_client):
    response = post(
        administrator_client,
        reverse("keys:new"),
        description="ERP",
        rate_per_second="20",
        rate_per_minute="600",
        quota_per_day=" 50000 ",
        quota_per_month="",
        allowed_addresses="198.51.100.0/24\r\n\r\n  192.0.2.10\r\n2001:DB8::/32\r\n192.0.2.10/32",
        contact_name="ERP team",
        contact_email="erp@example.com",
    )
    assert response.status_code == 204
    key = ApiKey.objects.get()
    assert (key.rate_per_second, key.rate_per_minute, key.quota_per_day, key.quota_per_month) == (20, 600, 50000, None)
    assert key.allowed_addresses == ["198.51.100.0/24", "192.0.2.10/32", "2001:db8::/32"]
    assert (key.contact_name, key.contact_email) == ("ERP team", "erp@example.com")


def test_edit_dialog_shows_the_limits_open(administrator_client, make_key):
    key = make_key(rate_per_second=20, allowed_addresses=["198.51.100.0/24", "192.0.2.10"], contact_name="Ann")
    html = administrator_client.get(reverse("keys:edit", args=[key.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert '<details class="limits" id="limits" open>' in html
    assert "· 20 a second · 2 client addresses · contact Ann</span>" in html
    assert 'name="rate_per_second" value="20"' in html
    assert "198.51.100.0/24\n192.0.2.10/32</textarea>" in html


def test_a_key_without_limits_opens_the_part_folded(administrator_client, make_key):
    key = make_key()
    html = administrator_client.get(reverse("keys:edit", args=[key.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert '<details class="limits" id="limits">' in html
    assert "no limits, any address, no contact" in html


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"rate_per_second": "0"}, "rate_per_second", "Write a whole number of at least 1, or leave it empty"),
        ({"rate_per_minute": "ten"}, "rate_per_minute", "Write a whole number of at least 1, or leave it empty"),
        ({"quota_per_day": "2.5"}, "quota_per_day", "Write a whole number of at least 1"),
        ({"quota_per_month": "9999999999"}, "quota_per_month", "Write a number up to 2147483647"),
        (
            {"allowed_addresses": "192.0.2.10\n10.0.0.1/8\n\nerp.example.com"},
            "allowed_addresses",
            "line 2: “10.0.0.1/8” has bits set after its prefix length: the range it lies in is 10.0.0.0/8.",
        ),
        ({"allowed_addresses": "192.0.2.10\nerp.example.com"}, "allowed_addresses", "line 2: “erp.example.com”"),
        ({"contact_email": "erp at example"}, "contact_email", "Write an email address, such as erp-team@example.com."),
        ({"contact_name": "x" * 151}, "contact_name", "at most 150 characters"),
    ],
)
@pytest.mark.parametrize("target", ["new", "edit"])
def test_a_wrong_limit_is_shown_by_its_field_and_nothing_changes(
    administrator_client, make_key, data, field, message, target
):
    key = make_key(description="untouched", rate_per_second=5)
    url = reverse("keys:new") if target == "new" else reverse("keys:edit", args=[key.pk])
    typed = {"description": "changed", "rate_per_minute": "600", "contact_name": "Ann"} | data
    before, audits = snapshot(), KeyAudit.objects.count()
    response = post(administrator_client, url, **typed)
    assert response.status_code == 422
    html = response.content.decode()
    # The message stands right after its own field, inside the limits part, which is open.
    field_html = html.split(f'name="{field}"', 1)[1]
    assert message in field_html.split('<div class="field', 1)[0].split("</fieldset>", 1)[0]
    assert '<details class="limits" id="limits" open>' in html
    tag = re.search(rf'<(?:input|textarea)[^>]*name="{field}"[^>]*>', html)[0]
    assert 'aria-invalid="true"' in tag
    # Everything typed is there to correct, the wrong value too.
    for name, value in typed.items():
        shown = f">\n{value}</textarea>" if name == "allowed_addresses" else f'value="{value}"'
        assert shown in html, name
    assert snapshot() == before
    assert KeyAudit.objects.count() == audits


def test_a_dialog_save_keeps_a_types_own_rate(administrator_client, make_key, inventory_export, customer_import):
    """The dialog does not edit a type's own rate (the admin and the commands do); it shows it and keeps it."""
    key = make_key(grants=[GrantSpec(inventory_export.pk, rate_per_second=5, rate_per_minute=100)])
    html = administrator_client.get(reverse("keys:edit", args=[key.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "at most 5 calls per second and 100 calls per minute" in html
    response = post(
        administrator_client,
        reverse("keys:edit", args=[key.pk]),
        description="still rated",
        selected=[inventory_export.pk, customer_import.pk],
        logged=[inventory_export.pk],
        version=str(key.version),
    )
    assert response.status_code == 204
    rates = {g.api_type_id: (g.rate_per_second, g.rate_per_minute, g.logged) for g in key.grants.all()}
    assert rates == {inventory_export.pk: (5, 100, True), customer_import.pk: (None, None, False)}


def test_emptying_the_fields_removes_the_limits(administrator_client, make_key):
    key = make_key(rate_per_second=5, quota_per_month=10, allowed_addresses=["192.0.2.10"], contact_email="a@b.example")
    response = post(
        administrator_client,
        reverse("keys:edit", args=[key.pk]),
        description="free",
        rate_per_second="",
        quota_per_month="",
        allowed_addresses="  \n",
        contact_email="",
        version=str(key.version),
    )
    assert response.status_code == 204
    key = ApiKey.objects.get(pk=key.pk)
    assert (key.rate_per_second, key.quota_per_month, key.allowed_addresses, key.contact_email) == (None, None, [], "")
    lines = KeyAudit.objects.filter(key=key).latest("pk").changes
    assert lines["client addresses"] == [["192.0.2.10/32"], None]


def test_a_viewer_cannot_set_limits(client, viewer, make_key):
    key = make_key(rate_per_second=5)
    client.force_login(viewer)
    response = post(client, reverse("keys:edit", args=[key.pk]), description="x", rate_per_second="1000")
    assert response.status_code == 403
    assert ApiKey.objects.get(pk=key.pk).rate_per_second == 5


def test_details_show_the_limits_and_a_types_own_rate(administrator_client, make_key, inventory_export):
    key = make_key(
        rate_per_minute=600,
        quota_per_day=50000,
        quota_per_month=1000000,
        allowed_addresses=["198.51.100.0/24", "2001:db8::/32"],
        contact_name="ERP team",
        contact_email="erp@example.com",
        grants=[GrantSpec(inventory_export.pk, rate_per_second=5)],
    )
    html = administrator_client.get(reverse("keys:details", args=[key.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "<dt>rate</dt>\n  <dd>at most 600 calls per minute</dd>" in html
    assert "<dd>50000 calls per day and 1000000 calls per month</dd>" in html
    assert "<dd><code>198.51.100.0/24</code>, <code>2001:db8::/32</code></dd>" in html
    assert 'ERP team <a href="mailto:erp@example.com">erp@example.com</a>' in html
    assert '<small class="type-rate">at most 5 calls per second</small>' in html


def test_details_of_a_key_without_limits_say_so(administrator_client, make_key):
    html = administrator_client.get(reverse("keys:details", args=[make_key().pk]), HTTP_HX_REQUEST="true")
    text = html.content.decode()
    assert "<dt>rate</dt>\n  <dd>no limit</dd>" in text
    assert "<dd>any address</dd>" in text
    assert "<dt>contact</dt>\n  <dd>none</dd>" in text
