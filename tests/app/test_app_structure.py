"""The keys app as a reusable app: its settings' defaults and checks (keys/conf.py,
keys/checks.py), its base template (KEYS_BASE_TEMPLATE), its tables' own template, and
its URLs wherever a host mounts them (tests/mounted_urls.py)."""

import base64
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.checks import run_checks
from django.urls import reverse

from keys import conf

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def check_ids(*, deploy=False) -> dict[str, str]:
    return {m.id: m.msg for m in run_checks(include_deployment_checks=deploy) if m.id.startswith("keys.")}


def test_the_derived_development_secrets_are_usable_and_follow_secret_key(settings):
    key = conf.derived_encryption_keys()[0]
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"
    before = conf.derived_lookup_secret()
    settings.SECRET_KEY = "another-secret-key"
    assert conf.derived_lookup_secret() != before
    assert conf.derived_encryption_keys() != [key]


def test_the_temporary_state_dir_is_one_per_database(monkeypatch):
    first = conf.temporary_state_dir()
    other = {"default": {**django_settings.DATABASES["default"], "NAME": "/elsewhere/other.sqlite3"}}
    monkeypatch.setattr(conf, "settings", SimpleNamespace(DATABASES=other))
    assert conf.temporary_state_dir() != first
    assert first.name.startswith("django-keys-")


def test_the_demo_settings_pass_the_checks():
    assert check_ids() == {}
    # The demo sets every production secret and its state directory: no stand-in to warn of.
    assert check_ids(deploy=True) == {}


@pytest.mark.parametrize(
    ("name", "value", "check", "message"),
    [
        ("KEYS_THROTTLE_WINDOW", -1, "keys.E002", "KEYS_THROTTLE_WINDOW is -1; it must be a number of at least 1."),
        ("KEYS_LOG_BODY_LIMIT", "64k", "keys.E002", "KEYS_LOG_BODY_LIMIT is '64k'"),
        ("KEYS_TRUSTED_PROXIES", True, "keys.E002", "KEYS_TRUSTED_PROXIES is True"),
        ("KEYS_SHARED_COUNTERS", "disk", "keys.E003", "KEYS_SHARED_COUNTERS is 'disk'; use one of file, cache."),
        ("KEYS_CHANGE_MARKER", None, "keys.E003", "KEYS_CHANGE_MARKER is None"),
        ("KEYS_ENCRYPTION_KEYS", "one-key-not-a-list", "keys.E004", "KEYS_ENCRYPTION_KEYS must be a non-empty list"),
        ("KEYS_ENCRYPTION_KEYS", [], "keys.E004", "KEYS_ENCRYPTION_KEYS must be a non-empty list"),
        ("KEYS_LOOKUP_SECRET", "", "keys.E006", "KEYS_LOOKUP_SECRET must be a non-empty string."),
        ("KEYS_HANDLER_MODULES", "myapp.handlers", "keys.E007", "KEYS_HANDLER_MODULES must be a list"),
        ("KEYS_WORKER_STALE_SECONDS", 6, "keys.E001", "KEYS_WORKER_STALE_SECONDS (6) must be at least twice"),
    ],
)
def test_a_wrong_value_is_a_check_error_that_names_the_setting(settings, name, value, check, message):
    setattr(settings, name, value)
    found = check_ids()
    assert check in found
    assert message in found[check]


def test_a_bad_fernet_key_is_named_by_its_place(settings):
    settings.KEYS_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "c2hvcnQ="]
    assert check_ids()["keys.E005"].startswith("KEYS_ENCRYPTION_KEYS: key 2 is not a Fernet key")


def test_deploy_checks_name_each_development_stand_in(settings):
    settings.KEYS_LOOKUP_SECRET = conf.derived_lookup_secret()
    settings.KEYS_ENCRYPTION_KEYS = conf.derived_encryption_keys()
    settings.KEYS_SHARED_STATE_DIR = conf.temporary_state_dir()
    assert check_ids() == {}  # fine for development
    found = check_ids(deploy=True)
    assert found.keys() == {"keys.W001", "keys.W002", "keys.W003"}
    assert found["keys.W001"].startswith("KEYS_LOOKUP_SECRET is not set")


def test_every_setting_the_app_reads_has_a_default():
    """Each settings.KEYS_X the code reads is one keys/conf.py declares (so none can be missing)."""
    declared = set(conf.KeysConf._meta.names.values())
    source = Path(conf.__file__).parent
    read = {
        name
        for path in source.rglob("*.py")
        for name in re.findall(r"settings\.(KEYS_[A-Z_]+)", path.read_text())
    }
    assert read
    assert read <= declared, read - declared
    assert all(hasattr(django_settings, name) for name in declared)
    # The ones read as keys.conf.hot.X are declared settings too, and held as they are.
    hot = {name for path in source.rglob("*.py") for name in re.findall(r"\bhot\.([A-Z_]+)", path.read_text())}
    assert hot <= set(conf.HOT)
    assert {f"KEYS_{name}" for name in conf.HOT} <= declared
    assert all(getattr(conf.hot, name) == getattr(django_settings, f"KEYS_{name}") for name in conf.HOT)


def test_the_hot_settings_follow_a_changed_setting(settings):
    settings.KEYS_THROTTLE_REFUSALS = 7
    assert conf.hot.THROTTLE_REFUSALS == 7
    settings.KEYS_SHARED_STATE_DIR = "/tmp/elsewhere"
    assert conf.hot.SHARED_STATE_DIR == "/tmp/elsewhere"


def test_the_pane_extends_the_base_template_the_host_names(administrator_client, settings):
    demo = administrator_client.get(reverse("keys:pane")).content.decode()
    assert "<title>keys · CHQ keys</title>" in demo  # the demo's base template
    settings.KEYS_BASE_TEMPLATE = "keys/base.html"
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    assert "<title>keys · keys</title>" in html
    assert "/static/keys/app.js" in html
    assert "/static/django_htmx/htmx-2.min.js" in html  # {% htmx_script %}
    assert 'id="toast"' in html  # the pane's own, whatever the base


def test_the_tables_bring_their_own_template(administrator_client, settings):
    assert not hasattr(django_settings, "DJANGO_TABLES2_TEMPLATE")
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    assert '<tr class="empty">' in html  # keys/table.html's empty row, not django-tables2's


@pytest.mark.urls("tests.mounted_urls")
def test_everything_reverses_where_the_host_mounts_it(administrator_client, client):
    assert reverse("keys:pane") == "/admin-area/settings/integrations/keys/"
    assert reverse("chqapi-status") == "/api/v2/chq/status"
    assert reverse("chqapi-export", args=["echo/EcommQty"]) == "/api/v2/chq/export/echo/EcommQty"
    assert reverse("swagger") == "/docs/chq/index"
    assert reverse("openapi-document") == "/docs/chq/openapi.json"
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    assert 'hx-post="/admin-area/settings/integrations/keys/"' in html
    assert 'action="/people/logout/"' in html
    page = client.get(reverse("swagger")).content.decode()
    assert 'data-openapi-url="/docs/chq/openapi.json"' in page
    assert client.get(reverse("openapi-document")).status_code == 200
    refused = client.post(reverse("chqapi-status"), b"{}", content_type="application/json")
    assert refused.status_code == 401
    assert refused.json()["Message"] == "The ApiKey header is missing or is not a GUID."


@pytest.mark.urls("tests.mounted_urls")
def test_an_anonymous_visitor_goes_to_the_hosts_login_url(client, settings):
    settings.LOGIN_URL = "login"  # a URL name, resolved where the host put it
    response = client.get(reverse("keys:pane"))
    assert response.status_code == 302
    assert response["Location"] == "/people/login/?next=/admin-area/settings/integrations/keys/"


def test_the_keys_app_never_imports_the_chq_wire_format():
    """Dependencies run one way: keys.chqapi builds on keys (the guard, the call log, the
    worker), and nothing of keys outside it imports it, so a host can leave it out."""
    import ast

    import keys

    root = Path(keys.__file__).parent
    found = []
    for module in root.rglob("*.py"):
        if (root / "chqapi") in module.parents:
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in getattr(node, "names", [])] if isinstance(node, ast.Import) else []
            if any(name == "chqapi" or ".chqapi" in name or name.startswith("chqapi") for name in names):
                found.append(f"{module.relative_to(root)}:{node.lineno}")
    assert found == []


def test_importing_the_guard_and_the_services_loads_neither_the_wire_format_nor_drf_nor_ninja():
    code = (
        "import sys, django, os\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings_without_chqapi'\n"
        "django.setup()\n"
        "import keys.guard, keys.services, keys.views, keys.admin\n"
        "print(sorted(m for m in ('keys.chqapi', 'rest_framework', 'ninja') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.urls("tests.mounted_urls")
def test_a_types_path_in_the_pane_is_where_the_host_mounted_the_api(inventory_export):
    assert inventory_export.path == "/api/v2/chq/export/inventory"


@pytest.mark.urls("tests.guard_views_urls")
def test_without_chqs_api_a_type_is_named_by_direction_and_id(inventory_export):
    assert inventory_export.path == "export/inventory"
