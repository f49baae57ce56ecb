"""The keys app in a fresh `startproject` host, installed from the wheel (tests/hostproject.py):
no file of this repository on the host's path, and no KEYS_* setting at all.

Slow (a wheel, a venv, a migrate, a server): one session-scoped host serves every test here.
"""

import json

import pytest

from tests.api_calls import http_call, post_http


def get(url: str, *, data: bytes | None = None, **headers) -> tuple[int, dict, str]:
    """GET (POST with data); the answer as it came, redirects and errors included, as text."""
    status, answer_headers, body = http_call(url, data=data, headers=headers, follow_redirects=False)
    return status, answer_headers, body.decode()


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
    # The one KEYS_ setting the host has declares its own API types; none is needed for the rest.
    assert [line for line in host.settings_file.read_text().splitlines() if "KEYS_" in line] == [
        'KEYS_CATALOGS = [BASE_DIR / "widgets" / "catalog.json"]'
    ]
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


# --- the host's own API types and guarded views (tests/host_widgets) ---------------------------

GUARDED = ["plain", "async", "drf", "ninja/widgets"]


def sync_catalog(host, *args: str) -> dict:
    return json.loads(host.manage("sync_api_types", "--json", *args).stdout)


def api_key(host, *types: str) -> str:
    """A new key's value, made with the app's own command."""
    args = [arg for spec in types for arg in ("--type", spec)]
    return json.loads(host.manage("create_api_key", "--description", "host test", "--json", *args).stdout)["value"]


def post(base: str, path: str, key: str | None) -> tuple[int, dict, dict]:
    """An API call to the host's server; the answer's JSON decoded."""
    status, answer_headers, body = post_http(base, path, key, headers={"Content-Type": "application/json"})
    return status, answer_headers, json.loads(body)


@pytest.fixture(scope="session")
def host_catalog(host):
    """What sync_api_types (a deployment runs it after migrate) says of the host's declared
    catalog: its file and its code registration, which migrate has loaded already."""
    return sync_catalog(host)


def test_the_host_catalog_is_its_file_and_its_code_types_and_nothing_of_chqs(host, host_catalog):
    names = host.python_code(
        "from keys.models import ApiType; print(sorted(ApiType.objects.values_list('name', flat=True)))"
    )
    assert names.strip() == "['Gadgets Export', 'Widgets Export', 'Widgets Import']"  # no CHQ type: not chosen
    assert host_catalog["unchanged"] == 3
    assert host_catalog["added"] == host_catalog["removed"] == host_catalog["undeclared"] == []


def test_a_type_the_host_added_by_hand_survives_a_sync_and_goes_only_with_prune(host, host_catalog):
    host.python_code(
        "from keys.models import ApiType\n"
        "ApiType.objects.create(name='Legacy Export', direction='export', api_id='legacy')\n"
    )
    kept = sync_catalog(host)
    assert kept["undeclared"] == ["Legacy Export"]
    assert kept["removed"] == []
    assert "Legacy Export" in host.python_code("from keys.models import ApiType; print(list(ApiType.objects.all()))")
    pruned = sync_catalog(host, "--prune", "--no-input")
    assert pruned["removed"] == ["Legacy Export"]
    assert sync_catalog(host)["added"] == []  # the declared ones were never touched


@pytest.mark.parametrize("view", GUARDED)
def test_each_kind_of_guarded_view_allows_refuses_and_stores_a_logged_call(served, host, host_catalog, view):
    base, _ = served
    path = f"/widgets/{view}"
    kind = view.split("/")[0]

    allowed = api_key(host, "export:widgets")
    status, headers, body = post(base, path, allowed)
    assert (status, body["Kind"]) == (200, kind)
    assert "ApiDocumentId" not in headers  # not logged: nothing stored

    status, headers, body = post(base, path, None)
    assert (status, body) == (401, {"Message": "The ApiKey header is missing or is not a GUID."})
    assert headers["WWW-Authenticate"].startswith("ApiKey")
    other = api_key(host, "export:gadgets")
    status, _, body = post(base, path, other)
    assert (status, body) == (403, {"Message": "The API key is not allowed to call Widgets Export."})

    logged = api_key(host, "export:widgets:logged")
    status, headers, body = post(base, path, logged)
    assert (status, body["Kind"]) == (200, kind)
    stored = host.python_code(
        "from keys.models import ApiDocument\n"
        f"d = ApiDocument.objects.get(document_id='{headers['ApiDocumentId']}')\n"
        "print(d.api_type_name, d.status_code, d.request_body, d.response_body)\n"
    )
    assert stored.startswith("Widgets Export 200 {} "), stored
    assert f'"Kind": "{kind}"' in stored.replace('":"', '": "'), stored
