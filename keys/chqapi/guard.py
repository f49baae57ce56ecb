"""Guarding views with an `ApiKey` header, the way CHQ's integrators call.

`api_key_required(direction, api_id)` wraps any Django view: it asks the one
access decision, answers refusals in CHQ's JSON shape, stores the call while
logging is on, and records "last used". The `/chqapi/` routes use it too.

Handlers for API types come from a registry (`register`), so a host project
can serve more API types without touching the guard.
"""

import ipaddress
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .. import freshness, outages, services, shared, usage
from ..access import Decision, Reason, authenticate, decide
from ..clients import client_address
from ..text import printable
from . import writer
from .export_request import InvalidRequest
from .wire import invalid, invalid_message, message_response

security_log = logging.getLogger("keys.security")
error_log = logging.getLogger("keys.api")

HEADER = "ApiKey"
# request.headers builds a mapping of every header on each access; the one we need is read directly.
HEADER_META = "HTTP_APIKEY"

STATUS = {
    Reason.MALFORMED_KEY: 401,
    Reason.UNKNOWN_KEY: 401,
    Reason.INACTIVE_KEY: 401,
    Reason.EXPIRED_KEY: 401,
    Reason.UNKNOWN_API_TYPE: 404,
    Reason.API_TYPE_NOT_ALLOWED: 403,
}


class ApiError(Exception):
    """Raise from a handler to answer `{"Message": message}` with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> HttpResponse:
    response = message_response(message, status)
    if status == 401:
        response["WWW-Authenticate"] = f'{HEADER} realm="chqapi"'
    return response


# Refusals that say the caller has no usable key; these are what guessing looks like.
KEY_REFUSALS = {Reason.MALFORMED_KEY, Reason.UNKNOWN_KEY, Reason.INACTIVE_KEY, Reason.EXPIRED_KEY}
# Refusals of a known key, counted in its usage (keys/usage.py) under the API type it called.
USAGE_OF_REFUSALS = {
    Reason.API_TYPE_NOT_ALLOWED: "not_allowed",
    Reason.INACTIVE_KEY: "inactive",
    Reason.EXPIRED_KEY: "inactive",
}


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


def _subject(request: HttpRequest) -> str:
    """The throttle's subject for this request, worked out once (the block check, the count
    and the log line of a refusal all ask)."""
    subject = getattr(request, "_throttle_subject", None)
    if subject is None:
        subject = request._throttle_subject = throttle_subject(client_address(request))
    return subject


def shared_state(request: HttpRequest) -> tuple[float | None, int | None]:
    """Until when the client is blocked (None: it is not), and the change marker when it
    lives beside the throttle's counts in the shared cache (None: decide() reads it).

    With Redis both are read together (one MGET when not held; chq.cache.TrackedReads
    holds them between changes, so a warm call makes no round trip). The marker is
    read before any key state, as keys/access.py requires. A Redis that cannot be
    reached raises one of keys.outages.ERRORS: the caller answers 503."""
    block = _block_key(_subject(request)) if settings.KEYS_THROTTLE_REFUSALS else None
    if shared.uses_cache() and freshness.uses_cache():
        # chq.cache.RedisCache answers from this process's copies while Redis's pushes say they are current.
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


def _count_refusal(request: HttpRequest, reason: Reason) -> None:
    """Count the refusal (for the pane) and, for key refusals, the client's: after
    KEYS_THROTTLE_REFUSALS within KEYS_THROTTLE_WINDOW seconds the client is blocked
    for KEYS_THROTTLE_BLOCK seconds. The counts are shared by every worker process
    (keys/shared.py), so more workers do not mean more guesses."""
    limit = settings.KEYS_THROTTLE_REFUSALS
    names: list[tuple[str, int | None]] = [(f"keys:refused:{reason.name.lower()}", None)]
    subject = _subject(request)
    if limit and reason in KEY_REFUSALS:
        names.append((f"keys:throttle:refused:{subject}", settings.KEYS_THROTTLE_WINDOW))
    counts = shared.incr(names)
    if len(counts) > 1 and counts[1] >= limit:
        block = settings.KEYS_THROTTLE_BLOCK
        until = time.time() + block
        shared.set_until(_block_key(subject), until, until)
        security_log.warning("blocking %s for %s s after %s refused API keys", printable(subject), block, counts[1])


def too_large(request: HttpRequest) -> HttpResponse | None:
    """413 for a body over KEYS_MAX_BODY_BYTES, decided from Content-Length before any other work;
    411 for a chunked body, whose length is not known before it is read. Reads no body."""
    limit = settings.KEYS_MAX_BODY_BYTES
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if not raw_length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django reads a body without Content-Length as empty; a call must never run on a body it did not get.
        return error_response(411, "Send the request body with a Content-Length header (chunked bodies are refused).")
    try:
        length = int(raw_length or 0)
    except ValueError:
        return error_response(400, "The Content-Length header is not a number.")
    if length < 0:
        return error_response(400, "The Content-Length header is not a number.")
    if length > limit:
        return error_response(413, f"The request body is larger than {limit} bytes.")
    return None


def unread(request: HttpRequest) -> HttpResponse | None:
    """Read the body of an accepted call, before its handler runs, so the handler never
    meets a half-read body. A refused call's body is never read: reading it was work
    for nothing, and refused traffic must stay cheap."""
    try:
        request.body  # noqa: B018
    except RequestDataTooBig:  # Django's own DATA_UPLOAD_MAX_MEMORY_SIZE, when it is the smaller limit
        return error_response(413, f"The request body is larger than {settings.KEYS_MAX_BODY_BYTES} bytes.")
    return None


def refusal(request: HttpRequest, decision: Decision, api_path: str) -> HttpResponse:
    """Answer a refused call. Nothing is stored per key; the refusal is counted
    and written to the security log, without the key value."""
    reason = decision.reason
    message = decision.message
    if reason == Reason.API_TYPE_NOT_ALLOWED:
        message = f"The API key is not allowed to call {decision.api_type_name or api_path}."
    elif reason == Reason.UNKNOWN_API_TYPE:
        message = f"There is no API type {api_path}."
    if column := USAGE_OF_REFUSALS.get(reason):
        usage.count(decision.key_id, decision.api_type_id, column)
    _count_refusal(request, reason)
    _log_refusal(request, reason)
    return error_response(STATUS[reason], message)


# One line per client and reason every REFUSAL_LOG_SECONDS, with a count of those not written:
# a flood of refused calls must not become a flood of log lines (disk, log shipping, reading).
REFUSAL_LOG_SECONDS = 10.0
_refusals_logged: dict[tuple[str, Reason], tuple[float, int]] = {}


def _log_refusal(request: HttpRequest, reason: Reason) -> None:
    if not security_log.isEnabledFor(logging.INFO):
        return
    key = (_subject(request), reason)
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


def parse_body(request: HttpRequest) -> dict[str, Any]:
    """The JSON body as a dict; an empty body is an empty request. Parsed once per
    request: the handler and the call log (for `Source`) both ask."""
    if not hasattr(request, "_api_body"):
        try:
            request._api_body = _parse(request.body)
        except InvalidRequest as exc:
            request._api_body = exc
    if isinstance(request._api_body, InvalidRequest):
        raise request._api_body
    return request._api_body


def parse_json(request: HttpRequest) -> Any:
    """The JSON body whatever it holds (the status call takes a bare GUID string too)."""
    return _parse(request.body, object_only=False)


def _unreadable(message: str) -> InvalidRequest:
    # CHQ answers a body it cannot read as any invalid request: ModelState at "apiRequest".
    return InvalidRequest({"apiRequest": [message]})


def _parse(body: bytes, object_only: bool = True) -> Any:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise _unreadable("The request body is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise _unreadable(f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
    except RecursionError:
        raise _unreadable("The request body's JSON is nested too deeply.") from None
    except ValueError:  # an integer with more digits than Python converts (int_max_str_digits)
        raise _unreadable("The request body holds a number too long to read.") from None
    if object_only and not isinstance(data, dict):
        raise _unreadable("The request body must be a JSON object.")
    return data


def source_of(request: HttpRequest) -> str:
    """The body's `Source` as text (JSON for anything else), "" when the body cannot be read."""
    try:
        source = parse_body(request).get("Source", "")
    except InvalidRequest:
        return ""
    # Anything json.loads gave back, json.dumps can write again; the stored copy is cut to its column.
    return source if isinstance(source, str) else json.dumps(source)


def _finish(
    request: HttpRequest,
    decision: Decision,
    response: HttpResponse,
    started: float,
    kind: str,
    sent: bytes | None,
    cut_short: tuple[int, str] | None = None,
) -> None:
    """Bookkeeping after the answer is made: it can never change the answer."""
    try:
        _bookkeep(request, decision, response, started, kind, sent, cut_short)
    except Exception:  # api_call_record spools what it cannot store; anything else is a bug to report
        security_log.exception("bookkeeping of API call %s failed", request.api_document_id)


def _error_message(response: HttpResponse) -> str:
    """A failed call's document says why: the answer's Message, and each ModelState entry."""
    if response.status_code < 400 or response.streaming:
        return ""
    try:
        answer = json.loads(response.content)
        return invalid_message(answer["ModelState"]) if "ModelState" in answer else str(answer.get("Message", ""))
    except (ValueError, AttributeError, KeyError, TypeError):
        return ""


def _document_fields(request: HttpRequest, decision: Decision, document_id: uuid.UUID, kind: str) -> dict[str, Any]:
    """What a logged call's document says of the call itself, whatever its outcome."""
    return {
        "document_id": document_id,
        "request_type": kind,
        "key_id": decision.key_id,
        "key_last4": request.api_key_last4,
        "key_description": decision.key_description,
        "api_type_id": decision.api_type_id,
        "api_type_name": decision.api_type_name,
        "method": request.method,
        "path": request.path,
        "source": source_of(request),
        "client_address": client_address(request),
        "request_body": request.body,
    }


def reserve(request: HttpRequest, document_id: uuid.UUID) -> None:
    """Take the caller's own ApiDocumentId for this logged call before its handler runs
    (keys/chqapi/writer.py); ApiError 409 when any document has it already."""
    decision = request.api_decision
    try:
        services.api_document_reserve(**_document_fields(request, decision, document_id, request.api_request_type))
    except writer.Taken:
        raise ApiError(409, DUPLICATE) from None


DUPLICATE = "An API document with this ApiDocumentId exists already; send a new GUID, or none to have one made."


def _bookkeep(
    request: HttpRequest,
    decision: Decision,
    response: HttpResponse,
    started: float,
    kind: str,
    sent: bytes | None,
    cut_short: tuple[int, str] | None,
) -> None:
    # A streamed answer that did not reach its end is no success.
    status_code = cut_short[0] if cut_short is not None else response.status_code
    usage.count(decision.key_id, decision.api_type_id, usage.column_for(status_code))
    services.api_key_touch(key_id=decision.key_id, grant_id=decision.grant_id)
    # An asynchronous call's document is written when it is queued (keys/chqapi/documents.py).
    if not decision.logged or getattr(request, "api_document_stored", False):
        return
    # Read from the answer only for a document: an unlogged 501 or 4xx must not parse its own body.
    error_message = cut_short[1] if cut_short is not None else _error_message(response)
    total, count = getattr(request, "api_document_counts", (None, None))
    services.api_call_record(
        **_document_fields(request, decision, request.api_document_id, kind),
        summary=getattr(request, "api_document_summary", None),
        total_records=total,
        records_count=count,
        error_message=error_message,
        status_code=status_code,
        duration_ms=(time.perf_counter() - started) * 1000,
        response_body=response.content if sent is None else sent,
    )


def api_key_required(direction: str, api_id: str | None = None) -> Callable:
    """Guard a view with the `ApiKey` header for the API type `direction`/`api_id`.

    Without `api_id` the view's `api_id` URL argument names the type. The view
    sees `request.api_decision` and `request.api_document_id` (the id a logged
    call is stored under; None when the call is not logged).
    """

    def decorator(view: Callable) -> Callable:
        @csrf_exempt  # called by programs with a header key, never with a browser's cookies
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            type_id = api_id if api_id is not None else kwargs["api_id"]
            return guarded_call(request, direction, type_id, view, args, kwargs)

        wrapped.keys_api_type = (direction, api_id)  # how keys/chqapi/openapi.py finds guarded views
        return wrapped

    return decorator


# The guard's flow lives in plain module functions rather than inside the
# decorators' closures: mutation testing (mutmut) cannot reach decorated
# functions, and the order of these checks is what most needs it.


def guarded_call(
    request: HttpRequest, direction: str, type_id: str, view: Callable, args: tuple, kwargs: dict
) -> HttpResponse:
    """Check, answer and record one call of API type `direction`/`type_id`."""
    if early := too_large(request):
        return early
    raw_key = request.META.get(HEADER_META)
    try:  # the shared state, the decision and a refusal's counts: none can be had during an outage
        until, marker = shared_state(request)
        if early := throttled(until):
            return early
        decision = decide(raw_key, direction=direction, api_id=type_id, marker=marker)
        outages.settle()
        if not decision.allowed:
            return refusal(request, decision, f"{direction}/{type_id}")
    except outages.ERRORS as exc:
        return outages.unavailable(exc, f"API {printable(request.path)}")
    if early := unread(request):
        return early
    request.api_decision = decision
    # Only a stored call needs an id to be found by (uuid4 reads the OS's random source).
    request.api_document_id = uuid.uuid4() if decision.logged else None
    request.api_key_last4 = raw_key.strip().strip("{}").replace("-", "")[-4:].lower()
    started = time.perf_counter()
    kind = request.api_request_type = f"{type_id}-{direction}"  # CHQ's "<api-id>-<direction>" (keys/chqapi/wire.py)
    try:
        response = view(request, *args, **kwargs)
    except InvalidRequest as exc:
        response = invalid(exc.model_state)
    except ApiError as exc:
        response = error_response(exc.status, exc.message)
    except outages.ERRORS as exc:
        response = outages.unavailable(exc, f"API call {request.api_document_id or printable(request.path)}")
    except Exception:
        error_log.exception("API call %s: the handler failed", request.api_document_id)
        response = error_response(500, "The server failed while carrying out the call.")
    if request.api_document_id is not None:
        response["ApiDocumentId"] = str(request.api_document_id)
    if response.streaming:
        # Recorded before the last chunk goes (or when the stream breaks or the client leaves).
        response.streaming_content = _RecordedWhenSent(
            response.streaming_content,
            settings.KEYS_LOG_BODY_LIMIT + 1 if decision.logged else 0,
            lambda sent, cut_short: _finish(request, decision, response, started, kind, sent, cut_short),
        )
    else:
        _finish(request, decision, response, started, kind, None)
    return response


# A streamed answer the client stopped reading (nginx's name for it: the client closed the request).
CLIENT_LEFT = 499


class _RecordedWhenSent:
    """A streamed answer passed through, its first `keep` bytes kept for the document, and
    recorded once. The last chunk is held back until the document is stored, so the
    document is committed before the answer's last byte leaves (read your writes). A
    stream that breaks (the database stopped mid-export) is recorded as an Error saying
    how far it got, and the error goes on to the server, which cuts the connection, so
    the caller sees no complete answer either; a client that leaves is recorded when
    Django closes the response (it always does), as an Error too."""

    def __init__(self, chunks, keep: int, record: Callable[[bytes, tuple[int, str] | None], None]):
        self.chunks, self.keep, self.record = chunks, keep, record
        self.kept = bytearray()
        self.sent = 0
        self.recorded = False

    def __iter__(self):
        held = None
        try:
            for chunk in self.chunks:
                if held is not None:
                    yield held
                    self.sent += len(held)
                if len(self.kept) < self.keep:
                    self.kept += chunk[: self.keep - len(self.kept)]
                held = chunk
        except Exception as exc:
            error_log.exception("API call: the streamed answer broke after %s bytes", self.sent)
            broke = f"The answer broke off after {self.sent} bytes ({exc.__class__.__name__}); send the request again."
            self._record((500, broke))
            raise
        self._record(None)
        if held is not None:
            yield held
            self.sent += len(held)

    def _record(self, cut_short: tuple[int, str] | None) -> None:
        if not self.recorded:
            self.recorded = True
            self.record(bytes(self.kept), cut_short)

    def close(self) -> None:
        self._record((CLIENT_LEFT, f"The client closed the connection after {self.sent} bytes of the answer."))


def api_key_authenticated(view: Callable) -> Callable:
    """Guard for calls about the key's own data (no API type): an active key is enough."""

    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return authenticated_call(request, view, args, kwargs)

    return wrapped


def authenticated_call(request: HttpRequest, view: Callable, args: tuple, kwargs: dict) -> HttpResponse:
    """Check an active key, then answer; these calls are about the key itself and are not logged."""
    if early := too_large(request):
        return early
    try:  # as in guarded_call
        until, marker = shared_state(request)
        if early := throttled(until):
            return early
        decision = authenticate(request.META.get(HEADER_META), marker=marker)
        outages.settle()
        if not decision.allowed:
            return refusal(request, decision, request.path)
    except outages.ERRORS as exc:
        return outages.unavailable(exc, f"API {printable(request.path)}")
    if early := unread(request):
        return early
    request.api_decision = decision
    try:
        return view(request, *args, **kwargs)
    except InvalidRequest as exc:
        return invalid(exc.model_state)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except outages.ERRORS as exc:
        return outages.unavailable(exc, f"API call {printable(request.path)}")


# --- handler registry ----------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """What a handler gets: the JSON body and the decision, and the request when the
    handler runs inside one (None when an asynchronous document runs in a task worker)."""

    request: HttpRequest | None
    direction: str
    api_id: str
    body: dict[str, Any]
    decision: Decision
    is_async: bool = False
    document_id: uuid.UUID | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[ApiCall], Any]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    # An import registered as asynchronous always runs in the task worker (CHQ fixes each
    # import's mode); an export runs asynchronously when called at .../async.
    asynchronous: bool = False
    # For the OpenAPI document (keys/chqapi/openapi.py): the request body's and the 200 answer's
    # JSON schemas (dicts, or pydantic model classes), and the operation's summary.
    request_schema: Any = None
    response_schema: Any = None
    summary: str | None = None


_handlers: dict[tuple[str, str], Registration] = {}


def register(
    direction: str,
    api_id: str,
    *,
    asynchronous: bool = False,
    request_schema: Any = None,
    response_schema: Any = None,
    summary: str | None = None,
) -> Callable[[Handler], Handler]:
    """Serve `/chqapi/<direction>/<api_id>` with the decorated function.

    The function takes an ApiCall and returns an ExportResult (keys/chqapi/exports.py:
    answered in CHQ's export envelope), a dict (sent as JSON, 200) or an HttpResponse;
    it may raise ApiError for a 4xx answer, or InvalidRequest for CHQ's 400.
    `request_schema` and `response_schema` describe the body and the 200 answer in the
    OpenAPI document (keys/chqapi/openapi.py has helpers for the export shapes).
    """

    def decorator(handler: Handler) -> Handler:
        _handlers[(direction, api_id)] = Registration(handler, asynchronous, request_schema, response_schema, summary)
        return handler

    return decorator


def registration_for(direction: str, api_id: str) -> Registration | None:
    return _handlers.get((direction, api_id))


def handler_for(direction: str, api_id: str) -> Handler | None:
    found = _handlers.get((direction, api_id))
    return found.handler if found else None
