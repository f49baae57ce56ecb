"""ASGI entry point (`uvicorn chq.asgi:application`): Django's own handler, the same
request path as chq/wsgi.py's (keys.chqapi.middleware.ApiMiddleware first in MIDDLEWARE)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")
application = get_asgi_application()
