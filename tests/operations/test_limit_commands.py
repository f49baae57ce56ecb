"""The limits and contact through create_api_key, update_api_key and show_api_key: set,
changed one by one, cleared, and every wrong value a CommandError that changes nothing."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from keys.models import ApiKey, ApiKeyGrant
from keys.services import GrantSpec

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def db_state():
    return (list(ApiKey.objects.order_by("pk").values()), list(ApiKeyGrant.objects.order_by("pk").values()))


def test_create_with_every_limit_and_the_contact():
    data = json.loads(
        run(
            "create_api_key",
            "--description",
            "ERP",
            "--type",
            "Inventory Export",
            "--type",
            "import:customer",
            "--rate-per-second",
            "20",
            "--rate-per-minute",
            "600",
            "--quota-per-day",
            "50000",
            "--quota-per-month",
            "1000000",
            "--allow-address",
            "198.51.100.0/24",
            "--allow-address",
            " 2001:DB8::/32",
            "--type-rate",
            "Inventory Export:5/s",
            "--type-rate",
            "import:customer:100/min",
            "--contact-name",
            "ERP team",
            "--contact-email",
            "erp@example.com",
            "--json",
        )
    )
    assert {k: data[k] for k in ("rate_per_second", "rate_per_minute", "quota_per_day", "quota_per_month")} == {
        "rate_per_second": 20,
        "rate_per_minute": 600,
        "quota_per_day": 50000,
        "quota_per_month": 1000000,
    }
    assert data["allowed_addresses"] == ["198.51.100.0/24", "2001:db8::/32"]
    assert (data["contact_name"], data["contact_email"]) == ("ERP team", "erp@example.com")
    rates = {t["name"]: (t["rate_per_second"], t["rate_per_minute"]) for t in data["api_types"]}
    assert rates == {"Inventory Export": (5, None), "Customer Import": (None, 100)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate-per-second", "0"], "--rate-per-second: '0' is not a count of calls; write a whole number from 1"),
        (["--quota-per-day", "lots"], "--quota-per-day: 'lots' is not a count of calls"),
        (["--quota-per-month", "none"], "--quota-per-month: 'none' is not a count of calls"),
        (["--rate-per-minute", "99999999999"], "from 1 to 2147483647"),
        (["--allow-address", "10.0.0.1/8"], "--allow-address: “10.0.0.1/8” has bits set after its prefix length"),
        (["--allow-address", "erp.example.com"], "--allow-address: “erp.example.com” is not an IP address"),
        (["--contact-email", "nobody"], "--contact-email: Enter a valid email address."),
        (
            ["--type-rate", "Inventory Export:5"],
            "--type-rate: 'Inventory Export:5' is not API-TYPE:N/s or API-TYPE:N/min",
        ),
        (["--type-rate", "Inventory Export:0/s"], "--type-rate: '0' is not a count of calls"),
        (["--type-rate", "Customer Import:5/s"], "--type-rate: Customer Import is not selected for the key"),
        (["--type-rate", "No Such Type:5/s"], "Unknown API type 'No Such Type'"),
    ],
)
def test_create_refuses_a_wrong_limit_and_creates_nothing(args, message):
    with pytest.raises(CommandError) as caught:
        run("create_api_key", "--description", "x", "--type", "Inventory Export", *args)
    assert message in str(caught.value)
    assert not ApiKey.objects.exists()


@pytest.fixture
def limited(make_key, inventory_export, customer_import):
    return make_key(
        description="limited",
        rate_per_second=20,
        quota_per_day=50000,
        allowed_addresses=["198.51.100.0/24", "192.0.2.10"],
        contact_name="Ann",
        contact_email="ann@example.com",
        grants=[GrantSpec(inventory_export.pk, rate_per_second=5), GrantSpec(customer_import.pk, rate_per_minute=60)],
    )


def test_update_changes_only_what_it_names(limited):
    run("update_api_key", str(limited.value), "--quota-per-month", "900000", "--rate-per-second", "none")
    key = ApiKey.objects.get(pk=limited.pk)
    assert (key.rate_per_second, key.quota_per_day, key.quota_per_month) == (None, 50000, 900000)
    assert key.allowed_addresses == ["198.51.100.0/24", "192.0.2.10/32"]
    assert (key.contact_name, key.contact_email) == ("Ann", "ann@example.com")
    assert {g.api_type.name: g.rate_per_second for g in key.grants.select_related("api_type")} == {
        "Inventory Export": 5,
        "Customer Import": None,
    }


def test_update_adds_and_removes_addresses(limited):
    run(
        "update_api_key",
        str(limited.value),
        "--allow-address",
        "2001:db8::/32",
        "--disallow-address",
        "192.0.2.10/32",
        "--allow-address",
        "198.51.100.0/24",
    )
    assert ApiKey.objects.get(pk=limited.pk).allowed_addresses == ["198.51.100.0/24", "2001:db8::/32"]
    run("update_api_key", str(limited.value), "--any-address")
    assert ApiKey.objects.get(pk=limited.pk).allowed_addresses == []


def test_update_sets_and_removes_a_types_rate(limited):
    run(
        "update_api_key",
        str(limited.value),
        "--type-rate",
        "Inventory Export:50/min",
        "--type-rate",
        "import:customer:none",
    )
    rates = {g.api_type.name: (g.rate_per_second, g.rate_per_minute) for g in limited.grants.select_related("api_type")}
    assert rates == {"Inventory Export": (5, 50), "Customer Import": (None, None)}


def test_a_type_added_in_the_same_command_can_have_a_rate(make_key, inventory_export):
    key = make_key()
    run(
        "update_api_key", str(key.value), "--add-type", "Inventory Export:logged", "--type-rate", "Inventory Export:3/s"
    )
    grant = key.grants.get()
    assert (grant.api_type_id, grant.logged, grant.rate_per_second) == (inventory_export.pk, True, 3)


def test_no_limits_removes_every_limit_and_then_applies_the_rest(limited):
    run("update_api_key", str(limited.value), "--no-limits", "--quota-per-day", "10")
    key = ApiKey.objects.get(pk=limited.pk)
    assert (key.rate_per_second, key.rate_per_minute, key.quota_per_day, key.quota_per_month) == (None, None, 10, None)
    assert key.allowed_addresses == []
    assert (key.contact_name, key.contact_email) == ("Ann", "ann@example.com")  # the contact is no limit
    assert {(g.rate_per_second, g.rate_per_minute) for g in key.grants.all()} == {(None, None)}


def test_update_clears_the_contact_with_empty_values(limited):
    run("update_api_key", str(limited.value), "--contact-name", "", "--contact-email", "")
    key = ApiKey.objects.get(pk=limited.pk)
    assert (key.contact_name, key.contact_email) == ("", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate-per-minute", "-1"], "--rate-per-minute: '-1' is not a count of calls"),
        (["--disallow-address", "203.0.113.9"], "--disallow-address: 203.0.113.9/32 is not among the key's client"),
        (["--allow-address", "::1/64"], "--allow-address: “::1/64” has bits set"),
        (["--contact-email", "ann@"], "--contact-email: Enter a valid email address. Nothing was changed."),
        (["--type-rate", "Inventory Export:5/h"], "is not API-TYPE:N/s or API-TYPE:N/min or API-TYPE:none"),
        (["--remove-type", "Inventory Export", "--type-rate", "Inventory Export:5/s"], "is not selected for the key"),
        # Both are checked before anything is written: the good one is not saved either.
        (["--quota-per-day", "7", "--contact-email", "x"], "--contact-email: Enter a valid email address."),
    ],
)
def test_update_refuses_a_wrong_limit_and_changes_nothing(limited, args, message):
    before = db_state()
    with pytest.raises(CommandError) as caught:
        run("update_api_key", str(limited.value), *args)
    assert message in str(caught.value)
    assert db_state() == before


def test_show_prints_the_limits_and_the_contact(limited):
    out = run("show_api_key", str(limited.value))
    assert "rate:            at most 20 calls per second\n" in out
    assert "quota:           50000 calls per day\n" in out
    assert "addresses:       198.51.100.0/24, 192.0.2.10/32\n" in out
    assert "contact:         Ann <ann@example.com>\n" in out
    assert "not logged, at most 5 calls per second\n" in out
    assert "not logged, at most 60 calls per minute\n" in out
    data = json.loads(run("show_api_key", str(limited.value), "--json"))
    assert (data["rate_per_second"], data["quota_per_month"], data["contact_email"]) == (20, None, "ann@example.com")


def test_show_says_when_a_key_has_no_limits(make_key):
    out = run("show_api_key", str(make_key().value))
    assert "rate:            no limit\nquota:           no limit\n" in out
    assert "addresses:       any (no client-address limit)\ncontact:         none\n" in out
