"""The one place that decides whether a key may call an API type, and whether
the call is logged. The pane, the API, the admin, the commands and the task
worker (by key id, `decide_for_key_id()`, before it runs a queued document) all ask here.

`decide()` looks the key up (one indexed query: key, API type and grant
together); `judge()` is the pure rule, for callers that already hold the rows.
A key's client addresses are part of the rule; its rates and quotas are state,
counted after an allowed decision (keys/quotas.py), which says what they are.

With KEYS_DECISION_CACHE on (the default), a warm `decide()` makes no query:
each process keeps the key states and the catalog it has read, and trusts
them only while the change marker (keys/freshness.py) is unchanged. Every
change advances the marker (keys/signals.py), so the very next call in any
process sees it.
"""

import functools
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from django.db import connection
from django.utils import timezone

from . import freshness, sealing
from .conf import hot
from .models import ApiKey, ApiKeyGrant, ApiType
from .text import time_left


class Reason(StrEnum):
    ALLOWED = "allowed"
    MALFORMED_KEY = "malformed key"
    UNKNOWN_KEY = "unknown key"
    INACTIVE_KEY = "inactive key"
    EXPIRED_KEY = "expired key"
    UNKNOWN_API_TYPE = "unknown API type"
    API_TYPE_NOT_ALLOWED = "API type not allowed"
    ADDRESS_NOT_ALLOWED = "address not allowed"
    OVER_RATE = "over rate"
    OUT_OF_QUOTA = "out of quota"


MESSAGES = {
    Reason.ALLOWED: "The key is allowed to call this API type.",
    Reason.MALFORMED_KEY: "The ApiKey header is missing or is not a GUID.",
    Reason.UNKNOWN_KEY: "The API key is not known.",
    Reason.INACTIVE_KEY: "The API key is inactive.",
    Reason.EXPIRED_KEY: "The API key has expired.",
    Reason.UNKNOWN_API_TYPE: "There is no such API type.",
    Reason.API_TYPE_NOT_ALLOWED: "The API key is not allowed to call this API type.",
    # The guard names the client address (keys/guard/refusals.py); the key is never named.
    Reason.ADDRESS_NOT_ALLOWED: "The API key is not allowed to call from this address.",
    Reason.OVER_RATE: "Too many calls with this API key. Try again after Retry-After seconds.",
    Reason.OUT_OF_QUOTA: "The API key's quota of calls is used up until the period resets (Retry-After seconds).",
}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """The rates and quotas one call counts against (None: no such limit): the key's own,
    and the per-type rates of the grant that allows the call. keys/quotas.py counts them."""

    per_second: int | None = None
    per_minute: int | None = None
    per_day: int | None = None
    per_month: int | None = None
    type_per_second: int | None = None
    type_per_minute: int | None = None


def limits_of(
    key: tuple[int | None, int | None, int | None, int | None], grant: tuple[int | None, int | None] = (None, None)
) -> Limits | None:
    """The Limits of a key's (per second, per minute, per day, per month) and a grant's
    (per second, per minute); None when nothing is limited, so an unlimited call counts nothing."""
    if all(n is None for n in (*key, *grant)):
        return None
    return Limits(*key, *grant)


@dataclass(frozen=True)
class KeyState:
    """What the decision needs to know about a key (a row or a cached copy)."""

    pk: int
    is_active: bool
    allowed_for_all: bool
    logged_for_all: bool
    logging_until: date | None
    description: str = ""
    expires_at: datetime | None = None
    # Set when the value presented is the key's old one after a roll: it works until then.
    value_until: datetime | None = None
    # The key's own rates and quotas (None: none), and its client addresses (empty: any).
    limits: Limits | None = None
    networks: tuple[Network, ...] = ()


@dataclass(frozen=True)
class GrantState:
    pk: int
    logged: bool
    logging_until: date | None
    # The key's limits with this grant's per-type rates, worked out when the state is read.
    limits: Limits | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason
    logged: bool = False
    key_id: int | None = None
    api_type_id: int | None = None
    grant_id: int | None = None
    # Context for the call log's snapshots, so logging needs no extra read.
    key_description: str = ""
    api_type_name: str = ""
    # What an allowed call counts against (keys/quotas.py); None: nothing.
    limits: Limits | None = None

    @property
    def message(self) -> str:
        return MESSAGES[self.reason]


def logging_on(*, logged: bool, until: date | None, at: datetime) -> bool:
    """Logging "until D" covers all of day D in the site's time zone, and no later."""
    if not logged:
        return False
    return until is None or timezone.localdate(at) <= until


def parse_key(value: str | uuid.UUID | None) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if not value or len(value) > 64:
        return None
    return _parsed(value)


# The same few header values come on every call, and uuid.UUID() parsing one was 1.5 µs of a
# refused call's ~75 (bench/profile_call.py). Bounded: the value is the caller's to choose.
@functools.lru_cache(maxsize=4096)
def _parsed(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def key_refusal(key: KeyState, at: datetime, api_type_id: int | None = None) -> Decision | None:
    """The checks of the key itself, whatever it calls: inactive, then expired (from
    the moment `expires_at` on; the moment itself is already expired). An old value
    past its grace is no key at all, and is refused as unknown, revealing nothing.
    `api_type_id` only rides along, for the key's usage counts; the caller learns nothing of it."""
    if key.value_until is not None and at >= key.value_until:
        return Decision(False, Reason.UNKNOWN_KEY)
    if not key.is_active:
        return Decision(False, Reason.INACTIVE_KEY, key_id=key.pk, api_type_id=api_type_id)
    if key.expires_at is not None and at >= key.expires_at:
        return Decision(False, Reason.EXPIRED_KEY, key_id=key.pk, api_type_id=api_type_id)
    return None


def networks_of(addresses: list[str] | None) -> tuple[Network, ...]:
    """A key's stored client addresses as networks (a plain address is its own /32 or /128).
    The model validates them (keys.models.validate_networks); one that does not parse
    anyway (raw SQL) matches nothing rather than opening the key to every address."""
    networks = []
    for text in addresses or ():
        try:
            networks.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError:
            networks.append(ipaddress.ip_network("0.0.0.0/32"))
    return tuple(networks)


@functools.lru_cache(maxsize=4096)
def _client_ip(address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """The client address as the networks see it: an IPv4-mapped IPv6 address (a dual-stack
    listener's "::ffff:192.0.2.1") is also its IPv4 address. Nothing for what is no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ()
    mapped = getattr(ip, "ipv4_mapped", None)
    return (ip, mapped) if mapped is not None else (ip,)


def address_allowed(networks: tuple[Network, ...], address: str | None) -> bool:
    """Whether `address` may call with a key restricted to `networks` (none: any address).
    `address` None: the caller has no client (the pane, the task worker), nothing to check;
    "" or a value that is no address: a call whose client is not known, refused by a list."""
    if not networks or address is None:
        return True
    return any(ip in network for ip in _client_ip(address) for network in networks if ip.version == network.version)


def judge(
    key: KeyState | None,
    *,
    api_type_id: int | None,
    grant: GrantState | None,
    at: datetime,
    address: str | None = None,
) -> Decision:
    """The rule itself. Order matters: nothing about the catalog is revealed
    to a caller whose key is unknown or inactive. Then the client address (`address`
    None: not a call from a client). The rates and quotas come last, outside this pure
    rule (keys/quotas.py counts them): an allowed decision carries its `limits`."""
    if key is None:
        return Decision(False, Reason.UNKNOWN_KEY)
    if refused := key_refusal(key, at, api_type_id):
        return refused
    if api_type_id is None:
        return Decision(False, Reason.UNKNOWN_API_TYPE, key_id=key.pk)
    if not key.allowed_for_all and grant is None:
        return Decision(False, Reason.API_TYPE_NOT_ALLOWED, key_id=key.pk, api_type_id=api_type_id)
    if not address_allowed(key.networks, address):
        return Decision(False, Reason.ADDRESS_NOT_ALLOWED, key_id=key.pk, api_type_id=api_type_id)
    if key.allowed_for_all:
        logged = logging_on(logged=key.logged_for_all, until=key.logging_until, at=at)
        # A kept per-type grant is ignored while the key is allowed for all (its rates too).
        grant_id = grant.pk if grant else None
        return Decision(True, Reason.ALLOWED, logged, key.pk, api_type_id, grant_id, limits=key.limits)
    logged = logging_on(logged=grant.logged, until=grant.logging_until, at=at)
    return Decision(True, Reason.ALLOWED, logged, key.pk, api_type_id, grant.pk, limits=grant.limits)


def decide(
    key_value: str | uuid.UUID | None,
    *,
    direction: str,
    api_id: str,
    at: datetime | None = None,
    marker: int | None = None,
    address: str | None = None,
) -> Decision:
    """May the key `key_value` call `/chqapi/<direction>/<api_id>` at `at` (now by default)?

    `marker`: the change marker when the caller has just read it (the guard reads it
    with the client's throttle state, one Redis round trip for both); None: read it here.
    `address`: the client's address, checked against the key's list (None: not checked)."""
    value = parse_key(key_value)
    if value is None:
        return Decision(False, Reason.MALFORMED_KEY)
    if "\x00" in api_id or len(api_id) > API_ID_MAX:
        # Cannot name an API type (and PostgreSQL refuses NUL in a parameter); the key is still checked first.
        api_id = ""
    if hot.DECISION_CACHE:
        key, grants, types = _cached_state(value, marker)
        if key is None:  # judge()'s first rule, before the clock is read: refused traffic stays cheap
            return Decision(False, Reason.UNKNOWN_KEY)
        api_type_id, api_type_name = types.get(f"{direction}:{api_id}", (None, ""))
        grant = grants.get(api_type_id)
        decision = judge(key, api_type_id=api_type_id, grant=grant, at=at or timezone.now(), address=address)
        return _with_context(decision, key, api_type_name)
    return _decide_from_db(value, direction=direction, api_id=api_id, at=at or timezone.now(), address=address)


def _with_context(decision: Decision, key: KeyState | None, api_type_name: str) -> Decision:
    """The decision with the names a call log needs. A decision that reaches a type has its name.

    Built field by field: dataclasses.replace() is several times slower, and this runs on every call."""
    if decision.reason in NAMED_REFUSALS:
        return Decision(
            False,
            decision.reason,
            key_id=decision.key_id,
            api_type_id=decision.api_type_id,
            api_type_name=api_type_name,
        )
    if not decision.allowed:
        return decision
    return Decision(
        True,
        decision.reason,
        decision.logged,
        decision.key_id,
        decision.api_type_id,
        decision.grant_id,
        key.description,
        api_type_name,
        decision.limits,
    )


# Refusals whose answer names the API type called.
NAMED_REFUSALS = frozenset({Reason.API_TYPE_NOT_ALLOWED, Reason.ADDRESS_NOT_ALLOWED})


def decide_for_key_id(
    key_id: int | None,
    *,
    direction: str,
    api_id: str,
    at: datetime | None = None,
    marker: int | None = None,
) -> Decision:
    """decide() for a key known by its id rather than its value: the task worker, which
    holds a queued document's key id and never the key. The same rules (judge()) and the
    same process cache; a removed key (None, or an id no longer there) is unknown. A key
    known by id has no "old value" to run out, so a roll after the call does not refuse it."""
    at = at or timezone.now()
    if key_id is None:
        return Decision(False, Reason.UNKNOWN_KEY)
    if hot.DECISION_CACHE:
        key, grants, types = process_cache.state_by_id(key_id, marker)
        api_type_id, api_type_name = types.get(f"{direction}:{api_id}", (None, ""))
    else:
        key, grants = _load_key_by_id(key_id)
        api_type_id, api_type_name = next(
            iter(ApiType.objects.filter(direction=direction, api_id=api_id).values_list("pk", "name")), (None, "")
        )
    decision = judge(key, api_type_id=api_type_id, grant=grants.get(api_type_id), at=at)
    return _with_context(decision, key, api_type_name)


def authenticate(
    key_value: str | uuid.UUID | None,
    *,
    at: datetime | None = None,
    marker: int | None = None,
    address: str | None = None,
) -> Decision:
    """The key checks alone (malformed, unknown, inactive, expired) and its client addresses,
    for calls that are about the key's own data rather than an API type, such as
    /chqapi/status. Rates and quotas are for calls of API types: these count against none."""
    value = parse_key(key_value)
    if value is None:
        return Decision(False, Reason.MALFORMED_KEY)
    key = _cached_state(value, marker)[0] if hot.DECISION_CACHE else _key_state(value)
    if key is None:
        return Decision(False, Reason.UNKNOWN_KEY)
    if refused := key_refusal(key, at or timezone.now()):
        return refused
    if not address_allowed(key.networks, address):
        return Decision(False, Reason.ADDRESS_NOT_ALLOWED, key_id=key.pk)
    return Decision(True, Reason.ALLOWED, key_id=key.pk)


API_ID_MAX = ApiType._meta.get_field("api_id").max_length
KEY_FIELDS = ("pk", "is_active", "allowed_for_all", "logged_for_all", "logging_until", "description", "expires_at")
LIMIT_FIELDS = ("rate_per_second", "rate_per_minute", "quota_per_day", "quota_per_month", "allowed_addresses")
GRANT_FIELDS = ("pk", "api_type_id", "logged", "logging_until", "rate_per_second", "rate_per_minute")


class _ProcessCache:
    """This process's copy of the key states it has looked up, and of the catalog.

    Trusted only while the change marker (keys/freshness.py) is the one it was
    filled under, and for at most KEYS_DECISION_CACHE_SECONDS (a bound for
    changes made outside Django, in raw SQL). Bounded in size: unknown keys are
    remembered too, so guessing costs no query on a repeat, but a flood of new
    guesses only evicts, never grows the process.
    """

    def __init__(self) -> None:
        self.marker: int | None = None
        self.filled_at = 0.0
        self.keys: dict[str, tuple[KeyState | None, dict[int, GrantState]]] = {}
        self.types: dict[str, tuple[int, str]] | None = None
        self.lock = threading.Lock()

    def clear(self) -> None:
        with self.lock:
            self.marker, self.types, self.keys = None, None, {}

    def state(
        self, value: uuid.UUID, marker: int | None = None
    ) -> tuple[KeyState | None, dict[int, GrantState], dict[str, tuple[int, str]]]:
        return self._state(value.hex, lambda: _load_key(value), marker)

    def state_by_id(
        self, pk: int, marker: int | None = None
    ) -> tuple[KeyState | None, dict[int, GrantState], dict[str, tuple[int, str]]]:
        # "#<id>" never collides with a value's 32 hex digits.
        return self._state(f"#{pk}", lambda: _load_key_by_id(pk), marker)

    def _state(
        self, name: str, load: Callable[[], tuple[KeyState | None, dict[int, GrantState]]], marker: int | None
    ) -> tuple[KeyState | None, dict[int, GrantState], dict[str, tuple[int, str]]]:
        # Read before any row (here, or by the caller just before), so a change in between is never cached as fresh.
        if marker is None:
            marker = freshness.current()
        now = time.monotonic()
        if marker != self.marker or now - self.filled_at > hot.DECISION_CACHE_SECONDS:
            with self.lock:
                self.marker, self.filled_at, self.types, self.keys = marker, now, None, {}
        types = self.types
        if types is None:
            types = {
                f"{d}:{a}": (pk, name)
                for pk, d, a, name in ApiType.objects.values_list("pk", "direction", "api_id", "name")
            }
            self.types = types
        entry = self.keys.get(name)
        if entry is None:
            entry = load()
            if len(self.keys) >= hot.DECISION_CACHE_SIZE:
                self.keys.pop(next(iter(self.keys)), None)  # the oldest entry
            self.keys[name] = entry
        return entry[0], entry[1], types


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite's datetimes come back naive from raw SQL, in UTC as Django stores them.
    return moment.replace(tzinfo=UTC) if moment is not None and timezone.is_naive(moment) else moment


def _value_until(is_current: bool, previous_until: datetime | None) -> datetime | None:
    """None when the presented value is the key's current one; else when the old one stops working."""
    if is_current:
        return None
    return _aware(previous_until) or datetime.min.replace(tzinfo=UTC)


def _key_state(value: uuid.UUID) -> KeyState | None:
    """The key whose current value, or old value after a roll, is `value`: one indexed query."""
    row = ApiKey.objects.with_value(value).values(*KEY_FIELDS, *LIMIT_FIELDS, "value_digest", "previous_until").first()
    if row is None:
        return None
    current, previous_until = row.pop("value_digest"), row.pop("previous_until")
    return _key_of(row, value_until=_value_until(current == sealing.digest(value), previous_until))


def _key_of(row: dict, value_until: datetime | None = None) -> KeyState:
    """A KeyState from a row of KEY_FIELDS and LIMIT_FIELDS."""
    rates = (
        row.pop("rate_per_second"),
        row.pop("rate_per_minute"),
        row.pop("quota_per_day"),
        row.pop("quota_per_month"),
    )
    networks = networks_of(row.pop("allowed_addresses"))
    return KeyState(**row, value_until=value_until, limits=limits_of(rates), networks=networks)


def _grant_limits(key: KeyState, grant_rates: tuple[int | None, int | None]) -> Limits | None:
    own = key.limits or Limits()
    return limits_of((own.per_second, own.per_minute, own.per_day, own.per_month), grant_rates)


def _load_key(value: uuid.UUID) -> tuple[KeyState | None, dict[int, GrantState]]:
    return _with_grants(_key_state(value))


def _load_key_by_id(pk: int) -> tuple[KeyState | None, dict[int, GrantState]]:
    row = ApiKey.objects.filter(pk=pk).values(*KEY_FIELDS, *LIMIT_FIELDS).first()
    return _with_grants(_key_of(row) if row is not None else None)


def _with_grants(key: KeyState | None) -> tuple[KeyState | None, dict[int, GrantState]]:
    if key is None:
        return None, {}
    grants = {
        t: GrantState(pk, logged, until, _grant_limits(key, (per_second, per_minute)))
        for pk, t, logged, until, per_second, per_minute in ApiKeyGrant.objects.filter(key_id=key.pk).values_list(
            *GRANT_FIELDS
        )
    }
    return key, grants


process_cache = _ProcessCache()


def _cached_state(
    value: uuid.UUID, marker: int | None = None
) -> tuple[KeyState | None, dict[int, GrantState], dict[str, tuple[int, str]]]:
    return process_cache.state(value, marker)


def _decision_sql() -> str:
    key, api_type, grant = ApiKey._meta.db_table, ApiType._meta.db_table, ApiKeyGrant._meta.db_table
    return (
        f"SELECT k.id, k.is_active, k.allowed_for_all, k.logged_for_all, k.logging_until, k.description,"
        f" k.expires_at, k.value_digest, k.previous_until, t.id, t.name, g.id, g.logged, g.logging_until,"
        f" k.rate_per_second, k.rate_per_minute, k.quota_per_day, k.quota_per_month, k.allowed_addresses,"
        f" g.rate_per_second, g.rate_per_minute"
        f" FROM {key} k"
        f" LEFT JOIN {api_type} t ON t.direction = %s AND t.api_id = %s"
        f" LEFT JOIN {grant} g ON g.key_id = k.id AND g.api_type_id = t.id"
        f" WHERE k.value_digest = %s OR k.previous_digest = %s"
    )


def _decide_from_db(value: uuid.UUID, *, direction: str, api_id: str, at: datetime, address: str | None) -> Decision:
    """One indexed query (unique value digest, unique type, unique grant pair).

    Written as SQL because building the same query through the ORM's nested
    subqueries cost about 2 ms of Python per call, several times the query
    itself (bench/verify.py); the statement never changes shape.
    """
    found = sealing.digest(value)
    with connection.cursor() as cursor:
        cursor.execute(_decision_sql(), [direction, api_id, found, found])
        row = cursor.fetchone()
    if row is None:
        return judge(None, api_type_id=None, grant=None, at=at)
    pk, active, for_all, logged_all, until, description, expires, current, previous_until = row[:9]
    type_pk, type_name, grant_pk, logged, grant_until = row[9:14]
    rates, addresses, grant_rates = row[14:18], row[18], row[19:21]
    # Dates come back as dates on both databases (Django's SQLite driver converts declared date columns).
    value_until = _value_until(current == found, previous_until)
    if isinstance(addresses, str):  # raw SQL gives the JSON text
        addresses = json.loads(addresses)
    key = KeyState(
        pk,
        bool(active),
        bool(for_all),
        bool(logged_all),
        until,
        description,
        _aware(expires),
        value_until,
        limits_of(tuple(rates)),
        networks_of(addresses),
    )
    grant = (
        GrantState(grant_pk, bool(logged), grant_until, _grant_limits(key, tuple(grant_rates)))
        if grant_pk is not None
        else None
    )
    decision = judge(key, api_type_id=type_pk, grant=grant, at=at, address=address)
    return _with_context(decision, key, type_name)


def decide_for_type(key: ApiKey, api_type: ApiType, *, at: datetime | None = None) -> Decision:
    """The same rule for a key and type already in hand (pane details, admin, commands)."""
    grant = next((g for g in key.grants.all() if g.api_type_id == api_type.pk), None)
    state = KeyState(
        key.pk,
        key.is_active,
        key.allowed_for_all,
        key.logged_for_all,
        key.logging_until,
        key.description,
        key.expires_at,
        limits=limits_of((key.rate_per_second, key.rate_per_minute, key.quota_per_day, key.quota_per_month)),
        networks=networks_of(key.allowed_addresses),
    )
    grant_state = (
        GrantState(
            grant.pk,
            grant.logged,
            grant.logging_until,
            _grant_limits(state, (grant.rate_per_second, grant.rate_per_minute)),
        )
        if grant
        else None
    )
    decision = judge(state, api_type_id=api_type.pk, grant=grant_state, at=at or timezone.now())
    return _with_context(decision, state, api_type.name)


# Why a saved key calls nothing, or logs nothing although logging was asked for:
# what the pane shows in the table and warns about before a save.
PROBLEMS = {
    "inactive": "is active is off: every call with this key is refused.",
    "expired": "The key has expired: every call with it is refused.",
    "calls nothing": "Neither allowed for all nor any API type selected: this key cannot call any API.",
    "logging ended": "A logging until date has passed: those calls are no longer stored.",
}


def key_problems(key: ApiKey, *, at: datetime | None = None) -> list[str]:
    """The PROBLEMS of a key with its grants in hand (prefetched), by the same rules as judge()."""
    at = at or timezone.now()
    problems = []
    if not key.is_active:
        problems.append("inactive")
    if key.expires_at is not None and at >= key.expires_at:
        problems.append("expired")
    grants = list(key.grants.all())
    if key.allowed_for_all:
        asked = [(key.logged_for_all, key.logging_until)]
    else:
        asked = [(g.logged, g.logging_until) for g in grants]
        if not grants:
            problems.append("calls nothing")
    if any(logged and until and not logging_on(logged=logged, until=until, at=at) for logged, until in asked):
        problems.append("logging ended")
    return problems


def expiry_label(expires_at: datetime | None, *, at: datetime | None = None) -> str:
    """ "expired", "expires in 3 days", "expires in 5 hours", … ("" for a key that never expires)."""
    if expires_at is None:
        return ""
    at = at or timezone.now()
    if expires_at <= at:
        return "expired"
    return f"expires {time_left(expires_at, at)}"
