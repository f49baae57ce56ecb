"""The task worker (keys/worker.py) against real faults, with real processes: a
gunicorn server and `manage.py db_worker` on a scratch database. SQLite's write lock
held by another connection for 10 s, and a PostgreSQL server stopped for 5 s: the
worker stays up, logs the outage once, and runs the work queued afterwards. A worker
that is gone (killed): /healthz says so, and status tells the caller of a document
that has waited longer than KEYS_WORKER_STALE_SECONDS that it waits for one, until
a worker starts and runs it. And bin/keep-running, which keeps it running under
`make run`."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests import servers
from tests.servers import wait_for

STALE = 2  # KEYS_WORKER_STALE_SECONDS for these servers
FAST = {
    "KEYS_WORKER_HEARTBEAT_SECONDS": "0.2",
    "KEYS_WORKER_STALE_SECONDS": str(STALE),
    "KEYS_WORKER_RETRY_MAX_SECONDS": "1",
}
OUTAGE_STARTS = "the database failed"
OUTAGE_ENDS = "the database answers again"


class Worker:
    """A real `manage.py db_worker` process beside the server, logging to a file."""

    def __init__(self, server: servers.Server, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"],
            cwd=servers.ROOT,
            env=server.env,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),  # noqa: SIM115  (closed with the process)
        )

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=15)


def healthz(server) -> dict:
    with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
        return json.loads(response.read())


def status(server, key, document_id) -> dict:
    code, body, _ = server.post("/chqapi/status", json.dumps(document_id).encode(), {"ApiKey": key})
    assert code == 200, body
    return json.loads(body)


def start_export(server, key) -> str:
    code, answer, _ = server.post("/chqapi/export/apidocument/async", b"{}", {"ApiKey": key})
    assert code == 200, answer
    return json.loads(answer)["Id"]


def outcome(server, key, document_id) -> str:
    """How the document ended: a finished export answers its success envelope."""
    answer = wait_for(lambda: (s := status(server, key, document_id)).get("Status") != "InProcess" and s)
    return "Successful" if "ApiDocument" in answer else answer["Status"]


@pytest.fixture
def sqlite_server(tmp_path):
    # SQLite whatever SERVER_TEST_DATABASE_URL says: the lock test holds this file's lock.
    server = servers.start(
        tmp_path, workers=1, extra_env=FAST | {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    )
    workers: list[Worker] = []
    yield server, lambda: workers.append(Worker(server, tmp_path / f"worker{len(workers)}.log")) or workers[-1]
    for worker in workers:
        worker.kill()
    server.stop()


def test_the_worker_rides_out_a_locked_sqlite_database(sqlite_server, tmp_path):
    """The fault: another connection holds SQLite's write lock (BEGIN IMMEDIATE) for 10 s, twice
    the busy timeout, while the worker idles: django-tasks-db's own loop exits at its BEGIN."""
    server, start_worker = sqlite_server
    key = server.manage("create_api_key", "--description", "lock", "--all", "--quiet")
    worker = start_worker()
    wait_for(lambda: healthz(server)["worker"] == "ok")

    holder = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    time.sleep(10)
    assert worker.process.poll() is None, worker.output()
    holder.execute("ROLLBACK")
    holder.close()

    document_id = start_export(server, key)
    assert outcome(server, key, document_id) == "Successful"
    assert worker.process.poll() is None
    log = worker.output()
    assert (log.count(OUTAGE_STARTS), log.count(OUTAGE_ENDS)) == (1, 1), log
    assert "database is locked" in log


def test_a_gone_worker_is_reported_and_its_queued_work_waits_for_the_next(sqlite_server):
    """The fault: the worker is SIGKILLed (nothing gets to say it stopped). /healthz says
    "gone" once its heartbeat is stale; a document queued since then is InProcess to its
    caller with an ErrorMessage saying it waits for a worker; the next worker runs it."""
    server, start_worker = sqlite_server
    key = server.manage("create_api_key", "--description", "gone", "--all", "--quiet")
    assert healthz(server)["worker"] == "gone"  # none has started yet
    worker = start_worker()
    wait_for(lambda: healthz(server)["worker"] == "ok")
    worker.process.send_signal(signal.SIGKILL)
    worker.kill()

    document_id = start_export(server, key)
    fresh = status(server, key, document_id)
    assert (fresh["Status"], fresh["ErrorMessage"]) == ("InProcess", None)  # not waited long yet
    wait_for(lambda: healthz(server)["worker"] == "gone")
    time.sleep(STALE)
    waiting = status(server, key, document_id)
    assert waiting["Status"] == "InProcess"
    assert "waits in the queue for a task worker, and none has been seen since 20" in waiting["ErrorMessage"]
    health = healthz(server)
    assert (health["status"], health["worker"]) == ("ok", "gone")  # the web host itself still serves

    start_worker()
    assert outcome(server, key, document_id) == "Successful"
    assert healthz(server)["worker"] == "ok"


# --- PostgreSQL, stopped and started again --------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = shutil.which("initdb") or (found[-1] if found else None)
    return Path(initdb).parent if initdb else None


class Cluster:
    """A PostgreSQL cluster of this test's own (as user postgres when run as root), so that
    it can be stopped without stopping anyone else's server."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="chq-pg-"))
        self.port = servers.free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust")
        self.start()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir}"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.dir / "data" / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def stoppable_postgres():
    if not os.environ.get("POSTGRES_TEST_URL"):
        pytest.skip("needs PostgreSQL: set POSTGRES_TEST_URL (CI's .ci/run starts one and sets it)")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's server programs (initdb, pg_ctl) to start a cluster it may stop")
    cluster = Cluster(bin_dir)
    yield cluster
    cluster.remove()


def test_the_worker_rides_out_a_stopped_postgresql_server(tmp_path, stoppable_postgres):
    """The fault: the PostgreSQL server stops for 5 s (fast shutdown: every connection
    is cut) and starts again: django-tasks-db's own loop exits with "connection failed"."""
    cluster = stoppable_postgres
    server = servers.start(tmp_path, workers=1, extra_env=FAST | {"DATABASE_URL": cluster.url})
    worker = Worker(server, tmp_path / "worker.log")
    try:
        key = server.manage("create_api_key", "--description", "pg", "--all", "--quiet")
        wait_for(lambda: healthz(server)["worker"] == "ok")
        cluster.stop()
        time.sleep(5)
        assert worker.process.poll() is None, worker.output()
        cluster.start()

        document_id = start_export(server, key)
        assert outcome(server, key, document_id) == "Successful"
        assert worker.process.poll() is None
        log = worker.output()
        assert (log.count(OUTAGE_STARTS), log.count(OUTAGE_ENDS)) == (1, 1), log
    finally:
        worker.kill()
        server.stop()


def test_work_queued_behind_a_document_cut_by_a_postgresql_restart_still_runs(tmp_path, stoppable_postgres):
    """The fault, under load: PostgreSQL stops while the worker is in the middle of a
    document (its outcome cannot be stored) with two more queued behind it. The worker
    survives; the cut document is reported Error once KEYS_ASYNC_TIMEOUT_SECONDS has
    passed (never InProcess for ever); the queued ones run."""
    cluster = stoppable_postgres
    gates = tmp_path / "gates"
    gates.mkdir()
    env = FAST | {
        "DATABASE_URL": cluster.url,
        "KEYS_HANDLER_MODULES": "tests.gated_handler",
        "GATED_HANDLER_DIR": str(gates),
        "KEYS_ASYNC_TIMEOUT_SECONDS": "3",
    }
    server = servers.start(tmp_path, workers=1, extra_env=env)
    worker = Worker(server, tmp_path / "worker.log")
    try:
        key = server.manage("create_api_key", "--description", "pg", "--all", "--quiet")
        body = b'{"Source": "load"}'
        ids = []
        for _ in range(3):
            code, answer, _ = server.post("/chqapi/export/inventory/async", body, {"ApiKey": key})
            assert code == 200, answer
            ids.append(json.loads(answer)["Id"])
        cut, *queued = ids
        wait_for(lambda: (gates / f"started-{cut}").exists())
        cluster.stop()
        (gates / "gate").touch()  # the cut document's handler ends while the database is down
        time.sleep(5)
        assert worker.process.poll() is None, worker.output()
        cluster.start()

        for document_id in queued:
            assert outcome(server, key, document_id) == "Successful"
        time.sleep(3)
        cut_answer = status(server, key, cut)
        assert cut_answer["Status"] == "Error"
        assert "did not finish within 3 seconds" in cut_answer["ErrorMessage"]
        assert worker.process.poll() is None
    finally:
        worker.kill()
        server.stop()


# --- bin/keep-running ----------------------------------------------------------------------------


def test_keep_running_starts_the_command_again_and_stops_with_it(tmp_path):
    """The fault: the command exits (as a worker does on an error that is not an outage),
    twice; it is started again after the pause each time. SIGTERM then reaches the
    command once, and both end."""
    starts, stopped = tmp_path / "starts", tmp_path / "stopped"
    command = (
        "import pathlib, signal, sys, time\n"
        f"p = pathlib.Path({str(starts)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        f"signal.signal(signal.SIGTERM, lambda *a: pathlib.Path({str(stopped)!r}).write_text('TERM') and sys.exit(7))\n"
        "time.sleep(0.2 if len(p.read_text()) < 3 else 60)\n"
    )
    runner = subprocess.Popen(
        [servers.ROOT / "bin" / "keep-running", sys.executable, "-c", command],
        env=os.environ | {"KEEP_RUNNING_PAUSE": "0.1"},
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: starts.exists() and len(starts.read_text()) == 3, seconds=15)
        time.sleep(0.2)  # the third start has set its SIGTERM handler
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=15) == 0
        assert runner.stderr.read().count(b"exited (status 0); starting it again in 0.1 s") == 2
        assert stopped.read_text() == "TERM"
        time.sleep(0.3)
        assert len(starts.read_text()) == 3  # stopped for good: not started a fourth time
    finally:
        if runner.poll() is None:
            runner.kill()
