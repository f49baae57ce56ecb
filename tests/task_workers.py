"""The task worker as the tests run it in process: keys' own Worker with a short poll."""

from keys import worker


def make_worker(worker_id: str = "me") -> worker.Worker:
    return worker.Worker(
        queue_names=["default"],
        excluded_queue_names=[],
        interval=0.1,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=worker_id,
    )
