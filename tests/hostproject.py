"""A fresh `django-admin startproject` host outside the repository, with the keys app
installed from the wheel this repository builds (for tests/app/test_host_project.py and any
test that wants to prove something in a host like a developer's).

The host's virtualenv has no view of the repository or of its .venv: it is made with
`python -m venv` (no system site-packages) and gets the wheel and its declared
dependencies from pip's configured index, held to requirements.txt's versions. So a
dependency pyproject.toml forgets fails here, and `keys` imports from the venv.

    wheel = build_wheel(tmp / "dist")
    host = create_host(tmp / "site", wheel)
    host.manage("migrate")
    with host.serve() as base_url: ...
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import answering, free_port

ROOT = Path(__file__).resolve().parent.parent

# What a host adds for the keys app (README: "Use CHQ keys in your project"); "keys" before
# django_tasks_db, whose db_worker keys' own command replaces.
HOST_APPS = [
    "django_htmx",
    "template_partials",
    "django_tables2",
    "drf_spectacular_sidecar",
    "keys",
    "keys.chqapi",
    "django_tasks",
    "django_tasks_db",
]
HOST_URLS = [
    'path("accounts/", include("django.contrib.auth.urls"))',
    'path("settings/", include("keys.urls"))',
    'path("chqapi/", include("keys.chqapi.urls"))',
    'path("api/docs/", include("keys.chqapi.docs_urls"))',
]
# The host's own guarded views (tests/host_widgets, copied in as the host's app "widgets").
HOST_URL_GUARDED_VIEWS = 'path("widgets/", include("widgets.urls"))'


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without what would point a host at this repository."""
    skip = {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "DEBUG", "SECRET_KEY", "DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in skip and not k.startswith(("KEYS_", "DJANGO_"))}
    return env | extra


def run(args: list, *, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        command = " ".join(map(str, args))
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def build_wheel(out: Path) -> Path:
    """`pip wheel . --no-deps`, as the README says (setuptools comes from pip's index)."""
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", out], cwd=ROOT)
    (wheel,) = out.glob("chq_keys-*.whl")
    return wheel


@dataclass
class Host:
    dir: Path  # the project directory (manage.py, host/settings.py, host/urls.py)
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def settings_file(self) -> Path:
        return self.dir / "host" / "settings.py"

    @property
    def urls_file(self) -> Path:
        return self.dir / "host" / "urls.py"

    def manage(self, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return run([self.python, "manage.py", *args], cwd=self.dir, env=clean_env(**(env or {})), timeout=timeout)

    def python_code(self, code: str) -> str:
        """Run code with the host's settings set up; its standard output."""
        setup = "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'host.settings'; django.setup()\n"
        return run([self.python, "-c", setup + code], cwd=self.dir).stdout

    @contextmanager
    def serve(self) -> Iterator[str]:
        """`manage.py runserver` on a free port (DEBUG, as startproject leaves it); the base URL."""
        port = free_port()
        log_file = self.dir / "runserver.log"  # a file, not a pipe: nobody reads a pipe while tests run
        server = subprocess.Popen(
            [self.python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=self.dir,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=open(log_file, "wb"),  # noqa: SIM115  (closed with the process)
        )
        base = f"http://127.0.0.1:{port}"
        try:
            answering(f"{base}/admin/login/", server, lambda: f"the host's runserver: {log_file.read_text()}")
            yield base
        finally:
            server.terminate()
            server.wait(timeout=10)


def create_host(
    where: Path,
    wheel: Path,
    *,
    apps: list[str] = HOST_APPS,
    urls: list[str] = HOST_URLS,
    extras: str = "",
    settings: str = "",
) -> Host:
    """A `startproject host` in `where` (outside the repository) with its own venv holding the wheel
    (with `extras`, e.g. "drf,ninja"); `settings` is appended to the host's settings."""
    where.mkdir(parents=True, exist_ok=True)
    assert ROOT not in where.resolve().parents, "the host must live outside the repository"
    venv = where / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=where)
    python = venv / "bin" / "python"
    # The wheel's declared dependencies, at the versions the repository is tested with.
    requirement = f"{wheel}[{extras}]" if extras else wheel
    run([python, "-m", "pip", "install", "-q", requirement, "-c", ROOT / "requirements.txt"], cwd=where)
    (where / "site").mkdir()
    run([venv / "bin" / "django-admin", "startproject", "host", where / "site"], cwd=where)
    host = Host(dir=where / "site", venv=venv)
    with host.settings_file.open("a") as settings_file:
        settings_file.write(
            "\n# The keys app, with none of its settings: every one has a default.\n"
            f"INSTALLED_APPS += {apps!r}\n"
            # First: CHQ API calls take their own short chain (KEYS_API_MIDDLEWARE), not the site's.
            'MIDDLEWARE = ["keys.chqapi.middleware.ApiMiddleware", *MIDDLEWARE, '
            '"django_htmx.middleware.HtmxMiddleware"]\n' + settings
        )
    text = host.urls_file.read_text().replace("from django.urls import path", "from django.urls import include, path")
    host.urls_file.write_text(text + "\nurlpatterns += [\n" + "".join(f"    {u},\n" for u in urls) + "]\n")
    return host
