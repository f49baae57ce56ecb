"""A key decision goes stale through one mechanism: a signal reaching
keys.signals.on_change, the only code that advances the change marker.

Each kind of change is made twice over: once with the receiver's marker
replaced by a counter, where the counter must move (twice per change: at once
and after the commit) while the real marker must not (so nothing else advanced
it), and once as it is, where the real marker must move.
"""

import io
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from keys import catalog, freshness, services, signals
from keys.models import ApiKey, ApiKeyGrant, ApiType
from keys.services import GrantSpec

pytestmark = pytest.mark.django_db


class Counter:
    """Stands in for keys.freshness inside keys.signals: counts what the receiver asks for."""

    def __init__(self) -> None:
        self.advances = 0

    def advance(self) -> None:
        self.advances += 1


@pytest.fixture
def world(client, administrator, make_key, inventory_export, customer_import, monkeypatch):
    monkeypatch.setattr(catalog, "registry", catalog.Registry())
    key = make_key(description="before", grants=[GrantSpec(inventory_export.pk)])
    return SimpleNamespace(
        client=client,
        administrator=administrator,
        key=key,
        grant=key.grants.get(),
        inventory_export=inventory_export,
        customer_import=customer_import,
    )


def admin_edit(w):
    w.client.force_login(w.administrator)
    w.administrator.is_staff = True
    w.administrator.save()
    data = {
        "description": "after",
        "is_active": "on",
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
    }
    response = w.client.post(reverse("admin:keys_apikey_change", args=[w.key.pk]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ApiKey.objects.get(pk=w.key.pk).description == "after"


def admin_type_edit(w):
    t = w.inventory_export
    services.api_type_update(api_type=t, name="Stock Export", group=t.group, direction=t.direction, api_id=t.api_id)


def pane_edit(w):
    w.client.force_login(w.administrator)
    response = w.client.post(
        reverse("keys:edit", args=[w.key.pk]),
        {"description": "after", "is_active": "on", "selected": [w.customer_import.pk]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 204
    assert [g.api_type_id for g in ApiKey.objects.get(pk=w.key.pk).grants.all()] == [w.customer_import.pk]


def pane_remove(w):
    w.client.force_login(w.administrator)
    assert w.client.post(reverse("keys:remove", args=[w.key.pk])).status_code == 204
    assert not ApiKey.objects.filter(pk=w.key.pk).exists()


def command_update(w):
    call_command("update_api_key", str(w.key.value), "--deactivate", stdout=io.StringIO())
    assert not ApiKey.objects.get(pk=w.key.pk).is_active


def command_sync(w):
    catalog.api_type(name="Widgets Export", direction="export", api_id="widgets")
    assert "added: Widgets Export" in sync()


def command_sync_prune(w):
    ApiType.objects.create(direction="export", api_id="widgets", name="Widgets Export")
    assert "removed: Widgets Export" in sync("--prune", "--no-input")


def command_sync_rename(w):  # bulk_update, the rename's two passes
    catalog.api_type(name="Widgets Export", direction="export", api_id="widgets")
    sync()
    catalog.registry.clear()
    catalog.api_type(name="Gadgets Export", direction="export", api_id="widgets")
    assert "updated: Widgets Export → Gadgets Export" in sync()


def orm_save(w):
    w.key.is_active = False
    w.key.save()


def orm_queryset_update(w):
    assert ApiKey.objects.filter(pk=w.key.pk).update(is_active=False) == 1


def orm_bulk_update(w):
    w.key.description = "after"
    assert ApiKey.objects.bulk_update([w.key], ["description"]) == 1


def service_partial_change(w):  # the services' own bulk writes of grants
    services.api_key_change(key=w.key, add_grants=[GrantSpec(w.customer_import.pk, logged=True)])


def service_roll(w):
    services.api_key_roll(key=w.key, grace_until=timezone.now() + timedelta(hours=1))


def orm_delete(w):
    w.key.delete()


def queryset_delete(w):
    assert ApiKeyGrant.objects.filter(key=w.key).delete()[0] == 1


def grant_save(w):
    w.grant.logged = True
    w.grant.save()


def grant_through_m2m(w):
    w.key.api_types.add(w.customer_import)
    w.key.api_types.remove(w.inventory_export)
    assert [g.api_type_id for g in w.key.grants.all()] == [w.customer_import.pk]


def sync(*args):
    out = io.StringIO()
    call_command("sync_api_types", *args, stdout=out)
    return out.getvalue()


CHANGES = [
    admin_edit,
    admin_type_edit,
    pane_edit,
    pane_remove,
    command_update,
    command_sync,
    command_sync_prune,
    command_sync_rename,
    orm_save,
    orm_queryset_update,
    orm_bulk_update,
    service_partial_change,
    service_roll,
    orm_delete,
    queryset_delete,
    grant_save,
    grant_through_m2m,
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
def test_each_change_advances_the_marker_through_the_receiver_only(
    world, change, monkeypatch, django_capture_on_commit_callbacks
):
    counter = Counter()
    monkeypatch.setattr(signals, "freshness", counter)
    real = freshness.current()
    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        change(world)
        at_once = counter.advances
    assert at_once >= 1
    assert counter.advances == 2 * at_once  # each change again after its commit
    assert len(after_commit) == at_once
    assert freshness.current() == real  # nothing but the receiver advanced it


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
def test_each_change_advances_the_real_marker(world, change, django_capture_on_commit_callbacks):
    before = freshness.current()
    with django_capture_on_commit_callbacks(execute=True):
        change(world)
        during = freshness.current()
    assert during != before  # this transaction's own later reads see it at once
    assert freshness.current() != during  # and again after the commit


def test_one_orm_save_is_one_change(world, monkeypatch, django_capture_on_commit_callbacks):
    counter = Counter()
    monkeypatch.setattr(signals, "freshness", counter)
    with django_capture_on_commit_callbacks(execute=True):
        orm_save(world)
    assert counter.advances == 2


def test_bookkeeping_and_empty_writes_advance_nothing(world, monkeypatch, django_capture_on_commit_callbacks):
    counter = Counter()
    monkeypatch.setattr(signals, "freshness", counter)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        # "last used", as keys/usage.py writes it: no decision reads it.
        ApiKey.objects.filter(pk=world.key.pk).update(last_used_at=now)
        ApiKeyGrant.objects.filter(pk=world.grant.pk).update(last_used_at=now)
        world.key.last_used_at = now
        world.key.save(update_fields=["last_used_at"])
        ApiKeyGrant.objects.bulk_update([world.grant], ["last_used_at"])
        # Writes that touch no row.
        ApiKey.objects.filter(pk=-1).update(is_active=False)
        ApiType.objects.bulk_create([])
        ApiKey.objects.bulk_update([], ["description"])
        # An idempotent sync writes nothing.
        assert json.loads(sync("--json"))["added"] == []
    assert (counter.advances, after_commit) == (0, [])


def test_the_receiver_is_the_only_code_that_advances_the_marker():
    """What the tests above show by behaviour, in the source: keys/ calls freshness.advance in one module."""
    from pathlib import Path

    root = Path(signals.__file__).parent
    callers = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "freshness.advance" in path.read_text(encoding="utf-8")
    )
    assert callers == ["signals.py"]
