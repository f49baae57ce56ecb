"""Counting a key's rates and quotas: the last of the guard's checks, after the access
decision (keys/access.py) has allowed a call and said what it counts against.

A rate (calls per second or per minute, the key's and its grant's for the API type)
is a fixed window: the second or minute of the clock, counted under a name that
holds it (`keys:rate:<key>:s:<second>`), so a window never needs resetting and the
old ones expire. A quota (calls per day or per month) is the day or month of the
site's time zone (TIME_ZONE), counted the same way under the period's date. The
counts live in keys/shared.py, so every worker process (with Redis, every host)
sees one count: `shared.take()` counts a call against all its limits at once, or,
when one is full, against none (a call held back by its rate spends no quota).

Failure modes. A rate's count is a few seconds of memory: lost to a restart or a
power cut, it only lets one window's calls through again. A quota's count is a
month of it, so it is never trusted to memory alone: a quota counter that is
absent (the first call of the period, a restart of Redis without persistence, a
power cut that lost the shared file, an eviction) is seeded from what
`KeyUsage` holds for the period before the call is counted (keys/usage.py
`admitted()`: one query, once a period and key, on the cold path). What the
seed cannot see: the counts other processes have not yet stored (at most
KEYS_USAGE_FLUSH_SECONDS of calls), which a new period or a lost counter can let
through again. A counter that survives with an old value (the shared file after
a power cut held an older page) counts on from there.
"""

import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils import timezone

from . import shared, usage
from .access import Decision, Limits, Reason


class Period(NamedTuple):
    """One day or month of the site's time zone, as the counters need it."""

    name: str  # "2026-12-01" or "2026-12": part of the counter's name
    first: date
    last: date
    starts: float  # seconds since the epoch
    ends: float


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def _period(name: str, first: date, next_first: date) -> Period:
    starts, ends = _midnight(first).timestamp(), _midnight(next_first).timestamp()
    return Period(name, first, next_first - timedelta(days=1), starts, ends)


def periods_at(now: float) -> tuple[Period, Period]:
    """The day and the month (site time zone) that hold the moment `now`."""
    today = timezone.localdate(datetime.fromtimestamp(now, UTC))
    first = today.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    day = _period(today.isoformat(), today, today + timedelta(days=1))
    return day, _period(first.isoformat()[:7], first, next_month)


class _Periods:
    """periods_at(), worked out again only when the day ends (a time zone's conversion costs
    microseconds, and a limited call needs it each time), or hourly, or the clock goes back."""

    def __init__(self) -> None:
        self.held: tuple[Period, Period] | None = None
        self.since = self.until = 0.0

    def __call__(self, now: float) -> tuple[Period, Period]:
        if self.held is None or not self.since <= now < self.until:
            self.held = periods_at(now)
            self.since, self.until = self.held[0].starts, min(self.held[0].ends, now + 3600)
        return self.held

    def forget(self) -> None:
        self.held = None


current_periods = _Periods()


@receiver(setting_changed)
def _new_time_zone(*, setting: str, **kwargs) -> None:
    if setting == "TIME_ZONE":
        current_periods.forget()
        current_plans.clear()


@dataclass(frozen=True, slots=True)
class Policy:
    """One limit a call counts against, named as the RateLimit-Policy header names it."""

    name: str
    limit: int
    window: int  # seconds the period lasts
    counter: str
    starts: float  # when the window starts and ends (seconds since the epoch)
    ends: float
    quota: bool = False  # a day or month: seeded from the usage stored when its counter is absent
    first: date | None = None
    last: date | None = None


def policies(key_id: int, api_type_id: int, limits: Limits, now: float) -> list[Policy]:
    """What a call of key `key_id` to type `api_type_id` at `now` counts against: the
    rates first (their refusal comes before a quota's), then the quotas."""
    found = []
    second, minute = int(now), int(now // 60)
    rates = (
        ("second", limits.per_second, 1, second, f"keys:rate:{key_id}:s:{second}"),
        ("minute", limits.per_minute, 60, minute, f"keys:rate:{key_id}:m:{minute}"),
        ("type-second", limits.type_per_second, 1, second, f"keys:rate:{key_id}:{api_type_id}:s:{second}"),
        ("type-minute", limits.type_per_minute, 60, minute, f"keys:rate:{key_id}:{api_type_id}:m:{minute}"),
    )
    for name, limit, window, bucket, counter in rates:
        if limit is not None:
            found.append(Policy(name, limit, window, counter, bucket * window, (bucket + 1) * window))
    if limits.per_day is not None or limits.per_month is not None:
        day, month = current_periods(now)
        for name, limit, period in (("day", limits.per_day, day), ("month", limits.per_month, month)):
            if limit is not None:
                counter = f"keys:quota:{key_id}:{name[0]}:{period.name}"
                window = round(period.ends - period.starts)
                found.append(
                    Policy(name, limit, window, counter, period.starts, period.ends, True, period.first, period.last)
                )
    return found


class Plan:
    """The policies of one key and type while none of their windows changes, made once
    for all the calls in that time (a limited call must stay cheap: bench/verify.py)."""

    __slots__ = (
        "base",
        "counters",
        "lease",
        "limits",
        "near_from",
        "policies",
        "policy_field",
        "since",
        "spent",
        "until",
    )

    def __init__(self, limits: Limits, found: list[Policy]) -> None:
        self.limits, self.policies = limits, found
        # Calls counted in the shared counters at the last take() and not made yet (see LEASE),
        # the counts that take() saw, and how many of its calls were made since.
        self.lease, self.base, self.spent, self.near_from = 0, [0] * len(found), 0, 0
        self.counters = [(p.counter, p.limit, p.ends, p.quota) for p in found]
        self.since = max(p.starts for p in found)
        self.until = min(p.ends for p in found)
        self.policy_field = ", ".join(f'"{p.name}";q={p.limit};w={p.window}' for p in found)

    def counted(self, lease: int, base: list[int]) -> None:
        """A take() granted `lease` more calls and saw the counts `base` (its own call among them)."""
        self.lease, self.base, self.spent = lease, base, 1
        # The first call since this take() (counting from 0) whose answer is near a limit: once
        # base + that + 1 is half a policy's limit or more (near_limit), worked out once here.
        pairs = zip(self.policies, base, strict=True)
        self.near_from = min((policy.limit + 1) // 2 - 1 - used for policy, used in pairs)


class _Plans:
    """This process's plans, by key and type; bounded (the oldest half goes when full)."""

    SIZE = 4096

    def __init__(self) -> None:
        self.held: dict[tuple[int, int], Plan] = {}

    def __call__(self, key_id: int, api_type_id: int, limits: Limits, now: float) -> Plan:
        plan = self.held.get((key_id, api_type_id))
        # The same Limits object while the key is unchanged (the decision cache holds it).
        if plan is None or plan.limits is not limits or not plan.since <= now < plan.until:
            plan = Plan(limits, policies(key_id, api_type_id, limits, now))
            if len(self.held) >= self.SIZE:
                for stale in list(self.held)[: self.SIZE // 2]:
                    del self.held[stale]
            self.held[(key_id, api_type_id)] = plan
        return plan

    def clear(self) -> None:
        self.held = {}


current_plans = _Plans()


class Metered:
    """What counting a call said: allowed, or OVER_RATE / OUT_OF_QUOTA, and each policy's
    count (before this call) for the RateLimit headers."""

    __slots__ = ("base", "near", "now", "plan", "reason", "refused_by", "since")

    def __init__(
        self,
        reason: Reason,
        plan: Plan,
        base: list[int],
        now: float,
        refused_by: int | None = None,
        *,
        since: int = 0,
        near: bool | None = None,
    ):
        # `base` and `since`: each policy's count is base + since (a leased call's counts are
        # made only if its answer shows them). `near`: near_limit's answer when already known.
        self.reason, self.plan, self.base, self.now, self.refused_by = reason, plan, base, now, refused_by
        self.since, self.near = since, near

    @property
    def used(self) -> list[int]:
        """Each policy's count before this call."""
        return [value + self.since for value in self.base] if self.since else self.base

    @property
    def policies(self) -> list[Policy]:
        return self.plan.policies

    @property
    def allowed(self) -> bool:
        return self.reason == Reason.ALLOWED

    @property
    def retry_after(self) -> int:
        """Seconds until the refusing policy's window ends (at least 1)."""
        return _seconds_left(self.policies[self.refused_by], self.now) if self.refused_by is not None else 0


def _seconds_left(policy: Policy, now: float) -> int:
    return max(1, math.ceil(policy.ends - now))


# Tries of take(): each may find one more quota counter to seed, then one to count.
_TRIES = 4
# A process counts up to this many calls of a window at once and makes them without the
# shared counters' lock (keys.shared.granted(): never more than 1/32 of what the window has
# left, one when little is left). The lock, taken by every worker for every call, was a
# tenth of a limited call (bench/verify.py). Calls counted but not made when the window
# ends leave it short by at most that much per process; it is never exceeded.
LEASE = 32
_leases = threading.Lock()


def charge(decision: Decision) -> Metered | None:
    """Count an allowed call against its limits (None: it has none). Over a rate, or out
    of a quota, it is refused and counted against nothing. May query the database once
    a period, to seed a quota (see the module's docstring)."""
    limits = decision.limits
    if limits is None:
        return None
    now = time.time()  # the counters' own clock (keys/shared.py): their windows must agree with it
    plan = current_plans(decision.key_id, decision.api_type_id, limits, now)
    with _leases:
        if plan.lease:
            plan.lease -= 1
            since = plan.spent
            plan.spent += 1
            return Metered(Reason.ALLOWED, plan, plan.base, now, since=since, near=since >= plan.near_from)
    for _ in range(_TRIES):
        taken = shared.take(plan.counters, LEASE)
        if not taken.unseeded:
            break
        policy = plan.policies[taken.refused]
        shared.seed(policy.counter, usage.admitted(decision.key_id, policy.first, policy.last), policy.ends)
    if taken.unseeded:  # seeded, and gone again at once (evicted): let it through uncounted
        return Metered(Reason.ALLOWED, plan, [0] * len(plan.policies), now)
    if taken.refused is None:
        with _leases:
            plan.counted(plan.lease + taken.granted - 1, taken.values)
            near = plan.near_from <= 0
        return Metered(Reason.ALLOWED, plan, taken.values, now, near=near)
    reason = Reason.OUT_OF_QUOTA if plan.policies[taken.refused].quota else Reason.OVER_RATE
    return Metered(reason, plan, taken.values, now, taken.refused)


def near_limit(metered: Metered) -> bool:
    """Whether an allowed answer carries the RateLimit fields: once a policy has half its
    window or less left after this call (a 429 always carries them). A client far from every
    limit learns nothing it must act on, and the two fields cost a limited call a tenth of its
    time (bench/verify.py: 0.80x the bare view with them on every answer)."""
    if metered.near is not None:
        return metered.near
    counted = 1 if metered.allowed else 0
    after = zip(metered.policies, metered.used, strict=True)
    return any(2 * (used + counted) >= policy.limit for policy, used in after)


def headers(metered: Metered) -> dict[str, str]:
    """The RateLimit-Policy and RateLimit fields (IETF httpapi ratelimit-headers draft, -08
    on: a list of policies, each `"name";q=<quota>;w=<window seconds>`, and each one's
    `"name";r=<remaining>;t=<seconds to its reset>`), and Retry-After on a refusal. A call
    counted is included in what remains."""
    counted = 1 if metered.allowed else 0
    now = metered.now
    current = ", ".join(
        f'"{p.name}";r={max(0, p.limit - used - counted)};t={max(1, math.ceil(p.ends - now))}'
        for p, used in zip(metered.plan.policies, metered.used, strict=True)
    )
    found = {"RateLimit-Policy": metered.plan.policy_field, "RateLimit": current}
    if not metered.allowed:
        found["Retry-After"] = str(metered.retry_after)
    return found


class Remaining(NamedTuple):
    """What remains of one of a key's quotas: `used` of `limit` calls in the `period`
    ("day" or "month", site time zone), which starts again at `resets_at`."""

    period: str
    limit: int
    used: int
    resets_at: datetime

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)


def remaining(key) -> list[Remaining]:
    """What remains of the quotas of `key` (an ApiKey), day then month; empty when it has none.
    The shared count when there is one, else what the stored usage says (one query a quota)."""
    now = time.time()
    limits = Limits(per_day=key.quota_per_day, per_month=key.quota_per_month)
    found = [p for p in policies(key.pk, 0, limits, now) if p.quota]
    counts = shared.get([p.counter for p in found]) if found else {}
    result = []
    for policy in found:
        used = counts.get(policy.counter)
        if used is None:
            used = usage.admitted(key.pk, policy.first, policy.last)
        resets_at = timezone.localtime(datetime.fromtimestamp(policy.ends, UTC))
        result.append(Remaining(policy.name, policy.limit, min(int(used), policy.limit), resets_at))
    return result
