"""Helpers shared by the benchmark scripts that run a real server."""

import io
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Production's gunicorn settings (worker class, threads, read deadline); the command line overrides them.
GUNICORN_CONFIG = str(ROOT / "chq" / "gunicorn.conf.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    """Run manage.py with `env`; its stdout."""
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def wsgi_environ(path: str, key: str, body: bytes, method: str = "POST") -> dict:
    """A WSGI environ for a call as wrk's (and an integrator's) arrive: JSON body, ApiKey header."""
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_APIKEY": key,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
    }


def wsgi_post(application, path: str, key: str, body: bytes) -> str:
    """POST `body` to a WSGI application in process (no sockets); its status line."""
    status = []
    result = application(wsgi_environ(path, key, body), lambda s, h, *a: status.append(s))
    b"".join(result)
    result.close()
    return status[0]


def microseconds_a_call(call, count: int) -> float:
    """Warm up, then time `count` calls of `call()`; µs a call."""
    import time

    for _ in range(200):
        call()
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def django_in_process(prefix: str) -> None:
    """Set up Django in this process as production runs it, on a scratch SQLite
    database unless DATABASE_URL says otherwise, with static files collected."""
    import os
    import tempfile
    import warnings

    from chq.dotenv import fresh_secrets

    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.sqlite3'}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")
    os.environ.setdefault("DEBUG", "false")
    for name, value in fresh_secrets().items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")  # the test client speaks plain HTTP
    os.environ.setdefault("STATIC_ROOT", str(scratch / "static"))
    # WhiteNoise looks for STATIC_ROOT at start-up, before the files are collected into it.
    warnings.filterwarnings("ignore", "No directory at")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
