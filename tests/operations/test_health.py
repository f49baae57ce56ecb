from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from keys.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "worker": "gone",  # no task worker has ever written a heartbeat here
        "spooled_calls": 0,
    }


def test_database_down_is_503(client):
    with mock.patch("keys.health.connection.cursor", side_effect=RuntimeError("down")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "failing"


def test_cache_down_is_503(client):
    with mock.patch("keys.health.cache.set", side_effect=ConnectionError("down")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["cache"] == "failing"


def _heartbeat(seconds_ago: float, *, stopped: bool = False) -> WorkerHeartbeat:
    seen = timezone.now() - timedelta(seconds=seconds_ago)
    return WorkerHeartbeat.objects.create(
        worker_id=f"w{seconds_ago}",
        host="h",
        pid=1,
        started_at=seen,
        seen_at=seen,
        stopped_at=seen if stopped else None,
    )


@pytest.mark.parametrize(
    ("heartbeats", "worker"),
    [
        ([], "gone"),  # none ever started
        ([(1, False)], "ok"),
        ([(120, False)], "gone"),  # killed: its heartbeat is older than KEYS_WORKER_STALE_SECONDS (60)
        ([(1, True)], "gone"),  # stopped cleanly: gone at once
        ([(120, False), (1, True), (2, False)], "ok"),  # one live worker is enough
    ],
)
def test_worker_is_ok_while_a_heartbeat_is_fresh(client, heartbeats, worker):
    for seconds_ago, stopped in heartbeats:
        _heartbeat(seconds_ago, stopped=stopped)
    response = client.get("/healthz")
    assert response.status_code == 200  # a gone worker does not take the web host out of rotation
    assert response.json()["worker"] == worker


def test_worker_is_unknown_when_the_database_fails(client):
    with mock.patch("keys.health.connection.cursor", side_effect=RuntimeError("down")):
        assert client.get("/healthz").json()["worker"] == "unknown"


def test_worker_is_unknown_when_its_heartbeats_cannot_be_read(client):
    with mock.patch("keys.worker.seen", side_effect=RuntimeError("no table")):
        response = client.get("/healthz")
    assert (response.status_code, response.json()["worker"]) == (200, "unknown")
