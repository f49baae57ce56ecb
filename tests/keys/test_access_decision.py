"""The one access decision: every refusal reason, allowed for all vs selected,
logged for all vs per type, and where a logging-until day ends."""

import uuid
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.test import override_settings

from keys.access import Decision, Reason, decide, decide_for_key_id, decide_for_type, logging_on
from keys.services import GrantSpec

# Every rule is checked on both paths: each worker's cache, and the one indexed query.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("decision_cache")]

NOON = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def check(key, api_type, at=NOON):
    return decide(str(key.value), direction=api_type.direction, api_id=api_type.api_id, at=at)


@pytest.mark.parametrize("raw", [None, "", "not-a-guid", "1234", "x" * 500, "{zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz}"])
def test_malformed_key(raw, inventory_export):
    decision = decide(raw, direction="export", api_id="inventory", at=NOON)
    assert (decision.allowed, decision.reason) == (False, Reason.MALFORMED_KEY)


def test_unknown_key(inventory_export):
    decision = decide(str(uuid.uuid4()), direction="export", api_id="inventory", at=NOON)
    assert (decision.allowed, decision.reason, decision.key_id) == (False, Reason.UNKNOWN_KEY, None)


def test_unknown_key_is_refused_before_the_catalog_is_consulted():
    decision = decide(str(uuid.uuid4()), direction="export", api_id="no-such-api", at=NOON)
    assert decision.reason == Reason.UNKNOWN_KEY


def test_inactive_key(make_key, inventory_export):
    key = make_key(is_active=False, allowed_for_all=True)
    decision = check(key, inventory_export)
    assert (decision.allowed, decision.reason) == (False, Reason.INACTIVE_KEY)


def test_inactive_key_hides_unknown_api_type(make_key):
    key = make_key(is_active=False, allowed_for_all=True)
    assert decide(key.value, direction="export", api_id="nope", at=NOON).reason == Reason.INACTIVE_KEY


@pytest.mark.parametrize("allowed_for_all", [True, False])
def test_unknown_api_type(make_key, allowed_for_all):
    key = make_key(allowed_for_all=allowed_for_all)
    decision = decide(str(key.value), direction="export", api_id="no-such-api", at=NOON)
    assert (decision.allowed, decision.reason) == (False, Reason.UNKNOWN_API_TYPE)


def test_direction_is_part_of_the_api_type(make_key, customer_import):
    key = make_key(grants=[customer_import.pk])
    assert decide(key.value, direction="import", api_id="customer", at=NOON).allowed
    decision = decide(key.value, direction="export", api_id="customer", at=NOON)
    assert decision.reason == Reason.API_TYPE_NOT_ALLOWED


def test_type_not_selected(make_key, inventory_export, customer_import):
    key = make_key(grants=[customer_import.pk])
    decision = check(key, inventory_export)
    assert (decision.allowed, decision.reason, decision.logged) == (False, Reason.API_TYPE_NOT_ALLOWED, False)


def test_selected_type_allowed_not_logged(make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    decision = check(key, inventory_export)
    assert (decision.allowed, decision.reason, decision.logged) == (True, Reason.ALLOWED, False)
    assert decision.api_type_id == inventory_export.pk


def test_selected_type_logged_without_end(make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    assert check(key, inventory_export, at=datetime(2099, 1, 1, tzinfo=UTC)).logged is True


def test_allowed_for_all_allows_every_type(make_key, inventory_export, customer_import):
    key = make_key(allowed_for_all=True)
    assert check(key, inventory_export).allowed
    assert check(key, customer_import).allowed
    assert not check(key, customer_import).logged


def test_logged_for_all(make_key, inventory_export):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    assert check(key, inventory_export).logged is True


def test_kept_grants_are_ignored_while_allowed_for_all(make_key, inventory_export, customer_import):
    # The per-type "logged" does not switch logging on when the key is allowed for all ...
    key = make_key(allowed_for_all=True, grants=[GrantSpec(inventory_export.pk, logged=True)])
    assert check(key, inventory_export).logged is False
    # ... and logged for all logs types whose kept grant says not logged.
    key = make_key(allowed_for_all=True, logged_for_all=True, grants=[GrantSpec(customer_import.pk, logged=False)])
    assert check(key, customer_import).logged is True


@pytest.mark.parametrize(
    ("zone", "at", "logged"),
    [
        # Logging until 2026-03-10 in New York (UTC-4 after the DST switch on 8 March).
        ("America/New_York", datetime(2026, 3, 11, 3, 59, 59, tzinfo=UTC), True),
        ("America/New_York", datetime(2026, 3, 11, 4, 0, 0, tzinfo=UTC), False),
        # The same instants in a UTC site: the day already ended at midnight UTC.
        ("UTC", datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC), True),
        ("UTC", datetime(2026, 3, 11, 0, 0, 0, tzinfo=UTC), False),
        ("UTC", datetime(2026, 3, 11, 3, 59, 59, tzinfo=UTC), False),
        # East of UTC the day ends earlier in UTC terms.
        ("Asia/Tokyo", datetime(2026, 3, 10, 14, 59, 59, tzinfo=UTC), True),
        ("Asia/Tokyo", datetime(2026, 3, 10, 15, 0, 0, tzinfo=UTC), False),
        # Before the date, logging is on.
        ("UTC", datetime(2020, 1, 1, tzinfo=UTC), True),
    ],
)
@pytest.mark.parametrize("for_all", [True, False])
def test_logging_until_ends_with_the_day_in_site_time_zone(make_key, inventory_export, zone, at, logged, for_all):
    until = date(2026, 3, 10)
    if for_all:
        key = make_key(allowed_for_all=True, logged_for_all=True, logging_until=until)
    else:
        key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=until)])
    with override_settings(TIME_ZONE=zone):
        decision = check(key, inventory_export, at=at)
    assert decision.allowed is True
    assert decision.logged is logged


def test_now_is_the_default_instant(make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2026, 3, 10))])
    with time_machine.travel(datetime(2026, 3, 10, 23, 0, tzinfo=UTC), tick=False):
        assert decide(key.value, direction="export", api_id="inventory").logged is True
    with time_machine.travel(datetime(2026, 3, 11, 0, 0, tzinfo=UTC), tick=False):
        assert decide(key.value, direction="export", api_id="inventory").logged is False


def test_key_value_accepts_any_guid_spelling(make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    for spelling in (str(key.value).upper(), "{" + str(key.value) + "}", key.value.hex, f"  {key.value}  "):
        assert decide(spelling, direction="export", api_id="inventory", at=NOON).allowed, spelling


def test_api_ids_with_slashes(make_key):
    key = make_key(allowed_for_all=True)
    assert decide(key.value, direction="import", api_id="echo/EcommQty", at=NOON).allowed


def test_decide_without_the_cache_is_one_query(settings, make_key, inventory_export, django_assert_num_queries):
    settings.KEYS_DECISION_CACHE = False
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    with django_assert_num_queries(1):
        decision = check(key, inventory_export)
    assert decision.logged


def test_decide_cold_reads_catalog_key_and_grants_then_nothing(
    settings, make_key, inventory_export, django_assert_num_queries
):
    settings.KEYS_DECISION_CACHE = True
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    with django_assert_num_queries(3):  # the catalog (once per change), the key, its grants
        assert check(key, inventory_export).logged
    with django_assert_num_queries(0):
        assert check(key, inventory_export).logged
    other = make_key(allowed_for_all=True)  # a change: every process's cache is stale
    with django_assert_num_queries(3):
        assert check(other, inventory_export).allowed
    guess = uuid.uuid4()
    with django_assert_num_queries(1):  # a key not seen under this marker (here: not known at all)
        assert decide(guess, direction="export", api_id="inventory").reason == "unknown key"
    with django_assert_num_queries(0):  # a repeated guess costs no query
        assert decide(guess, direction="export", api_id="inventory").reason == "unknown key"


def test_decide_for_type_agrees_with_decide(make_key, inventory_export, customer_import):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2026, 6, 15))])
    for api_type in (inventory_export, customer_import):
        for at in (NOON, datetime(2026, 6, 16, tzinfo=UTC)):
            assert decide_for_type(key, api_type, at=at) == check(key, api_type, at=at)


def test_decide_for_key_id_agrees_with_decide(make_key, inventory_export, customer_import):
    """The task worker's question (by key id) gets the answer the key's value would get."""
    keys = [
        make_key(
            description="one", grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2026, 6, 15))]
        ),
        make_key(description="all", allowed_for_all=True, logged_for_all=True),
        make_key(is_active=False, allowed_for_all=True),
        make_key(allowed_for_all=True, expires_at=NOON),
    ]
    for key in keys:
        for direction, api_id in [("export", "inventory"), ("import", "customer"), ("export", "nothing")]:
            for at in (NOON, datetime(2026, 6, 16, tzinfo=UTC)):
                by_value = decide(key.value, direction=direction, api_id=api_id, at=at)
                assert decide_for_key_id(key.pk, direction=direction, api_id=api_id, at=at) == by_value


def test_decide_for_key_id_of_a_removed_key_is_unknown(make_key):
    key = make_key(allowed_for_all=True)
    assert decide_for_key_id(key.pk, direction="export", api_id="inventory").allowed
    key.delete()
    for key_id in (key.pk, None):
        assert decide_for_key_id(key_id, direction="export", api_id="inventory") == Decision(False, Reason.UNKNOWN_KEY)


def test_decide_for_key_id_sees_a_change_made_after_the_cache_was_filled(settings, make_key):
    settings.KEYS_DECISION_CACHE = True
    key = make_key(allowed_for_all=True)
    assert decide_for_key_id(key.pk, direction="export", api_id="inventory").allowed
    key.is_active = False
    key.save()
    assert decide_for_key_id(key.pk, direction="export", api_id="inventory").reason == Reason.INACTIVE_KEY


def test_logging_on_requires_logged():
    assert logging_on(logged=False, until=None, at=NOON) is False
    assert logging_on(logged=True, until=None, at=NOON) is True


def test_every_field_of_every_decision(make_key, inventory_export, customer_import):
    """Whole decisions, not single fields: the ids and names callers store and show."""
    for_all = make_key(description="all", allowed_for_all=True, grants=[GrantSpec(inventory_export.pk, logged=True)])
    picked = make_key(description="one", grants=[GrantSpec(inventory_export.pk, logged=True)])
    grant = picked.grants.get()
    kept = for_all.grants.get()
    inactive = make_key(is_active=False, allowed_for_all=True)
    assert decide(for_all.value, direction="export", api_id="inventory", at=NOON) == Decision(
        True, Reason.ALLOWED, False, for_all.pk, inventory_export.pk, kept.pk, "all", "Inventory Export"
    )
    assert decide(for_all.value, direction="import", api_id="customer", at=NOON) == Decision(
        True, Reason.ALLOWED, False, for_all.pk, customer_import.pk, None, "all", "Customer Import"
    )
    assert decide(picked.value, direction="export", api_id="inventory", at=NOON) == Decision(
        True, Reason.ALLOWED, True, picked.pk, inventory_export.pk, grant.pk, "one", "Inventory Export"
    )
    assert decide(picked.value, direction="import", api_id="customer", at=NOON) == Decision(
        False,
        Reason.API_TYPE_NOT_ALLOWED,
        key_id=picked.pk,
        api_type_id=customer_import.pk,
        api_type_name="Customer Import",
    )
    assert decide(picked.value, direction="export", api_id="nothing", at=NOON) == Decision(
        False, Reason.UNKNOWN_API_TYPE, key_id=picked.pk
    )
    # The type rides along for the key's usage counts.
    assert decide(inactive.value, direction="export", api_id="inventory", at=NOON) == Decision(
        False, Reason.INACTIVE_KEY, key_id=inactive.pk, api_type_id=inventory_export.pk
    )
    assert decide(inactive.value, direction="export", api_id="nothing", at=NOON) == Decision(
        False, Reason.INACTIVE_KEY, key_id=inactive.pk
    )
    assert decide(uuid.uuid4(), direction="export", api_id="inventory", at=NOON) == Decision(False, Reason.UNKNOWN_KEY)
    assert decide("nope", direction="export", api_id="inventory", at=NOON) == Decision(False, Reason.MALFORMED_KEY)


def test_an_api_id_at_its_column_length_is_looked_up_and_a_longer_one_is_not(make_key):
    from keys.models import ApiType

    longest = ApiType.objects.create(direction="export", api_id="x" * 100, name="Longest Export")
    key = make_key(allowed_for_all=True)
    assert decide(key.value, direction="export", api_id="x" * 100, at=NOON).api_type_id == longest.pk
    assert decide(key.value, direction="export", api_id="x" * 101, at=NOON).reason == Reason.UNKNOWN_API_TYPE


@pytest.mark.parametrize("for_all", [True, False])
def test_logging_until_on_the_query_path_reads_the_stored_date(settings, make_key, inventory_export, for_all):
    until = date(2026, 6, 15)
    if for_all:
        key = make_key(allowed_for_all=True, logged_for_all=True, logging_until=until)
    else:
        key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=until)])
    assert check(key, inventory_export, at=NOON).logged is True
    assert check(key, inventory_export, at=datetime(2026, 6, 16, 0, 0, tzinfo=UTC)).logged is False


def test_unknown_key_at_a_given_instant(make_key, inventory_export):
    decision = decide(uuid.uuid4(), direction="export", api_id="inventory", at=datetime(1990, 1, 1, tzinfo=UTC))
    assert decision == Decision(False, Reason.UNKNOWN_KEY)


def test_refusals_are_whole_decisions_too(make_key):
    from keys.access import authenticate

    assert authenticate("x") == Decision(False, Reason.MALFORMED_KEY)
    assert authenticate(uuid.uuid4()) == Decision(False, Reason.UNKNOWN_KEY)


def test_nul_in_an_api_id_never_reaches_the_database(settings, make_key, inventory_export):
    from django.db import connection

    settings.KEYS_DECISION_CACHE = False
    key = make_key(allowed_for_all=True)
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(params)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        decision = decide(key.value, direction="export", api_id="inventory\x00", at=NOON)
    assert decision.reason == Reason.UNKNOWN_API_TYPE
    assert sent
    assert not any("\x00" in str(value) for params in sent for value in params)


@pytest.mark.parametrize("for_all", [True, False])
def test_decide_for_type_with_allowed_and_logged_for_all(make_key, inventory_export, for_all):
    key = make_key(
        description="for all" if for_all else "none",
        allowed_for_all=for_all,
        logged_for_all=for_all,
        logging_until=date(2026, 6, 15) if for_all else None,
    )
    key = type(key).objects.prefetch_related("grants").get(pk=key.pk)
    assert decide_for_type(key, inventory_export, at=NOON) == check(key, inventory_export)
    later = datetime(2026, 6, 16, tzinfo=UTC)
    assert decide_for_type(key, inventory_export, at=later) == check(key, inventory_export, at=later)
    assert decide_for_type(key, inventory_export, at=NOON).allowed is for_all
    assert decide_for_type(key, inventory_export, at=NOON).logged is for_all


def test_process_cache_is_bounded_and_drops_the_oldest(settings, make_key, inventory_export, django_assert_num_queries):
    from keys.access import process_cache

    settings.KEYS_DECISION_CACHE = True
    settings.KEYS_DECISION_CACHE_SIZE = 2
    first, second, third = (make_key(allowed_for_all=True) for _ in range(3))
    for key in (first, second, third):
        check(key, inventory_export)
    assert list(process_cache.keys) == [second.value.hex, third.value.hex]
    with django_assert_num_queries(0):
        check(third, inventory_export)
    with django_assert_num_queries(2):  # the oldest was dropped: key and grants again
        check(first, inventory_export)


def test_process_cache_trusts_its_states_for_exactly_the_configured_age(
    settings, make_key, inventory_export, django_assert_num_queries, monkeypatch
):
    from keys import access

    settings.KEYS_DECISION_CACHE = True
    settings.KEYS_DECISION_CACHE_SECONDS = 300
    clock = [5000.0]
    monkeypatch.setattr(access.time, "monotonic", lambda: clock[0])
    key = make_key(allowed_for_all=True)
    check(key, inventory_export)
    clock[0] += 300
    with django_assert_num_queries(0):
        check(key, inventory_export)
    clock[0] += 0.001
    with django_assert_num_queries(3):  # older than 300 s: the catalog, the key and its grants again
        check(key, inventory_export)


@pytest.mark.parametrize("then", [10**18 + 1, 5], ids=["larger", "smaller"])
def test_process_cache_drops_its_states_whenever_the_marker_differs(
    settings, make_key, inventory_export, django_assert_num_queries, then
):
    """Compared by equality: a marker started again after Redis lost it may be smaller than the
    one held (keys/freshness.py: a host whose clock is behind), and must still drop everything."""
    settings.KEYS_DECISION_CACHE = True
    key = make_key(allowed_for_all=True)
    decide(key.value, direction="export", api_id="inventory", marker=10**18)
    with django_assert_num_queries(0):
        decide(key.value, direction="export", api_id="inventory", marker=10**18)
    with django_assert_num_queries(3):  # the catalog, the key and its grants again
        decide(key.value, direction="export", api_id="inventory", marker=then)


def test_judge_refuses_a_type_not_selected_outright():
    """judge() itself, not only through decide(), which rebuilds refusals with their names."""
    from keys.access import KeyState, judge

    key = KeyState(7, True, False, False, None, "")
    assert judge(key, api_type_id=3, grant=None, at=NOON) == Decision(
        False, Reason.API_TYPE_NOT_ALLOWED, key_id=7, api_type_id=3
    )
