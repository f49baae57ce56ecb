"""Counters every worker process sees, without Redis.

The refused-key throttle and the refusal counts must be shared by all of a
server's worker processes: counted per process, four workers let four times
as many guesses through. Django's local-memory cache is per process, and its
file and database caches cannot increment atomically. So, on the embedded
default, counters live in a small table in a memory-mapped file
(KEYS_SHARED_STATE_DIR/counters.bin) that every worker maps: a read is a
memory read, an increment takes the file's lock for a few microseconds. A
refused call must never be the cheap way to slow the service, so it must not
cost a database write. With a shared cache configured (Redis), the cache's own
atomic `incr` is used instead, so several hosts share the counts too.
Keys' rates and quotas (keys/quotas.py) are counted here with `take()`, which
counts a call against several limits at once, or against none.

The table is an open-addressing hash table of SLOTS slots (name hash,
expiry, value); a counter whose window has passed is free for reuse, and when
a probe run is full the entry closest to expiry gives way. The file lives in
the page cache: a power cut resets throttling and the rates; the quotas'
counts may go back to what the file last held (keys/quotas.py).
"""

import functools
import hashlib
import math
import mmap
import struct
import time
from typing import NamedTuple

from django.core.cache import cache

from .conf import hot
from .freshness import MappedFile

SLOTS = 65_536
PROBE = 32
_SLOT = struct.Struct("<Qdd")  # name hash (0: never used), expires (seconds since the epoch), value
_SIZE = SLOTS * _SLOT.size

_table = MappedFile("counters.bin", _SIZE)  # zeros when new: every slot free


def uses_cache() -> bool:
    return hot.SHARED_COUNTERS == "cache"


# Hashing a name costs more than probing the table; the same few names come on every call.
@functools.lru_cache(maxsize=SLOTS)
def _hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") or 1


def _find(memory: mmap.mmap, h: int, now: float, *, claim: bool) -> int | None:
    """The slot holding `h`, or with `claim` a slot to put it in."""
    start = h % SLOTS
    free = oldest = None
    oldest_expiry = math.inf
    for i in range(PROBE):
        slot = (start + i) % SLOTS
        slot_hash, expires, _ = _SLOT.unpack_from(memory, slot * _SLOT.size)
        if slot_hash == h and expires > now:
            return slot
        if slot_hash == 0:  # never used: `h` was never put further along (entries take the first free slot)
            return slot if claim and free is None else (free if claim else None)
        if free is None and expires <= now:
            free = slot
        if expires < oldest_expiry:
            oldest, oldest_expiry = slot, expires
    if not claim:
        return None
    return free if free is not None else oldest


def incr(names: list[tuple[str, int | None]]) -> list[int]:
    """Add one to each (name, window seconds or None for ever) counter; a counter
    whose window has passed starts again at 1. Returns the new values."""
    if uses_cache():
        if together := getattr(cache, "incr_counters", None):  # keys.cache.RedisCache: one round trip
            return together(names)
        return [_cache_incr(name, window) for name, window in names]
    now = time.time()
    values = []
    with _table.locked() as memory:
        for name, window in names:
            h = _hash(name)
            slot = _find(memory, h, now, claim=True)
            found_hash, expires, value = _SLOT.unpack_from(memory, slot * _SLOT.size)
            if found_hash == h and expires > now:
                value += 1
            else:
                value, expires = 1, now + window if window else math.inf
            _SLOT.pack_into(memory, slot * _SLOT.size, h, expires, value)
            values.append(int(value))
    return values


class Taken(NamedTuple):
    """What take() did: `refused` is None when it counted the call, else the index of the
    first counter that refused it (full, or with `unseeded`: absent, to be seeded first).
    `values`: each counter's value before this call (0 for one absent; none when unseeded).
    `granted`: how many calls were counted (see take()'s `most`)."""

    refused: int | None
    unseeded: bool
    values: list[int]
    granted: int = 0


# take(most=n) counts at most this share of what a window has left at once, so the calls a
# process holds but has not made leave the others short by little (keys/quotas.py).
LEASE_SHARE = 32


def granted(counters: list[tuple[str, int, float, bool]], values: list[int], most: int) -> int:
    """How many calls take() counts at once: up to `most`, at most 1/LEASE_SHARE of the
    smallest room left, and always one."""
    room = min(limit - value for (_, limit, _, _), value in zip(counters, values, strict=True))
    return max(1, min(most, room // LEASE_SHARE))


def take(counters: list[tuple[str, int, float, bool]], most: int = 1) -> Taken:
    """Count one call against every (name, limit, expires at, must exist) counter, but only
    if each stays within its limit: a refused call uses up nothing, so a client held at its
    rate does not also spend its quota. All or nothing, under the table's lock (on Redis, in
    one script Redis runs whole). A counter made here disappears at `expires` (seconds since
    the epoch); one that `must exist` and is absent refuses the call as `unseeded`, for the
    caller to seed() from what is stored and try again. With `most` > 1, up to that many
    calls are counted at once (granted()), for the caller to make without asking again."""
    if uses_cache():
        if together := getattr(cache, "take_counters", None):  # keys.cache.RedisCache: one round trip
            return Taken(*together(counters, most))
        return _cache_take(counters, most)
    now = time.time()
    with _table.locked() as memory:
        slots = [_find(memory, _hash(name), now, claim=False) for name, *_ in counters]
        for i, ((_, _, _, must_exist), slot) in enumerate(zip(counters, slots, strict=True)):
            if slot is None and must_exist:
                return Taken(i, True, [])
        values = [0 if slot is None else int(_SLOT.unpack_from(memory, slot * _SLOT.size)[2]) for slot in slots]
        if (full := _first_full(counters, values)) is not None:
            return Taken(full, False, values)
        n = granted(counters, values, most)
        for (name, _, expires, _), value, slot in zip(counters, values, slots, strict=True):
            h = _hash(name)
            if slot is None:  # a new window: claim a slot for it
                slot = _find(memory, h, now, claim=True)
            _SLOT.pack_into(memory, slot * _SLOT.size, h, expires, value + n)
    return Taken(None, False, values, n)


def _first_full(counters: list[tuple[str, int, float, bool]], values: list[int]) -> int | None:
    """The index of the first counter already at its limit (None: all have room)."""
    for i, ((_, limit, _, _), value) in enumerate(zip(counters, values, strict=True)):
        if value >= limit:
            return i
    return None


def _cache_take(counters: list[tuple[str, int, float, bool]], most: int = 1) -> Taken:
    """take() through Django's cache API (a cache other than keys.cache.RedisCache): the
    check and the count are separate steps, so racing calls can pass a limit by a few."""
    found = cache.get_many([name for name, *_ in counters])
    for i, (name, _, _, must_exist) in enumerate(counters):
        if name not in found and must_exist:
            return Taken(i, True, [])
    values = [int(found.get(name, 0)) for name, *_ in counters]
    if (full := _first_full(counters, values)) is not None:
        return Taken(full, False, values)
    n = granted(counters, values, most)
    for name, _, expires, _ in counters:
        timeout = max(1, math.ceil(expires - time.time()))
        if not cache.add(name, n, timeout=timeout):
            try:
                cache.incr(name, n)
            except ValueError:  # expired between add and incr
                cache.add(name, n, timeout=timeout)
    return Taken(None, False, values, n)


def seed(name: str, value: int, expires: float) -> None:
    """Start the counter `name` at `value` unless it exists (another process seeded it first)."""
    if uses_cache():
        cache.add(name, value, timeout=max(1, math.ceil(expires - time.time())))
        return
    h = _hash(name)
    with _table.locked() as memory:
        now = time.time()
        if _find(memory, h, now, claim=False) is None:
            slot = _find(memory, h, now, claim=True)
            _SLOT.pack_into(memory, slot * _SLOT.size, h, expires, value)


def _cache_incr(name: str, window: int | None) -> int:
    if cache.add(name, 1, timeout=window):
        return 1
    try:
        return cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.add(name, 1, timeout=window)
        return 1


def set_until(name: str, value: float, expires: float) -> None:
    """Set a value that disappears at the time `expires` (seconds since the epoch)."""
    if uses_cache():
        cache.set(name, value, timeout=max(1, int(expires - time.time())))
        return
    h = _hash(name)
    with _table.locked() as memory:
        slot = _find(memory, h, time.time(), claim=True)
        _SLOT.pack_into(memory, slot * _SLOT.size, h, expires, value)


def get(names: list[str]) -> dict[str, float]:
    """The live values among `names`; a memory read, no lock (a value is 8 aligned bytes)."""
    if uses_cache():
        return cache.get_many(names)
    memory = _table.memory
    now = time.time()
    found = {}
    for name in names:
        slot = _find(memory, _hash(name), now, claim=False)
        if slot is not None:
            found[name] = _SLOT.unpack_from(memory, slot * _SLOT.size)[2]
    return found


def marked(name: str) -> float | None:
    """One live value, or None."""
    return get([name]).get(name)


def clear() -> None:
    """Forget every counter (an operator after a false alarm: `manage.py reset_api_throttle`).
    The rates go too, and in the file the quotas' counts (keys/quotas.py seeds them again
    from the usage stored)."""
    if uses_cache():
        _clear_cache_counters()
        return
    with _table.locked() as memory:
        memory[:] = bytes(_SIZE)


def _clear_cache_counters() -> None:
    """Delete the throttle's keys from Redis, and nothing else (the decision marker stays)."""
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is None:  # a cache without key listing (local memory: tests)
        cache.clear()
        return
    redis = client(write=True)
    for pattern in ("*keys:throttle:*", "*keys:refused:*", "*keys:rate:*"):
        for name in redis.scan_iter(match=pattern):
            redis.delete(name)
