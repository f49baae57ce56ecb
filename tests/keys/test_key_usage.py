"""Usage per key, API type and day: counted for every call without a write per call,
stored from memory, shown in the pane, the table and show_api_key."""

import io
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from keys import services, usage
from keys.models import ApiType, KeyUsage
from keys.selectors import key_usage
from keys.services import GrantSpec
from tests import servers
from tests.api_calls import post

DOCUMENTS = "/chqapi/export/apidocument"  # a built-in handler: 200, or 400 for a bad filter
INVENTORY = "/chqapi/export/inventory"  # in the catalog, no handler here: 501


def call(client, key, path=DOCUMENTS, body=None):
    return post(path, key, body, client=client)


def stored(key) -> dict[str, dict[str, int]]:
    """{api type name: {count: n}} of what is stored for `key` (all days)."""
    found: dict[str, dict[str, int]] = {}
    for row in KeyUsage.objects.filter(key=key).select_related("api_type"):
        counts = found.setdefault(row.api_type.name, dict.fromkeys(KeyUsage.COUNTS, 0))
        for name in KeyUsage.COUNTS:
            counts[name] += getattr(row, name)
    return found


def counts(**given) -> dict[str, int]:
    return dict.fromkeys(KeyUsage.COUNTS, 0) | given


@pytest.fixture
def documents():
    return ApiType.objects.get(direction="export", api_id="apidocument")


@pytest.fixture
def inventory():
    return ApiType.objects.get(direction="export", api_id="inventory")


# --- counting -----------------------------------------------------------------------------


def test_every_kind_of_call_is_counted_under_its_key_type_and_day(client, make_key, documents, inventory):
    key = make_key(grants=[GrantSpec(documents.pk), GrantSpec(inventory.pk)])
    assert [call(client, key.value).status_code for _ in range(3)] == [200, 200, 200]
    assert call(client, key.value, body={"Data": {"Request": {"Filters": "no"}}}).status_code == 400
    assert call(client, key.value, INVENTORY).status_code == 501
    assert call(client, key.value, "/chqapi/import/customer").status_code == 403
    services.api_key_change(key=key, is_active=False)
    assert call(client, key.value).status_code == 401
    services.api_key_change(key=key, is_active=True, expires_at=timezone.now() - timedelta(seconds=1))
    assert call(client, key.value).status_code == 401
    # Nothing to count under: an unknown key, and an API type that does not exist.
    assert call(client, uuid.uuid4()).status_code == 401
    assert call(client, key.value, "/chqapi/export/nothing").status_code == 401  # expired first

    assert not KeyUsage.objects.exists()  # no write per call
    assert usage.flush() == 3
    assert stored(key) == {
        documents.name: counts(succeeded=3, client_errors=1, inactive=2),
        inventory.name: counts(server_errors=1),
        "Customer Import": counts(not_allowed=1),
    }
    assert set(KeyUsage.objects.values_list("day", flat=True)) == {timezone.localdate()}


def test_flushes_add_to_the_stored_rows(client, make_key):
    key = make_key(allowed_for_all=True)
    call(client, key.value)
    usage.flush()
    call(client, key.value)
    call(client, key.value)
    usage.flush()
    assert usage.flush() == 0  # nothing new
    assert KeyUsage.objects.get(key=key).succeeded == 3


def test_the_day_is_the_site_time_zones(settings, make_key, documents):
    settings.TIME_ZONE = "Pacific/Kiritimati"  # UTC+14: its date is usually ahead of UTC's
    key = make_key(allowed_for_all=True)
    usage.count(key.pk, documents.pk, "succeeded")
    usage.flush()
    assert KeyUsage.objects.get(key=key).day == timezone.localdate()


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit, as in production
def test_a_removed_key_loses_its_counts_without_losing_the_others(migrated_data, make_key):
    documents = ApiType.objects.get(direction="export", api_id="apidocument")
    gone, kept = make_key(), make_key()
    usage.count(gone.pk, documents.pk, "succeeded")
    usage.count(kept.pk, documents.pk, "succeeded")
    services.api_key_remove(key=gone)
    assert usage.flush() == 1
    assert list(KeyUsage.objects.values_list("key_id", "succeeded")) == [(kept.pk, 1)]


@pytest.mark.django_db(transaction=True)
def test_a_key_removed_between_the_check_and_the_commit_drops_only_its_counts(migrated_data, make_key, monkeypatch):
    documents = ApiType.objects.get(direction="export", api_id="apidocument")
    gone, kept = make_key(), make_key()
    real = usage._existing
    checks = []

    def stale_first(rows):  # the first check still sees the key that is then removed
        checks.append(rows)
        return rows if len(checks) == 1 else real(rows)

    monkeypatch.setattr(usage, "_existing", stale_first)
    usage.count(gone.pk, documents.pk, "succeeded")
    usage.count(kept.pk, documents.pk, "succeeded")
    services.api_key_remove(key=gone)
    assert usage.flush() == 1
    assert len(checks) == 2
    assert list(KeyUsage.objects.values_list("key_id", "succeeded")) == [(kept.pk, 1)]


def test_counts_the_database_refuses_wait_for_the_next_flush(make_key, documents, monkeypatch, caplog):
    key = make_key()
    usage.count(key.pk, documents.pk, "succeeded")

    def down(rows):
        raise OperationalError("database is down")

    monkeypatch.setattr(usage, "_write", down)
    assert usage.flush() == 0
    assert "usage counts: not stored (OperationalError); kept for the next try" in caplog.text
    monkeypatch.undo()
    usage.count(key.pk, documents.pk, "succeeded")
    assert usage.flush() == 1
    assert KeyUsage.objects.get(key=key).succeeded == 2


def test_counting_from_many_threads_loses_nothing(make_key, documents):
    key = make_key()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: usage.count(key.pk, documents.pk, "succeeded"), range(4000)))
    usage.flush()
    assert KeyUsage.objects.get(key=key).succeeded == 4000


def test_a_warm_call_still_makes_no_query(client, make_key, django_assert_num_queries):
    key = make_key(allowed_for_all=True)
    call(client, key.value, INVENTORY)
    with django_assert_num_queries(0):
        assert call(client, key.value, INVENTORY).status_code == 501


# --- reading ---------------------------------------------------------------------------------


def add(key, api_type, day: date, **given):
    KeyUsage.objects.create(key=key, api_type=api_type, day=day, **given)


def test_the_report_covers_thirty_days_busiest_type_first(make_key, documents, inventory):
    key, other = make_key(), make_key()
    today = timezone.localdate()
    add(key, documents, today, succeeded=2, not_allowed=1)
    add(key, documents, today - timedelta(days=29), client_errors=4)
    add(key, inventory, today - timedelta(days=1), succeeded=10)
    add(key, inventory, today - timedelta(days=30), succeeded=1000)  # one day too old
    add(other, documents, today, succeeded=7)
    report = key_usage(key)
    assert len(report.days) == 30
    assert (report.days[0], report.days[-1]) == (today - timedelta(days=29), today)
    assert [t.name for t in report.types] == [inventory.name, documents.name]
    assert report.types[1].counts == counts(succeeded=2, client_errors=4, not_allowed=1)
    assert report.types[1].per_day[0] == 4
    assert report.types[1].per_day[-1] == 3
    assert report.total == 17
    assert report.per_day[-2:] == [10, 3]


def test_usage_view_draws_the_chart_with_its_table(admin_client, make_key, documents, inventory):
    key = make_key(description="ERP")
    add(key, documents, timezone.localdate(), succeeded=5, server_errors=1)
    add(key, inventory, timezone.localdate() - timedelta(days=3), inactive=2)
    response = admin_client.get(reverse("keys:usage", args=[key.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>8 calls</strong> in the last 30 days" in html
    assert "5 2xx · 0 4xx · 1 5xx · 0 403 not allowed · 2 401 inactive or expired" in html
    assert f"busiest: {documents.name} (6), {inventory.name} (2)" in html
    # One drawing for wide screens and one for phones; CSS shows the one that fits.
    assert re.search(r'<svg class="chart-wide" viewBox="0 0 720 240" role="img"', html)
    assert re.search(r'<svg class="chart-narrow" viewBox="0 0 360 220" role="img"', html)
    assert html.count('<rect class="bar') == 4
    assert f"{timezone.localdate().isoformat()}, {documents.name}: 6 calls" in html
    assert f'<th scope="row">{documents.name}</th>' in html
    assert "style=" not in html  # the CSP refuses inline styles


def test_usage_view_without_calls_says_so(admin_client, make_key):
    html = admin_client.get(reverse("keys:usage", args=[make_key().pk])).content.decode()
    assert "No calls with this key in the last 30 days." in html
    assert "<svg" not in html


def test_usage_view_needs_the_access_right(client, viewer, make_key):
    key = make_key()
    assert client.get(reverse("keys:usage", args=[key.pk])).status_code == 302  # to the sign-in page
    client.force_login(viewer)
    assert client.get(reverse("keys:usage", args=[key.pk])).status_code == 200
    assert client.get(reverse("keys:usage", args=[key.pk + 1000])).status_code == 404


def test_usage_view_is_one_query_for_the_counts(admin_client, make_key, documents, django_assert_max_num_queries):
    key = make_key()
    for n in range(30):
        add(key, documents, timezone.localdate() - timedelta(days=n), succeeded=n)
    with django_assert_max_num_queries(6):  # session, user, rights, key, counts
        admin_client.get(reverse("keys:usage", args=[key.pk]))


def test_the_keys_table_shows_calls_of_the_last_seven_days(admin_client, make_key, documents, inventory):
    busy, idle = make_key(description="busy"), make_key(description="idle")
    today = timezone.localdate()
    add(busy, documents, today, succeeded=1000, not_allowed=1)
    add(busy, inventory, today - timedelta(days=6), client_errors=2)
    add(busy, documents, today - timedelta(days=7), succeeded=50)  # outside the seven days
    html = admin_client.get(reverse("keys:pane")).content.decode()
    assert "calls, 7 days" in html
    rows = {m[0]: m[1] for m in re.findall(r'data-id="(\d+)".*?data-label="calls, 7 days"[^>]*>([^<]*)<', html, re.S)}
    assert rows == {str(busy.pk): "1,003", str(idle.pk): "0"}
    ordered = admin_client.get(reverse("keys:pane"), {"sort": "-calls_7_days"}).content.decode()
    assert ordered.index("busy") < ordered.index("idle")


def test_show_api_key_includes_the_last_thirty_days(make_key, documents):
    key = make_key()
    add(key, documents, timezone.localdate(), succeeded=4, not_allowed=1)
    out = io.StringIO()
    call_command("show_api_key", str(key.value), "--json", stdout=out)
    data = json.loads(out.getvalue())["usage"]
    assert data["to"] == timezone.localdate().isoformat()
    assert data["calls"] == 5
    assert data["counts"] == counts(succeeded=4, not_allowed=1)
    [entry] = data["api_types"]
    assert (entry["name"], entry["calls"], len(entry["per_day"]), entry["per_day"][-1]) == (documents.name, 5, 30, 5)
    out = io.StringIO()
    call_command("show_api_key", str(key.value), stdout=out)
    assert f"calls, 30 days:  5 (busiest: {documents.name} 5)" in out.getvalue()


# --- several processes ------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path):
    running = servers.start(tmp_path, workers=3, extra_env={"KEYS_USAGE_FLUSH_SECONDS": "0.5"})
    yield running
    running.stop()


def _usage_of(server, value) -> dict:
    return json.loads(server.manage("show_api_key", value, "--json"))["usage"]


def test_counts_from_several_workers_match_the_calls_made(server):
    value = server.manage("create_api_key", "--description", "counted", "--all", "--quiet")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: server.post(DOCUMENTS, headers={"ApiKey": value})[0], range(300)))
    assert statuses == [200] * 300
    server.manage("update_api_key", value, "--deactivate")
    with ThreadPoolExecutor(8) as pool:
        # Fewer than KEYS_THROTTLE_REFUSALS (20), which would block this address with 429s.
        refused = list(pool.map(lambda _: server.post(DOCUMENTS, headers={"ApiKey": value})[0], range(15)))
    assert refused == [401] * 15
    deadline = timezone.now() + timedelta(seconds=20)
    while _usage_of(server, value)["calls"] < 315 and timezone.now() < deadline:
        pass  # each worker stores its counts every 0.5 s
    assert _usage_of(server, value)["counts"] == counts(succeeded=300, inactive=15)


def test_a_graceful_stop_stores_what_the_workers_counted(tmp_path):
    # Flushing once an hour: only the stop itself can store these counts.
    running = servers.start(tmp_path, workers=2, extra_env={"KEYS_USAGE_FLUSH_SECONDS": "3600"})
    try:
        value = running.manage("create_api_key", "--description", "counted", "--all", "--quiet")
        for _ in range(50):
            assert running.post(DOCUMENTS, headers={"ApiKey": value})[0] == 200
    finally:
        running.stop()
    assert _usage_of(running, value)["counts"] == counts(succeeded=50)


def test_a_crash_loses_at_most_the_last_flush_interval(server):
    """SIGKILL to every worker: counts older than KEYS_USAGE_FLUSH_SECONDS (0.5 s here) are stored."""
    value = server.manage("create_api_key", "--description", "crashed", "--all", "--quiet")
    for _ in range(40):
        assert server.post(DOCUMENTS, headers={"ApiKey": value})[0] == 200
    time.sleep(1.5)  # three flush intervals
    server.crash()
    assert _usage_of(server, value)["counts"] == counts(succeeded=40)


def test_the_site_date_is_recomputed_when_the_clock_goes_back(time_machine):
    """A day remembered from a later moment must not count calls once the clock steps back
    (an NTP step; a test's time machine after a test on today's date)."""
    from keys.usage import _Today

    today = _Today()
    time_machine.move_to("2026-06-15 10:00:00 +00:00", tick=False)
    assert str(today()) == "2026-06-15"
    time_machine.move_to("2026-06-14 23:30:00 +00:00", tick=False)
    assert str(today()) == "2026-06-14"
    time_machine.move_to("2026-06-15 00:00:00 +00:00", tick=False)
    assert str(today()) == "2026-06-15"
