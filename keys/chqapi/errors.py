"""Every /chqapi/ answer is JSON in the API's error shape, whatever goes wrong:
an unknown route (404), a wrong method (405), an unexpected failure (500), or
a database that cannot be reached (503 with Retry-After). Integrators' programs
parse every answer; an HTML error page is one they cannot read."""

import logging
from collections.abc import Callable
from functools import wraps

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..text import printable
from .guard import error_response, unavailable

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


class ApiErrorsMiddleware:
    """Turns an exception raised on the way to or from an API view into the API's JSON error."""

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # What CommonMiddleware would add; the lean API chain (chq/wsgi.py) does not run it.
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if isinstance(exception, DatabaseError):
            log.error("API %s: the database failed: %s", printable(request.path), exception.__class__.__name__)
            return unavailable()
        log.error("API %s failed", printable(request.path), exc_info=exception)
        return error_response(500, "The server failed while carrying out the call.")
