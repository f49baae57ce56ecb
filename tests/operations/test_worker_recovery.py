"""How keys' task worker (keys/worker.py) fails and recovers, in one process: the
backoff and its single log lines per outage, an error that is not an outage ending
it, its own stranded claims put back, a heartbeat round that fails, and what
status says of a document that waits with no worker alive. The same faults against
real processes are in test_task_worker.py."""

import logging
import threading
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.db import OperationalError, ProgrammingError
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

from keys import worker
from keys.chqapi import documents
from keys.chqapi.tasks import run_document
from keys.models import ApiDocument, WorkerHeartbeat
from tests.api_calls import post
from tests.task_workers import make_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_heartbeat():
    with mock.patch.object(worker, "Heartbeat") as heartbeat:
        yield heartbeat


@pytest.fixture
def sleeps():
    with mock.patch.object(worker.time, "sleep") as sleep:
        yield sleep


def test_an_outage_is_waited_out_with_capped_backoff_and_logged_once(settings, no_heartbeat, sleeps, caplog):
    """The fault: the library's loop raises OperationalError; the database then fails five
    probes before it answers. The loop starts again, once, and the worker ends normally."""
    settings.KEYS_WORKER_RETRY_MAX_SECONDS = 2
    loop = mock.Mock(side_effect=[OperationalError("database is locked"), None])
    probe = mock.Mock(side_effect=[OperationalError("connection failed")] * 5 + [None])
    with (
        mock.patch.object(db_worker.Worker, "run", loop),
        mock.patch.object(worker.Worker, "_recover", probe),
        caplog.at_level(logging.DEBUG, logger="keys.worker"),
    ):
        make_worker().run()
    assert loop.call_count == 2
    assert [c.args[0] for c in sleeps.call_args_list] == [0.5, 1, 2, 2, 2, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "the database failed (OperationalError: database is locked)" in warnings[0]
    assert "answers again" in warnings[1]
    assert "(6 retries)" in warnings[1]
    no_heartbeat.return_value.stop.assert_called_once()


def test_an_error_that_is_not_an_outage_ends_the_worker(no_heartbeat, sleeps):
    """The fault: a missing table (ProgrammingError). Retrying cannot mend it: the worker
    exits, says it stopped, and its supervisor starts it again."""
    with (
        mock.patch.object(db_worker.Worker, "run", side_effect=ProgrammingError("no such table")),
        pytest.raises(ProgrammingError),
    ):
        make_worker().run()
    sleeps.assert_not_called()
    no_heartbeat.return_value.stop.assert_called_once()


def test_after_an_outage_its_own_stranded_claims_go_back_to_the_queue():
    """The fault: the claim's COMMIT went through but its answer was lost, or a task's
    result could not be stored: a task RUNNING under this worker, which runs none now;
    or a task recorded as failed by a database error."""
    mine = run_document.enqueue("00000000-0000-0000-0000-000000000001").db_result
    theirs = run_document.enqueue("00000000-0000-0000-0000-000000000002").db_result
    before = run_document.enqueue("00000000-0000-0000-0000-000000000003").db_result
    outage = run_document.enqueue("00000000-0000-0000-0000-000000000004").db_result
    failed = run_document.enqueue("00000000-0000-0000-0000-000000000005").db_result
    mine.claim("me")
    theirs.claim("other")
    before.claim("me")
    before.claim("other")  # taken over by another worker since
    outage.claim("other")
    outage.set_failed(OperationalError("connection failed"))  # any worker's: safe to run again
    failed.claim("me")
    failed.set_failed(ValueError("a bug"))  # a real failure stays one
    make_worker("me")._recover()
    states = dict(DBTaskResult.objects.values_list("pk", "status"))
    assert states == {
        mine.pk: TaskResultStatus.READY,
        theirs.pk: TaskResultStatus.RUNNING,
        before.pk: TaskResultStatus.RUNNING,
        outage.pk: TaskResultStatus.READY,
        failed.pk: TaskResultStatus.FAILED,
    }


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_round_that_fails_is_retried_at_the_next(settings):
    """The fault: the heartbeat's write fails (the database is down); the thread goes on,
    the next round writes it, and a stop is recorded."""
    settings.KEYS_WORKER_HEARTBEAT_SECONDS = 0.01
    heartbeat = worker.Heartbeat("beating")
    real_beat = heartbeat.beat
    rounds: list[str] = []
    wrote = threading.Event()

    def flaky_beat():
        rounds.append("round")
        if len(rounds) <= 2:
            raise OperationalError("connection failed")
        real_beat()
        wrote.set()

    heartbeat.beat = flaky_beat
    heartbeat.start()
    assert wrote.wait(10)
    heartbeat.stop()
    assert not heartbeat.thread.is_alive()
    row = WorkerHeartbeat.objects.get(worker_id="beating")
    assert row.stopped_at is not None
    assert worker.seen() == worker.Seen(alive=False, last_seen=row.seen_at)


# --- what status says of a document that waits ---------------------------------------------


def waiting_document(key, seconds_ago: float) -> str:
    # Queued that long ago (a document's time is fixed once written: on PostgreSQL its partition).
    with time_machine.travel(timezone.now() - timedelta(seconds=seconds_ago), tick=False):
        answer = post("/chqapi/export/apidocument/async", key.value)
    return answer.json()["Id"]


def status(key, document_id) -> dict:
    return post("/chqapi/status", key.value, body=document_id).json()


@pytest.fixture
def key(make_key):
    return make_key(allowed_for_all=True)


def test_a_document_waiting_longer_than_the_bound_with_no_worker_says_so(key):
    document_id = waiting_document(key, seconds_ago=61)
    answer = status(key, document_id)
    assert answer["Status"] == "InProcess"
    assert answer["ErrorMessage"] == documents.WAITING.format(seen="none has been seen at all")
    seen = timezone.now() - timedelta(seconds=300)
    WorkerHeartbeat.objects.create(worker_id="old", host="h", pid=1, started_at=seen, seen_at=seen)
    assert "none has been seen since 20" in status(key, document_id)["ErrorMessage"]
    assert ApiDocument.objects.get().error_message == ""  # said, not stored: true only while it lasts


@pytest.mark.parametrize(
    ("seconds_ago", "worker_seen_ago", "message"),
    [
        (10, None, False),  # not waited long yet
        (61, 1, False),  # a worker is alive: the queue is only busy
        (61, 120, True),
    ],
)
def test_the_waiting_message_needs_a_long_wait_and_no_live_worker(key, seconds_ago, worker_seen_ago, message):
    document_id = waiting_document(key, seconds_ago)
    if worker_seen_ago is not None:
        seen = timezone.now() - timedelta(seconds=worker_seen_ago)
        WorkerHeartbeat.objects.create(worker_id="w", host="h", pid=1, started_at=seen, seen_at=seen)
    assert (status(key, document_id)["ErrorMessage"] is not None) is message


@pytest.mark.django_db(transaction=True)
def test_a_task_whose_queries_fail_goes_back_to_the_queue_and_runs(migrated_data, make_key, no_heartbeat, sleeps):
    """The fault: the document's first query fails (SQLite locked past its busy timeout);
    the library records the task as failed, which would leave the document InQueue for
    ever. The worker takes it as an outage, puts the task back, and runs it."""
    key = make_key(allowed_for_all=True)
    document_id = waiting_document(key, seconds_ago=0)
    real_run = documents.run
    calls = []

    def locked_once(document_id):
        calls.append(document_id)
        if len(calls) == 1:
            raise OperationalError("database is locked")
        real_run(document_id)

    with mock.patch.object(documents, "run", side_effect=locked_once):
        batch = make_worker()
        batch.batch = True  # run what is queued, then end
        batch.run()
    assert len(calls) == 2
    assert ApiDocument.objects.get().status == ApiDocument.Status.SUCCESSFUL
    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL
    assert "ApiDocument" in status(key, document_id)


@pytest.mark.parametrize(
    ("beat", "stale", "errors"), [(5, 60, []), (5, 10, []), (5, 9, ["keys.E001"]), (0, 60, ["keys.E001"])]
)
def test_the_stale_bound_must_cover_two_heartbeats(settings, beat, stale, errors):
    from keys.checks import check_worker_heartbeat

    settings.KEYS_WORKER_HEARTBEAT_SECONDS, settings.KEYS_WORKER_STALE_SECONDS = beat, stale
    assert [e.id for e in check_worker_heartbeat(None)] == errors
