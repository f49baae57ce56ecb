"""WSGI entry point: Django's own handler. /chqapi/ calls take the same path as under
ASGI and the test client: keys.chqapi.middleware.ApiMiddleware, first in MIDDLEWARE,
answers them through KEYS_API_MIDDLEWARE's short chain (chq/settings.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")
application = get_wsgi_application()
