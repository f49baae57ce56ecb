"""The comparison: Django REST framework with djangorestframework-api-key's
HasAPIKey on one view, on SQLite (BENCH_DRF_DATABASE, a file), with persistent
connections as the product has (BENCH_DRF_CONN_MAX_AGE=0: Django's default).
`gunicorn bench.baselines.drf_api_key:application`; `python -m
bench.baselines.drf_api_key setup` migrates and prints a new key."""

import os
import sys

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only"),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "rest_framework_api_key",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ["BENCH_DRF_DATABASE"],
                # 600 (persistent, as the product has) unless the run asks for Django's default, 0.
                "CONN_MAX_AGE": int(os.environ.get("BENCH_DRF_CONN_MAX_AGE", "600")),
            }
        },
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework_api_key.permissions.HasAPIKey"],
            "UNAUTHENTICATED_USER": None,
        },
        USE_TZ=True,
    )

import django

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


class Guarded(APIView):
    def post(self, request):
        return Response({"ok": True})


urlpatterns = [path("", Guarded.as_view())]
application = get_wsgi_application()

if __name__ == "__main__" and sys.argv[1:] == ["setup"]:
    from django.core.management import call_command
    from rest_framework_api_key.models import APIKey

    call_command("migrate", verbosity=0)
    _, key = APIKey.objects.create_key(name="bench")
    print(key)
