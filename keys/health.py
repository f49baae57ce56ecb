"""/healthz for load balancers: 200 when the database and the cache answer, 503 otherwise.

"worker" says whether a task worker (asynchronous API documents) has written a
heartbeat within KEYS_WORKER_STALE_SECONDS: "ok", "gone", or "unknown" (the
database did not answer; or the queue is not the database, whose workers write no
heartbeat). It does not change the status code: a web host serves every synchronous
call without a worker, and taking it out of rotation would not bring one back.
Monitoring should alert on "gone"; a load balancer should route on the status code.
"""

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import worker
from .calllog import spool

log = logging.getLogger(__name__)


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not healthy", never a 500
        log.warning("health check: database failed: %s", exc.__class__.__name__)
        checks["database"] = "failing"
    try:
        cache.set("healthz", "1", timeout=10)
        checks["cache"] = "ok" if cache.get("healthz") == "1" else "failing"
    except Exception as exc:
        log.warning("health check: cache failed: %s", exc.__class__.__name__)
        checks["cache"] = "failing"
    healthy = all(v == "ok" for v in checks.values())
    checks["worker"] = _worker() if checks["database"] == "ok" else "unknown"
    # Logged calls the database refused wait in the spool; not a failure, but worth a look.
    checks["spooled_calls"] = spool.pending()
    return JsonResponse({"status": "ok" if healthy else "failing", **checks}, status=200 if healthy else 503)


def _worker() -> str:
    try:
        seen = worker.seen()
    except Exception as exc:
        log.warning("health check: worker heartbeats unreadable: %s", exc.__class__.__name__)
        return "unknown"
    if seen is None:
        return "unknown"
    return "ok" if seen.alive else "gone"
