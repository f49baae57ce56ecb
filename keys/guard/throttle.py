"""Throttling clients that guess keys: refused keys are counted per client address
(for IPv6 its /64) in state every worker process shares (keys/shared.py); after
KEYS_THROTTLE_REFUSALS within KEYS_THROTTLE_WINDOW seconds the client is answered 429
for KEYS_THROTTLE_BLOCK seconds."""

import ipaddress
import logging
import math
import time

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from .. import freshness, shared
from ..access import Reason
from ..clients import client_address
from ..conf import hot
from ..text import printable
from .answers import error_response

security_log = logging.getLogger("keys.security")

# Refusals that say the caller has no usable key; these are what guessing looks like.
KEY_REFUSALS = {Reason.MALFORMED_KEY, Reason.UNKNOWN_KEY, Reason.INACTIVE_KEY, Reason.EXPIRED_KEY}


def throttle_subject(address: str | None) -> str:
    """Whom the throttle counts: the address, or for IPv6 its /64, which one
    client usually holds whole (rotating inside it must not dodge the count)."""
    if address and ":" in address:
        try:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        except ValueError:
            return address
    return str(address)


def _block_key(subject: str) -> str:
    return f"keys:throttle:block:{subject}"


def subject_of(request: HttpRequest) -> str:
    """The throttle's subject for this request, worked out once (the block check, the count
    and the log line of a refusal all ask)."""
    subject = getattr(request, "_throttle_subject", None)
    if subject is None:
        subject = request._throttle_subject = throttle_subject(client_address(request))
    return subject


def shared_state(request: HttpRequest) -> tuple[float | None, int | None]:
    """Until when the client is blocked (None: it is not), and the change marker when it
    lives beside the throttle's counts in the shared cache (None: decide() reads it).

    With Redis both are read together (one MGET when not held; keys.cache.TrackedReads
    holds them between changes, so a warm call makes no round trip). The marker is
    read before any key state, as keys/access.py requires. A Redis that cannot be
    reached raises one of keys.outages.ERRORS: the caller answers 503."""
    block = _block_key(subject_of(request)) if hot.THROTTLE_REFUSALS else None
    if shared.uses_cache() and freshness.uses_cache():
        # keys.cache.RedisCache answers from this process's copies while Redis's pushes say they are current.
        read = getattr(cache, "get_many_tracked", cache.get_many)
        found = read([freshness.CACHE_KEY, block] if block else [freshness.CACHE_KEY])
        until = found.get(block)
        # A held copy can outlive the block: Redis does not always push when a key expires.
        return (until if until is not None and until > time.time() else None), found.get(freshness.CACHE_KEY)
    return (shared.marked(block) if block else None), None


def throttled(until: float | None) -> HttpResponse | None:
    """429 while the client's address is blocked (until `until`) for too many refused keys."""
    if until is None:
        return None
    response = error_response(429, "Too many calls with a refused API key from this address. Try again later.")
    response["Retry-After"] = str(max(1, math.ceil(until - time.time())))
    return response


# The pane's count of each refusal reason (keys:refused:<reason>), named once.
REFUSAL_COUNTERS = {reason: f"keys:refused:{reason.name.lower()}" for reason in Reason}


def count_refusal(request: HttpRequest, reason: Reason) -> None:
    """Count the refusal (for the pane) and, for key refusals, the client's: after
    KEYS_THROTTLE_REFUSALS within KEYS_THROTTLE_WINDOW seconds the client is blocked
    for KEYS_THROTTLE_BLOCK seconds. The counts are shared by every worker process
    (keys/shared.py), so more workers do not mean more guesses."""
    limit = hot.THROTTLE_REFUSALS
    names: list[tuple[str, int | None]] = [(REFUSAL_COUNTERS[reason], None)]
    subject = subject_of(request)
    if limit and reason in KEY_REFUSALS:
        names.append((f"keys:throttle:refused:{subject}", hot.THROTTLE_WINDOW))
    counts = shared.incr(names)
    if len(counts) > 1 and counts[1] >= limit:
        block = hot.THROTTLE_BLOCK
        until = time.time() + block
        shared.set_until(_block_key(subject), until, until)
        security_log.warning("blocking %s for %s s after %s refused API keys", printable(subject), block, counts[1])
