"""The API-type catalog: loaded by migration, re-synced by command, never
losing a type a key uses."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from keys.models import ApiType
from keys.services import CATALOG_FILE, catalog_entries, catalog_sync

pytestmark = pytest.mark.django_db

# Spot checks against the list, including ids with '/' and derived ids.
EXPECTED = [
    ("import", "echo/EcommQty", "Echo ECommerce Quantity Import"),
    ("import", "tasreport/stream", "Teamwork Analytic Services Report Import"),
    ("import", "inven-price", "Inventory Price Import"),
    ("export", "invenprice", "Inventory Price Export"),
    ("export", "apidocument", "API Document Export"),
    ("import", "vendor-invoice", "Vendor Invoice Import"),
    ("export", "vendor-invoice", "Vendor Invoice Export"),
    ("import", "QtyStatusItem", "Quantity Status Reset Import"),
    ("export", "EcAtsMilestone", "ATS Milestone Export"),
]


def test_migration_loads_the_whole_catalog():
    assert ApiType.objects.filter(direction="import").count() == 59
    assert ApiType.objects.filter(direction="export").count() == 67
    for direction, api_id, name in EXPECTED:
        assert ApiType.objects.get(direction=direction, api_id=api_id).name == name
    assert not ApiType.objects.filter(group="").exists()


def test_sync_is_idempotent():
    report = catalog_sync(catalog_entries())
    assert not report.changed
    assert report.unchanged == ApiType.objects.count() == 126


def write_catalog(tmp_path, entries):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"api_types": entries}))
    return path


def test_sync_adds_updates_and_removes_unused(tmp_path):
    entries = catalog_entries()
    entries = [e for e in entries if e["api_id"] != "country"]  # drop an unused type
    entries[0] = {**entries[0], "name": "Renamed Adjustment Import"}
    entries.append({"direction": "export", "api_id": "brand-new", "name": "Brand New Export", "group": "Inventory"})
    out = io.StringIO()
    call_command("sync_api_types", file=write_catalog(tmp_path, entries), stdout=out)
    assert "added: Brand New Export" in out.getvalue()
    assert "updated: Adjustment Import → Renamed Adjustment Import" in out.getvalue()
    assert "removed: Country Export" in out.getvalue()
    assert ApiType.objects.get(api_id="brand-new").group == "Inventory"
    assert not ApiType.objects.filter(api_id="country").exists()


def test_sync_never_deletes_a_used_type(tmp_path, make_key, inventory_export):
    make_key(grants=[inventory_export.pk])
    entries = [e for e in catalog_entries() if not (e["direction"] == "export" and e["api_id"] == "inventory")]
    out = io.StringIO()
    call_command("sync_api_types", file=write_catalog(tmp_path, entries), stdout=out)
    assert "kept (a key uses it, the file no longer lists it): Inventory Export" in out.getvalue()
    assert ApiType.objects.filter(pk=inventory_export.pk).exists()


def test_sync_swapping_two_names(tmp_path):
    entries = catalog_entries()
    a, b = entries[0], entries[1]
    entries[0], entries[1] = {**a, "name": b["name"]}, {**b, "name": a["name"]}
    call_command("sync_api_types", file=write_catalog(tmp_path, entries), stdout=io.StringIO())
    assert ApiType.objects.get(direction=a["direction"], api_id=a["api_id"]).name == b["name"]


def test_dry_run_writes_nothing(tmp_path):
    entries = [*catalog_entries(), {"direction": "import", "api_id": "x", "name": "X Import"}]
    out = io.StringIO()
    call_command("sync_api_types", file=write_catalog(tmp_path, entries), dry_run=True, stdout=out)
    assert "Dry run, nothing written: 1 added" in out.getvalue()
    assert not ApiType.objects.filter(api_id="x").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"types": []}', 'needs an "api_types" list'),
        ('{"api_types": [{"direction": "sideways", "api_id": "a", "name": "A"}]}', "direction other than"),
        (
            '{"api_types": [{"direction": "import", "api_id": "a", "name": "A"},'
            ' {"direction": "import", "api_id": "a", "name": "B"}]}',
            "repeats import:a",
        ),
    ],
)
def test_broken_catalog_file_is_a_command_error(tmp_path, content, message):
    path = tmp_path / "catalog.json"
    path.write_text(content)
    before = ApiType.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command("sync_api_types", file=path, stdout=io.StringIO())
    assert ApiType.objects.count() == before


def test_missing_catalog_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read the catalog file"):
        call_command("sync_api_types", file=tmp_path / "missing.json", stdout=io.StringIO())


def test_catalog_file_is_the_one_in_the_repo():
    assert CATALOG_FILE.is_file()
