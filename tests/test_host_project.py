"""The keys app in a fresh `startproject` host, installed from the wheel (tests/hostproject.py):
no file of this repository on the host's path, and no KEYS_* setting at all.

Slow (a wheel, a venv, a migrate, a server): one session-scoped host serves every test here.
"""

import json
import urllib.error
import urllib.request

import pytest

from tests.hostproject import build_wheel, create_host


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("host-project")
    wheel = build_wheel(root / "dist")
    host = create_host(root / "host", wheel)
    host.manage("migrate", "--no-input", "-v", "0")
    return host


@pytest.fixture(scope="session")
def served(host):
    """The host's server and a signed-in superuser's session cookie."""
    session = host.python_code(
        "from django.contrib.auth import get_user_model\n"
        "from django.test import Client\n"
        "user = get_user_model().objects.create_superuser('admin', 'admin@example.com', 'a-long-test-password')\n"
        "client = Client()\n"
        "client.force_login(user)\n"
        "print(client.cookies['sessionid'].value)\n"
    ).strip()
    with host.serve() as base:
        yield base, f"sessionid={session}"


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url: str, *, data: bytes | None = None, **headers) -> tuple[int, dict, str]:
    """GET (POST with data); the answer as it came, redirects and errors included."""
    opener = urllib.request.build_opener(NoRedirects)
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers), timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_the_host_imports_keys_from_the_installed_wheel(host):
    where = host.python_code("import keys; print(keys.__file__)").strip()
    assert where.startswith(str(host.venv)), where
    # Templates, static files, the catalog and py.typed travel in the wheel.
    files = host.python_code(
        "from pathlib import Path; import keys\n"
        "root = Path(keys.__file__).parent\n"
        "for name in ['templates/keys/pane.html', 'templates/keys/base.html', 'static/keys/app.js',\n"
        "             'catalog/api_types.json', 'py.typed', 'migrations/0001_initial.py']:\n"
        "    print(name, (root / name).is_file())\n"
    )
    assert "False" not in files, files
    # The demo project, the benchmarks and the tests do not.
    found = host.python_code("import importlib.util as u; print([u.find_spec(m) for m in ('chq', 'bench', 'tests')])")
    assert found == "[None, None, None]\n"


def test_check_is_clean_without_any_keys_setting(host):
    assert "KEYS" not in host.settings_file.read_text()
    assert "System check identified no issues" in host.manage("check").stdout


def test_check_deploy_names_each_development_stand_in(host):
    result = host.manage("check", "--deploy")
    for warning in (
        "(keys.W001) KEYS_LOOKUP_SECRET is not set",
        "(keys.W002) KEYS_ENCRYPTION_KEYS is not set",
        "(keys.W003) KEYS_SHARED_STATE_DIR is not set",
    ):
        assert warning in result.stderr


def test_a_wrong_value_is_a_check_error_by_name(host):
    original = host.settings_file.read_text()
    try:
        host.settings_file.write_text(
            original
            + 'KEYS_ENCRYPTION_KEYS = ["not-a-key"]\nKEYS_THROTTLE_WINDOW = -1\nKEYS_SHARED_COUNTERS = "disk"\n'
        )
        with pytest.raises(AssertionError) as failed:
            host.manage("check")
        message = str(failed.value)
        assert "(keys.E005) KEYS_ENCRYPTION_KEYS: key 1 is not a Fernet key" in message
        assert "(keys.E002) KEYS_THROTTLE_WINDOW is -1" in message
        assert "(keys.E003) KEYS_SHARED_COUNTERS is 'disk'" in message
    finally:
        host.settings_file.write_text(original)


def test_a_signed_in_admin_gets_the_pane_in_the_apps_own_base_template(served):
    base, cookie = served
    status, _, html = get(f"{base}/settings/integrations/keys/", Cookie=cookie)
    assert status == 200, html
    assert 'class="keys-table"' in html
    assert "<title>keys · keys</title>" in html  # keys/base.html: the host names no base template
    assert "/static/keys/app.js" in html
    assert 'hx-post="/settings/integrations/keys/"' in html  # reversed under the host's prefix
    # The host has a URL named "logout" (django.contrib.auth.urls): the base offers it.
    assert 'action="/accounts/logout/"' in html
    status, _, script = get(f"{base}/static/keys/app.js")
    assert status == 200
    assert "keysChanged" in script


def test_an_anonymous_visitor_is_sent_to_the_hosts_login_url(served):
    base, _ = served
    status, headers, _ = get(f"{base}/settings/integrations/keys/")
    assert status == 302
    assert headers["Location"] == "/accounts/login/?next=/settings/integrations/keys/"


def test_the_api_refuses_a_call_without_a_key(served):
    base, _ = served
    status, _, body = get(f"{base}/chqapi/status", data=b"{}", **{"Content-Type": "application/json"})
    assert status == 401
    assert "The ApiKey header is missing" in body


def test_the_swagger_page_finds_the_document_where_the_host_mounted_it(served):
    base, _ = served
    status, _, html = get(f"{base}/api/docs/index")
    assert status == 200
    assert 'data-openapi-url="/api/docs/openapi.json"' in html
    status, _, document = get(f"{base}/api/docs/openapi.json")
    assert status == 200
    assert json.loads(document)["openapi"].startswith("3.")
