import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache

from keys import catalog
from keys.models import ApiType
from keys.services import GrantSpec, api_key_create, catalog_sync, integration_groups_ensure

PASSWORD = "a-long-test-password"

# The SQLite test database is a file in var/ (chq/settings.py says why).
(Path(__file__).resolve().parent.parent / "var").mkdir(exist_ok=True)


# A second database standing for a read replica (KEYS_LOG_READ_DATABASE); made only for a test that asks
# for it (`django_db(databases=["default", LOG_REPLICA])`).
LOG_REPLICA = "log_replica"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """`make mutation` runs two test processes at once: each needs its own SQLite test database.
    The replica alias is a database of its own (not a TEST MIRROR), so a test can tell which one a page read."""
    from django.conf import settings

    default = settings.DATABASES["default"]
    test = default.setdefault("TEST", {})
    if os.environ.get("MUTANT_UNDER_TEST") and test.get("NAME"):
        test["NAME"] = f"{test['NAME']}-{os.getpid()}"
    if default["ENGINE"] == "django.db.backends.sqlite3":
        own = Path(test["NAME"])
        replica_name = str(own.with_name(f"{own.stem}-log-replica{own.suffix}"))
    else:
        replica_name = f"{test.get('NAME') or 'test_' + default['NAME']}_log_replica"
    # MIGRATE False: its tables are made from the models, as a replica takes the primary's schema; the
    # data migrations (the catalog, groups) read and write "default" whatever database they migrate.
    settings.DATABASES[LOG_REPLICA] = {**default, "TEST": {**test, "NAME": replica_name, "MIGRATE": False}}


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    """Production's manifest storage needs collectstatic; tests serve the source files."""
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }


@pytest.fixture(autouse=True)
def _own_state_files(settings, tmp_path):
    """Shared counters and the call-log spool live in files; each test gets its own."""
    settings.KEYS_SHARED_STATE_DIR = tmp_path / "var"
    settings.KEYS_SPOOL_DIR = tmp_path / "var" / "spool"


@pytest.fixture(autouse=True)
def _usage_counts_stay_in_their_test(settings):
    """Usage counts are stored only when a test flushes them, and never reach the next test."""
    from keys import usage

    settings.KEYS_USAGE_FLUSH_SECONDS = 3600
    yield
    usage.discard()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Cache entries (decision cache, last-used throttle, counters) and outages must not leak between tests."""
    from keys import outages
    from keys.access import process_cache
    from keys.guard.refusals import _refusals_logged
    from keys.services import _touched

    per_process = (process_cache, _touched, _refusals_logged, outages)
    cache.clear()
    for memory in per_process:
        memory.clear()
    yield
    cache.clear()
    for memory in per_process:
        memory.clear()


@pytest.fixture
def migrated_data(transactional_db):
    """A transactional test empties the database after it runs, migration data
    included; put back what migrations provide (permissions come back by
    themselves through post_migrate)."""
    catalog_sync(catalog.read_file(catalog.CHQ))
    integration_groups_ensure()


def make_user(username: str, *, group: str | None = None, **extra) -> User:
    user = User.objects.create_user(username, password=PASSWORD, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def viewer(db) -> User:
    """Has Access Integration Settings CHQ only."""
    return make_user("viewer", group="Integration viewers")


@pytest.fixture
def administrator(db) -> User:
    """Has both integration-settings rights."""
    return make_user("administrator", group="Integration administrators")


@pytest.fixture
def nobody(db) -> User:
    """Signed in, no right at all."""
    return make_user("nobody")


@pytest.fixture
def superuser(db) -> User:
    return make_user("root", is_superuser=True, is_staff=True)


@pytest.fixture
def administrator_client(client, administrator):
    """The test client signed in as `administrator` (pytest-django's own `admin_client` is a superuser's)."""
    client.force_login(administrator)
    return client


@pytest.fixture(params=[True, False], ids=["decision-cache", "one-query"])
def decision_cache(request, settings) -> bool:
    """Run the test on both paths a decision takes: each worker's cache, and the one indexed query."""
    settings.KEYS_DECISION_CACHE = request.param
    return request.param


@pytest.fixture
def inventory_export(db) -> ApiType:
    return ApiType.objects.get(direction="export", api_id="inventory")


@pytest.fixture
def customer_import(db) -> ApiType:
    return ApiType.objects.get(direction="import", api_id="customer")


@pytest.fixture
def make_key(db):
    def make(*, grants=(), **fields):
        fields.setdefault("is_active", True)
        return api_key_create(grants=[g if isinstance(g, GrantSpec) else GrantSpec(g) for g in grants], **fields)

    return make


@pytest.fixture
def connections_kept():
    """As Django's test Client does: a request must not close the test's connection (and transaction)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def stored_documents(key, count: int, **fields) -> None:
    """`count` finished API documents of `key`, written at once (for paging and streaming tests)."""
    from keys.models import ApiDocument

    defaults = {
        "key_last4": "0000",
        "api_type_name": "x",
        "request_type": "location-export",
        "method": "POST",
        "path": "/",
        "status_code": 200,
        "duration_ms": 1.0,
    }
    ApiDocument.objects.bulk_create(ApiDocument(key_id=key.pk, **(defaults | fields)) for _ in range(count))


@pytest.fixture
def scratch_postgres():
    """A database of its own on the PostgreSQL server CI starts (both CI runs set POSTGRES_TEST_URL)."""
    from tests.servers import scratch_postgres_database

    with scratch_postgres_database() as url:
        yield url


# --- a fresh startproject host with the keys app installed from the wheel (tests/hostproject.py) ---


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    """Slow (a wheel, a venv, a migrate): one per session, for tests/app/test_host_project.py and
    the browser test of the pane in it."""
    from tests import hostproject

    root = tmp_path_factory.mktemp("host-project")
    wheel = hostproject.build_wheel(root / "dist")
    host = hostproject.create_host(
        root / "host",
        wheel,
        apps=[*hostproject.HOST_APPS, "rest_framework", "widgets"],
        urls=[*hostproject.HOST_URLS, hostproject.HOST_URL_GUARDED_VIEWS],
        extras="drf,ninja",
        settings='KEYS_CATALOGS = [BASE_DIR / "widgets" / "catalog.json"]\n',
    )
    shutil.copytree(Path(__file__).parent / "host_widgets", host.dir / "widgets")
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
