"""The limit: a bare Django 5.2 project with one JsonResponse view and only
CommonMiddleware, no database. `gunicorn bench.baselines.bare:application`."""

import os

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only"),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
    )

from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def view(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("", view)]
application = get_wsgi_application()
