"""A real multi-worker gunicorn server (production's chq/gunicorn.conf.py), or a uvicorn
one (chq/asgi.py), on a scratch database, for the tests that must go over a socket
(chunked bodies, throttling shared by workers, freshness across workers, one request path).
Production settings (DEBUG off), embedded SQLite unless DATABASE_URL says otherwise."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from chq.dotenv import fresh_secrets
from tests.api_calls import post_http

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "chq" / "gunicorn.conf.py")


def wait_for(condition, seconds: float = 30.0):
    """What `condition()` returns once it is truthy, polled every 50 ms; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError("gave up waiting")


def answering(url: str, process: subprocess.Popen, what: str, seconds: float = 60.0) -> None:
    """Return once `url` answers; fail with `what()` (the server's log) if `process` exits first,
    or after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:  # refused, reset, or a first answer slower than 2 s on a loaded machine
            if process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{what()}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {seconds:g} s:\n{what()}") from None
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen
    log: Path | None = None  # where the server writes its stderr

    def manage(self, *args: str) -> str:
        """Run a management command in another process, against the server's database."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def post(
        self, path: str, body: bytes = b"{}", headers: dict[str, str] | None = None, *, timeout: float = 30
    ) -> tuple[int, bytes, dict]:
        """(status, body, headers): tests/api_calls.py's post_http, in the order these tests read."""
        status, answer_headers, content = post_http(self.url, path, raw=body, headers=headers, timeout=timeout)
        return status, content, answer_headers

    def crash(self) -> None:
        """SIGKILL the master and every worker at once: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def server_env(tmp: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Production settings on a scratch database under `tmp`, migrated and with static files collected."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env |= {
        "DEBUG": "false",
        # Fresh secrets per server; its manage() commands share them (they find keys by digest).
        **fresh_secrets(),
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": os.environ.get("SERVER_TEST_DATABASE_URL", f"sqlite:///{tmp / 'db.sqlite3'}"),
        "KEYS_SHARED_STATE_DIR": str(tmp / "var"),
        "CACHE_URL": "locmemcache://",
        "LOG_LEVEL": "WARNING",
        "STATIC_ROOT": str(tmp / "static"),
    }
    env |= extra_env or {}
    for command in (["migrate", "--no-input"], ["collectstatic", "--no-input"]):
        subprocess.run([sys.executable, "manage.py", *command, "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    return env


def _serve(name: str, command: list[str], port: int, env: dict[str, str], log: Path) -> Server:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),  # noqa: SIM115  (closed with the process)
        start_new_session=True,  # its own process group, so crash() reaches the workers too
    )
    server = Server(f"http://127.0.0.1:{port}", env, process, log)
    try:
        answering(server.url + "/healthz", process, lambda: f"{name}: {log.read_text()}")
    except RuntimeError:
        server.stop()
        raise
    return server


def start(tmp: Path, *, workers: int = 2, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = server_env(tmp, extra_env)
    # Production's own gunicorn settings (worker class, threads, timeouts), on a port of its own.
    command = [sys.executable, "-m", "gunicorn", "-c", CONFIG, f"--workers={workers}", f"--bind=127.0.0.1:{port}"]
    return _serve("gunicorn", command, port, env, tmp / "gunicorn.log")


def start_uvicorn(
    tmp: Path, app: str = "chq.asgi:application", *, env: dict[str, str] | None = None, extra_env=None
) -> Server:
    """`uvicorn <app>` (production's ASGI application unless told), one process, on a port of its
    own: on the database and secrets of `env` (another server's, to share its keys) or on a
    fresh scratch database."""
    port = free_port()
    env = env or server_env(tmp, extra_env)
    command = [
        *(sys.executable, "-m", "uvicorn", app, "--host=127.0.0.1", f"--port={port}"),
        *("--lifespan=off", "--no-access-log", "--log-level=warning"),  # Django speaks no lifespan protocol
    ]
    return _serve("uvicorn", command, port, env, tmp / "uvicorn.log")


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """A database of its own on the PostgreSQL server CI starts (both CI runs set
    POSTGRES_TEST_URL); its URL, dropped afterwards."""
    url = os.environ.get("POSTGRES_TEST_URL")
    if not url:
        pytest.skip("needs a PostgreSQL server: set POSTGRES_TEST_URL (CI's .ci/run starts one and sets it)")
    import psycopg

    name = f"chq_scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        # Plain DROP: PostgreSQL itself stops an autovacuum worker busy in the new database,
        # which WITH (FORCE) may not (the worker belongs to the superuser, not to this role).
        with psycopg.connect(url, autocommit=True) as admin:
            for attempt in range(10):
                try:
                    admin.execute(f"DROP DATABASE IF EXISTS {name}")
                    break
                except psycopg.errors.ObjectInUse:
                    time.sleep(0.5 * (attempt + 1))


@dataclass
class Front:
    """nginx in front of a test server, configured by deploy/nginx-chq.conf itself."""

    url: str
    process: subprocess.Popen

    post = Server.post  # the same client call, to the front's address
    stop = Server.stop


@contextmanager
def nginx_in_front(server: Server, tmp: Path) -> Iterator[Front]:
    """Production's buffering proxy (deploy/nginx-chq.conf) on a port of its own, passing to `server`."""
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)
    if nginx is None:
        pytest.skip("needs nginx, production's buffering proxy: apt-get install nginx (CI's .ci/run installs it)")
    port = free_port()
    upstream = server.url.removeprefix("http://")
    site = (ROOT / "deploy" / "nginx-chq.conf").read_text()
    assert "server 127.0.0.1:8000;" in site
    assert "listen 80;" in site
    site = site.replace("server 127.0.0.1:8000;", f"server {upstream};").replace(
        "listen 80;", f"listen 127.0.0.1:{port};"
    )
    folder = tmp / "nginx"
    folder.mkdir()
    (folder / "chq.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        f"{'user root;' if os.geteuid() == 0 else ''}\n"
        f"worker_processes 1; daemon off; pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'} info;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{ access_log {folder / 'access.log'}; {temp} include {folder / 'chq.conf'}; }}\n"
    )
    process = subprocess.Popen(
        [nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "stderr.log", "wb"),  # noqa: SIM115  (closed with the process)
    )
    front = Front(f"http://127.0.0.1:{port}", process)
    try:
        answering(front.url + "/healthz", process, lambda: f"nginx: {(folder / 'stderr.log').read_text()}", 30)
        yield front
    finally:
        front.stop()
