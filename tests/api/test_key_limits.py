"""A key's limits as a caller meets them through the guard: the client-address list (403
naming the address), the rates and quotas (429 with Retry-After and the RateLimit fields),
their order after the other refusals, and their counts in the key's usage. The catalog's
types have no handler in the test process: a call the guard lets through is answered 501."""

import json

import pytest

from keys import shared, usage
from keys.models import KeyUsage
from keys.services import GrantSpec
from tests.api_calls import post

PATH = "/chqapi/export/inventory"
THROUGH = 501  # let through by the guard, answered by the (missing) handler


def limited(key, **limits):
    """Set limits on a saved key the way every change is made (a save: the decision caches learn of it)."""
    for name, value in limits.items():
        setattr(key, name, value)
    key.save()
    return key


def message(response) -> str:
    return json.loads(response.content)["Message"]


@pytest.fixture
def clock(time_machine):
    """A clock that stands still unless moved: each call falls in a known second."""
    time_machine.move_to("2026-06-15 10:00:00.100 +00:00", tick=False)
    return time_machine


def test_a_call_over_the_rate_per_second_is_429_with_the_ratelimit_fields(make_key, clock):
    key = limited(make_key(allowed_for_all=True), rate_per_second=2)
    first, second = (post(PATH, key.value) for _ in range(2))
    refused = post(PATH, key.value)
    assert (first.status_code, second.status_code, refused.status_code) == (THROUGH, THROUGH, 429)
    assert first["RateLimit-Policy"] == '"second";q=2;w=1'
    assert first["RateLimit"] == '"second";r=1;t=1'
    assert second["RateLimit"] == '"second";r=0;t=1'
    assert "Retry-After" not in second
    assert refused["Retry-After"] == "1"
    assert refused["RateLimit"] == '"second";r=0;t=1'
    assert message(refused) == "Too many calls with this API key. Try again after Retry-After seconds."
    assert refused["Content-Type"] == "application/json"
    assert str(key.value) not in refused.content.decode()


def test_the_next_second_lets_calls_through_again(make_key, clock):
    key = limited(make_key(allowed_for_all=True), rate_per_second=1)
    assert [post(PATH, key.value).status_code for _ in range(2)] == [THROUGH, 429]
    clock.shift(1)
    assert post(PATH, key.value).status_code == THROUGH


def test_a_rate_per_minute_says_how_long_until_the_minute_ends(make_key, clock):
    key = limited(make_key(allowed_for_all=True), rate_per_minute=1)
    assert post(PATH, key.value).status_code == THROUGH
    clock.shift(20)
    refused = post(PATH, key.value)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "40"
    assert refused["RateLimit"] == '"minute";r=0;t=40'
    clock.shift(40)
    assert post(PATH, key.value).status_code == THROUGH


def test_a_grant_rate_holds_for_its_type_beside_the_key_rate(make_key, clock, inventory_export, customer_import):
    key = make_key(grants=[GrantSpec(inventory_export.pk), GrantSpec(customer_import.pk)])
    limited(key, rate_per_second=3)
    grant = key.grants.get(api_type=inventory_export)
    grant.rate_per_second = 1
    grant.save()
    assert post(PATH, key.value).status_code == THROUGH
    refused = post(PATH, key.value)
    assert refused.status_code == 429
    assert refused["RateLimit-Policy"] == '"second";q=3;w=1, "type-second";q=1;w=1'
    assert refused["RateLimit"] == '"second";r=2;t=1, "type-second";r=0;t=1'
    # The other type has no rate of its own: only the key's holds, with two calls left (the
    # refused call spent none of it).
    other = [post("/chqapi/import/customer", key.value).status_code for _ in range(3)]
    assert other == [THROUGH, THROUGH, 429]


def test_a_call_held_back_by_its_rate_spends_no_quota(make_key, clock):
    key = limited(make_key(allowed_for_all=True), rate_per_second=1, quota_per_day=10)
    assert [post(PATH, key.value).status_code for _ in range(5)] == [THROUGH] + [429] * 4
    clock.shift(1)
    answer = post(PATH, key.value)
    assert answer["RateLimit"] == '"second";r=0;t=1, "day";r=8;t=50399'


def test_out_of_quota_is_429_until_midnight_of_the_site_time_zone(make_key, clock, settings):
    settings.TIME_ZONE = "Europe/Amsterdam"  # 10:00 UTC is 12:00 there: 12 hours to midnight
    key = limited(make_key(allowed_for_all=True), quota_per_day=2)
    assert [post(PATH, key.value).status_code for _ in range(2)] == [THROUGH, THROUGH]
    refused = post(PATH, key.value)
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(12 * 3600)  # 11:59:59.9 left, rounded up
    assert refused["RateLimit-Policy"] == '"day";q=2;w=86400'
    assert "quota" in message(refused)


def test_the_month_quota_counts_the_days_already_stored(make_key, clock, inventory_export):
    key = limited(make_key(allowed_for_all=True), quota_per_month=5)
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-06-02", succeeded=3, client_errors=1)
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-05-31", succeeded=100)  # last month
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-06-03", not_allowed=50, limited=50)
    assert post(PATH, key.value).status_code == THROUGH
    assert post(PATH, key.value).status_code == 429


def test_a_lost_quota_count_is_seeded_again_from_the_usage_stored(make_key, clock, inventory_export):
    key = limited(make_key(allowed_for_all=True), quota_per_day=3)
    assert [post(PATH, key.value).status_code for _ in range(2)] == [THROUGH, THROUGH]
    usage.flush()
    shared.clear()  # a restart that lost the shared counts (a power cut, Redis without persistence)
    assert [post(PATH, key.value).status_code for _ in range(2)] == [THROUGH, 429]


def test_the_quota_starts_again_at_the_edge_of_the_day(make_key, time_machine, settings):
    settings.TIME_ZONE = "America/New_York"
    time_machine.move_to("2026-06-15 23:59:59.500 -04:00", tick=False)
    key = limited(make_key(allowed_for_all=True), quota_per_day=1)
    assert [post(PATH, key.value).status_code for _ in range(2)] == [THROUGH, 429]
    time_machine.move_to("2026-06-16 00:00:00 -04:00", tick=False)
    assert post(PATH, key.value).status_code == THROUGH
    # Counted in the new day, not let through uncounted: the day's one call is spent.
    time_machine.move_to("2026-06-16 00:00:01 -04:00", tick=False)
    refused = post(PATH, key.value)
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(24 * 3600 - 1)


def test_the_month_quota_starts_again_on_the_first(make_key, time_machine):
    time_machine.move_to("2026-06-30 23:59:59 +00:00", tick=False)
    key = limited(make_key(allowed_for_all=True), quota_per_month=1)
    assert [post(PATH, key.value).status_code for _ in range(2)] == [THROUGH, 429]
    time_machine.move_to("2026-07-01 00:00:00 +00:00", tick=False)
    assert post(PATH, key.value).status_code == THROUGH


def test_a_call_from_an_address_not_listed_is_403_naming_the_address(make_key):
    key = limited(make_key(allowed_for_all=True), allowed_addresses=["192.0.2.0/24", "2001:db8::/32"])
    assert post(PATH, key.value, REMOTE_ADDR="192.0.2.77").status_code == THROUGH
    assert post(PATH, key.value, REMOTE_ADDR="2001:db8::5").status_code == THROUGH
    refused = post(PATH, key.value, REMOTE_ADDR="198.51.100.9")
    assert refused.status_code == 403
    assert message(refused) == "The API key is not allowed to call from 198.51.100.9."
    assert str(key.value) not in refused.content.decode()


def test_the_address_is_the_one_the_trusted_proxy_saw(make_key, settings):
    settings.KEYS_TRUSTED_PROXIES = 1
    key = limited(make_key(allowed_for_all=True), allowed_addresses=["203.0.113.5"])
    through_proxy = {"REMOTE_ADDR": "10.0.0.1"}
    assert post(PATH, key.value, HTTP_X_FORWARDED_FOR="203.0.113.5", **through_proxy).status_code == THROUGH
    # What the client claims further left is not trusted.
    refused = post(PATH, key.value, HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.1", **through_proxy)
    assert refused.status_code == 403
    assert message(refused) == "The API key is not allowed to call from 198.51.100.1."


def test_an_ipv6_client_behind_a_trusted_proxy_matches_its_range(make_key, settings):
    settings.KEYS_TRUSTED_PROXIES = 1
    key = limited(make_key(allowed_for_all=True), allowed_addresses=["2001:db8:10::/48"])
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    assert post(PATH, key.value, HTTP_X_FORWARDED_FOR="2001:db8:10:ff::9", **proxy).status_code == THROUGH
    refused = post(PATH, key.value, HTTP_X_FORWARDED_FOR="2001:db8:11::9", **proxy)
    assert message(refused) == "The API key is not allowed to call from 2001:db8:11::9."


def test_without_trusted_proxies_a_forwarded_header_is_ignored(make_key):
    key = limited(make_key(allowed_for_all=True), allowed_addresses=["203.0.113.5"])
    refused = post(PATH, key.value, HTTP_X_FORWARDED_FOR="203.0.113.5", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403
    assert "198.51.100.1" in message(refused)


def test_the_status_call_keeps_to_the_address_list_too(make_key):
    key = limited(make_key(allowed_for_all=True), allowed_addresses=["192.0.2.1"], rate_per_second=1)
    response = post("/chqapi/status", key.value, REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 403
    assert message(response) == "The API key is not allowed to call from 198.51.100.1."


@pytest.mark.parametrize(
    ("fields", "path", "status"),
    [
        # Not allowed for the type comes before the address: the key's own rules first.
        ({"allowed_for_all": False}, PATH, 403),
        ({"is_active": False}, PATH, 401),
        ({}, "/chqapi/export/no-such-type", 404),
    ],
)
def test_the_earlier_refusals_come_before_the_address_and_the_rate(make_key, fields, path, status):
    key = limited(make_key(**({"allowed_for_all": True} | fields)), allowed_addresses=["192.0.2.1"], rate_per_second=0)
    response = post(path, key.value, REMOTE_ADDR="198.51.100.1")
    assert response.status_code == status
    assert "198.51.100.1" not in message(response)


def test_a_wrong_address_is_refused_before_the_rate_counts_it(make_key, clock):
    key = limited(make_key(allowed_for_all=True), allowed_addresses=["192.0.2.1"], rate_per_second=1)
    assert post(PATH, key.value, REMOTE_ADDR="198.51.100.1").status_code == 403
    assert post(PATH, key.value, REMOTE_ADDR="192.0.2.1").status_code == THROUGH


def test_refusals_are_counted_in_their_own_usage_columns(make_key, clock, inventory_export):
    key = limited(make_key(allowed_for_all=True), allowed_addresses=["192.0.2.1"], rate_per_second=1)
    post(PATH, key.value, REMOTE_ADDR="198.51.100.1")
    post(PATH, key.value, REMOTE_ADDR="192.0.2.1")
    post(PATH, key.value, REMOTE_ADDR="192.0.2.1")
    usage.flush()
    row = KeyUsage.objects.get(key=key, api_type=inventory_export)
    assert (row.wrong_address, row.limited, row.client_errors, row.server_errors) == (1, 1, 0, 1)


def test_a_warm_limited_call_makes_no_query(make_key, clock, django_assert_num_queries):
    key = limited(
        make_key(allowed_for_all=True),
        rate_per_second=100,
        rate_per_minute=1000,
        quota_per_day=10_000,
        quota_per_month=100_000,
        allowed_addresses=["127.0.0.0/8"],
    )
    assert post(PATH, key.value).status_code == THROUGH  # cold: reads the key, seeds the quotas
    with django_assert_num_queries(0):
        assert post(PATH, key.value).status_code == THROUGH


def test_an_allowed_answer_carries_the_ratelimit_fields_once_half_a_window_is_used(make_key, clock):
    key = limited(make_key(allowed_for_all=True), rate_per_minute=10, quota_per_day=1000)
    answers = [post(PATH, key.value) for _ in range(6)]
    assert [a.status_code for a in answers] == [THROUGH] * 6
    # Calls 1-4 leave more than half of every window: nothing the client must act on.
    assert ["RateLimit" in a for a in answers] == [False, False, False, False, True, True]
    assert answers[4]["RateLimit"] == '"minute";r=5;t=60, "day";r=995;t=50400'
    assert answers[5]["RateLimit-Policy"] == '"minute";q=10;w=60, "day";q=1000;w=86400'
