"""The services' edges that the rest of the suite passes through without
looking: exact messages, bounds, the catalog file's checks, "last used"
bookkeeping and the stored call's fields. Each test here was written against a
mutant of keys/services.py that the suite let through (make mutation)."""

import json
import logging
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.utils import timezone

from keys import catalog, sealing, services, usage
from keys.audit import Actor
from keys.models import ApiDocument, ApiKey, ApiKeyGrant, ApiType, KeyAudit
from keys.services import GrantSpec
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


# --- edit conflicts and removed keys -------------------------------------------------


def test_conflict_message_names_who_and_when_to_the_minute(make_key, settings):
    settings.TIME_ZONE = "UTC"
    key = make_key(description="a")
    ApiKey.objects.filter(pk=key.pk).update(updated_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    with pytest.raises(services.EditConflict) as caught:
        services.api_key_update(
            key=key,
            description="b",
            is_active=True,
            expires_at=None,
            allowed_for_all=False,
            logged_for_all=False,
            logging_until=None,
            **services.NO_LIMITS,
            **services.NO_CONTACT,
            grants=[],
            expected_version=key.version + 5,
        )
    assert str(caught.value) == "This API key was changed by someone at 2026-03-04 05:06 since you opened it."


def test_conflict_message_names_the_user_without_another_query(make_key, django_assert_num_queries):
    boss = make_user("boss")
    key = make_key()
    ApiKey.objects.filter(pk=key.pk).update(updated_by=boss)
    with django_assert_num_queries(1), pytest.raises(services.EditConflict, match="changed by boss at "):
        services._locked(key, key.version + 1)  # one locked read, the user joined in


def test_removed_key_says_so(make_key):
    key = make_key()
    ApiKey.objects.filter(pk=key.pk).delete()
    with pytest.raises(ApiKey.DoesNotExist) as caught:
        services.api_key_change(key=key, description="x")
    assert str(caught.value) == "This API key no longer exists; someone removed it."


def test_partial_change_keeps_the_other_grants_logging_until(make_key, inventory_export, customer_import):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2099, 5, 6))])
    services.api_key_change(key=key, add_grants=[GrantSpec(customer_import.pk)])
    kept = ApiKeyGrant.objects.get(key=key, api_type=inventory_export)
    assert (kept.logged, kept.logging_until) == (True, date(2099, 5, 6))


# --- the catalog file --------------------------------------------------------------------


def write(tmp_path, data) -> str:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


ENTRY = {"direction": "export", "api_id": "thing", "name": "Thing Export"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([ENTRY], 'needs an "api_types" list'),
        ({"api_types": ["not an object"]}, "Entry 1 of .* needs string fields direction, api_id and name."),
        ({"api_types": [ENTRY, {**ENTRY, "api_id": 5}]}, "Entry 2 of .* needs string fields"),
        ({"api_types": [{**ENTRY, "api_id": ""}]}, "Entry 1 of .* has an empty id or name"),
        ({"api_types": [{**ENTRY, "name": ""}]}, "Entry 1 of .* has an empty id or name"),
        ({"api_types": [ENTRY, {**ENTRY, "api_id": "other"}]}, "Entry 2 of .* repeats export:other or 'Thing Export'"),
        ({"api_types": [ENTRY, {**ENTRY, "name": "Other"}]}, "Entry 2 of .* repeats export:thing"),
    ],
)
def test_broken_catalog_file_says_which_entry(tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        catalog.read_file(write(tmp_path, data))


def test_catalog_file_is_read_as_utf8(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_bytes(json.dumps({"api_types": [{**ENTRY, "name": "Größe Export"}]}, ensure_ascii=False).encode())
    assert catalog.read_file(str(path))[0]["name"] == "Größe Export"


def test_sync_without_group_stores_an_empty_group_and_reports_plain_names():
    services.catalog_sync([ENTRY], api_type_model=ApiType)
    added = ApiType.objects.get(api_id="thing")
    assert added.group == ""
    ApiType.objects.filter(pk=added.pk).update(group="Old group")
    report = services.catalog_sync([*catalog.read_file(catalog.CHQ), ENTRY])
    assert "Thing Export" in report.updated  # the group went back to none; the name did not change
    assert ApiType.objects.get(pk=added.pk).group == ""
    report = services.catalog_sync([*catalog.read_file(catalog.CHQ), {**ENTRY, "name": "Thing Export 2"}])
    assert "Thing Export → Thing Export 2" in report.updated


def test_type_change_is_recorded_with_group_only_when_there_is_one(make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk)])
    inventory_export.group = ""
    inventory_export.save()
    services.api_type_update(
        api_type=inventory_export, name="Stock Export", group="Stock", direction="export", api_id="inventory"
    )
    services.api_type_update(
        api_type=inventory_export, name="Stock Export 2", group="", direction="export", api_id="inventory"
    )
    changes = [e.changes["API type"] for e in KeyAudit.objects.filter(key=key, action="changed").order_by("id")]
    assert changes == [
        ["Inventory Export (export:inventory)", "Stock Export (export:inventory, Stock)"],
        ["Stock Export (export:inventory, Stock)", "Stock Export 2 (export:inventory)"],
    ]


def test_groups_get_exactly_their_keys_rights():
    # A right of the same codename in another app must not be given.
    other = ContentType.objects.get_for_model(Group)
    Permission.objects.create(codename="access_integration_settings", name="look-alike", content_type=other)
    Group.objects.filter(name__startswith="Integration").delete()
    services.integration_groups_ensure(group_model=Group)  # the other model defaults
    rights = {
        g.name: {(p.content_type.app_label, p.codename) for p in g.permissions.all()}
        for g in Group.objects.filter(name__startswith="Integration")
    }
    assert rights == {
        "Integration viewers": {("keys", "access_integration_settings")},
        "Integration administrators": {
            ("keys", "access_integration_settings"),
            ("keys", "change_integration_settings"),
        },
    }
    Group.objects.filter(name__startswith="Integration").delete()
    services.integration_groups_ensure(permission_model=Permission)
    assert Group.objects.filter(name__startswith="Integration").count() == 2


# --- the stored call -------------------------------------------------------------------------


def record(**overrides):
    fields = {
        "document_id": uuid.uuid4(),
        "key_id": None,
        "key_last4": "abcd",
        "key_description": "",
        "api_type_id": None,
        "api_type_name": "Inventory Export",
        "method": "POST",
        "path": "/chqapi/export/inventory",
        "source": "",
        "status_code": 200,
        "duration_ms": 1.0,
        "client_address": None,
        "request_body": b"",
        "response_body": b"",
    } | overrides
    services.api_call_record(**fields)
    return ApiDocument.objects.get(document_id=fields["document_id"])


def test_stored_call_is_dated_when_it_was_answered(monkeypatch):
    answered = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    class Clock:
        @staticmethod
        def now():
            return answered

    monkeypatch.setattr(services, "timezone", Clock)  # the writer may store it later
    assert record().created_at == answered


def test_stored_snapshots_are_cut_to_their_columns():
    row = record(key_last4="abcdefgh", key_description="d" * 400)
    assert row.key_last4 == "abcd"
    assert row.key_description == "d" * 255


@pytest.mark.parametrize(
    ("request_size", "response_size", "truncated"),
    [(10, 10, False), (11, 0, True), (0, 11, True), (11, 11, True)],
)
def test_truncated_only_when_a_body_is_longer_than_the_limit(settings, request_size, response_size, truncated):
    settings.KEYS_LOG_BODY_LIMIT = 10
    row = record(request_body=b"q" * request_size, response_body=b"r" * response_size)
    assert row.truncated is truncated
    assert (len(row.request_body), len(row.response_body)) == (min(request_size, 10), min(response_size, 10))


# --- "last used" -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now


def test_touch_again_once_the_interval_has_passed_exactly(monkeypatch):
    clock = FakeClock(1000.0)
    monkeypatch.setattr(services, "time", clock)
    assert services._first_touch("key", 1, 60)
    clock.now = 1059.9
    assert not services._first_touch("key", 1, 60)
    clock.now = 1060.0
    assert services._first_touch("key", 1, 60)


def test_touch_memory_is_bounded():
    services._touched.update({("key", -i): 0.0 for i in range(1, 100_000)})
    assert services._first_touch("key", 1, 60)
    assert len(services._touched) == 100_000
    assert services._first_touch("key", 2, 60)
    assert services._touched == {("key", 2): pytest.approx(services._touched[("key", 2)])}


def test_shared_cache_decides_among_processes(monkeypatch, settings):
    settings.KEYS_SHARED_COUNTERS = "cache"
    calls = []

    class Cache:
        @staticmethod
        def add(key, value, timeout):
            calls.append((key, value, timeout))
            return False  # another process touched first

    monkeypatch.setattr(services, "cache", Cache)
    assert services._first_touch("grant", 7, 60) is False
    assert calls == [("keys:touched:grant:7", 1, 60)]


def test_touch_records_every_key_and_grant_once_per_interval(make_key, inventory_export, customer_import):
    first = make_key(grants=[GrantSpec(inventory_export.pk)])
    second = make_key(grants=[GrantSpec(customer_import.pk)])
    grants = {g.key_id: g.pk for g in ApiKeyGrant.objects.all()}
    services.api_key_touch(key_id=first.pk, grant_id=grants[first.pk])
    services.api_key_touch(key_id=second.pk, grant_id=grants[second.pk])
    usage.flush()  # "last used" is written by the usage flush, never in the call
    assert ApiKey.objects.filter(last_used_at__isnull=True).count() == 0
    assert ApiKeyGrant.objects.filter(last_used_at__isnull=True).count() == 0


def test_touch_failure_is_logged_with_key_and_error(make_key, monkeypatch, caplog):
    key = make_key()

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(services, "_first_touch", broken)
    with caplog.at_level(logging.WARNING, logger="keys.security"):
        services.api_key_touch(key_id=key.pk, grant_id=None)
    said = [r.getMessage() for r in caplog.records if r.name == "keys.security"]
    assert said == [f"last used not recorded for key {key.pk}: RuntimeError"]
    assert timezone.now()  # the call's answer never depended on it


# --- grants that cannot be saved ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("grants", "message"),
    [
        ([GrantSpec(-1), GrantSpec(-1)], "An API type is selected more than once."),
        ([GrantSpec(-2), GrantSpec(-3)], "Unknown API type id(s): -3, -2."),
        ([GrantSpec(-1, logged=False, logging_until=date(2099, 1, 1))], "A logging expiration date needs logged."),
    ],
)
def test_unsavable_grants_are_refused_on_the_api_types_field(grants, message, inventory_export):
    grants = [
        GrantSpec(inventory_export.pk if g.api_type_id == -1 else g.api_type_id, g.logged, g.logging_until)
        for g in grants
    ]
    with pytest.raises(ValidationError) as caught:
        services.api_key_create(description="x", grants=grants)
    assert caught.value.message_dict == {"api_types": [message.replace("-1", str(inventory_export.pk))]}
    assert not ApiKey.objects.exists()


# --- the services that open a transaction (mutated since they open it in a with-block) ----------


class FixedClock:
    """services.timezone with now() fixed; everything else as Django's."""

    def __init__(self, moment):
        self.moment = moment
        self.localtime = timezone.localtime

    def now(self):
        return self.moment


def test_update_sets_the_expiry(make_key):
    key = make_key()
    moment = datetime(2031, 5, 6, 7, 8, tzinfo=UTC)
    fields = {n: getattr(key, n) for n in services.KEY_FIELDS} | {"expires_at": moment}
    services.api_key_update(key=key, grants=[], **fields)
    assert ApiKey.objects.get(pk=key.pk).expires_at == moment


def test_change_names_every_unknown_field_in_order(make_key):
    with pytest.raises(TypeError) as caught:
        services.api_key_change(key=make_key(), zz=1, bogus=2)
    assert str(caught.value) == "api_key_change() got unexpected fields: bogus, zz"


def test_set_active_counts_only_the_keys_it_changed(make_key):
    keys = [make_key(is_active=True), make_key(is_active=True), make_key(is_active=False)]
    assert services.api_key_set_active(keys=keys, active=False) == 2
    assert services.api_key_set_active(keys=ApiKey.objects.all(), active=False) == 0


def test_roll_and_end_grace_record_who_and_raise_the_version_by_one(make_key):
    boss = make_user("boss")
    key = make_key()
    actor = Actor(user=boss, name="boss")
    rolled = services.api_key_roll(key=key, grace_until=timezone.now() + timedelta(hours=1), actor=actor)
    assert (rolled.updated_by, rolled.version) == (boss, key.version + 1)
    ApiKey.objects.filter(pk=key.pk).update(updated_by=None)
    ended = services.api_key_end_grace(key=rolled, actor=actor)
    assert (ended.updated_by, ended.version) == (boss, key.version + 2)
    entry = KeyAudit.objects.filter(key=key).order_by("id").last()
    assert entry.actor_name == "boss"


def test_grace_edges_at_the_exact_moment(make_key, monkeypatch, settings):
    settings.TIME_ZONE = "UTC"
    moment = datetime(2020, 3, 4, 5, 6, tzinfo=UTC)  # in the past: Django's own clock would say otherwise
    key = make_key()
    old = uuid.uuid4()
    ApiKey.objects.filter(pk=key.pk).update(
        previous_digest=sealing.digest(old), previous_sealed=sealing.seal(old), previous_until=moment
    )
    monkeypatch.setattr(services, "timezone", FixedClock(moment))
    # Ending a grace that ends this very moment changes nothing.
    services.api_key_end_grace(key=key)
    assert not KeyAudit.objects.filter(key=key, action="changed").exists()
    # A grace ending this very moment is over: rolling again drops nothing.
    services.api_key_roll(key=key, grace_until=moment + timedelta(hours=1))
    assert KeyAudit.objects.get(key=key, action="rolled").changes == {
        "old value works until": [None, "2020-03-04 06:06"]
    }
    monkeypatch.setattr(services, "timezone", FixedClock(moment + timedelta(minutes=30)))
    ended = services.api_key_end_grace(key=ApiKey.objects.get(pk=key.pk))
    assert ended.previous_until == moment + timedelta(minutes=30)
    assert KeyAudit.objects.get(key=key, action="changed").changes == {
        "old value works until": ["2020-03-04 06:06", "2020-03-04 05:36"]
    }


def test_end_grace_of_a_key_never_rolled_changes_nothing(make_key):
    key = make_key()
    assert services.api_key_end_grace(key=key).version == key.version
    assert list(KeyAudit.objects.filter(key=key).values_list("action", flat=True)) == ["created"]


def test_used_type_keeps_its_id_with_the_whole_reason(make_key, inventory_export):
    make_key(grants=[GrantSpec(inventory_export.pk)])
    with pytest.raises(ValidationError) as caught:
        services.api_type_update(
            api_type=inventory_export, name="Inventory Export", group="", direction="export", api_id="stock"
        )
    assert caught.value.messages == [
        "Inventory Export is selected for 1 API key(s), so its direction and API id cannot change: "
        "callers name them in their URLs. Add a new API type instead, or remove it from those keys first."
    ]


def test_a_key_created_with_nothing_named_is_inactive_and_undescribed():
    key = services.api_key_create()
    assert (key.description, key.is_active, key.allowed_for_all, key.expires_at) == ("", False, False, None)
