"""The Django handler that answers /chqapi/ calls (chq/wsgi.py sends them here).

Calls come from programs, never from a browser: they need no session, CSRF
cookie, messages, login lockout, htmx, static files or content security policy.
So instead of a middleware chain this handler runs, around the view, exactly
the steps an API answer needs:

- the Host check (keys/chqapi/errors.py): a host ALLOWED_HOSTS does not accept is a
  JSON 400 before anything else, as on the site's chain;
- SecurityMiddleware's own request and response steps (HTTPS redirect, nosniff,
  HSTS, referrer and opener policies): Django's code, the same headers as the
  site's;
- the API's JSON errors (keys/chqapi/errors.py), for anything a view raises.

Everything else is Django's WSGIHandler as it is: the request and response
objects, the request_started / request_finished signals that keep database
connections healthy, error logging, Django's answer to an exception raised
before the view.

Routes come from the API's own URLconf (chq/api_urls.py); a path's resolution
is remembered, because resolving the same few paths again and again was a
sixth of an allowed call's cost (bench/profile_call.py). Measured in process,
the handler cut an allowed call from 154 µs to 116 µs and a refused one from
167 µs to 127 µs, against 88 µs for a bare Django view.
"""

import functools

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIHandler, get_script_name
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django.urls import ResolverMatch, get_resolver, set_script_prefix
from django.utils.log import log_response

from . import errors

URLCONF = "chq.api_urls"
# Paths are the caller's to choose; a bound keeps a flood of made-up ones from growing the process.
RESOLVED_PATHS = 4096


@functools.lru_cache(maxsize=RESOLVED_PATHS)
def resolve(path: str) -> ResolverMatch:
    """The API route for `path` (the URLconf ends in a catch-all, so every path has one)."""
    return get_resolver(URLCONF).resolve(path)


def _view_response(request: HttpRequest) -> HttpResponse:
    match = resolve(request.path_info)
    request.resolver_match = match
    try:
        return match.func(request, *match.args, **match.kwargs)
    except Exception as exc:
        return errors.exception_response(request, exc)


# What request_started's receivers are in this project: Django's own two. While they are
# all there is, the handler does their work itself; Signal.send looked the receivers up
# again on every call (9 µs, bench/profile_call.py). When any other receiver is connected,
# the signal is sent as Django sends it.
DJANGO_STARTED_RECEIVERS = (reset_queries, close_old_connections)


def _only_djangos_receivers() -> bool:
    live = signals.request_started._live_receivers(ApiHandler)
    return not live[1] and set(live[0]) == set(DJANGO_STARTED_RECEIVERS)


class ApiHandler(WSGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # Only its process_request / process_response are called, so it wraps nothing.
        self.security = SecurityMiddleware(_view_response)
        self._plain_receivers: list | None = None

    def _request_started(self, environ) -> None:
        receivers = signals.request_started.receivers
        if self._plain_receivers != receivers:  # connected or disconnected since: look again
            if not _only_djangos_receivers():
                signals.request_started.send(sender=self.__class__, environ=environ)
                return
            self._plain_receivers = list(receivers)
        if settings.DEBUG:  # reset_queries: only DEBUG records queries
            reset_queries()
        close_old_connections()

    def __call__(self, environ, start_response):
        # WSGIHandler.__call__ (Django 5.2), but with request_started's work done directly.
        set_script_prefix(get_script_name(environ))
        self._request_started(environ)
        request = self.request_class(environ)
        response = self.get_response(request)
        response._handler_class = self.__class__  # response.close() sends request_finished as always
        status = f"{response.status_code} {response.reason_phrase}"
        start_response(
            status, [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        )
        if getattr(response, "file_to_stream", None) is not None and environ.get("wsgi.file_wrapper"):
            response.file_to_stream.close = response.close
            response = environ["wsgi.file_wrapper"](response.file_to_stream, response.block_size)
        return response

    def get_response(self, request: HttpRequest) -> HttpResponse:
        try:
            # The Host first (as AllowedHostMiddleware does on the site's chain), before any other work.
            response = (
                errors.disallowed_host(request) or self.security.process_request(request) or _view_response(request)
            )
            response = self.security.process_response(request, response)
        except Exception as exc:  # raised before the view or by the security step: Django's own answer
            response = response_for_exception(request, exc)
        if not response.streaming and not response.has_header("Content-Length"):
            # What CommonMiddleware adds on the site's chain.
            response.headers["Content-Length"] = str(len(response.content))
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            # As BaseHandler.get_response does (the API's deliberate answers say they are logged already).
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response
