"""Every URL of the pane × every right level × method → expected status.
Rights are checked on the server, whatever the page shows."""

import pytest
from django.test import Client
from django.urls import reverse

from keys.models import ApiKey

pytestmark = pytest.mark.django_db

ANON, NOBODY, VIEWER, ADMIN, SUPER = "anonymous", "nobody", "viewer", "administrator", "superuser"

# (url name, needs a key, method, expected status per level)
TABLE = [
    ("keys:settings", False, "get", {ANON: 302, NOBODY: 403, VIEWER: 200, ADMIN: 200, SUPER: 200}),
    ("keys:pane", False, "get", {ANON: 302, NOBODY: 403, VIEWER: 200, ADMIN: 200, SUPER: 200}),
    ("keys:details", True, "get", {ANON: 302, NOBODY: 403, VIEWER: 200, ADMIN: 200, SUPER: 200}),
    ("keys:new", False, "get", {ANON: 302, NOBODY: 403, VIEWER: 403, ADMIN: 200, SUPER: 200}),
    ("keys:new", False, "post", {ANON: 302, NOBODY: 403, VIEWER: 403, ADMIN: 204, SUPER: 204}),
    ("keys:edit", True, "get", {ANON: 302, NOBODY: 403, VIEWER: 403, ADMIN: 200, SUPER: 200}),
    ("keys:edit", True, "post", {ANON: 302, NOBODY: 403, VIEWER: 403, ADMIN: 204, SUPER: 204}),
    ("keys:remove", True, "get", {ANON: 302, NOBODY: 403, VIEWER: 403, ADMIN: 200, SUPER: 200}),
    ("keys:remove", True, "post", {ANON: 302, NOBODY: 403, VIEWER: 403, ADMIN: 204, SUPER: 204}),
    ("keys:logs", True, "get", {ANON: 302, NOBODY: 403, VIEWER: 200, ADMIN: 200, SUPER: 200}),
    ("keys:logs-csv", True, "get", {ANON: 302, NOBODY: 403, VIEWER: 200, ADMIN: 200, SUPER: 200}),
    ("keys:logs", True, "post", {ANON: 405, NOBODY: 405, VIEWER: 405, ADMIN: 405, SUPER: 405}),
    # The search box posts (a key value never stands in an address); it changes nothing, so GET's rights.
    ("keys:pane", False, "post", {ANON: 302, NOBODY: 403, VIEWER: 200, ADMIN: 200, SUPER: 200}),
    ("keys:due", False, "get", {ANON: 302, NOBODY: 403, VIEWER: 200, ADMIN: 200, SUPER: 200}),
    # GET-only views refuse other methods.
    ("keys:due", False, "post", {ANON: 405, NOBODY: 405, VIEWER: 405, ADMIN: 405, SUPER: 405}),
    ("keys:details", True, "post", {ANON: 405, NOBODY: 405, VIEWER: 405, ADMIN: 405, SUPER: 405}),
]

CASES = [
    pytest.param(name, needs_key, method, level, expected[level], id=f"{method}-{name}-{level}")
    for name, needs_key, method, expected in TABLE
    for level in expected
]


@pytest.fixture
def user_at(request):
    def get(level):
        return None if level == ANON else request.getfixturevalue(level if level != SUPER else "superuser")

    return get


@pytest.mark.parametrize(("name", "needs_key", "method", "level", "expected"), CASES)
def test_status(client: Client, user_at, make_key, name, needs_key, method, level, expected):
    if user := user_at(level):
        client.force_login(user)
    key = make_key(description="target") if needs_key else None
    url = reverse(name, args=[key.pk] if key else [])
    response = getattr(client, method)(url, {"description": "posted"} if method == "post" else None)
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith(reverse("login"))
    if expected in (403, 405) and key is not None:
        assert ApiKey.objects.get(pk=key.pk).description == "target"


def test_403_names_the_missing_right(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("keys:new"))
    assert "Add/Edit Integration Settings CHQ" in response.content.decode()


def test_403_for_no_right_names_access_right(client, nobody):
    client.force_login(nobody)
    assert "Access Integration Settings CHQ" in client.get(reverse("keys:pane")).content.decode()


def test_login_comes_back_to_the_pane(client, administrator):
    pane = reverse("keys:pane")
    login_url = client.get(pane)["Location"]
    response = client.post(login_url, {"username": "administrator", "password": "a-long-test-password"})
    assert response["Location"] == pane


def test_csrf_is_required(administrator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(administrator)
    response = client.post(reverse("keys:new"), {"description": "x"})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_get_changes_nothing(client, administrator, make_key):
    client.force_login(administrator)
    key = make_key()
    for name in ("keys:remove", "keys:edit", "keys:details"):
        client.get(reverse(name, args=[key.pk]))
    assert ApiKey.objects.filter(pk=key.pk).exists()


def test_viewer_sees_no_change_buttons(client, viewer, make_key):
    make_key(description="visible")
    client.force_login(viewer)
    html = client.get(reverse("keys:pane")).content.decode()
    assert "visible" in html
    assert ">new</button>" not in html
    assert 'data-action="edit"' not in html
    assert 'data-action="remove"' not in html
