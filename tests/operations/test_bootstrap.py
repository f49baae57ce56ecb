"""What `make run` does to the database is safe to repeat."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from keys.models import ApiType

pytestmark = pytest.mark.django_db


def bootstrap() -> str:
    out = io.StringIO()
    call_command("migrate", verbosity=0, stdout=out)
    call_command("sync_api_types", stdout=out)
    call_command("ensure_demo_admin", stdout=out)
    return out.getvalue()


def test_demo_admin_created_once_with_both_rights():
    first = bootstrap()
    assert "username: admin" in first
    assert "password: " in first
    admin = User.objects.get()
    assert admin.has_perms(["keys.access_integration_settings", "keys.change_integration_settings"])
    assert not admin.is_superuser

    second = bootstrap()
    assert "password" not in second
    assert User.objects.count() == 1
    assert ApiType.objects.count() == 126


def test_printed_password_logs_in(client):
    out = bootstrap()
    password = out.split("password: ")[1].split()[0]
    # Through the login page: django-axes checks every sign-in against its request.
    response = client.post("/accounts/login/", {"username": "admin", "password": password})
    assert response.status_code == 302


def test_no_demo_admin_when_users_exist(viewer):
    assert "no demo administrator created" in bootstrap()
    assert not User.objects.filter(username="admin").exists()
