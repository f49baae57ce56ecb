"""`manage.py db_worker`: django-tasks-db's command with keys' Worker, which rides out
database outages and writes a heartbeat (keys/worker.py). It replaces the
library's command of the same name because "keys" comes before "django_tasks_db" in
INSTALLED_APPS (Django takes a command from the first app that has it)."""

import os

from django.core.management.base import CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker

from keys.worker import Worker


class Command(db_worker.Command):
    help = "Run the task worker (asynchronous API documents); it waits out database outages"

    def handle(self, *, verbosity: int, queue_name: str, exclude_queues: str, reload: bool, **options) -> None:
        # The library's handle() with its Worker class replaced by ours.
        self.configure_logging(verbosity)
        if reload and options["batch"]:
            self.stderr.write("--reload and --batch cannot be specified together; autoreload is off.")
            reload = False
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = Worker(
            queue_names=queue_names,
            excluded_queue_names=excluded,
            interval=options["interval"],
            batch=options["batch"],
            backend_name=options["backend_name"],
            startup_delay=options["startup_delay"],
            max_tasks=options["max_tasks"],
            worker_id=options["worker_id"],
        )
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":  # only the reloaded child runs the worker
                worker.configure_signals()
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
