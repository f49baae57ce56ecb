"""The task worker that carries out asynchronous API documents (`manage.py db_worker`,
keys' own command over django-tasks-db's), and how web hosts know whether one is alive.

django-tasks-db's Worker polls its queue in a loop that ends the process on any
database error but "database is locked" inside the claim query: SQLite's lock at
BEGIN, or a PostgreSQL restart, and the worker is gone. `Worker` here runs that
same loop and, when a database error (OperationalError, InterfaceError) escapes
it, closes the broken connections, waits (0.5 s, doubling, at most
KEYS_WORKER_RETRY_MAX_SECONDS) and starts the loop again once a probe (the
claim's own exclusive transaction) succeeds. It logs one warning when an outage
starts and one line when it ends. Anything else (a missing table, a bug) still
ends the process: the supervisor (systemd's Restart=always, `make run`'s
bin/keep-running) starts it again.

Failure modes: a task claimed when the outage began may have been committed as
RUNNING with nobody running it (a lost COMMIT answer, or a task whose outcome
could not be stored), or recorded as failed because its own queries failed (the
library stores any exception as the task's failure). After each outage the worker
puts such tasks back in the queue, which is safe because run_document is
idempotent (a document runs at most once, keys/chqapi/documents.py). A document
whose work had started stays InProcess until KEYS_ASYNC_TIMEOUT_SECONDS reports
it as Error.

Heartbeat: a thread writes the worker's WorkerHeartbeat row every
KEYS_WORKER_HEARTBEAT_SECONDS, also while a long document runs, using the
database's clock. A worker is alive while its row is fresher than
KEYS_WORKER_STALE_SECONDS and it has not said it stopped. The heartbeat cannot
be written while the database is down, so an outage longer than the bound shows
the worker as gone, which is what it is for that while. Heartbeats exist only
for the database backend; with TASKS_BACKEND=rq, `seen()` answers None.

Warnings: each worker also runs keys/warnings.py's Schedule, a thread that sends the
warnings before keys end every KEYS_WARNING_CHECK_MINUTES (the warnings' own claim
rows keep several workers from sending one twice), and, while KEYS_LOG_RETENTION_DAYS is set,
keys/retention.py's schedule, which deletes old finished documents every
KEYS_LOG_RETENTION_CHECK_MINUTES (one worker at a time; never a queued or running one).
Both are keys/schedule.py's Schedule.
"""

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.db.models import Count, Max, Q
from django.db.models.functions import Now
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from . import partitions, retention, warnings
from .models import WorkerHeartbeat

log = logging.getLogger("keys.worker")

# What a database outage raises (Django's wrappers of the driver's errors); anything
# else is not an outage and ends the worker.
OUTAGE = (OperationalError, InterfaceError)
# How django-tasks-db records a task that failed with one of them (DBTaskResult.exception_class_path).
OUTAGE_PATHS = [f"{error.__module__}.{error.__qualname__}" for error in OUTAGE]
FIRST_RETRY_SECONDS = 0.5
# Rows of workers not seen for this long are deleted when a worker starts.
FORGET_AFTER = timedelta(days=7)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _close_connections() -> None:
    """Drop this thread's connections, broken ones included (closing one may fail too)."""
    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(OUTAGE):
            connection.close()


# --- liveness, read by every web host ----------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What the heartbeats say: whether a worker is alive, and when one was last seen."""

    alive: bool
    last_seen: datetime | None


def queue_in_database() -> bool:
    """Whether the tasks queue is the database backend's, which queues in the database's own
    transaction (and whose workers, these, write heartbeats); any other (RQ, a broker) must be
    given a task only after what it works on has committed, or its worker could look too soon."""
    from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
    from django_tasks_db.backend import DatabaseBackend

    return isinstance(task_backends[DEFAULT_TASK_BACKEND_ALIAS], DatabaseBackend)


def seen() -> Seen | None:
    """The workers' state, from their heartbeats; None when the queue is not the
    database (another backend's workers write no heartbeat here)."""
    if not queue_in_database():
        return None
    bound = timedelta(seconds=settings.KEYS_WORKER_STALE_SECONDS)
    found = WorkerHeartbeat.objects.aggregate(
        alive=Count("pk", filter=Q(stopped_at=None, seen_at__gte=Now() - bound)), last=Max("seen_at")
    )
    return Seen(found["alive"] > 0, found["last"])


# --- the heartbeat, written by the worker ------------------------------------------


class Heartbeat:
    """The worker's row, written by a thread of its own (with its own connection) every
    KEYS_WORKER_HEARTBEAT_SECONDS. A round that fails is retried at the next one;
    the outage itself is logged by the poll loop."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="keys-worker-heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Say the worker stopped (best effort: the database may be down), and end the thread."""
        self.stopping.set()
        self.thread.join(timeout=10)
        try:
            WorkerHeartbeat.objects.filter(worker_id=self.worker_id).update(seen_at=Now(), stopped_at=Now())
        except OUTAGE:
            log.info("Task worker %s: its stop was not recorded; it shows as gone once stale", self.worker_id)

    def beat(self) -> None:
        if not WorkerHeartbeat.objects.filter(worker_id=self.worker_id).update(seen_at=Now()):
            WorkerHeartbeat.objects.create(
                worker_id=self.worker_id,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                started_at=Now(),
                seen_at=Now(),
            )

    def _run(self) -> None:
        with contextlib.suppress(OUTAGE):
            WorkerHeartbeat.objects.filter(seen_at__lt=Now() - FORGET_AFTER).delete()
        while not self.stopping.is_set():
            close_old_connections()
            try:
                self.beat()
            except OUTAGE as exc:
                log.debug("Task worker heartbeat not written: %s", exc)
                _close_connections()
            except Exception:  # a bug must not end the thread and make the worker look gone
                log.exception("Task worker heartbeat failed")
            self.stopping.wait(settings.KEYS_WORKER_HEARTBEAT_SECONDS)
        _close_connections()


# --- the worker -----------------------------------------------------------------------


class Worker(db_worker.Worker):
    """django-tasks-db's Worker, riding out database outages (see the module's docstring)."""

    def run(self) -> None:
        heartbeat = Heartbeat(self.worker_id)
        heartbeat.start()
        # Warnings before keys end, every KEYS_WARNING_CHECK_MINUTES (django-tasks has no scheduler).
        # Log retention too, while KEYS_LOG_RETENTION_DAYS is set.
        # On PostgreSQL, the documents' daily partitions, made a week ahead (keys/partitions.py).
        schedules = [warnings.Schedule(), retention.RetentionSchedule(), partitions.PartitionSchedule()]
        for schedule in schedules:
            schedule.start()
        try:
            while self.running:
                try:
                    return super().run()
                except OUTAGE as exc:
                    self._wait_out(f"{exc.__class__.__name__}: {_first_line(str(exc))}")
                    self.startup_delay = False  # only the first start avoids a thundering herd
        finally:
            for schedule in schedules:
                schedule.stop()
            heartbeat.stop()

    def run_task(self, db_task_result: DBTaskResult) -> None:
        """The library's, but a task that failed because the database did (its first query,
        or storing its outcome) is this worker's outage, not the task's failure: wait it out,
        and the task goes back to the queue (`_recover`)."""
        super().run_task(db_task_result)
        if db_task_result.status == TaskResultStatus.FAILED and db_task_result.exception_class_path in OUTAGE_PATHS:
            lines = db_task_result.traceback.strip().splitlines()
            self._wait_out(
                f"in task {db_task_result.id}: {lines[-1] if lines else db_task_result.exception_class_path}"
            )

    def _wait_out(self, cause: str) -> None:
        """Retry with capped exponential backoff until the database answers again."""
        started = time.monotonic()
        log.warning("Task worker %s: the database failed (%s); retrying until it answers", self.worker_id, cause)
        delay = FIRST_RETRY_SECONDS
        attempts = 0
        while self.running:
            _close_connections()
            time.sleep(delay)
            attempts += 1
            try:
                self._recover()
            except OUTAGE as again:
                log.debug("Task worker %s: database still failing: %s", self.worker_id, again)
                delay = min(delay * 2, settings.KEYS_WORKER_RETRY_MAX_SECONDS)
                continue
            log.warning(
                "Task worker %s: the database answers again after %.1f s (%d retries); polling resumes",
                self.worker_id,
                time.monotonic() - started,
                attempts,
            )
            return

    def _recover(self) -> None:
        """The probe: the claim's own exclusive transaction. In it, this worker's tasks that an
        outage stranded go back to the queue: its claims that nothing runs any more (it runs
        one task at a time, and none now), and tasks recorded as failed by a database error
        (any worker's: running one again is safe)."""
        tasks = DBTaskResult.objects.filter(backend_name=self.backend_name).filter(
            Q(status=TaskResultStatus.RUNNING)
            | Q(status=TaskResultStatus.FAILED, exception_class_path__in=OUTAGE_PATHS)
        )
        with exclusive_transaction(tasks.db):
            orphans = [
                t.pk
                for t in tasks.only("pk", "status", "worker_ids")
                if t.status == TaskResultStatus.FAILED or t.worker_ids[-1:] == [self.worker_id]
            ]
            if orphans:
                DBTaskResult.objects.filter(pk__in=orphans).update(
                    status=TaskResultStatus.READY,
                    started_at=None,
                    finished_at=None,
                    exception_class_path="",
                    traceback="",
                )
                log.warning(
                    "Task worker %s: %d task(s) the outage stranded put back in the queue", self.worker_id, len(orphans)
                )
