"""Guarding views with an `ApiKey` header, the way CHQ's integrators call.

`api_key_required(direction, api_id)` wraps any Django view (sync or `async def`;
`ApiKeyRequiredMixin` for class-based views, keys.contrib.drf and keys.contrib.ninja for
those frameworks): it asks the one access decision (with the client's address), counts the
call against the key's rates and quotas (keys/quotas.py), answers refusals in one JSON shape,
stores the call while logging is on, and records "last used". The `/chqapi/` routes
use it too. Handlers for API types come from a registry (`register`).

Each module has one job: throttle (refused keys per client), limits (the body),
refusals (answers, counts, security log), parsing (the JSON body), bookkeeping (usage,
"last used", the call's document), flow (the order of it all, the decorators),
registry (handlers), context (what a view learns of its call), answers (the shapes).
This package never imports keys.chqapi, CHQ's wire format: that side builds on it.
"""

from .answers import HEADER, ApiError, error_response, invalid, json_response, message_response
from .context import Call, call_of
from .flow import (
    ApiKeyRequiredMixin,
    api_key_authenticated,
    api_key_required,
    authenticated_call,
    guarded_call,
)
from .parsing import InvalidRequest, parse_body, parse_json, source_of
from .refusals import STATUS, refusal_counts
from .registry import ApiCall, Handler, Registration, handler_for, register, registration_for

__all__ = [
    "HEADER",
    "STATUS",
    "ApiCall",
    "ApiError",
    "ApiKeyRequiredMixin",
    "Call",
    "Handler",
    "InvalidRequest",
    "Registration",
    "api_key_authenticated",
    "api_key_required",
    "authenticated_call",
    "call_of",
    "error_response",
    "guarded_call",
    "handler_for",
    "invalid",
    "json_response",
    "message_response",
    "parse_body",
    "parse_json",
    "refusal_counts",
    "register",
    "registration_for",
    "source_of",
]
