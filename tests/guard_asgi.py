"""An ASGI application serving tests/guard_views_urls.py (and /healthz, which the server
helper waits for) with the demo project's production settings, for uvicorn."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")

from django.conf import settings
from django.core.asgi import get_asgi_application

settings.ROOT_URLCONF = "tests.guard_asgi"
application = get_asgi_application()

from django.urls import path  # noqa: E402

from keys.health import healthz  # noqa: E402
from tests.guard_views_urls import urlpatterns as guarded  # noqa: E402

urlpatterns = [*guarded, path("healthz", healthz)]
