"""Warnings before a key, or its logging, ends (keys/warnings.py): which ends are due at
which threshold, in the site's time zone, once per key, end and threshold, again when the
end moves; who gets the email, and what happens when a send fails or a worker died mid-send.
The email itself through Django's locmem backend (pytest-django's outbox)."""

import zoneinfo
from datetime import date, datetime, timedelta

import pytest
from django.core import mail
from django.core.checks import run_checks
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils import timezone

from keys import warnings
from keys.models import ApiKey, ApiType, KeyWarning
from keys.services import GrantSpec
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

UTC = zoneinfo.ZoneInfo("UTC")
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


class FailingBackend(BaseEmailBackend):
    """A mail server that refuses every message."""

    def send_messages(self, messages):
        raise ConnectionRefusedError("the mail server is down")


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.KEYS_EXPIRY_WARNING_DAYS = [14, 3]
    settings.TIME_ZONE = "UTC"


def with_contact(key: ApiKey, email="erp@example.com", name="ERP team") -> ApiKey:
    ApiKey.objects.filter(pk=key.pk).update(contact_name=name, contact_email=email)
    key.refresh_from_db()
    return key


def sent_to() -> list[list[str]]:
    return sorted(message.to for message in mail.outbox)


@pytest.mark.parametrize(
    ("left", "threshold"),
    [
        (timedelta(days=15), None),  # beyond the largest threshold: not due
        (timedelta(days=14, microseconds=1), None),
        (timedelta(days=14), 14),  # the threshold itself is within it
        (timedelta(days=10), 14),
        (timedelta(days=3, microseconds=1), 14),
        (timedelta(days=3), 3),
        (timedelta(hours=2), 3),  # only the most urgent warning, even if the 14-day one never went
    ],
)
def test_an_expiry_is_due_at_the_smallest_threshold_it_is_within(make_key, left, threshold):
    key = make_key(allowed_for_all=True, expires_at=NOW + left)
    found = warnings.pending(at=NOW)
    assert [(end.key.pk, end.ends, days) for end, days in found] == ([(key.pk, "key", threshold)] if threshold else [])
    assert [end.key.pk for end in warnings.due(at=NOW)] == ([key.pk] if threshold else [])


def test_ended_inactive_and_far_keys_are_not_due(make_key):
    make_key(allowed_for_all=True, expires_at=NOW)  # expired at this very moment
    make_key(allowed_for_all=True, expires_at=NOW - timedelta(days=1))
    make_key(allowed_for_all=True, is_active=False, expires_at=NOW + timedelta(days=1))
    make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=30))
    make_key(allowed_for_all=True)  # never expires
    assert warnings.due(at=NOW) == []


def test_logging_ends_at_the_end_of_its_day_in_the_site_time_zone(settings, make_key):
    """Auckland is UTC+13 in March: "until 2027-03-12" logs until 2027-03-12 11:00 UTC."""
    settings.TIME_ZONE = "Pacific/Auckland"
    key = make_key(allowed_for_all=True, logged_for_all=True, logging_until=date(2027, 3, 12))
    end_utc = datetime(2027, 3, 12, 11, 0, tzinfo=UTC)
    (end,) = warnings.due(at=NOW)
    assert (end.key.pk, end.ends, end.ends_at, end.logging_until) == (key.pk, "logging", end_utc, date(2027, 3, 12))
    settings.KEYS_EXPIRY_WARNING_DAYS = [1]
    assert warnings.due(at=end_utc - timedelta(days=1, seconds=1)) == []
    assert [e.ends_at for e in warnings.due(at=end_utc - timedelta(days=1))] == [end_utc]
    # Its last second is still due; from the end on, nothing is.
    assert len(warnings.due(at=end_utc - timedelta(seconds=1))) == 1
    assert warnings.due(at=end_utc) == []
    # In UTC the same date ends 13 hours later.
    settings.TIME_ZONE = "UTC"
    assert [e.ends_at for e in warnings.due(at=end_utc)] == [datetime(2027, 3, 13, 0, 0, tzinfo=UTC)]


def test_a_logging_date_that_is_today_in_the_site_zone_but_not_in_utc(settings, make_key):
    """At 2027-03-10 12:00 UTC it is already the 11th in Auckland: a key logged until the 11th
    ends in 11 hours, and is found though its date is tomorrow's in UTC."""
    settings.TIME_ZONE = "Pacific/Auckland"
    settings.KEYS_EXPIRY_WARNING_DAYS = [1]
    make_key(allowed_for_all=True, logged_for_all=True, logging_until=date(2027, 3, 11))
    (end,) = warnings.due(at=NOW)
    assert end.ends_at == datetime(2027, 3, 11, 11, 0, tzinfo=UTC)


def test_grants_ending_the_same_day_are_one_end(make_key, inventory_export, customer_import):
    day = date(2027, 3, 15)
    key = make_key(
        grants=[
            GrantSpec(inventory_export.pk, logged=True, logging_until=day),
            GrantSpec(customer_import.pk, logged=True, logging_until=day),
        ]
    )
    (end,) = warnings.due(at=NOW)
    names = tuple(sorted([inventory_export.name, customer_import.name]))
    assert (end.key.pk, end.ends, end.api_types) == (key.pk, "logging", names)
    assert end.what() == f"logging of {', '.join(names)} ends after 2027-03-15"


def test_grants_on_different_days_are_ends_of_their_own(make_key, inventory_export, customer_import):
    make_key(
        grants=[
            GrantSpec(inventory_export.pk, logged=True, logging_until=date(2027, 3, 15)),
            GrantSpec(customer_import.pk, logged=True, logging_until=date(2027, 3, 20)),
            GrantSpec(ApiType.objects.exclude(pk__in=[inventory_export.pk, customer_import.pk]).first().pk),
        ]
    )
    assert [(e.logging_until, e.api_types) for e in warnings.due(at=NOW)] == [
        (date(2027, 3, 15), (inventory_export.name,)),
        (date(2027, 3, 20), (customer_import.name,)),
    ]


def test_what_the_decision_ignores_is_not_warned_about(make_key, inventory_export):
    # Allowed for all: the kept per-type selection is ignored, and so are its dates.
    make_key(
        allowed_for_all=True, grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2027, 3, 15))]
    )
    # Logging that ends after the key itself expired: the key stops first (its expiry is warned about).
    late = make_key(
        allowed_for_all=True,
        logged_for_all=True,
        logging_until=date(2027, 3, 16),
        expires_at=datetime(2027, 3, 16, 8, 0, tzinfo=UTC),
    )
    assert [(e.key.pk, e.ends) for e in warnings.due(at=NOW)] == [(late.pk, "key")]


def test_the_warning_goes_once_to_the_contact_and_each_administrator(make_key, administrator, superuser, viewer):
    User = type(administrator)
    User.objects.filter(pk=administrator.pk).update(email="admin@example.com", first_name="Ada", last_name="Admin")
    User.objects.filter(pk=superuser.pk).update(email="root@example.com")
    User.objects.filter(pk=viewer.pk).update(email="viewer@example.com")  # may look, not change: not told
    make_user("gone", group="Integration administrators", email="gone@example.com", is_active=False)
    make_user("silent", group="Integration administrators")  # no address
    key = with_contact(make_key(description="ERP orders", allowed_for_all=True, expires_at=NOW + timedelta(days=2)))

    assert warnings.send_due(at=NOW) == 1
    assert sent_to() == [["Ada Admin <admin@example.com>"], ["ERP team <erp@example.com>"], ["root@example.com"]]
    to_contact = next(m for m in mail.outbox if m.to == ["ERP team <erp@example.com>"])
    assert to_contact.subject == "API key “ERP orders” expires in 2 days"
    assert "Hello ERP team," in to_contact.body
    assert "named as the contact" in to_contact.body
    assert f"number {key.pk}, value ending …{key.value.hex[-4:]}" in to_contact.body
    assert "expires 2027-03-12 12:00 (UTC), in 2 days." in to_contact.body
    assert "This warning goes once, when the end is 3 days away or less.\n" in to_contact.body
    for message in mail.outbox:
        assert str(key.value) not in message.body
        assert key.value.hex not in message.body
    to_admin = next(m for m in mail.outbox if m.to == ["root@example.com"])
    assert "integration administrator" in to_admin.body
    assert "contact" not in to_admin.body

    row = KeyWarning.objects.get()
    assert (row.key_id, row.ends, row.ends_at, row.days_before) == (key.pk, "key", key.expires_at, 3)
    assert sorted(row.recipients) == ["Ada Admin <admin@example.com>", "ERP team <erp@example.com>", "root@example.com"]
    # Once: the next rounds send nothing.
    mail.outbox.clear()
    assert warnings.send_due(at=NOW + timedelta(minutes=15)) == 0
    assert warnings.send_due(at=NOW + timedelta(days=1)) == 0
    assert mail.outbox == []
    assert warnings.due(at=NOW)[0].warned == (3,)


def test_an_administrator_who_is_the_contact_gets_one_message(make_key, administrator):
    type(administrator).objects.filter(pk=administrator.pk).update(email="ERP@example.com", first_name="Ada")
    with_contact(make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=2)))
    assert warnings.send_due(at=NOW) == 1
    assert sent_to() == [["ERP team <erp@example.com>"]]


def test_the_email_says_the_moment_in_the_site_time_zone(settings, make_key):
    settings.TIME_ZONE = "America/New_York"
    with_contact(make_key(allowed_for_all=True, expires_at=datetime(2027, 3, 12, 17, 0, tzinfo=UTC)))
    assert warnings.send_due(at=NOW) == 1
    assert "expires 2027-03-12 12:00 (America/New_York), in 2 days." in mail.outbox[0].body


def test_each_threshold_once_then_the_next(make_key):
    key = with_contact(make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=10)))
    assert warnings.send_due(at=NOW) == 1
    assert warnings.send_due(at=NOW + timedelta(days=1)) == 0
    assert warnings.send_due(at=NOW + timedelta(days=7)) == 1  # 3 days left
    assert warnings.send_due(at=NOW + timedelta(days=8)) == 0
    assert sorted(KeyWarning.objects.filter(key=key).values_list("days_before", flat=True)) == [3, 14]
    assert [m.subject for m in mail.outbox] == [
        f"API key number {key.pk} expires in 10 days",
        f"API key number {key.pk} expires in 3 days",
    ]


def test_an_end_that_moved_is_warned_again(make_key):
    key = with_contact(make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=2)))
    assert warnings.send_due(at=NOW) == 1
    ApiKey.objects.filter(pk=key.pk).update(expires_at=NOW + timedelta(days=2, hours=5))
    assert warnings.due(at=NOW)[0].warned == ()  # the new moment has not been warned about
    assert warnings.send_due(at=NOW) == 1
    assert KeyWarning.objects.filter(key=key).count() == 2
    assert len(mail.outbox) == 2


def test_a_failed_send_is_not_recorded_and_is_tried_again(settings, make_key, caplog):
    with_contact(make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=2)))
    settings.EMAIL_BACKEND = f"{__name__}.FailingBackend"
    assert warnings.send_due(at=NOW) == 0
    assert KeyWarning.objects.count() == 0
    assert "was not sent; it is tried again" in caplog.text
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert warnings.send_due(at=NOW + timedelta(minutes=15)) == 1
    assert len(mail.outbox) == 1
    assert KeyWarning.objects.get().recipients == ["ERP team <erp@example.com>"]


def test_a_claim_in_flight_is_left_alone_and_a_dead_one_is_taken_over(make_key):
    key = with_contact(make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=2)))
    # Another worker claimed it a minute ago and is sending now.
    claim = KeyWarning.objects.create(
        key=key, ends="key", ends_at=key.expires_at, days_before=3, sent_at=NOW - timedelta(minutes=1), recipients=[]
    )
    assert warnings.pending(at=NOW) == []
    assert warnings.send_due(at=NOW) == 0
    assert mail.outbox == []
    # That worker died before it confirmed: after the lease, the warning is sent (at least once).
    later = claim.sent_at + warnings.CLAIM_LEASE + timedelta(seconds=1)
    assert warnings.send_due(at=later) == 1
    claim.refresh_from_db()
    assert (claim.recipients, len(mail.outbox), KeyWarning.objects.count()) == (["ERP team <erp@example.com>"], 1, 1)


def test_of_two_workers_claiming_one_warning_one_wins(make_key):
    key = with_contact(make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=2)))
    (end, days), = warnings.pending(at=NOW)  # fmt: skip
    assert warnings._claim(end, days, NOW) is not None
    assert warnings._claim(end, days, NOW) is None  # the unique row: the second insert loses
    stale = NOW + warnings.CLAIM_LEASE + timedelta(seconds=1)
    assert warnings._claim(end, days, stale) is not None  # taken over once...
    assert warnings._claim(end, days, stale) is None  # ...by one of them
    assert KeyWarning.objects.filter(key=key).count() == 1


def test_a_key_with_nobody_to_warn_is_not_recorded(make_key, caplog):
    make_key(allowed_for_all=True, expires_at=NOW + timedelta(days=2))
    assert warnings.send_due(at=NOW) == 0
    assert KeyWarning.objects.count() == 0
    assert mail.outbox == []
    assert "nobody to warn" in caplog.text


def test_logging_warning_names_its_api_types(make_key, inventory_export):
    key = with_contact(
        make_key(
            description="shop", grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2027, 3, 11))]
        )
    )
    assert warnings.send_due(at=NOW) == 1
    (message,) = mail.outbox
    assert message.subject == "Logging of API key “shop” ends in 1 day"
    assert (
        f"to {inventory_export.name} are logged until 2027-03-11 (the end of that day, UTC): logging ends in 1 day."
        in (message.body)
    )
    assert "3 days away or less.\n" in message.body
    assert "no longer stored" in message.body
    assert KeyWarning.objects.get(key=key).ends == "logging"


def test_warnings_off(settings, make_key):
    settings.KEYS_EXPIRY_WARNING_DAYS = []
    with_contact(make_key(allowed_for_all=True, expires_at=NOW + timedelta(hours=1)))
    assert (warnings.due(at=NOW), warnings.send_due(at=NOW)) == ([], 0)
    assert [e.ends for e in warnings.due(at=NOW, days=1)] == ["key"]  # keys_due --days still looks


def test_the_old_single_number_is_one_threshold(settings):
    settings.KEYS_EXPIRY_WARNING_DAYS = 7
    assert (warnings.warning_days(), warnings.horizon_days()) == ((7,), 7)
    settings.KEYS_EXPIRY_WARNING_DAYS = [3, 14, 3]
    assert warnings.warning_days() == (14, 3)


@pytest.mark.parametrize("value", ["7", [0], [3, -1], [True], [2.5], None, {"days": 3}])
def test_a_bad_threshold_is_a_check_error(settings, value):
    settings.KEYS_EXPIRY_WARNING_DAYS = value
    errors = [e for e in run_checks() if e.id == "keys.E030"]
    assert len(errors) == 1
    assert "KEYS_EXPIRY_WARNING_DAYS" in errors[0].msg


@pytest.mark.parametrize("value", [7, [], [14, 3], (30,)])
def test_good_thresholds_pass_the_check(settings, value):
    settings.KEYS_EXPIRY_WARNING_DAYS = value
    assert [e for e in run_checks() if e.id == "keys.E030"] == []


@pytest.mark.parametrize(
    ("backend", "days", "warned"),
    [
        ("django.core.mail.backends.console.EmailBackend", [7], True),
        ("django.core.mail.backends.dummy.EmailBackend", [7], True),
        ("django.core.mail.backends.locmem.EmailBackend", [7], False),  # what the test runner sets
        ("django.core.mail.backends.console.EmailBackend", [], False),  # warnings off: nothing to deliver
        ("django.core.mail.backends.smtp.EmailBackend", [7], False),
    ],
)
def test_deploy_check_names_an_email_backend_that_reaches_nobody(settings, backend, days, warned):
    settings.EMAIL_BACKEND = backend
    settings.KEYS_EXPIRY_WARNING_DAYS = days
    found = [w for w in run_checks(include_deployment_checks=True) if w.id == "keys.W030"]
    assert len(found) == int(warned)
    assert [w for w in run_checks() if w.id == "keys.W030"] == []  # only with --deploy


def test_a_negative_check_interval_is_a_check_error(settings):
    settings.KEYS_WARNING_CHECK_MINUTES = -1
    assert any(e.id == "keys.E002" and "KEYS_WARNING_CHECK_MINUTES" in e.msg for e in run_checks())


def test_due_queries_do_not_grow_with_keys(make_key, inventory_export, django_assert_num_queries):
    for n in range(20):
        make_key(
            allowed_for_all=n % 2 == 0,
            expires_at=NOW + timedelta(days=n % 5 + 3),  # after the logging ends: both are due
            grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2027, 3, 12))],
        )
    with django_assert_num_queries(3):  # keys, their logged grants, the warnings sent
        found = warnings.due(at=NOW)
    assert len(found) == 30


def test_the_table_flags_an_expiry_within_the_largest_threshold(administrator_client, make_key):
    make_key(description="soon", allowed_for_all=True, expires_at=timezone.now() + timedelta(days=13))
    page = administrator_client.get(reverse("keys:pane")).content.decode()
    assert '<span class="state state-warn">expires in 12 days</span>' in page
