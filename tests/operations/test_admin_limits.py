"""Django admin: a key's limits, client addresses and contact in their fieldsets, a type's own
rate on its grant row, saved through the service with the dialog's rules."""

import pytest
from django.urls import reverse

from keys.models import ApiKey, ApiKeyGrant, KeyAudit
from keys.services import GrantSpec
from tests.operations.test_admin import inline, staff  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


def test_the_change_form_shows_the_limits_and_the_contact(client, staff, make_key, inventory_export):  # noqa: F811
    key = make_key(
        rate_per_second=20,
        allowed_addresses=["198.51.100.0/24", "192.0.2.10"],
        contact_email="erp@example.com",
        grants=[GrantSpec(inventory_export.pk, rate_per_minute=60)],
    )
    client.force_login(staff("admin"))
    html = client.get(reverse("admin:keys_apikey_change", args=[key.pk])).content.decode()
    for heading in ('class="fieldset-heading">limits</h2>', 'class="fieldset-heading">contact</h2>'):
        assert heading in html
    assert 'name="rate_per_second" value="20"' in html
    assert "198.51.100.0/24\n192.0.2.10/32</textarea>" in html
    assert 'name="contact_email" value="erp@example.com"' in html
    assert 'name="grants-0-rate_per_minute" value="60"' in html
    assert 'aria-describedby="rates-help"' not in html  # the dialog's help lines are not on this page


def test_add_key_with_limits_and_a_types_rate(client, staff, inventory_export):  # noqa: F811
    client.force_login(staff("admin"))
    data = {
        "description": "from admin",
        "rate_per_minute": "600",
        "quota_per_day": "50000",
        "allowed_addresses": "2001:DB8::/32\r\n192.0.2.10",
        "contact_name": "ERP team",
        "contact_email": "erp@example.com",
    } | inline(rows=[{"api_type": inventory_export.pk, "rate_per_second": "5"}])
    response = client.post(reverse("admin:keys_apikey_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    key = ApiKey.objects.get()
    assert (key.rate_per_second, key.rate_per_minute, key.quota_per_day) == (None, 600, 50000)
    assert key.allowed_addresses == ["2001:db8::/32", "192.0.2.10/32"]
    assert (key.contact_name, key.contact_email) == ("ERP team", "erp@example.com")
    assert [(g.rate_per_second, g.rate_per_minute) for g in key.grants.all()] == [(5, None)]
    lines = KeyAudit.objects.get(key=key).changes
    assert lines["calls per minute"] == [None, 600]


@pytest.mark.parametrize(
    ("fields", "rows", "message"),
    [
        ({"rate_per_second": "0"}, [], "Write a whole number of at least 1, or leave it empty for no limit."),
        ({"quota_per_month": "x"}, [], "Write a whole number of at least 1, or leave it empty for no limit."),
        ({"allowed_addresses": "192.0.2.1\n10.0.0.1/8"}, [], "line 2: “10.0.0.1/8” has bits set"),
        ({"contact_email": "nobody"}, [], "Write an email address, such as erp-team@example.com."),
        ({}, [{"api_type": "{inv}", "rate_per_second": "0"}], "Write a whole number of at least 1"),
    ],
)
def test_admin_refuses_a_wrong_limit_and_saves_nothing(
    client,
    staff,  # noqa: F811
    make_key,
    inventory_export,
    fields,
    rows,
    message,
):
    key = make_key(description="untouched", rate_per_second=5)
    client.force_login(staff("admin"))
    rows = [{k: str(inventory_export.pk) if v == "{inv}" else v for k, v in r.items()} for r in rows]
    before = (list(ApiKey.objects.values()), list(ApiKeyGrant.objects.values()))
    data = {"description": "changed", "seen_version": key.version} | fields | inline(rows=rows)
    response = client.post(reverse("admin:keys_apikey_change", args=[key.pk]), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'value="changed"' in html
    assert (list(ApiKey.objects.values()), list(ApiKeyGrant.objects.values())) == before


def test_editing_in_the_admin_changes_a_types_rate(client, staff, make_key, inventory_export):  # noqa: F811
    key = make_key(grants=[GrantSpec(inventory_export.pk, rate_per_second=5)])
    grant = key.grants.get()
    client.force_login(staff("admin"))
    data = {"description": "", "seen_version": key.version} | inline(
        rows=[
            {
                "id": grant.pk,
                "key": key.pk,
                "api_type": inventory_export.pk,
                "rate_per_second": "",
                "rate_per_minute": "30",
            }
        ]
    )
    data["grants-INITIAL_FORMS"] = "1"
    response = client.post(reverse("admin:keys_apikey_change", args=[key.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    grant.refresh_from_db()
    assert (grant.rate_per_second, grant.rate_per_minute) == (None, 30)
