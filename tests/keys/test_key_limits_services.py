"""A key's limits and contact through the services: normalised, checked per field,
replaced like every other setting, audited in the pane's words, never half-saved."""

import pytest
from django.core.exceptions import ValidationError

from keys import services
from keys.audit import describe
from keys.models import ApiKey, ApiKeyGrant, KeyAudit
from keys.services import NO_CONTACT, NO_LIMITS, GrantSpec

pytestmark = pytest.mark.django_db


def settings_of(key: ApiKey) -> dict:
    return {name: getattr(key, name) for name in services.KEY_FIELDS}


def test_create_stores_every_limit_and_the_contact(make_key, inventory_export):
    key = make_key(
        rate_per_second=20,
        rate_per_minute=600,
        quota_per_day=50_000,
        quota_per_month=1_000_000,
        allowed_addresses=["198.51.100.0/24", "2001:db8::/32"],
        contact_name=" ERP team ",
        contact_email="erp@example.com",
        grants=[GrantSpec(inventory_export.pk, rate_per_second=5, rate_per_minute=100)],
    )
    key = ApiKey.objects.get(pk=key.pk)
    assert (key.rate_per_second, key.rate_per_minute, key.quota_per_day, key.quota_per_month) == (
        20,
        600,
        50_000,
        1_000_000,
    )
    assert key.allowed_addresses == ["198.51.100.0/24", "2001:db8::/32"]
    assert (key.contact_name, key.contact_email) == ("ERP team", "erp@example.com")
    grant = key.grants.get()
    assert (grant.rate_per_second, grant.rate_per_minute) == (5, 100)


def test_addresses_are_stripped_canonical_and_each_once():
    assert services.normalized_addresses(
        ["  192.0.2.10 ", "", "192.0.2.10/32", "2001:DB8:0::/32", "2001:db8::/32", "10.0.0.0/8", "::1"]
    ) == ["192.0.2.10/32", "2001:db8::/32", "10.0.0.0/8", "::1/128"]


def test_every_wrong_address_is_named():
    with pytest.raises(ValidationError) as caught:
        services.normalized_addresses(["192.0.2.1", "10.0.0.1/8", "erp.example.com", "300.1.2.3"])
    messages = caught.value.message_dict["allowed_addresses"]
    assert messages == [
        "“10.0.0.1/8” has bits set after its prefix length: the range it lies in is 10.0.0.0/8.",
        "“erp.example.com” is not an IP address or a CIDR range (such as 192.0.2.10, 198.51.100.0/24 or "
        "2001:db8::/32).",
        "“300.1.2.3” is not an IP address or a CIDR range (such as 192.0.2.10, 198.51.100.0/24 or 2001:db8::/32).",
    ]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"rate_per_second": 0}, "rate_per_second", "at least 1"),
        ({"rate_per_minute": -3}, "rate_per_minute", "at least 1"),
        ({"quota_per_day": 2**31}, "quota_per_day", "up to 2147483647"),
        ({"quota_per_month": "many"}, "quota_per_month", "is not a whole number"),
        ({"quota_per_month": True}, "quota_per_month", "is not a whole number"),
        ({"allowed_addresses": ["not an address"]}, "allowed_addresses", "is not an IP address"),
        ({"contact_email": "erp at example"}, "contact_email", "Enter a valid email address."),
        ({"contact_name": "x" * 151}, "contact_name", "at most 150 characters"),
    ],
)
def test_a_wrong_limit_names_its_field_and_nothing_is_created(fields, field, message):
    with pytest.raises(ValidationError) as caught:
        services.api_key_create(description="new", **fields)
    assert field in caught.value.message_dict
    assert message in " ".join(caught.value.message_dict[field])
    assert not ApiKey.objects.exists()


def test_every_wrong_field_is_named_at_once():
    with pytest.raises(ValidationError) as caught:
        services.api_key_create(description="x" * 300, rate_per_second=0, contact_email="nope")
    assert set(caught.value.message_dict) == {"description", "rate_per_second", "contact_email"}


def test_a_failed_update_changes_nothing(make_key, inventory_export):
    key = make_key(rate_per_second=5, allowed_addresses=["192.0.2.10"], grants=[inventory_export.pk])
    before = (list(ApiKey.objects.values()), list(ApiKeyGrant.objects.values()), KeyAudit.objects.count())
    with pytest.raises(ValidationError):
        services.api_key_update(
            key=key,
            **settings_of(key) | {"description": "changed", "quota_per_day": 0},
            grants=[GrantSpec(inventory_export.pk, rate_per_second=9)],
        )
    assert (list(ApiKey.objects.values()), list(ApiKeyGrant.objects.values()), KeyAudit.objects.count()) == before


def test_a_wrong_type_rate_names_the_type_and_changes_nothing(make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    with pytest.raises(ValidationError) as caught:
        services.api_key_change(key=key, add_grants=[GrantSpec(inventory_export.pk, rate_per_minute=0)])
    assert caught.value.message_dict["api_types"] == [
        "Inventory Export, calls per minute: Write a whole number of at least 1, or leave it empty for no limit."
    ]
    assert key.grants.get().rate_per_minute is None


def test_update_replaces_the_limits_as_it_replaces_every_setting(make_key):
    """api_key_update takes every setting (none has a default), so a caller that means
    "no limits" says so: a forgotten argument is a TypeError, never a limit silently dropped."""
    key = make_key(rate_per_second=5, quota_per_day=100, allowed_addresses=["192.0.2.10"], contact_name="Ann")
    with pytest.raises(TypeError):
        services.api_key_update(
            key=key, **{n: v for n, v in settings_of(key).items() if n != "rate_per_second"}, grants=[]
        )
    services.api_key_update(key=key, **settings_of(key) | NO_LIMITS | NO_CONTACT, grants=[])
    key = ApiKey.objects.get(pk=key.pk)
    assert (key.rate_per_second, key.quota_per_day, key.allowed_addresses, key.contact_name) == (None, None, [], "")


def test_a_partial_change_keeps_the_limits_it_does_not_name(make_key, inventory_export):
    key = make_key(
        rate_per_second=5,
        allowed_addresses=["192.0.2.10"],
        contact_email="ann@example.com",
        grants=[GrantSpec(inventory_export.pk, rate_per_second=2)],
    )
    services.api_key_change(key=key, description="renamed", quota_per_month=9000)
    key = ApiKey.objects.get(pk=key.pk)
    assert (key.rate_per_second, key.quota_per_month, key.allowed_addresses, key.contact_email) == (
        5,
        9000,
        ["192.0.2.10/32"],
        "ann@example.com",
    )
    assert key.grants.get().rate_per_second == 2


def test_limit_changes_are_audited_in_the_panes_words(make_key, inventory_export):
    key = make_key(description="erp", grants=[inventory_export.pk])
    created = KeyAudit.objects.get(key=key, action=KeyAudit.Action.CREATED)
    # A new key's history does not list the limits it does not have.
    assert not [line for line in describe(created.changes) if "calls per" in line or "contact" in line]
    services.api_key_change(
        key=key,
        rate_per_second=20,
        quota_per_day=50_000,
        allowed_addresses=["198.51.100.0/24", "192.0.2.10"],
        contact_name="ERP team",
        contact_email="erp@example.com",
        add_grants=[GrantSpec(inventory_export.pk, rate_per_minute=60)],
    )
    entry = KeyAudit.objects.filter(key=key).latest("pk")
    assert entry.action == KeyAudit.Action.CHANGED
    assert sorted(describe(entry.changes)) == [
        "Inventory Export: selected, not logged → selected, not logged, at most 60 calls per minute",
        "calls per day: no limit → 50000",
        "calls per second: no limit → 20",
        "client addresses: any address → 198.51.100.0/24, 192.0.2.10/32",
        "contact email: (none) → erp@example.com",
        "contact name: (none) → ERP team",
    ]
    services.api_key_change(key=key, **NO_LIMITS)
    entry = KeyAudit.objects.filter(key=key).latest("pk")
    assert sorted(describe(entry.changes)) == [
        "calls per day: 50000 → no limit",
        "calls per second: 20 → no limit",
        "client addresses: 198.51.100.0/24, 192.0.2.10/32 → any address",
    ]


def test_saving_the_same_addresses_written_otherwise_is_no_event(make_key):
    key = make_key(allowed_addresses=["192.0.2.10/32"])
    count = KeyAudit.objects.count()
    services.api_key_change(key=key, allowed_addresses=[" 192.0.2.10 ", "192.0.2.10"])
    assert KeyAudit.objects.count() == count
