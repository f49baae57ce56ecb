"""The async life cycle with real processes: a gunicorn server and the task
worker (`manage.py db_worker`) on one scratch database. Queued → in process →
successful; a worker killed in the middle → the status call says so, truthfully,
and then says Error once the timeout has passed; a document queued while no
worker runs is carried out by the next one to start; one whose key was
deactivated while it waited is refused by the running worker."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from keys.access import MESSAGES, Reason
from keys.chqapi.documents import NOT_RUN
from tests import servers
from tests.servers import wait_for

TIMEOUT = 3  # KEYS_ASYNC_TIMEOUT_SECONDS for this server


WORKERS = {
    "database": ["db_worker", "--interval", "0.1", "--no-startup-delay"],
    # SimpleWorker runs the job in the worker process itself (no forked work horse), so
    # killing the worker kills the work, as with the database worker.
    "rq": ["rqworker", "default", "--job-class", "django_tasks_rq.Job", "--worker-class", "rq.worker.SimpleWorker"],
}


@pytest.fixture(params=list(WORKERS))
def setup(request, tmp_path):
    backend = request.param
    env = {"TASKS_BACKEND": backend}
    if backend == "rq":
        if not os.environ.get("REDIS_TEST_URL"):
            pytest.skip("needs a Redis server: set REDIS_TEST_URL (CI's .ci/run starts one and sets it)")
        import redis

        redis.Redis.from_url(os.environ["REDIS_TEST_URL"]).flushdb()  # no queued jobs of an earlier run
        env["TASKS_REDIS_URL"] = os.environ["REDIS_TEST_URL"]
    gates = tmp_path / "gates"
    gates.mkdir()
    env |= {"KEYS_HANDLER_MODULES": "tests.gated_handler", "GATED_HANDLER_DIR": str(gates)}
    server = servers.start(tmp_path, workers=2, extra_env=env | {"KEYS_ASYNC_TIMEOUT_SECONDS": str(TIMEOUT)})
    workers: list[subprocess.Popen] = []

    def start_worker() -> subprocess.Popen:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", *WORKERS[backend]],
            cwd=servers.ROOT,
            env=server.env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"worker{len(workers)}.log", "wb"),  # noqa: SIM115  (closed with the process)
        )
        workers.append(worker)
        return worker

    yield server, gates, start_worker
    for worker in workers:
        worker.kill()
        worker.wait(timeout=15)
    server.stop()


def status(server, key, document_id) -> dict:
    code, body, _ = server.post("/chqapi/status", json.dumps(document_id).encode(), {"ApiKey": key})
    assert code == 200, body
    return json.loads(body)


def document_status(server, key, document_id) -> int:
    """The document's own status code, from API Document Export."""
    request = {"Data": {"Request": {"Filters": [{"Field": "ApiType", "Value": "inventory-export"}]}}}
    _, body, _ = server.post("/chqapi/export/apidocument", json.dumps(request).encode(), {"ApiKey": key})
    items = json.loads(body)["ApiDocument"]["Response"]["ApiDocuments"]
    return next(i["Status"] for i in items if i["APIDocumentId"] == document_id.upper())


def start_export(server, key, source) -> str:
    body = json.dumps({"Source": source}).encode()
    code, answer, _ = server.post("/chqapi/export/inventory/async", body, {"ApiKey": key})
    assert code == 200, answer
    answer = json.loads(answer)
    assert answer["Status"] == "InProcess"
    return answer["Id"]


def test_async_life_cycle_with_a_real_worker(setup):
    server, gates, start_worker = setup
    key = server.manage("create_api_key", "--description", "async", "--all", "--quiet")

    # Queued: no worker yet. The caller is told InProcess; the document says InQueue (0).
    first = start_export(server, key, "first")
    assert status(server, key, first)["Status"] == "InProcess"
    assert document_status(server, key, first) == 0

    # A worker takes it: InProcess (2) while the handler runs.
    worker = start_worker()
    wait_for(lambda: (gates / f"started-{first}").exists())
    assert status(server, key, first)["Status"] == "InProcess"
    assert document_status(server, key, first) == 2
    (gates / "gate").touch()
    done = wait_for(lambda: (s := status(server, key, first))["Status"] != "InProcess" and s)
    assert (done["Id"], done["Status"], done["ApiType"], done["Source"]) == (
        first,
        "Successful",
        "inventory-export",
        "first",
    )
    assert document_status(server, key, first) == 3

    # A worker killed in the middle of the work: InProcess, truthfully, then Error after the timeout.
    (gates / "gate").unlink()
    second = start_export(server, key, "second")
    wait_for(lambda: (gates / f"started-{second}").exists())
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=15)
    assert status(server, key, second)["Status"] == "InProcess"
    time.sleep(TIMEOUT + 0.5)
    failed = status(server, key, second)
    assert failed["Status"] == "Error"
    assert f"did not finish within {TIMEOUT} seconds" in failed["ErrorMessage"]

    # Queued while no worker runs: it survives, and the next worker carries it out.
    (gates / "gate").touch()
    third = start_export(server, key, "third")
    time.sleep(0.5)
    assert document_status(server, key, third) == 0
    start_worker()
    assert wait_for(lambda: (s := status(server, key, third))["Status"] != "InProcess" and s)["Status"] == "Successful"
    # The killed document stays Error: it is not run again behind the caller's back.
    assert status(server, key, second)["Status"] == "Error"


def test_a_worker_told_to_stop_finishes_the_document_it_is_running(setup):
    """SIGTERM (or Ctrl-C under `make run`) lets the running document finish, then the worker exits."""
    server, gates, start_worker = setup
    key = server.manage("create_api_key", "--description", "async", "--all", "--quiet")
    worker = start_worker()
    document_id = start_export(server, key, "stopping")
    wait_for(lambda: (gates / f"started-{document_id}").exists())
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert worker.poll() is None  # still finishing its document
    (gates / "gate").touch()
    assert worker.wait(timeout=15) == 0
    assert status(server, key, document_id)["Status"] == "Successful"


def stored_status(server, document_id) -> str:
    """The document's status as stored, asked without a key (one that is inactive cannot ask)."""
    code = f"from keys.models import ApiDocument; print(ApiDocument.objects.get(document_id='{document_id}').status)"
    return server.manage("shell", "--no-imports", "-c", code).strip()


def test_work_queued_before_its_key_was_deactivated_is_refused_by_the_running_worker(setup):
    """The worker asks the access decision again; its cache, filled for the key's earlier
    document, sees a change made in another process."""
    server, gates, start_worker = setup
    key = server.manage("create_api_key", "--description", "async", "--all", "--quiet").strip()
    start_worker()
    first = start_export(server, key, "first")
    wait_for(lambda: (gates / f"started-{first}").exists())  # allowed, and running
    second = start_export(server, key, "second")  # waits behind it
    server.manage("update_api_key", key, "--deactivate")
    (gates / "gate").touch()
    assert wait_for(lambda: (s := stored_status(server, second)) not in ("0", "2") and s, seconds=60) == "4"
    assert not (gates / f"started-{second}").exists()  # its handler never ran
    server.manage("update_api_key", key, "--activate")
    answer = status(server, key, second)
    assert (answer["Status"], answer["ErrorMessage"]) == (
        "Error",
        NOT_RUN.format(message=MESSAGES[Reason.INACTIVE_KEY]),
    )
    assert status(server, key, first)["Status"] == "Successful"  # decided before the change
