"""The production path: settings from the environment, `check --deploy`,
hashed static files, security headers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chq.dotenv import fresh_secrets

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, **env):
    # A clean environment: no development .env values, and not the browser tests' async override.
    skip = ("DEBUG", "SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    full_env = {k: v for k, v in os.environ.items() if k not in skip}
    full_env |= {"DJANGO_SETTINGS_MODULE": "chq.settings", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )


PRODUCTION = fresh_secrets() | {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "chq.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chq.example.com",
}


def test_check_deploy_is_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr


@pytest.mark.parametrize("name", ["SECRET_KEY", "KEYS_LOOKUP_SECRET", "KEYS_ENCRYPTION_KEYS"])
def test_missing_secret_is_a_clear_startup_error(name):
    result = manage("check", **(PRODUCTION | {name: ""}))
    assert result.returncode != 0
    assert f"{name} is not set" in result.stderr


@pytest.mark.parametrize("keys", ["not-a-key", "c2hvcnQ=", "%%%%"])
def test_an_encryption_key_that_is_not_a_fernet_key_is_a_clear_startup_error(keys):
    good = PRODUCTION["KEYS_ENCRYPTION_KEYS"]
    result = manage("check", **(PRODUCTION | {"KEYS_ENCRYPTION_KEYS": f"{good},{keys}"}))
    assert result.returncode != 0
    assert "KEYS_ENCRYPTION_KEYS: key 2 is not a Fernet key" in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TASKS_BACKEND": "celery"}, "TASKS_BACKEND is 'celery'; use database (the default) or rq."),
        ({"TASKS_BACKEND": "rq", "TASKS_REDIS_URL": ""}, "TASKS_BACKEND=rq needs TASKS_REDIS_URL"),
    ],
)
def test_a_task_backend_that_cannot_work_is_a_clear_startup_error(env, message):
    result = manage("check", **(PRODUCTION | env))
    assert result.returncode != 0
    assert message in result.stderr


def test_the_rq_task_backend_passes_the_deploy_checks():
    env = PRODUCTION | {"TASKS_BACKEND": "rq", "TASKS_REDIS_URL": "redis://127.0.0.1:6399/0"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_log_read_database_url_names_the_replica_the_log_viewer_reads(tmp_path):
    env = PRODUCTION | {"LOG_READ_DATABASE_URL": f"sqlite:///{tmp_path / 'replica.sqlite3'}"}
    code = "from django.conf import settings as s; print(s.KEYS_LOG_READ_DATABASE, s.DATABASES['log_reads']['NAME'])"
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["log_reads", str(tmp_path / "replica.sqlite3")]
    checked = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_collectstatic_gives_hashed_compressed_files(tmp_path):
    env = PRODUCTION | {"STATIC_ROOT": str(tmp_path)}
    assert manage("collectstatic", "--no-input", "-v", "0", **env).returncode == 0
    result = manage("shell", "-c", "from django.templatetags.static import static; print(static('keys/app.js'))", **env)
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith("/static/keys/app.")
    assert url != "/static/keys/app.js"
    assert (tmp_path / "keys" / (Path(url).name + ".gz")).exists()
    assert list(tmp_path.glob("django_htmx/htmx-2.min.*.js"))


@pytest.mark.django_db
def test_security_headers(client):
    response = client.get("/accounts/login/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
