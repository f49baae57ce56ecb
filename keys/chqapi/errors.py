"""Every /chqapi/ answer is JSON in the API's error shape, whatever goes wrong:
an unknown route (404, also for `/chqapi` and `//chqapi/...`), a wrong method (405),
an unexpected failure (500), or a database or shared state that cannot be reached
(503 with Retry-After, from keys/outages.py). Integrators' programs parse every
answer; an HTML error page is one they cannot read.

A request for a host not in ALLOWED_HOSTS, on any path, is refused here too, as the
first step of both chains (the site's MIDDLEWARE and the API's KEYS_API_MIDDLEWARE,
keys/chqapi/middleware.py): Django checks the Host only where something asks for it
(request.get_host()), which an API view never does.
"""

import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.views.decorators.csrf import csrf_exempt

from .. import outages
from ..guard import error_response
from ..text import printable
from .paths import is_api_path

log = logging.getLogger("keys.api")
# Where Django itself reports a disallowed host, so that deployments' filters for it still apply.
host_log = logging.getLogger("django.security.DisallowedHost")


# Host headers request.get_host() has accepted, with the settings it accepted them under: the
# same few come on every call, and validating one again was 3 µs of an allowed call's ~80
# (bench/profile_call.py). Bounded, since the header is the caller's to choose.
_accepted: dict[str | None, tuple] = {}
ACCEPTED_HOSTS = 256


def disallowed_host(request: HttpRequest) -> HttpResponse | None:
    """400 for a Host header ALLOWED_HOSTS does not accept; None for one it does. Reads only
    the Host (or X-Forwarded-Host) header: no cookie, session, key lookup or body."""
    meta = request.META
    raw = meta.get("HTTP_X_FORWARDED_HOST") if settings.USE_X_FORWARDED_HOST else meta.get("HTTP_HOST")
    under = (settings.ALLOWED_HOSTS, settings.DEBUG, meta.get("SERVER_NAME"), meta.get("SERVER_PORT"))
    accepted = _accepted.get(raw)
    if accepted is not None and accepted[0] is under[0] and accepted[1:] == under[1:]:
        return None
    try:
        request.get_host()
    except DisallowedHost as exc:
        host_log.error("%s", exc, extra={"status_code": 400, "request": request})
        return error_response(400, "This server does not answer for that host.")
    if len(_accepted) >= ACCEPTED_HOSTS:
        _accepted.clear()
    _accepted[raw] = under
    return None


class AllowedHostMiddleware:
    """First on the site's chain and on the API's (KEYS_API_MIDDLEWARE): a disallowed host is
    refused before any other middleware runs (none sets a cookie or reads a session for it)."""

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return disallowed_host(request) or self.get_response(request)


def post_only(view: Callable) -> Callable:
    """require_POST, answering 405 in the API's JSON shape."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            response = error_response(405, f"Use POST; {printable(request.method, 20)} is not allowed here.")
            response["Allow"] = "POST"
            return response
        return view(request, *args, **kwargs)

    return wrapped


@csrf_exempt
def not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Any /chqapi/ path that no route serves."""
    return error_response(
        404,
        "There is no such API route. Use /chqapi/import/<api-id>, /chqapi/export/<api-id>[/async], "
        "/chqapi/status or /chqapi/getdata.",
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON under /chqapi/, Django's page elsewhere."""
    if is_api_path(request.path):
        return error_response(500, "The server failed while carrying out the call.")
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)


def exception_response(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The JSON answer for an exception an API view raised: 400 for a body the client did
    not send in full (the client went away part-way through it),
    503 while the database or the shared state cannot be reached, else 500; the failure is
    logged, the answer says no more."""
    if isinstance(exception, UnreadablePostError):
        log.warning("API %s: the request body did not arrive: %s", printable(request.path), exception)
        return error_response(400, "The request body did not arrive in full.")
    if isinstance(exception, outages.ERRORS):
        return outages.unavailable(exception, f"API {printable(request.path)}")
    log.error("API %s failed", printable(request.path), exc_info=exception)
    return error_response(500, "The server failed while carrying out the call.")

