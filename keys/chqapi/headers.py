"""Django's SecurityMiddleware for the API's chain, with its answer headers made once.

Django's SecurityMiddleware works out and checks the same three or four headers for
every answer (nosniff, the referrer and opener policies, HSTS on HTTPS): through
ResponseHeaders' per-header charset checks, 3 µs of an allowed call's ~75 in process
and more under load (bench/profile_call.py, bench/verify.py). This subclass makes
each header once, through Django's own ResponseHeaders (so a value Django would
refuse is refused here, at start-up), and copies the made entries into each answer
that lacks them. Its HTTPS redirect (process_request) is Django's, unchanged.

Failure mode: the copy writes ResponseHeaders' store (`headers._store`, lower-case
name -> (name, value)), which is Django's private detail. Where it is not there,
or not a dict, the headers are set through the public mapping instead (Django's
cost, Django's result); tests/api/test_api_security_headers.py compares every
answer header with Django's own middleware's under each of its settings.
"""

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.security import SecurityMiddleware as DjangoSecurityMiddleware


class SecurityMiddleware(DjangoSecurityMiddleware):
    """Django's SecurityMiddleware (same settings, same headers), each header made once."""

    def __init__(self, get_response):
        super().__init__(get_response)
        # Django's own process_response on an empty answer, twice: for plain HTTP, and for
        # HTTPS (HSTS is sent only there). What it sets is what each answer gets.
        made = {}
        for secure in (False, True):
            request = HttpRequest()
            request.is_secure = lambda secure=secure: secure
            made[secure] = super().process_response(request, HttpResponse(headers={"Content-Type": ""}))
        self.plain = _entries(made[False])
        self.secure = _entries(made[True])

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        # is_secure() only when HSTS is on: the one header that depends on the request.
        entries = self.secure if self.sts_seconds and request.is_secure() else self.plain
        store = getattr(response.headers, "_store", None)
        if type(store) is not dict:
            for name, value in entries.values():
                if name not in response.headers:
                    response.headers[name] = value
            return response
        for lower, entry in entries.items():
            if lower not in store:
                store[lower] = entry
        return response


def _entries(response: HttpResponse) -> dict[str, tuple[str, str]]:
    """The headers the middleware set on `response`: lower-case name -> (name, value), as
    ResponseHeaders stores them (Content-Type was the answer's own)."""
    return {name.lower(): (name, value) for name, value in response.items() if name.lower() != "content-type"}
