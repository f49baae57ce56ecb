"""Answering a refused call: its status and message, its count (the pane shows the counts
per reason), the key's usage where the key is known, and a sampled line in the security
log. Nothing is stored per key, and the key value is never written."""

import logging
import math
import time

from django.http import HttpRequest, HttpResponse

from .. import shared, usage
from ..access import Decision, Reason
from ..clients import client_address
from ..text import printable
from .answers import error_response
from .throttle import count_refusal, subject_of

security_log = logging.getLogger("keys.security")

STATUS = {
    Reason.MALFORMED_KEY: 401,
    Reason.UNKNOWN_KEY: 401,
    Reason.INACTIVE_KEY: 401,
    Reason.EXPIRED_KEY: 401,
    Reason.UNKNOWN_API_TYPE: 404,
    Reason.API_TYPE_NOT_ALLOWED: 403,
    Reason.ADDRESS_NOT_ALLOWED: 403,
    Reason.OVER_RATE: 429,
    Reason.OUT_OF_QUOTA: 429,
}

# Refusals of a known key, counted in its usage (keys/usage.py) under the API type it called.
USAGE_OF_REFUSALS = {
    Reason.API_TYPE_NOT_ALLOWED: "not_allowed",
    Reason.INACTIVE_KEY: "inactive",
    Reason.EXPIRED_KEY: "inactive",
    Reason.ADDRESS_NOT_ALLOWED: "wrong_address",
    Reason.OVER_RATE: "limited",
    Reason.OUT_OF_QUOTA: "limited",
}


def refusal(request: HttpRequest, decision: Decision, api_path: str) -> HttpResponse:
    """Answer a refused call. Nothing is stored per key; the refusal is counted
    and written to the security log, without the key value."""
    reason = decision.reason
    message = decision.message
    if reason == Reason.API_TYPE_NOT_ALLOWED:
        message = f"The API key is not allowed to call {decision.api_type_name or api_path}."
    elif reason == Reason.UNKNOWN_API_TYPE:
        message = f"There is no API type {api_path}."
    elif reason == Reason.ADDRESS_NOT_ALLOWED:
        # The caller's own address, so its operator knows what to ask to be added; never the key.
        message = (
            f"The API key is not allowed to call from {printable(client_address(request) or 'an unknown address')}."
        )
    if column := USAGE_OF_REFUSALS.get(reason):
        usage.count(decision.key_id, decision.api_type_id, column)
    count_refusal(request, reason)
    _log_refusal(request, reason)
    return error_response(STATUS[reason], message)


# One line per client and reason every REFUSAL_LOG_SECONDS, with a count of those not written:
# a flood of refused calls must not become a flood of log lines (disk, log shipping, reading).
REFUSAL_LOG_SECONDS = 10.0
_refusals_logged: dict[tuple[str, Reason], tuple[float, int]] = {}


def _log_refusal(request: HttpRequest, reason: Reason) -> None:
    if not security_log.isEnabledFor(logging.INFO):
        return
    key = (subject_of(request), reason)
    now = time.monotonic()
    last, unlogged = _refusals_logged.get(key, (-math.inf, 0))
    if now - last < REFUSAL_LOG_SECONDS:
        _refusals_logged[key] = (last, unlogged + 1)
        return
    if len(_refusals_logged) > 10_000:
        _refusals_logged.clear()
    _refusals_logged[key] = (now, 0)
    security_log.info(
        "refused API call: %s; %s %s from %s%s",
        reason.value,
        printable(request.method, 20),
        printable(request.path),
        printable(client_address(request)),
        f" (and {unlogged} more like it from there in the {REFUSAL_LOG_SECONDS:g} s before, not written)"
        if unlogged
        else "",
    )


def refusal_counts() -> dict[str, int]:
    names = [r.name.lower() for r in STATUS]
    found = shared.get([f"keys:refused:{n}" for n in names])
    return {n: int(found.get(f"keys:refused:{n}", 0)) for n in names}
