"""keys/quotas.py: a key's rates and quotas counted in the shared counters (the file on the
embedded default; Redis with REDIS_TEST_URL), the periods of the site time zone, the seed
of a lost quota count from KeyUsage, and what remains of a quota."""

import os
from datetime import UTC, date, datetime

import hypothesis
import pytest
from django.test import override_settings
from hypothesis import strategies as st

from keys import quotas, shared, usage
from keys.access import Decision, Limits, Reason
from keys.models import KeyUsage

REDIS_URL = os.environ.get("REDIS_TEST_URL")
NOON = datetime.fromisoformat("2026-06-15T12:00:00+00:00").timestamp()

# The quotas seed from KeyUsage: every test may reach the database.
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def at(time_machine):
    """Stand the clock at NOON + `seconds` (the counters and their windows read the same clock)."""

    def move(seconds: float = 0) -> None:
        time_machine.move_to(datetime.fromtimestamp(NOON + seconds, UTC), tick=False)

    move()
    return move


def allowed(key_id=1, api_type_id=7, **limits) -> Decision:
    return Decision(True, Reason.ALLOWED, key_id=key_id, api_type_id=api_type_id, limits=Limits(**limits))


@pytest.fixture(params=["file", "cache", "redis"])
def counters(request, settings):
    """Every place the counts live: the embedded file, another shared cache through Django's
    cache API (the tests' local-memory cache stands in), and Redis (keys.cache.RedisCache's script)."""
    if request.param in ("file", "cache"):
        settings.KEYS_SHARED_COUNTERS = request.param
        yield request.param
        return
    if not REDIS_URL:
        pytest.skip("needs a Redis server: set REDIS_TEST_URL (CI's .ci/run starts one and sets it)")
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    caches = {"default": {"BACKEND": "keys.cache.RedisCache", "LOCATION": REDIS_URL}}
    with override_settings(CACHES=caches, KEYS_SHARED_COUNTERS="cache"):
        yield "redis"


def test_no_limits_count_nothing():
    assert quotas.charge(Decision(True, Reason.ALLOWED, key_id=1, api_type_id=2)) is None


def test_a_rate_lets_its_limit_through_each_second(counters, at):
    at(0.5)
    decision = allowed(per_second=3)
    reasons = [quotas.charge(decision).reason for _ in range(4)]
    assert reasons == [Reason.ALLOWED] * 3 + [Reason.OVER_RATE]
    at(1.0)
    assert quotas.charge(decision).allowed


def test_a_refused_call_counts_against_no_limit(counters, at):
    decision = allowed(per_minute=1, per_day=5)
    at(0)
    assert quotas.charge(decision).allowed
    for _ in range(3):
        at(1)
        assert quotas.charge(decision).reason == Reason.OVER_RATE
    at(61)
    second = quotas.charge(decision)
    assert second.allowed
    assert second.used == [0, 1]  # the day's count: only the first call


def test_the_type_rate_counts_each_type_apart(counters):
    assert quotas.charge(allowed(api_type_id=1, type_per_second=1)).allowed
    assert quotas.charge(allowed(api_type_id=2, type_per_second=1)).allowed
    assert quotas.charge(allowed(api_type_id=1, type_per_second=1)).reason == Reason.OVER_RATE


def test_keys_count_apart(counters):
    assert quotas.charge(allowed(key_id=1, per_second=1)).allowed
    assert quotas.charge(allowed(key_id=2, per_second=1)).allowed


def test_the_rate_is_refused_before_the_quota(counters, at):
    decision = allowed(per_second=1, per_day=1)
    at(0)
    assert quotas.charge(decision).allowed
    at(0)
    refused = quotas.charge(decision)
    assert (refused.reason, refused.refused_by) == (Reason.OVER_RATE, 0)
    at(1)
    out = quotas.charge(decision)
    assert (out.reason, out.refused_by) == (Reason.OUT_OF_QUOTA, 1)


def test_a_quota_of_nothing_refuses_every_call(counters):
    assert quotas.charge(allowed(per_day=0)).reason == Reason.OUT_OF_QUOTA


def test_retry_after_is_the_refusing_window_rounded_up(counters, at):
    decision = allowed(per_minute=1)
    at(10.2)
    quotas.charge(decision)
    at(10.2)
    assert quotas.charge(decision).retry_after == 50


def test_the_headers_follow_the_draft(counters, at):
    decision = allowed(per_second=5, per_day=100)
    at(0.25)
    metered = quotas.charge(decision)
    assert quotas.headers(metered) == {
        "RateLimit-Policy": '"second";q=5;w=1, "day";q=100;w=86400',
        "RateLimit": '"second";r=4;t=1, "day";r=99;t=43200',
    }


@pytest.mark.parametrize(
    ("zone", "moment", "day", "month", "day_seconds"),
    [
        ("UTC", "2026-06-15T12:00:00+00:00", date(2026, 6, 15), date(2026, 6, 1), 86400),
        # 23:30 UTC is already the next day in Amsterdam (UTC+2 in summer).
        ("Europe/Amsterdam", "2026-06-30T23:30:00+00:00", date(2026, 7, 1), date(2026, 7, 1), 86400),
        # The day the clocks go forward is 23 hours long; its quota's window says so.
        ("Europe/Amsterdam", "2026-03-29T12:00:00+00:00", date(2026, 3, 29), date(2026, 3, 1), 23 * 3600),
        ("America/New_York", "2026-01-01T03:00:00+00:00", date(2025, 12, 31), date(2025, 12, 1), 86400),
    ],
)
def test_periods_are_the_site_time_zone(settings, zone, moment, day, month, day_seconds, at):
    settings.TIME_ZONE = zone
    found_day, found_month = quotas.periods_at(datetime.fromisoformat(moment).timestamp())
    assert (found_day.first, found_day.last, found_month.first) == (day, day, month)
    assert found_day.ends - found_day.starts == day_seconds
    assert found_month.last.month == month.month
    assert found_month.last.day >= 28


def test_the_held_periods_follow_the_clock_back_and_forth(settings):
    day, _ = quotas.current_periods(NOON)
    assert day.first == date(2026, 6, 15)
    assert quotas.current_periods(NOON + 86400)[0].first == date(2026, 6, 16)
    assert quotas.current_periods(NOON - 86400)[0].first == date(2026, 6, 14)
    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: noon UTC is already the 16th's 02:00
    assert quotas.current_periods(NOON)[0].first == date(2026, 6, 16)


def test_a_quota_is_seeded_from_the_usage_stored(counters, make_key, inventory_export, at):
    key = make_key(allowed_for_all=True)
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-06-15", succeeded=2, server_errors=1)
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-06-14", succeeded=40)
    usage.count(key.pk, inventory_export.pk, "client_errors")  # this process's, not yet stored
    decision = allowed(key_id=key.pk, api_type_id=inventory_export.pk, per_day=5, per_month=45)
    at(0)
    first = quotas.charge(decision)
    assert first.allowed
    assert first.used == [4, 44]  # today 2 + 1 + 1 not yet stored; the month adds the 14th's 40
    at(0)
    assert quotas.charge(decision).reason == Reason.OUT_OF_QUOTA


def test_seeding_is_once_a_period(counters, make_key, inventory_export, django_assert_num_queries, at):
    key = make_key(allowed_for_all=True)
    decision = allowed(key_id=key.pk, api_type_id=inventory_export.pk, per_day=50, per_month=500)
    with django_assert_num_queries(2):  # the day's seed and the month's
        at(0)
        quotas.charge(decision)
    with django_assert_num_queries(0):
        at(3600)
        quotas.charge(decision)
    with django_assert_num_queries(1):  # the next day: its own seed; the month is still counted
        at(86400)
        quotas.charge(decision)


def test_remaining_tells_what_is_left_and_when_it_starts_again(counters, make_key, inventory_export, settings, at):
    settings.TIME_ZONE = "Europe/Amsterdam"
    key = make_key(allowed_for_all=True)
    key.quota_per_day, key.quota_per_month = 10, 100
    key.save()
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-06-02", succeeded=30)
    # Nothing counted yet today: what the stored usage says.
    at(0)
    day, month = quotas.remaining(key)
    assert (day.period, day.limit, day.used, day.left) == ("day", 10, 0, 10)
    assert (month.period, month.used, month.left) == ("month", 30, 70)
    assert day.resets_at == datetime.fromisoformat("2026-06-16T00:00:00+02:00")
    assert month.resets_at == datetime.fromisoformat("2026-07-01T00:00:00+02:00")
    decision = allowed(key_id=key.pk, api_type_id=inventory_export.pk, per_day=10, per_month=100)
    for _ in range(3):
        at(0)
        quotas.charge(decision)
    at(0)
    day, month = quotas.remaining(key)
    assert (day.used, month.used) == (3, 33)


def test_remaining_of_a_key_without_quotas_is_empty(make_key):
    key = make_key(allowed_for_all=True)
    key.rate_per_second = 5
    assert quotas.remaining(key) == []


def test_clearing_the_counters_forgets_the_rates(counters, at):
    decision = allowed(per_second=1)
    at(0)
    assert quotas.charge(decision).allowed
    shared.clear()
    at(0)
    assert quotas.charge(decision).allowed


def test_a_type_rate_per_minute_is_a_minute_window(counters, at):
    at(10.5)
    decision = allowed(type_per_minute=1)
    metered = quotas.charge(decision)
    assert quotas.headers(metered)["RateLimit-Policy"] == '"type-minute";q=1;w=60'
    at(59.9)
    assert quotas.charge(decision).reason == Reason.OVER_RATE
    at(60)
    assert quotas.charge(decision).allowed


def test_a_window_starts_again_at_its_exact_edge(counters, at):
    decision = allowed(per_second=1)
    at(0.5)
    assert quotas.charge(decision).allowed
    at(1)
    assert [quotas.charge(decision).reason for _ in range(2)] == [Reason.ALLOWED, Reason.OVER_RATE]


def test_a_plan_serves_every_call_of_its_window_and_no_other(at):
    limits = Limits(per_second=5, per_day=10)
    at(1)
    plan = quotas.current_plans(1, 2, limits, NOON + 1)
    assert quotas.current_plans(1, 2, limits, NOON + 1) is plan  # from the window's first instant
    assert quotas.current_plans(1, 2, limits, NOON + 1.999) is plan
    assert quotas.current_plans(1, 2, limits, NOON + 2) is not plan
    assert quotas.current_plans(1, 2, Limits(per_second=5, per_day=10), NOON + 2.5) is not plan  # a changed key


def test_the_clock_going_back_counts_in_the_window_it_went_back_to(counters, at):
    decision = allowed(per_second=1, per_day=100)
    at(10)
    assert quotas.charge(decision).allowed
    at(5)  # the host's clock was corrected
    assert quotas.charge(decision).allowed


def test_the_plans_stay_bounded(monkeypatch):
    monkeypatch.setattr(quotas._Plans, "SIZE", 4)
    plans = quotas._Plans()
    limits = Limits(per_second=1)
    for key_id in range(10):
        plans(key_id, 1, limits, NOON)
        assert len(plans.held) <= 4
    assert (9, 1) in plans.held


def shared_count(name: str) -> int:
    return int(shared.get([name]).get(name, 0))


def test_a_process_counts_a_large_window_a_few_calls_at_a_time(counters, at):
    """Up to LEASE calls are counted at once and made without the shared lock; the count
    others see is never below what this process has made."""
    decision = allowed(per_second=6400)
    plan = quotas.current_plans(1, 7, decision.limits, NOON)
    counter = plan.counters[0][0]
    first = quotas.charge(decision)
    assert shared_count(counter) == quotas.LEASE
    for n in range(1, quotas.LEASE):
        assert quotas.charge(decision).used == [n]  # its own calls since the lease, in RateLimit's r
    assert shared_count(counter) == quotas.LEASE
    quotas.charge(decision)
    assert shared_count(counter) == 2 * quotas.LEASE
    assert first.used == [0]


def test_a_lease_is_never_more_than_a_share_of_what_is_left(counters, at):
    decision = allowed(per_second=100)  # 100 // 32: three at a time
    plan = quotas.current_plans(1, 7, decision.limits, NOON)
    quotas.charge(decision)
    assert shared_count(plan.counters[0][0]) == 3


def test_leases_never_let_a_window_pass_its_limit(counters, at):
    """Two processes (each its own plans) sharing one window of 100: never more than 100 calls."""
    decision = allowed(per_second=100)
    made = 0
    for _ in range(300):
        quotas.current_plans.clear()  # another process: it holds none of this one's lease
        made += quotas.charge(decision).allowed
        made += quotas.charge(decision).allowed
    assert made <= 100
    assert made >= 100 - 2 * 3  # at most a share's worth short per process


def test_a_window_ending_drops_what_was_leased(counters, at):
    decision = allowed(per_second=3200)
    quotas.charge(decision)
    at(1)
    plan = quotas.current_plans(1, 7, decision.limits, NOON + 1)
    assert plan.lease == 0
    quotas.charge(decision)
    assert shared_count(plan.counters[0][0]) == quotas.LEASE


def test_a_counter_evicted_as_soon_as_it_is_seeded_lets_the_call_through_uncounted(monkeypatch):
    """take() keeps saying the quota's counter is absent (the table evicted it again at once):
    after its tries the call goes through, counted against nothing, and says so."""
    seeded = []
    monkeypatch.setattr(shared, "take", lambda counters, most=1: shared.Taken(0, True, [], 0))
    monkeypatch.setattr(shared, "seed", lambda name, value, expires: seeded.append(name))
    metered = quotas.charge(allowed(key_id=31, per_day=5, per_minute=9))
    assert metered.reason == Reason.ALLOWED
    assert metered.allowed
    assert metered.used == [0, 0]
    assert [p.name for p in metered.policies] == ["minute", "day"]
    assert metered.now == NOON
    assert len(seeded) == quotas._TRIES
    assert quotas.headers(metered) == {
        "RateLimit-Policy": '"minute";q=9;w=60, "day";q=5;w=86400',
        "RateLimit": '"minute";r=8;t=60, "day";r=4;t=43200',
    }


def test_a_call_made_on_a_lease_carries_its_own_moment(counters):
    """Calls made on a process's lease (a large window, taken 2 at a time and more) say when
    they were counted: their RateLimit's seconds to the reset come from it."""
    decision = allowed(key_id=32, per_minute=6400)
    first = quotas.charge(decision)
    second = quotas.charge(decision)  # made on the lease the first took
    assert quotas.current_plans(32, 7, decision.limits, NOON).spent == 2
    assert (first.now, second.now) == (NOON, NOON)
    assert quotas.headers(second)["RateLimit"] == '"minute";r=6398;t=60'


def test_the_periods_at_the_exact_first_instant_of_a_day_are_the_new_days(at):
    day_ends = datetime.fromisoformat("2026-06-16T00:00:00+00:00").timestamp()
    periods = quotas._Periods()
    assert periods(day_ends - 1)[0].first == date(2026, 6, 15)
    assert periods(day_ends)[0].first == date(2026, 6, 16)  # not the day that has just ended


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    limits=st.lists(st.integers(1, 200), min_size=1, max_size=4),
    data=st.data(),
)
def test_the_near_answer_worked_out_once_is_near_limits_rule(limits, data):
    """Plan.counted()'s near_from gives each leased call the answer near_limit's rule gives
    its counts: some policy has half its limit or less left after the call."""
    found = [quotas.Policy(f"p{n}", limit, 1, f"c{n}", 0.0, 1.0) for n, limit in enumerate(limits)]
    plan = quotas.Plan(Limits(per_second=1), found)
    base = [data.draw(st.integers(0, limit)) for limit in limits]
    lease = data.draw(st.integers(0, 40))
    plan.counted(lease, base)
    for since in range(lease + 1):
        rule = any(2 * (used + since + 1) >= limit for used, limit in zip(base, limits, strict=True))
        generic = quotas.Metered(Reason.ALLOWED, plan, base, 0.0, since=since)
        assert quotas.near_limit(generic) is rule
        assert (since >= plan.near_from) is rule
        assert generic.used == [used + since for used in base]


@pytest.mark.parametrize("limits", [{"per_second": 6400}, {"per_second": 100}, {"per_second": 6400, "per_minute": 90}])
def test_every_call_of_a_window_is_near_its_limit_exactly_when_the_rule_says(counters, at, limits):
    """Leased or counted anew, each allowed call's near_limit() answer is the rule itself: some
    policy has half its limit or less left once this call is counted (the RateLimit fields start
    on the very call that crosses half, not one later)."""
    decision = allowed(**limits)
    answers = []
    while (metered := quotas.charge(decision)).allowed:
        rule = any(2 * (used + 1) >= p.limit for p, used in zip(metered.policies, metered.used, strict=True))
        answers.append(quotas.near_limit(metered))
        assert answers[-1] is rule, (len(answers), metered.used)
    assert answers.index(True) == min(limits.values()) // 2 - 1  # the call that leaves half
