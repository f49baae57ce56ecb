"""The API-type catalog: what the host declares (KEYS_CATALOGS files, types
registered in code), loaded by migration, synced by command, never losing a
type it did not declare unless told to (--prune), nor one a key uses."""

import io
import json
import sys

import pytest
from django.core.management import CommandError, call_command

from keys import catalog
from keys.models import ApiType
from keys.services import catalog_sync

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


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Types registered in code by a test are forgotten after it (the real registry is left alone)."""
    fresh = catalog.Registry()
    monkeypatch.setattr(catalog, "registry", fresh)
    return fresh


def sync(*args, **options) -> str:
    out = io.StringIO()
    call_command("sync_api_types", *args, stdout=out, **options)
    return out.getvalue()


def write_catalog(tmp_path, entries, name="catalog.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"api_types": entries}))
    return path


WIDGETS = {"direction": "export", "api_id": "widgets", "name": "Widgets Export", "group": "Stock"}
GADGETS = {"direction": "import", "api_id": "gadgets/bulk", "name": "Gadgets Import", "swagger_group": "Gadgets"}


def widgets_by_orm() -> ApiType:
    return ApiType.objects.create(direction="export", api_id="widgets", name="Widgets Export")


# --- what is declared ---------------------------------------------------------------------


def test_the_demo_project_chooses_chqs_catalog(settings):
    assert settings.KEYS_CATALOGS == [catalog.CHQ]
    declared = catalog.declared()
    assert len(declared) == 126
    assert ("export", "apidocument") in {(e["direction"], e["api_id"]) for e in declared}


def test_no_catalog_is_declared_by_default(settings):
    settings.KEYS_CATALOGS = []  # the app's default (keys/conf.py), which the demo replaces
    assert catalog.declared() == []
    # Nothing declared: the sync keeps every type there is, and says so.
    out = sync()
    assert "No API types are declared: name catalog files in KEYS_CATALOGS" in out
    assert "0 added, 0 updated, 0 removed, 0 unchanged, 126 undeclared kept" in out
    assert ApiType.objects.count() == 126


def test_a_catalog_inside_a_package_and_a_relative_path(settings, tmp_path, monkeypatch):
    package = tmp_path / "widgetshop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write_catalog(package, [WIDGETS], "api_types.json")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "widgetshop", raising=False)
    assert catalog.declared(["widgetshop:api_types.json"])[0]["name"] == "Widgets Export"
    settings.BASE_DIR = tmp_path
    assert catalog.declared(["widgetshop/api_types.json"])[0]["group"] == "Stock"


def test_code_registration_checks_its_fields(registry):
    entry = catalog.api_type(name="Widgets Export", direction="export", api_id="widgets")
    assert entry == {**WIDGETS, "group": "", "swagger_group": ""}
    catalog.api_type(name="Widgets Export", direction="export", api_id="widgets")  # the same again: no change
    assert [where for _, where in registry.entries()] == [f"api_type(export:widgets) in {__name__}"]
    with pytest.raises(catalog.CatalogError, match=r"declares export:widgets again, differently"):
        catalog.api_type(name="Widgets Export 2", direction="export", api_id="widgets")
    with pytest.raises(catalog.CatalogError, match="direction other than import/export"):
        catalog.api_type(name="Sideways", direction="sideways", api_id="s")
    with pytest.raises(catalog.CatalogError, match="name is longer than 150 characters"):
        catalog.api_type(name="x" * 151, direction="export", api_id="long")


# --- syncing ------------------------------------------------------------------------------


def test_a_host_file_and_a_code_registered_type_sync_without_losing_either(settings, tmp_path):
    settings.KEYS_CATALOGS = [catalog.CHQ, str(write_catalog(tmp_path, [WIDGETS]))]
    catalog.api_type(**GADGETS)
    out = sync()
    assert "added: Widgets Export" in out
    assert "added: Gadgets Import" in out
    assert "API-type catalog in sync: 2 added, 0 updated, 0 removed, 126 unchanged." in out
    assert ApiType.objects.get(api_id="widgets").group == "Stock"
    assert ApiType.objects.get(direction="import", api_id="gadgets/bulk").name == "Gadgets Import"
    assert ApiType.objects.count() == 128
    # Each sync keeps both: the other source never makes one of them undeclared.
    again = sync()
    assert (
        again.strip()
        == "API-type catalog already in sync, nothing changed: 0 added, 0 updated, 0 removed, 128 unchanged."
    )
    assert ApiType.objects.count() == 128


def test_the_second_run_changes_nothing():
    report = catalog_sync(catalog.declared())
    assert not report.changed
    assert report.unchanged == ApiType.objects.count() == 126
    assert json.loads(sync("--json")) == {
        "dry_run": False,
        "prune": False,
        "applied": True,
        "added": [],
        "updated": [],
        "removed": [],
        "kept_in_use": [],
        "undeclared": [],
        "unchanged": 126,
    }


def test_an_undeclared_type_added_with_the_orm_survives_a_sync():
    widgets = widgets_by_orm()
    out = sync()
    assert "removed:" not in out
    assert "kept (no catalog declares it): Widgets Export" in out
    assert "--prune removes the types no catalog declares" in out
    assert ApiType.objects.filter(pk=widgets.pk).exists()
    assert json.loads(sync("--json"))["undeclared"] == ["Widgets Export"]


def test_prune_removes_it_after_confirmation(monkeypatch):
    widgets = widgets_by_orm()
    # No terminal to ask, no --no-input: refused, nothing removed.
    with pytest.raises(CommandError, match="add --no-input"):
        sync("--prune")
    assert ApiType.objects.filter(pk=widgets.pk).exists()
    # A terminal, and the answer is no.
    answers = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda question: answers.append(question) or "n")
    out = sync("--prune")
    assert "to be removed (no catalog declares it, no key uses it): Widgets Export" in out
    assert answers == ["Remove these 1 API type(s)? [y/N] "]
    assert out.endswith("Nothing changed.\n")
    assert ApiType.objects.filter(pk=widgets.pk).exists()
    # The answer is yes.
    monkeypatch.setattr("builtins.input", lambda question: "y")
    out = sync("--prune")
    assert "removed: Widgets Export" in out
    assert "1 removed, 126 unchanged" in out
    assert not ApiType.objects.filter(pk=widgets.pk).exists()


def test_prune_without_asking_and_as_json():
    widgets_by_orm()
    data = json.loads(sync("--prune", "--no-input", "--json"))
    assert (data["removed"], data["applied"], data["unchanged"]) == (["Widgets Export"], True, 126)
    assert not ApiType.objects.filter(api_id="widgets").exists()
    widgets_by_orm()
    assert "removed: Widgets Export" in sync("--prune", "--yes")


def test_prune_never_deletes_a_used_type(make_key, inventory_export, tmp_path):
    make_key(grants=[inventory_export.pk])
    entries = [
        e for e in catalog.read_file(catalog.CHQ) if not (e["direction"] == "export" and e["api_id"] == "inventory")
    ]
    out = sync("--prune", "--no-input", file=write_catalog(tmp_path, entries))
    assert "kept (a key uses it, no catalog declares it): Inventory Export" in out
    assert "0 removed" in out
    assert ApiType.objects.filter(pk=inventory_export.pk).exists()


def test_a_type_dropped_from_the_file_is_only_removed_with_prune(tmp_path):
    entries = catalog.read_file(catalog.CHQ)
    entries = [e for e in entries if e["api_id"] != "country"]  # drop an unused type
    entries[0] = {**entries[0], "name": "Renamed Adjustment Import"}
    entries.append({"direction": "export", "api_id": "brand-new", "name": "Brand New Export", "group": "Inventory"})
    path = write_catalog(tmp_path, entries)
    out = sync(file=path)
    assert "added: Brand New Export" in out
    assert "updated: Adjustment Import → Renamed Adjustment Import" in out
    assert "kept (no catalog declares it): Country Export" in out
    assert ApiType.objects.get(api_id="brand-new").group == "Inventory"
    assert ApiType.objects.filter(api_id="country").exists()
    assert "removed: Country Export" in sync("--prune", "--no-input", file=path)
    assert not ApiType.objects.filter(api_id="country").exists()


def test_sync_swapping_two_names(tmp_path):
    entries = catalog.read_file(catalog.CHQ)
    a, b = entries[0], entries[1]
    entries[0], entries[1] = {**a, "name": b["name"]}, {**b, "name": a["name"]}
    sync(file=write_catalog(tmp_path, entries))
    assert ApiType.objects.get(direction=a["direction"], api_id=a["api_id"]).name == b["name"]


def test_dry_run_writes_nothing(tmp_path):
    widgets_by_orm()
    entries = [*catalog.read_file(catalog.CHQ), {"direction": "import", "api_id": "x", "name": "X Import"}]
    out = sync("--prune", dry_run=True, file=write_catalog(tmp_path, entries))  # no confirmation asked
    assert "added (dry run): X Import" in out
    assert "removed (dry run): Widgets Export" in out
    assert "Dry run, nothing written: 1 added, 0 updated, 1 removed" in out
    assert not ApiType.objects.filter(api_id="x").exists()
    assert ApiType.objects.filter(api_id="widgets").exists()


# --- a catalog that cannot be synced: a CommandError that says where, and nothing changed ----


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", r"The catalog file .*bad.json is not valid JSON"),
        ('{"types": []}', r'The catalog file .*bad.json needs an "api_types" list'),
        ('{"api_types": [{"direction": "export", "name": "A"}]}', r"Entry 1 of .*bad.json needs string fields"),
        ('{"api_types": [{"direction": "sideways", "api_id": "a", "name": "A"}]}', "direction other than"),
        ('{"api_types": [{"direction": "import", "api_id": "a", "name": "A", "group": 5}]}', "group must be a string"),
        (
            '{"api_types": [{"direction": "import", "api_id": "a", "name": "A"},'
            ' {"direction": "import", "api_id": "a", "name": "B"}]}',
            r"Entry 2 of .*bad.json repeats import:a or 'B' \(as entry 1 of .*bad.json\)",
        ),
        # Across catalogs: CHQ's own file declares export:inventory already.
        (
            '{"api_types": [{"direction": "export", "api_id": "inventory", "name": "My Inventory Export"}]}',
            r"Entry 1 of .*bad.json repeats export:inventory .*\(as entry \d+ of .*api_types.json\)",
        ),
    ],
)
def test_a_broken_catalog_is_a_command_error_and_changes_nothing(settings, tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    # A good catalog with a new type comes first: a half-applied sync would add it.
    settings.KEYS_CATALOGS = [catalog.CHQ, str(write_catalog(tmp_path, [WIDGETS], "good.json")), str(bad)]
    catalog.api_type(**GADGETS)
    before = sorted(ApiType.objects.values_list("pk", "name", "group"))
    with pytest.raises(CommandError, match=message):
        sync()
    assert sorted(ApiType.objects.values_list("pk", "name", "group")) == before


def test_a_code_registration_repeating_a_file_entry_names_both(settings, tmp_path):
    settings.KEYS_CATALOGS = [catalog.CHQ, str(write_catalog(tmp_path, [WIDGETS]))]
    catalog.api_type(direction="import", api_id="other", name="Widgets Export")
    with pytest.raises(
        CommandError,
        match=rf"api_type\(import:other\) in {__name__} repeats import:other or 'Widgets Export' "
        r"\(as entry 1 of .*catalog.json\)",
    ):
        sync()
    assert not ApiType.objects.filter(api_id__in=["widgets", "other"]).exists()


def test_a_declared_name_an_undeclared_type_holds(tmp_path):
    widgets_by_orm()
    path = write_catalog(tmp_path, [*catalog.read_file(catalog.CHQ), {**WIDGETS, "api_id": "widgets-v2"}])
    with pytest.raises(
        CommandError, match=r"export:widgets-v2 is named 'Widgets Export', as the undeclared export:widgets"
    ):
        sync(file=path)
    assert not ApiType.objects.filter(api_id="widgets-v2").exists()
    # With --prune the undeclared one goes first, and the declared one takes its name.
    sync("--prune", "--no-input", file=path)
    assert ApiType.objects.get(name="Widgets Export").api_id == "widgets-v2"


def test_missing_catalog_file(tmp_path, settings):
    settings.KEYS_CATALOGS = [str(tmp_path / "missing.json")]
    with pytest.raises(CommandError, match=r"Cannot read the catalog file .*missing.json"):
        sync()
    with pytest.raises(CommandError, match="there is no package 'no_such_package'"):
        sync(file="no_such_package:api_types.json")


def test_catalog_file_is_the_one_in_the_repo():
    assert catalog.resolve(catalog.CHQ).is_file()


def test_a_declared_types_swagger_group_tags_its_operation(settings, tmp_path):
    from keys.chqapi import openapi

    settings.KEYS_CATALOGS = [catalog.CHQ, str(write_catalog(tmp_path, [WIDGETS]))]
    catalog.api_type(**GADGETS)
    sync()
    paths = openapi.for_installation()["paths"]
    assert paths["/chqapi/import/gadgets/bulk"]["post"]["tags"] == ["Gadgets"]
    assert paths["/chqapi/export/widgets"]["post"]["tags"] == ["Common"]  # no swagger_group: the common section
    assert paths["/chqapi/import/adjustment"]["post"]["tags"] == ["Adjustment"]  # CHQ's own, from its file


def test_the_migration_loads_what_the_project_declares(settings):
    from importlib import import_module

    from django.apps import apps

    load_catalog = import_module("keys.migrations.0002_catalog_and_groups").load_catalog
    ApiType.objects.all().delete()
    settings.KEYS_CATALOGS = []
    load_catalog(apps, None)
    assert not ApiType.objects.exists()  # a host that declares nothing gets no CHQ types
    catalog.api_type(**GADGETS)
    settings.KEYS_CATALOGS = [catalog.CHQ]
    load_catalog(apps, None)
    assert ApiType.objects.count() == 127


def test_a_type_added_after_the_question_is_not_removed_unseen(monkeypatch):
    widgets_by_orm()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)

    def answer(question):  # while the question waits, someone adds another type
        ApiType.objects.create(direction="export", api_id="gadgets", name="Gadgets Export")
        return "y"

    monkeypatch.setattr("builtins.input", answer)
    with pytest.raises(CommandError, match=r"more API types would be removed \(Gadgets Export\)"):
        sync("--prune")
    assert set(ApiType.objects.filter(api_id__in=["widgets", "gadgets"]).values_list("api_id", flat=True)) == {
        "widgets",
        "gadgets",
    }
