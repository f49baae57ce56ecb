"""The pane shows a key's limits at work: what remains of its quotas (key details, usage)
and the usage columns of its refusals for the client address and for a rate or quota."""

import pytest
from django.urls import reverse

from keys import usage
from keys.access import Decision, Limits, Reason
from keys.models import KeyUsage
from keys.quotas import charge


@pytest.fixture
def quota_key(make_key):
    key = make_key(allowed_for_all=True)
    key.quota_per_day, key.quota_per_month = 50, 1000
    key.save()
    return key


def test_details_show_what_remains_of_each_quota(administrator_client, quota_key, inventory_export, time_machine):
    time_machine.move_to("2026-06-15 10:00:00 +00:00", tick=False)
    KeyUsage.objects.create(key=quota_key, api_type=inventory_export, day="2026-06-01", succeeded=200)
    limits = Limits(per_day=50, per_month=1000)
    decision = Decision(True, Reason.ALLOWED, key_id=quota_key.pk, api_type_id=inventory_export.pk, limits=limits)
    for _ in range(3):  # three calls let through today
        charge(decision)
    html = administrator_client.get(reverse("keys:details", args=[quota_key.pk])).content.decode()
    assert "quota left" in html
    assert "<strong>47</strong> of 50 calls left this day (3 used); starts again 2026-06-16 00:00" in html
    assert "<strong>797</strong> of 1000 calls left this month (203 used); starts again 2026-07-01 00:00" in html


def test_details_of_a_key_without_quotas_say_nothing_of_them(administrator_client, make_key):
    key = make_key(allowed_for_all=True)
    key.rate_per_second = 5
    key.save()
    html = administrator_client.get(reverse("keys:details", args=[key.pk])).content.decode()
    assert "quota left" not in html


def test_usage_counts_the_limit_refusals_in_their_own_columns(administrator_client, quota_key, inventory_export):
    for column in ("wrong_address", "limited", "limited", "succeeded"):
        usage.count(quota_key.pk, inventory_export.pk, column)
    usage.flush()
    html = administrator_client.get(reverse("keys:usage", args=[quota_key.pk])).content.decode()
    assert '<th scope="col" class="number">403 client address</th>' in html
    assert '<th scope="col" class="number">429 rate or quota</th>' in html
    assert "1 403 client address · 2 429 rate or quota" in html
    assert "quota left" in html
