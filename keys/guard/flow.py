"""The call flow: body limits, throttle, the access decision (with the client address),
the key's rates and quotas, refusal, the view, and the call's bookkeeping, in that
order, for every kind of view.

`api_key_required(direction, api_id)` wraps a function view, sync or `async def`;
`ApiKeyRequiredMixin` guards a class-based view; keys.contrib.drf and keys.contrib.ninja
put the same steps (`admit`, `failure`, `answered`) into those frameworks' hooks.
"""

import logging
import time
from collections.abc import Callable
from functools import wraps

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .. import outages, quotas
from ..access import Decision, Reason, authenticate, decide
from ..clients import client_address
from ..models import new_document_id
from ..text import printable
from .answers import HEADER_META, ApiError, error_response, invalid
from .bookkeeping import recorded
from .context import Call
from .limits import too_large, unread
from .parsing import InvalidRequest
from .refusals import refusal
from .throttle import shared_state, throttled

error_log = logging.getLogger("keys.api")


def api_key_required(direction: str, api_id: str | None = None) -> Callable:
    """Guard a view with the `ApiKey` header for the API type `direction`/`api_id`.

    Without `api_id` the view's `api_id` URL argument names the type. The view sees
    `request.api_call` (keys/guard/context.py): the decision, and the id a logged call
    is stored under. An `async def` view gets an async guard, its checks and records
    run in a thread.
    """

    def decorator(view: Callable) -> Callable:
        if iscoroutinefunction(view):

            @csrf_exempt
            @wraps(view)
            async def wrapped_async(request: HttpRequest, *args, **kwargs) -> HttpResponse:
                type_id = api_id if api_id is not None else kwargs["api_id"]
                return await guarded_call_async(request, direction, type_id, view, args, kwargs)

            wrapped_async.keys_api_type = (direction, api_id)  # how keys/chqapi/openapi.py finds guarded views
            return wrapped_async

        @csrf_exempt  # called by programs with a header key, never with a browser's cookies
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            type_id = api_id if api_id is not None else kwargs["api_id"]
            return guarded_call(request, direction, type_id, view, args, kwargs)

        wrapped.keys_api_type = (direction, api_id)  # how keys/chqapi/openapi.py finds guarded views
        return wrapped

    return decorator


def api_key_authenticated(view: Callable) -> Callable:
    """Guard for calls about the key's own data (no API type): an active key is enough."""
    if iscoroutinefunction(view):

        @csrf_exempt
        @wraps(view)
        async def wrapped_async(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            return await authenticated_call_async(request, view, args, kwargs)

        return wrapped_async

    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return authenticated_call(request, view, args, kwargs)

    return wrapped


class ApiKeyRequiredMixin:
    """Guard a class-based view (first among its bases) for the API type `api_direction`/`api_id`;
    without `api_id`, the `api_id` URL argument names it. Sync and async views alike."""

    api_direction: str
    api_id: str | None = None

    @classmethod
    def as_view(cls, **initkwargs):
        view = csrf_exempt(super().as_view(**initkwargs))
        view.keys_api_type = (cls.api_direction, cls.api_id)  # for keys/chqapi/openapi.py, as the decorator's
        return view

    def dispatch(self, request: HttpRequest, *args, **kwargs):
        type_id = self.api_id if self.api_id is not None else kwargs["api_id"]
        if self.view_is_async:
            return guarded_call_async(request, self.api_direction, type_id, super().dispatch, args, kwargs)
        return guarded_call(request, self.api_direction, type_id, super().dispatch, args, kwargs)


# The guard's flow lives in plain module functions rather than inside the
# decorators' closures: mutation testing (mutmut) cannot reach decorated
# functions, and the order of these checks is what most needs it.


def admit(request: HttpRequest, direction: str, type_id: str) -> Call | HttpResponse:
    """The checks before a call of API type `direction`/`type_id` runs: its context, stored
    on the request as `request.api_call`, or the answer that refuses it."""
    checked = checks(request, direction, type_id)
    if isinstance(checked, HttpResponse):
        return checked
    checked, metered = checked
    call = request.api_call = Call(
        checked,
        metered=metered,
        key_last4=last4(request),
        request_type=f"{type_id}-{direction}",  # CHQ's "<api-id>-<direction>" (keys/chqapi/wire.py)
        # Only a stored call needs an id to be found by (making one reads the OS's random source).
        document_id=new_document_id() if checked.logged else None,
    )
    call.started = time.perf_counter()
    return call


def checks(
    request: HttpRequest, direction: str | None, type_id: str | None
) -> tuple[Decision, quotas.Metered | None] | HttpResponse:
    """The guard's checks, in their order: the body's size, the client's block, the decision
    for API type `direction`/`type_id` (no direction: an active key is enough) from the
    client's address, the key's rates and quotas (keys/quotas.py), then reading the body of
    an accepted call. The decision and what it was counted against, or the answer that
    refuses the call."""
    if early := too_large(request):
        return early
    raw_key = request.META.get(HEADER_META)
    try:  # the shared state, the decision and a refusal's counts: none can be had during an outage
        until, marker = shared_state(request)
        if early := throttled(until):
            return early
        address = client_address(request) or ""  # "": no address, refused by a key's list
        if direction is None:
            decision = authenticate(raw_key, marker=marker, address=address)
        else:
            decision = decide(raw_key, direction=direction, api_id=type_id, marker=marker, address=address)
        metered = None
        if decision.limits is not None:
            metered = quotas.charge(decision)
            if not metered.allowed:
                decision = Decision(False, metered.reason, key_id=decision.key_id, api_type_id=decision.api_type_id)
        outages.settle()
        if not decision.allowed:
            response = refusal(request, decision, request.path if direction is None else f"{direction}/{type_id}")
            return _limit_headers(response, metered) if decision.reason in LIMITED else response
    except outages.ERRORS as exc:
        return outages.unavailable(exc, f"API {printable(request.path)}")
    return unread(request) or (decision, metered)


LIMITED = frozenset({Reason.OVER_RATE, Reason.OUT_OF_QUOTA})


def _limit_headers(response: HttpResponse, metered: quotas.Metered | None) -> HttpResponse:
    """The RateLimit fields (and a refusal's Retry-After) of a call counted against limits."""
    if metered is not None:
        for name, value in quotas.headers(metered).items():
            response[name] = value
    return response


def last4(request: HttpRequest) -> str:
    """The accepted key's last four characters, for the call's document (never the value)."""
    return request.META[HEADER_META].strip().strip("{}").replace("-", "")[-4:].lower()


def failure(request: HttpRequest, call: Call, exc: Exception) -> HttpResponse:
    """The answer for what a guarded view raised."""
    if isinstance(exc, InvalidRequest):
        return invalid(exc.model_state)
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, outages.ERRORS):
        return outages.unavailable(exc, f"API call {call.document_id or printable(request.path)}")
    error_log.exception("API call %s: the handler failed", call.document_id, exc_info=exc)
    return error_response(500, "The server failed while carrying out the call.")


def answered(request: HttpRequest, call: Call, response: HttpResponse) -> HttpResponse:
    """The view's answer, with the id the call is stored under, and recorded."""
    if call.document_id is not None:
        response["ApiDocumentId"] = str(call.document_id)
    if call.metered is not None and quotas.near_limit(call.metered):
        _limit_headers(response, call.metered)
    recorded(request, call, response)
    return response


def guarded_call(
    request: HttpRequest, direction: str, type_id: str, view: Callable, args: tuple, kwargs: dict
) -> HttpResponse:
    """Check, answer and record one call of API type `direction`/`type_id`."""
    call = admit(request, direction, type_id)
    if not isinstance(call, Call):
        return call
    try:
        response = view(request, *args, **kwargs)
    except Exception as exc:
        response = failure(request, call, exc)
    return answered(request, call, response)


async def guarded_call_async(
    request: HttpRequest, direction: str, type_id: str, view: Callable, args: tuple, kwargs: dict
) -> HttpResponse:
    """guarded_call for an `async def` view: the checks and the records (database and
    shared state) run in Django's sync thread, the view in the event loop."""
    call = await sync_to_async(admit)(request, direction, type_id)
    if not isinstance(call, Call):
        return call
    try:
        response = await view(request, *args, **kwargs)
    except Exception as exc:
        response = failure(request, call, exc)
    return await sync_to_async(answered)(request, call, response)


def authenticated(request: HttpRequest) -> Call | HttpResponse:
    """The checks of a call about the key itself (no API type): an active key is enough."""
    checked = checks(request, None, None)
    if isinstance(checked, HttpResponse):
        return checked
    call = request.api_call = Call(checked[0], key_last4=last4(request))
    return call


def _key_failure(request: HttpRequest, exc: Exception) -> HttpResponse:
    if isinstance(exc, InvalidRequest):
        return invalid(exc.model_state)
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, outages.ERRORS):
        return outages.unavailable(exc, f"API call {printable(request.path)}")
    raise exc


def authenticated_call(request: HttpRequest, view: Callable, args: tuple, kwargs: dict) -> HttpResponse:
    """Check an active key, then answer; these calls are about the key itself and are not logged."""
    call = authenticated(request)
    if not isinstance(call, Call):
        return call
    try:
        return view(request, *args, **kwargs)
    except Exception as exc:
        return _key_failure(request, exc)


async def authenticated_call_async(request: HttpRequest, view: Callable, args: tuple, kwargs: dict) -> HttpResponse:
    call = await sync_to_async(authenticated)(request)
    if not isinstance(call, Call):
        return call
    try:
        return await view(request, *args, **kwargs)
    except Exception as exc:
        return _key_failure(request, exc)
