"""bench/baselines/bare.py's project (one JsonResponse view, CommonMiddleware only) under an
ASGI server, the limit of bench/verify.py's ASGI rows: `uvicorn bench.baselines.bare_asgi:application`."""

from django.core.asgi import get_asgi_application

from bench.baselines import bare  # noqa: F401  (configures Django's settings and the URLconf)

application = get_asgi_application()
