"""The base of the task worker's scheduled jobs (django-tasks has no scheduler): a thread of
the worker that runs one job every few minutes, started and stopped by keys/worker.py.

Its jobs: the warnings before keys end (keys/warnings.py) and log retention
(keys/retention.py). The first round runs at the worker's start (a worker that was down
catches up). A round that fails (the database is down, a bug) is logged, and the next one
comes at its time: the thread never dies of one. Each thread has its own database
connection, closed before each round's work if it went stale and at the end.
"""

import contextlib
import logging
import threading

from django.db import close_old_connections, connections

log = logging.getLogger("keys.schedule")


class Schedule:
    """Subclasses say their thread's `name`, what a log line calls them (`what`), how often to
    run (`minutes()`: 0, never) and the job (`round()`, told the stop event to end early)."""

    name = "keys-schedule"
    what = "Scheduled job"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def minutes(self) -> float:
        raise NotImplementedError

    def round(self, stopping: threading.Event) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self.minutes() > 0:
            self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    def _run(self) -> None:
        while not self.stopping.is_set():
            close_old_connections()
            try:
                self.round(self.stopping)
            except Exception:
                log.exception("%s: this round failed; the next one is in %g minutes", self.what, self.minutes())
            self.stopping.wait(self.minutes() * 60)
        for connection in connections.all(initialized_only=True):
            with contextlib.suppress(Exception):
                connection.close()
