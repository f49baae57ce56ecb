"""Deleting old API documents (keys/retention.py): the one service behind `purge_api_logs` and
the task worker's retention schedule. Batches, what is kept, interrupting and running again,
the KEYS_LOG_RETENTION_DAYS setting and its check, and the schedule in a real `db_worker`
process. Runs on SQLite, and on PostgreSQL with DATABASE_URL pointing at one."""

import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from keys import retention
from keys.models import ApiDocument, ApiDocumentChunk
from keys.selectors import start_of_day
from tests import servers
from tests.servers import wait_for

pytestmark = pytest.mark.django_db

OLD = datetime(2026, 1, 1, tzinfo=UTC)
BEFORE = datetime(2026, 2, 1, tzinfo=UTC)
Status = ApiDocument.Status


def documents(key, n, when, *, spread=timedelta(0), **fields) -> list[int]:
    """`n` documents of `key` created at `when` (plus `spread` more for each next one); their ids."""
    made = ApiDocument.objects.bulk_create(
        ApiDocument(
            key=key,
            key_last4="abcd",
            api_type_name="x",
            method="POST",
            path="/",
            status_code=200,
            duration_ms=1,
            created_at=when + number * spread,  # fixed once written (PostgreSQL: its partition)
            **fields,
        )
        for number in range(n)
    )
    return [d.pk for d in made]


def left() -> set[int]:
    return set(ApiDocument.objects.values_list("pk", flat=True))


def test_only_finished_documents_from_before_the_moment_go(make_key):
    key = make_key()
    gone = documents(key, 3, OLD, spread=timedelta(days=1))
    gone += documents(key, 1, OLD, status=Status.ERROR)
    kept = documents(key, 2, BEFORE)  # at the moment itself: not before it
    kept += documents(key, 1, BEFORE + timedelta(days=30))
    for status in (Status.IN_QUEUE, Status.VALIDATION, Status.IN_PROCESS):
        kept += documents(key, 1, OLD - timedelta(days=400), status=status, is_async=True)
    done = retention.documents_purge(before=BEFORE)
    assert (done.deleted, done.stopped) == (len(gone), False)
    assert left() == set(kept)


def test_one_keys_documents_only(make_key):
    key, other = make_key(), make_key()
    documents(key, 5, OLD)
    theirs = documents(other, 4, OLD)
    assert retention.documents_purge(before=BEFORE, key_id=key.pk, batch=2).deleted == 5
    assert left() == set(theirs)


def test_batches_hold_at_most_their_size_even_when_all_share_one_instant(make_key):
    """A bulk load gives thousands of documents one created_at: split by id, not one huge batch."""
    key = make_key()
    documents(key, 25, OLD)
    documents(key, 12, OLD, spread=timedelta(seconds=1))
    totals = []
    done = retention.documents_purge(before=BEFORE, batch=10, progress=totals.append)
    assert done.deleted == 37
    assert totals == [10, 20, 30, 37]
    assert done.batches == 4
    assert not ApiDocument.objects.exists()


def test_each_batch_is_two_statements_at_most_and_reads_no_row(make_key):
    """The probe, the DELETE ... RETURNING, and a chunk DELETE only when asynchronous documents went."""
    key = make_key()
    documents(key, 30, OLD, spread=timedelta(minutes=1))
    with CaptureQueriesContext(connection) as queries:
        retention.documents_purge(before=BEFORE, batch=10)
    sql = [q["sql"] for q in queries]
    # On PostgreSQL a batch's DELETE takes its documents' id claims with it, in one statement.
    deletes = [s for s in sql if s.startswith(("DELETE", "WITH gone AS (DELETE"))]
    assert len(deletes) == 3
    assert all("RETURNING" in s for s in deletes)
    assert not any(s.startswith("SELECT") and "request_body" in s for s in sql)  # no row is loaded
    # The oldest, then per batch a probe and a delete (and on PostgreSQL its advisory lock, and
    # first the list of partitions to drop whole).
    postgresql = connection.vendor == "postgresql"
    assert len(sql) <= 1 + postgresql + 3 * (3 + postgresql) + 6  # savepoints, transactions


def test_an_async_documents_chunks_go_with_it(make_key):
    key = make_key()
    (exported,) = documents(key, 1, OLD, is_async=True)
    (running,) = documents(key, 1, OLD, is_async=True, status=Status.IN_PROCESS)
    for document, n in ((exported, 3), (running, 2)):
        ApiDocumentChunk.objects.bulk_create(ApiDocumentChunk(document_id=document, seq=s, text="x") for s in range(n))
    assert retention.documents_purge(before=BEFORE).deleted == 1
    assert list(ApiDocumentChunk.objects.values_list("document_id", flat=True).distinct()) == [running]


def test_stopping_between_batches_keeps_what_went_and_a_second_run_finishes(make_key):
    key = make_key()
    documents(key, 30, OLD, spread=timedelta(seconds=1))
    asked = []
    done = retention.documents_purge(before=BEFORE, batch=10, should_stop=lambda: asked.append(1) or len(asked) > 2)
    assert (done.deleted, done.stopped) == (20, True)
    assert ApiDocument.objects.count() == 10
    assert retention.documents_purge(before=BEFORE, batch=10).deleted == 10


def test_a_batch_that_fails_rolls_back_alone(make_key):
    key = make_key()
    documents(key, 30, OLD, spread=timedelta(seconds=1))
    real = retention._delete_window
    calls = []

    def failing(*args):
        calls.append(1)
        deleted = real(*args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after its DELETE ran: the transaction must undo it
        return deleted

    out = io.StringIO()
    with mock.patch.object(retention, "_delete_window", failing), pytest.raises(CommandError) as raised:
        call_command("purge_api_logs", "--before", "2026-02-01", "--no-input", "--batch-size", "10", stdout=out)
    assert "Interrupted: 10 stored call(s) deleted" in str(raised.value)
    assert "Run the same command again" in str(raised.value)
    assert ApiDocument.objects.count() == 20
    call_command("purge_api_logs", "--before", "2026-02-01", "--no-input", stdout=out)
    assert not ApiDocument.objects.exists()


@pytest.mark.parametrize("size", ["0", "-5"])
def test_a_batch_size_below_one_is_refused_before_anything_is_deleted(make_key, size):
    documents(make_key(), 3, OLD)
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("purge_api_logs", "--before", "2026-02-01", "--no-input", "--batch-size", size)
    assert ApiDocument.objects.count() == 3


# --- KEYS_LOG_RETENTION_DAYS -------------------------------------------------------------


def test_retention_is_off_by_default_and_deletes_nothing(settings, make_key):
    assert settings.KEYS_LOG_RETENTION_DAYS is None
    documents(make_key(), 3, OLD)
    assert retention.retention_cutoff() is None
    assert retention.purge_expired().deleted == 0
    assert ApiDocument.objects.count() == 3
    schedule = retention.RetentionSchedule()
    schedule.start()
    schedule.stop()
    assert schedule.thread.ident is None  # never started


def test_retention_keeps_today_and_that_many_whole_days(settings, make_key):
    settings.KEYS_LOG_RETENTION_DAYS = 30
    cutoff = start_of_day(timezone.localdate() - timedelta(days=30))
    assert retention.retention_cutoff() == cutoff
    key = make_key()
    gone = documents(key, 2, cutoff - timedelta(microseconds=1))
    kept = documents(key, 2, cutoff)
    kept += documents(key, 1, cutoff - timedelta(days=90), status=Status.IN_QUEUE, is_async=True)
    assert retention.purge_expired().deleted == len(gone)
    assert left() == set(kept)


@pytest.mark.parametrize("value", [0, -1, 2.5, "30", True])
def test_a_retention_it_cannot_read_is_a_system_check_error(settings, value):
    settings.KEYS_LOG_RETENTION_DAYS = value
    assert [e.id for e in run_checks() if e.id == "keys.E031"] == ["keys.E031"]


@pytest.mark.parametrize("value", [None, 1, 90])
def test_a_retention_of_none_or_whole_days_passes_the_checks(settings, value):
    settings.KEYS_LOG_RETENTION_DAYS = value
    assert not [e for e in run_checks() if e.id in ("keys.E031", "keys.E002")]


def test_a_negative_retention_interval_is_a_check_error(settings):
    settings.KEYS_LOG_RETENTION_CHECK_MINUTES = -1
    assert "KEYS_LOG_RETENTION_CHECK_MINUTES" in " ".join(e.msg for e in run_checks() if e.id == "keys.E002")


def test_a_retention_round_that_fails_is_logged_and_the_next_comes(settings, caplog):
    settings.KEYS_LOG_RETENTION_DAYS = 7
    settings.KEYS_LOG_RETENTION_CHECK_MINUTES = 0.001  # 60 ms
    calls = []

    def purge_expired(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return retention.Purge()

    with mock.patch.object(retention, "purge_expired", purge_expired):
        schedule = retention.RetentionSchedule()
        schedule.start()
        wait_for(lambda: len(calls) >= 3)
        schedule.stop()
    assert not schedule.thread.is_alive()
    assert "Log retention: this round failed" in caplog.text
    assert "the database went away" in caplog.text
    assert all(callable(call["should_stop"]) for call in calls)


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="the advisory lock is PostgreSQL's; SQLite's one write lock serialises purges",
)
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_scheduled_round_leaves_the_purge_to_the_worker_holding_the_lock(settings, make_key):
    """Two workers' rounds do not delete the same rows side by side: one holds the advisory lock."""
    import psycopg

    settings.KEYS_LOG_RETENTION_DAYS = 30
    documents(make_key(), 5, OLD)
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [retention.LOCK_ID])
        done = retention.purge_expired()
        assert (done.deleted, done.stopped) == (0, True)
        other.execute("SELECT pg_advisory_unlock(%s)", [retention.LOCK_ID])
    assert retention.purge_expired().deleted == 5


# --- through a real task worker ------------------------------------------------------------

SETUP = """
from datetime import timedelta
from django.utils import timezone
from keys.models import ApiDocument
from keys.services import api_key_create
key = api_key_create(description="erp", is_active=True, allowed_for_all=True)
S = ApiDocument.Status
def doc(days, status=S.SUCCESSFUL, is_async=False):
    d = ApiDocument.objects.create(key=key, key_last4="abcd", api_type_name="x", method="POST", path="/",
                                   status_code=200, duration_ms=1, status=status, is_async=is_async,
                                   created_at=timezone.now() - timedelta(days=days))
    return d.pk
ids = [doc(60), doc(45, S.ERROR), doc(60, S.IN_QUEUE, True), doc(60, S.IN_PROCESS, True), doc(1), doc(0)]
print(*ids)
"""


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=servers.ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def worker_database(request) -> dict[str, str]:
    """The real worker's database: a scratch SQLite file, or a scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield {}
        return
    with servers.scratch_postgres_database() as url:
        yield {"DATABASE_URL": url}


def test_a_task_worker_deletes_old_finished_documents_on_its_schedule(tmp_path, worker_database):
    env = servers.server_env(
        tmp_path,
        {"KEYS_LOG_RETENTION_DAYS": "30", "KEYS_LOG_RETENTION_CHECK_MINUTES": "0.01", "LOG_LEVEL": "INFO"}
        | worker_database,
    )
    old, old_error, queued, running, yesterday, today = manage(env, "shell", "-v", "0", "-c", SETUP).split()
    count = (
        "from keys.models import ApiDocument; print(*ApiDocument.objects.order_by('pk').values_list('pk', flat=True))"
    )
    assert manage(env, "shell", "-v", "0", "-c", count).split() == [old, old_error, queued, running, yesterday, today]
    err = tmp_path / "worker.err"
    command = [sys.executable, "manage.py", "db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"]
    worker = subprocess.Popen(command, cwd=servers.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(err, "wb"))  # noqa: SIM115
    try:
        wait_for(lambda: "Log retention: deleted 2 document(s)" in err.read_text(), seconds=60)
        time.sleep(2)  # several more rounds: they find nothing more to delete
        assert worker.poll() is None, err.read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert manage(env, "shell", "-v", "0", "-c", count).split() == [queued, running, yesterday, today]
    log = err.read_text()
    assert log.count("Log retention: deleted") == 1
    assert "Traceback" not in log
