"""The access decision with a key's limits (keys/access.py): the client-address list
matched as IPv4, IPv6 and CIDR ranges, where it comes in the order, and the rates and
quotas an allowed decision carries for keys/quotas.py, on both of the decision's paths
(each worker's cache, and the one indexed query)."""

import ipaddress
from datetime import UTC, datetime

import pytest

from keys.access import (
    GrantState,
    KeyState,
    Limits,
    Reason,
    address_allowed,
    decide,
    decide_for_key_id,
    decide_for_type,
    judge,
    limits_of,
    networks_of,
)
from keys.services import GrantSpec

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


def key_state(**fields) -> KeyState:
    values = {"pk": 1, "is_active": True, "allowed_for_all": True, "logged_for_all": False, "logging_until": None}
    return KeyState(**(values | fields))


@pytest.mark.parametrize(
    ("addresses", "client", "allowed"),
    [
        ([], "198.51.100.1", True),  # no list: any address
        (["192.0.2.10"], "192.0.2.10", True),
        (["192.0.2.10"], "192.0.2.11", False),
        (["192.0.2.0/24"], "192.0.2.255", True),
        (["192.0.2.0/24"], "192.0.3.0", False),
        (["10.0.0.0/8", "192.0.2.10"], "10.200.3.4", True),
        (["2001:db8::/32"], "2001:db8:ffff::1", True),
        (["2001:db8::/32"], "2001:db9::1", False),
        (["2001:db8::1"], "2001:0db8:0000::0001", True),  # however the address is spelled
        (["2001:db8::/32"], "192.0.2.1", False),  # the other family never matches
        (["192.0.2.0/24"], "::ffff:192.0.2.7", True),  # a dual-stack listener's IPv4 caller
        (["192.0.2.0/24"], "::ffff:198.51.100.7", False),
        (["0.0.0.0/0"], "203.0.113.9", True),
        (["::/0"], "203.0.113.9", False),
        (["192.0.2.10"], "", False),  # a call whose client is not known
        (["192.0.2.10"], "not-an-address", False),
    ],
)
def test_client_addresses_match_addresses_and_ranges(addresses, client, allowed):
    assert address_allowed(networks_of(addresses), client) is allowed


def test_no_client_means_nothing_to_check():
    """The pane and the task worker decide for a key without a client: the list does not apply."""
    assert address_allowed(networks_of(["192.0.2.10"]), None)


def test_a_stored_address_that_does_not_parse_opens_nothing():
    networks = networks_of(["not a network"])
    assert networks
    assert not address_allowed(networks, "0.0.0.1")
    assert not address_allowed(networks, "198.51.100.1")


def test_networks_keep_host_addresses_as_their_own_range():
    assert networks_of([" 192.0.2.10 ", "2001:db8::/48"]) == (
        ipaddress.ip_network("192.0.2.10/32"),
        ipaddress.ip_network("2001:db8::/48"),
    )
    assert networks_of(None) == ()


def test_a_stored_range_with_host_bits_is_its_network():
    """The model refuses "10.0.0.1/8"; stored anyway (raw SQL), it means the range it names."""
    assert networks_of(["10.0.0.1/8"]) == (ipaddress.ip_network("10.0.0.0/8"),)


def test_limits_are_none_when_nothing_is_limited():
    assert limits_of((None, None, None, None)) is None
    assert limits_of((None, None, None, None), (None, None)) is None
    assert limits_of((None, None, 0, None)) == Limits(per_day=0)  # a quota of nothing is a limit
    assert limits_of((1, 2, 3, 4), (5, 6)) == Limits(1, 2, 3, 4, 5, 6)


def test_judge_refuses_a_wrong_address_after_the_type_and_before_allowing():
    key = key_state(allowed_for_all=False, networks=networks_of(["192.0.2.0/24"]))
    grant = GrantState(9, False, None)
    assert judge(key, api_type_id=5, grant=None, at=NOW, address="198.51.100.1").reason == Reason.API_TYPE_NOT_ALLOWED
    assert judge(key, api_type_id=None, grant=None, at=NOW, address="198.51.100.1").reason == Reason.UNKNOWN_API_TYPE
    refused = judge(key, api_type_id=5, grant=grant, at=NOW, address="198.51.100.1")
    assert (refused.allowed, refused.reason, refused.key_id, refused.api_type_id) == (
        False,
        Reason.ADDRESS_NOT_ALLOWED,
        1,
        5,
    )
    assert judge(key, api_type_id=5, grant=grant, at=NOW, address="192.0.2.1").allowed
    inactive = key_state(is_active=False, networks=networks_of(["192.0.2.0/24"]))
    assert judge(inactive, api_type_id=5, grant=None, at=NOW, address="198.51.100.1").reason == Reason.INACTIVE_KEY


def test_an_allowed_decision_carries_the_limits_it_counts_against():
    own = Limits(per_second=5, per_day=100)
    with_type = Limits(per_second=5, per_day=100, type_per_second=1)
    grant = GrantState(9, False, None, with_type)
    for_all = judge(key_state(limits=own), api_type_id=5, grant=grant, at=NOW)
    assert for_all.limits == own  # a kept grant is ignored while allowed for all, its rates too
    per_type = judge(key_state(allowed_for_all=False, limits=own), api_type_id=5, grant=grant, at=NOW)
    assert per_type.limits == with_type
    assert judge(key_state(), api_type_id=5, grant=None, at=NOW).limits is None


@pytest.fixture
def limited_key(make_key, inventory_export, customer_import):
    key = make_key(grants=[GrantSpec(inventory_export.pk), GrantSpec(customer_import.pk)])
    key.rate_per_second, key.rate_per_minute, key.quota_per_day, key.quota_per_month = 10, 100, 1000, 10_000
    key.allowed_addresses = ["192.0.2.0/24", "2001:db8::/32"]
    key.save()
    grant = key.grants.get(api_type=inventory_export)
    grant.rate_per_second, grant.rate_per_minute = 2, 20
    grant.save()
    return key


def test_decide_reads_the_limits_and_addresses_on_both_paths(decision_cache, limited_key):
    allowed = decide(limited_key.value, direction="export", api_id="inventory", address="2001:db8::7")
    assert allowed.allowed
    assert allowed.limits == Limits(10, 100, 1000, 10_000, 2, 20)
    other = decide(limited_key.value, direction="import", api_id="customer", address="192.0.2.1")
    assert other.limits == Limits(10, 100, 1000, 10_000)
    refused = decide(limited_key.value, direction="export", api_id="inventory", address="198.51.100.1")
    assert refused.reason == Reason.ADDRESS_NOT_ALLOWED
    assert refused.api_type_name == "Inventory Export"  # the usage count and the log know the type
    unchecked = decide(limited_key.value, direction="export", api_id="inventory")
    assert unchecked.allowed


def test_decide_for_key_id_checks_no_address(decision_cache, limited_key):
    """The task worker runs a queued document of a call that was checked when it came."""
    decision = decide_for_key_id(limited_key.pk, direction="export", api_id="inventory")
    assert decision.allowed
    assert decision.limits == Limits(10, 100, 1000, 10_000, 2, 20)


def test_decide_for_type_carries_the_same_limits(limited_key, inventory_export):
    key = type(limited_key).objects.prefetch_related("grants").get(pk=limited_key.pk)
    assert decide_for_type(key, inventory_export).limits == Limits(10, 100, 1000, 10_000, 2, 20)


def test_a_change_of_the_limits_is_seen_by_the_next_decision(limited_key):
    assert decide(limited_key.value, direction="export", api_id="inventory", address="198.51.100.1").reason == (
        Reason.ADDRESS_NOT_ALLOWED
    )
    limited_key.allowed_addresses = []
    limited_key.rate_per_second = None
    limited_key.save()
    decision = decide(limited_key.value, direction="export", api_id="inventory", address="198.51.100.1")
    assert decision.allowed
    assert decision.limits == Limits(None, 100, 1000, 10_000, 2, 20)
