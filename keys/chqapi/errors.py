"""Every /chqapi/ answer is JSON in the API's error shape, whatever goes wrong:
an unknown route (404), a wrong method (405), an unexpected failure (500), or
a database or shared state that cannot be reached (503 with Retry-After, from
keys/outages.py). Integrators' programs parse every answer; an HTML error page
is one they cannot read."""

import logging
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .. import outages
from ..text import printable
from .guard import error_response

log = logging.getLogger("keys.api")

API_PREFIX = "/chqapi/"


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
    if request.path.startswith(API_PREFIX):
        return error_response(500, "The server failed while carrying out the call.")
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)


def exception_response(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The JSON answer for an exception an API view raised: 503 while the database or the
    shared state cannot be reached, else 500; the failure is logged, the answer says no more."""
    if isinstance(exception, outages.ERRORS):
        return outages.unavailable(exception, f"API {printable(request.path)}")
    log.error("API %s failed", printable(request.path), exc_info=exception)
    return error_response(500, "The server failed while carrying out the call.")


class ApiErrorsMiddleware:
    """On the site's middleware chain (the test client's, and any server that does not use
    chq/wsgi.py): the API's JSON errors for /chqapi/ paths. keys/chqapi/wsgi.py does the same
    without a middleware."""

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        return exception_response(request, exception)
