"""The one request path of API calls: a middleware the host puts FIRST in MIDDLEWARE.

Calls come from programs, never from a browser: they need no session, CSRF cookie,
messages, login lockout, htmx, static files or content security policy. So for a
path that resolves to one of the API's views (wherever the host mounted
`keys.chqapi.urls` with include()), this middleware answers the call itself and the
rest of the site's chain never runs: it runs its own short chain, the middleware the
host names in KEYS_API_MIDDLEWARE (default: the Host check and SecurityMiddleware),
around the API's view. Every other path passes straight on to the site's chain.

Django's own handler stays around it under every server: WSGI (gunicorn), ASGI
(uvicorn), the test client and schemathesis all reach the API's views this way, with
the same request_started / request_finished signals, error logging, and Django's
answer to anything a middleware raises. Around the view, and only for the API:
- the API's JSON errors (keys/chqapi/errors.py) for anything the view raises, after
  the chain's own process_exception hooks had their say;
- a Content-Length on a whole answer (what CommonMiddleware adds on the site's chain).

A path's resolution is remembered (at most RESOLVED_PATHS of them): resolving the same
few paths again and again was a sixth of an allowed call's cost (bench/profile_call.py).

Under ASGI the chain and the view run in one hop to Django's sync thread, as Django
itself runs a sync view (when the site's chain below is sync, Django runs this middleware
there already: one hop either way); a streamed answer (a large export, a stored export's pages)
is then handed to the server as an async iterator that pulls each chunk in that same
thread, so it streams: Django's ASGI handler reads a sync iterator whole before sending
a byte ("StreamingHttpResponse must consume synchronous iterators").
"""

import functools
from collections.abc import Callable, Iterable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.base import BaseHandler
from django.db import connections
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import Resolver404, ResolverMatch, get_resolver
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

from .. import streams
from . import errors

# Paths are the caller's to choose; a bound keeps a flood of made-up ones from growing the process.
RESOLVED_PATHS = 4096


@functools.cache
def _api_views() -> frozenset[Callable]:
    """The views of the API's own URL patterns: a path whose match is one of these is an API call."""
    from . import urls

    return frozenset(pattern.callback for pattern in [*urls.urlpatterns, *urls.missed])


@functools.lru_cache(maxsize=RESOLVED_PATHS)
def api_route(urlconf: str | None, path: str) -> ResolverMatch | None:
    """The API route `path` resolves to in the host's URLconf `urlconf`; None for any other path
    (a site page, or no route at all: the site's chain answers those)."""
    try:
        match = get_resolver(urlconf).resolve(path)
    except Resolver404:
        return None
    return match if match.func in _api_views() else None


# Django's own wrapping of a view in a transaction per database with ATOMIC_REQUESTS (honouring
# @non_atomic_requests), as its handler does for every view it calls.
_make_view_atomic = BaseHandler().make_view_atomic


def _call_view(request: HttpRequest, process_view: list, process_exception: list, atomic: bool) -> HttpResponseBase:
    match = request.resolver_match
    try:
        for hook in process_view:
            if (response := hook(request, match.func, match.args, match.kwargs)) is not None:
                return response
        view = _make_view_atomic(match.func) if atomic else match.func
        return view(request, *match.args, **match.kwargs)
    except Exception as exc:
        for hook in process_exception:
            if (response := hook(request, exc)) is not None:
                return response
        return errors.exception_response(request, exc)


def api_chain(paths: Iterable[str]) -> Callable[[HttpRequest], HttpResponseBase]:
    """The middleware named by `paths` (outermost first) around the API's view, as Django
    builds a chain: each one's process_view before the view, process_exception innermost
    first, the view in a transaction where a database has ATOMIC_REQUESTS. Synchronous: the
    API's views are, and so the chain costs no thread hop of its own."""
    process_view: list = []
    process_exception: list = []
    atomic = any(database["ATOMIC_REQUESTS"] for database in connections.settings.values())

    def handler(request):
        return _call_view(request, process_view, process_exception, atomic)

    for path in reversed(list(paths)):
        middleware = import_string(path)
        if not getattr(middleware, "sync_capable", True):
            raise ImproperlyConfigured(
                f"KEYS_API_MIDDLEWARE: {path} cannot run synchronously, as the API's chain does."
            )
        try:
            instance = middleware(handler)
        except MiddlewareNotUsed:
            continue
        if hasattr(instance, "process_view"):
            process_view.insert(0, instance.process_view)
        if hasattr(instance, "process_exception"):
            process_exception.append(instance.process_exception)
        handler = _direct(instance, handler) if type(instance).__call__ is MiddlewareMixin.__call__ else instance
    return handler


def _direct(instance: MiddlewareMixin, inner: Callable) -> Callable:
    """What MiddlewareMixin.__call__ does for a sync chain (its process_request, the rest of the
    chain, its process_response), without its coroutine check and hook lookups on every call
    (SecurityMiddleware's, on the hot path; with get_urlconf() gone, 2 µs of ~84: bench/profile_call.py)."""
    process_request = getattr(instance, "process_request", None)
    process_response = getattr(instance, "process_response", None)

    def layer(request: HttpRequest) -> HttpResponseBase:
        response = process_request(request) if process_request else None
        response = response or inner(request)
        return process_response(request, response) if process_response else response

    return layer


class ApiMiddleware:
    """First in MIDDLEWARE: answers the API's calls through KEYS_API_MIDDLEWARE's short chain,
    and passes every other request on to the rest of the site's chain."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable):
        self.get_response = get_response
        self.api_chain = api_chain(settings.KEYS_API_MIDDLEWARE)
        # Django builds an async chain under ASGI: this middleware is then async too, no thread hop.
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        # First in MIDDLEWARE, nothing has set request.urlconf yet: the URLconf is ROOT_URLCONF (as
        # Django's handler set it; settings is cheaper to read than get_urlconf()'s context-local).
        match = api_route(settings.ROOT_URLCONF, request.path_info)
        if match is None:
            return self.get_response(request)
        return self.answer(request, match)

    async def _acall(self, request: HttpRequest):
        match = api_route(settings.ROOT_URLCONF, request.path_info)
        if match is None:
            return await self.get_response(request)
        return await sync_to_async(self.answer, thread_sensitive=True)(request, match)

    def answer(self, request: HttpRequest, match: ResolverMatch) -> HttpResponseBase:
        request.resolver_match = match
        response = self.api_chain(request)
        if not response.streaming:
            if not response.has_header("Content-Length"):
                response.headers["Content-Length"] = str(len(response.content))
        elif not response.is_async and isinstance(request, ASGIRequest):
            # Also when the site's chain is sync and Django runs this middleware in its sync thread.
            response.streaming_content = streams.pulled(iter(response.streaming_content))
        return response
