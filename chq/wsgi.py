"""WSGI entry point: two Django handlers behind one application.

/chqapi/ calls are answered by programs, never shown in a browser: they need
no session, CSRF cookie, messages, login lockout, htmx, static files or content
security policy, and every such middleware is work per call. They get a
handler with API_MIDDLEWARE (security headers and JSON errors only); every
other path gets the full MIDDLEWARE. Same settings, URLs and database.
"""

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")
site = get_wsgi_application()  # also sets Django up

from django.conf import settings  # noqa: E402


class ApiWSGIHandler(WSGIHandler):
    """A WSGIHandler whose middleware chain is settings.API_MIDDLEWARE, resolving
    against the API's routes alone (chq/api_urls.py), not the whole site's."""

    def get_response(self, request):
        request.urlconf = "chq.api_urls"
        return super().get_response(request)

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


api = ApiWSGIHandler()
API_PREFIX = "/chqapi/"


def application(environ, start_response):
    handler = api if environ.get("PATH_INFO", "").startswith(API_PREFIX) else site
    return handler(environ, start_response)
