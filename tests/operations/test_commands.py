"""Every management command through call_command: success paths, --json,
and each error leaving the database unchanged."""

import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from keys.models import ApiDocument, ApiKey, ApiKeyGrant
from keys.services import GrantSpec
from tests.conftest import stored_documents

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def db_state():
    return (list(ApiKey.objects.order_by("pk").values()), list(ApiKeyGrant.objects.order_by("pk").values()))


# --- create ---------------------------------------------------------------------------


def test_create_with_types_quiet_prints_only_the_value():
    out = run(
        "create_api_key",
        "--description",
        "ERP",
        "--type",
        "Inventory Export:logged:2027-01-31",
        "--type",
        "import:customer",
        "--type",
        "import:echo/EcommQty:logged",
        "--quiet",
    )
    key = ApiKey.objects.get()
    assert out.strip() == str(key.value)
    assert key.is_active
    grants = {(g.api_type.name, g.logged, g.logging_until) for g in key.grants.select_related("api_type")}
    assert grants == {
        ("Inventory Export", True, date(2027, 1, 31)),
        ("Customer Import", False, None),
        ("Echo ECommerce Quantity Import", True, None),
    }


def test_create_allowed_for_all_logged_until():
    out = run(
        "create_api_key", "--description", "all", "--all", "--logged", "--logging-until", "2027-02-01", "--inactive"
    )
    assert "Created API key" in out
    key = ApiKey.objects.get()
    assert (key.is_active, key.allowed_for_all, key.logged_for_all, key.logging_until) == (
        False,
        True,
        True,
        date(2027, 2, 1),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--logged"], "--logged needs --all"),
        (["--all", "--logging-until", "2027-01-01"], "--logging-until needs --all --logged"),
        (["--all", "--logged", "--logging-until", "31/01/2027"], "is not a date"),
        (["--type", "Inventory Exprot"], "Did you mean: Inventory Export"),
        (["--type", "export:nothing-like-it-at-all-xyz"], "Unknown API type"),
        (["--type", "Inventory Export:logged:tomorrow"], "is not a date"),
        (["--type", "Inventory Export", "--type", "export:inventory"], "selected more than once"),
    ],
)
def test_create_errors_change_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", "--description", "x", *args)
    assert not ApiKey.objects.exists()


# --- list and show ------------------------------------------------------------------------


def test_list_json_and_filters(make_key):
    active, inactive = make_key(description="on"), make_key(description="off", is_active=False)
    rows = json.loads(run("list_api_keys", "--json"))
    assert [r["value"] for r in rows] == [str(inactive.value), str(active.value)]
    assert [r["description"] for r in json.loads(run("list_api_keys", "--json", "--active"))] == ["on"]
    assert str(inactive.value) in run("list_api_keys", "--inactive")
    assert str(active.value) not in run("list_api_keys", "--inactive")


def test_list_empty_says_how_to_create():
    assert "create_api_key" in run("list_api_keys")


def test_show_json(make_key, inventory_export):
    key = make_key(
        description="shown", grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2000, 1, 1))]
    )
    data = json.loads(run("show_api_key", str(key.value), "--json"))
    assert data["description"] == "shown"
    assert data["api_types"] == [
        {
            "name": "Inventory Export",
            "id": "export:inventory",
            "logged": True,
            "logging_until": "2000-01-01",
            "logging_now": False,
            "rate_per_second": None,
            "rate_per_minute": None,
            "last_used_at": None,
        }
    ]
    assert "logged until 2000-01-01 (ended)" in run("show_api_key", str(key.value))


@pytest.mark.parametrize(
    ("value", "message"), [("nope", "is not an API key value"), (None, "No API key has that value")]
)
def test_show_unknown_key(value, message):
    import uuid

    with pytest.raises(CommandError, match=message):
        run("show_api_key", value or str(uuid.uuid4()))


# --- update ------------------------------------------------------------------------------


def test_update_changes_only_what_is_named(make_key, inventory_export, customer_import):
    key = make_key(description="before", grants=[inventory_export.pk])
    run(
        "update_api_key",
        str(key.value),
        "--deactivate",
        "--add-type",
        "Customer Import:logged",
        "--remove-type",
        "export:inventory",
    )
    key.refresh_from_db()
    assert (key.description, key.is_active) == ("before", False)
    assert [(g.api_type_id, g.logged) for g in key.grants.all()] == [(customer_import.pk, True)]
    run("update_api_key", str(key.value), "--all", "--logged", "--logging-until", "2030-01-01", "--activate")
    key.refresh_from_db()
    assert (key.is_active, key.allowed_for_all, key.logged_for_all, key.logging_until) == (
        True,
        True,
        True,
        date(2030, 1, 1),
    )
    run("update_api_key", str(key.value), "--no-all")
    key.refresh_from_db()
    assert (key.allowed_for_all, key.logged_for_all, key.logging_until) == (False, False, None)
    # The kept selection is still there.
    assert key.grants.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Nothing to change"),
        (["--logged"], "logged for all needs allowed for all"),
        (["--logging-until", "2027-13-01"], "is not a date"),
        (["--add-type", "Nope Export"], "Unknown API type"),
        (["--description", "x" * 300], "at most 255 characters"),
    ],
)
def test_update_errors_change_nothing(make_key, args, message):
    key = make_key(description="same")
    before = db_state()
    with pytest.raises(CommandError, match=message):
        run("update_api_key", str(key.value), *args)
    assert db_state() == before


def test_update_conflicting_flags_are_refused_by_the_parser(make_key):
    key = make_key()
    with pytest.raises(CommandError, match="not allowed with argument"):
        run("update_api_key", str(key.value), "--activate", "--deactivate")


# --- remove ------------------------------------------------------------------------------


def test_remove_with_yes_keeps_logs(make_key):
    key = make_key()
    ApiDocument.objects.create(
        key=key, key_last4="abcd", api_type_name="x", method="POST", path="/", status_code=200, duration_ms=1
    )
    assert "Removed API key" in run("remove_api_key", str(key.value), "--yes")
    assert not ApiKey.objects.exists()
    assert ApiDocument.objects.count() == 1


def test_remove_without_terminal_refuses(make_key):
    key = make_key()
    with mock.patch("sys.stdin.isatty", return_value=False), pytest.raises(CommandError, match="add --no-input"):
        run("remove_api_key", str(key.value))
    assert ApiKey.objects.exists()


@pytest.mark.parametrize(("answer", "removed"), [("y", True), ("yes", True), ("n", False), ("", False)])
def test_remove_asks_on_a_terminal(make_key, answer, removed):
    key = make_key()
    with mock.patch("sys.stdin.isatty", return_value=True), mock.patch("builtins.input", return_value=answer):
        run("remove_api_key", str(key.value))
    assert ApiKey.objects.exists() is not removed


# --- check -------------------------------------------------------------------------------


def test_check_allowed_and_logged(make_key, inventory_export):
    key = make_key(grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=date(2027, 1, 31))])
    out = run("check_api_key", str(key.value), "--type", "Inventory Export", "--at", "2027-01-31T23:59")
    assert "allowed: Inventory Export" in out
    assert "logged" in out
    assert "not logged" not in out
    out = run("check_api_key", str(key.value), "--type", "export:inventory", "--at", "2027-02-01T00:00")
    assert "not logged" in out


@pytest.mark.parametrize(
    ("setup", "reason"),
    [({"is_active": False}, "inactive key"), ({}, "API type not allowed")],
)
def test_check_refused_exits_1(make_key, setup, reason):
    key = make_key(**setup)
    out = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("check_api_key", str(key.value), "--type", "Inventory Export", stdout=out)
    assert exc.value.code == 1
    assert f"refused: {reason}" in out.getvalue()


def test_check_unknown_key_and_bad_input():
    with pytest.raises(SystemExit) as refused:
        call_command("check_api_key", str(uuid.uuid4()), "--type", "Inventory Export", stdout=io.StringIO())
    assert refused.value.code == 1  # an unknown key is a refusal: the decision was made
    with pytest.raises(CommandError, match="is not a date and time") as bad:
        run("check_api_key", str(uuid.uuid4()), "--type", "Inventory Export", "--at", "soon")
    assert bad.value.returncode == 2  # could not check
    with pytest.raises(CommandError, match="Unknown API type") as unknown:
        run("check_api_key", str(uuid.uuid4()), "--type", "Widgets Export")
    assert unknown.value.returncode == 2


@pytest.mark.django_db(transaction=True)  # another process reads the key: it must be committed
def test_check_exit_codes_from_the_command_line(migrated_data, make_key):
    """What a shell script sees: 0 allowed, 1 refused, 2 could not check (as grep)."""
    import os
    import subprocess
    import sys

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    url = (
        f"sqlite:///{db['NAME']}"
        if connection.vendor == "sqlite"
        else f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )
    key = make_key(allowed_for_all=True)
    env = os.environ | {"DATABASE_URL": url}

    def code(*args: str, stdin: str | None = None) -> int:
        return subprocess.run(
            [sys.executable, "manage.py", "check_api_key", *args],
            cwd=settings.BASE_DIR,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        ).returncode

    assert code("-", "--type", "Inventory Export", stdin=f"{key.value}\n") == 0
    assert code(str(uuid.uuid4()), "--type", "Inventory Export") == 1
    assert code(str(key.value), "--type", "Widgets Export") == 2
    assert code(str(key.value)) == 2  # --type missing: argparse's own error


# --- what scripts need: JSON, Django's spellings, values from standard input ------------------


def test_every_reporting_command_speaks_json(make_key, inventory_export):
    created = json.loads(run("create_api_key", "--description", "json", "--type", "Inventory Export", "--json"))
    assert (created["description"], [t["name"] for t in created["api_types"]]) == ("json", ["Inventory Export"])
    value = created["value"]
    updated = json.loads(run("update_api_key", value, "--description", "renamed", "--json"))
    assert updated["description"] == "renamed"
    checked = json.loads(run("check_api_key", value, "--type", "Inventory Export", "--json"))
    assert (checked["allowed"], checked["logged"], checked["reason"]) == (True, False, "allowed")
    rolled = json.loads(run("roll_api_key", value, "--grace", "1h", "--json"))
    assert rolled["value"] != value
    assert rolled["old_value_works_until"]
    synced = json.loads(run("sync_api_types", "--dry-run", "--json"))
    assert synced["dry_run"] is True
    assert synced["added"] == []
    assert synced["unchanged"] > 100
    purged = json.loads(run("purge_api_logs", "--before", "2026-02-01", "--no-input", "--json"))
    assert purged == {"dry_run": False, "before": "2026-02-01", "deleted": 0}
    removed = json.loads(run("remove_api_key", rolled["value"], "--no-input", "--json"))
    assert removed == {"removed": rolled["value"]}


def test_the_operators_other_reports_speak_json_too():
    assert json.loads(run("rotate_key_encryption", "--json"))["keys"] == 0
    assert json.loads(run("reset_api_throttle", "--json")) == {"cleared": True}
    assert json.loads(run("replay_api_call_spool", "--json")) == {"stored": 0, "waiting": 0}


def test_quiet_is_verbosity_zero(make_key):
    assert uuid.UUID(run("create_api_key", "--description", "v0", "-v", "0").strip())
    assert uuid.UUID(run("create_api_key", "--description", "q", "--quiet").strip())


@pytest.mark.parametrize("command", ["show_api_key", "update_api_key", "roll_api_key", "remove_api_key"])
def test_a_key_value_can_come_from_standard_input(make_key, command):
    key = make_key()
    extra = {"update_api_key": ["--description", "from stdin"], "remove_api_key": ["--no-input"]}.get(command, [])
    with mock.patch("sys.stdin", io.StringIO(f"{key.value}\n")):
        run(command, "-", *extra)
    if command == "remove_api_key":
        assert not ApiKey.objects.exists()
    elif command == "update_api_key":
        assert ApiKey.objects.get().description == "from stdin"


def test_an_empty_standard_input_is_a_clear_error():
    with mock.patch("sys.stdin", io.StringIO("")), pytest.raises(CommandError, match="standard input"):
        run("show_api_key", "-")


def test_purge_says_what_it_will_delete_and_asks(make_key):
    key = make_key()
    make_logs(key, 3, datetime(2026, 1, 1, tzinfo=UTC))
    with mock.patch("sys.stdin.isatty", return_value=False), pytest.raises(CommandError, match="add --no-input"):
        run("purge_api_logs", "--before", "2026-02-01")
    assert ApiDocument.objects.count() == 3
    asked = []
    with (
        mock.patch("sys.stdin.isatty", return_value=True),
        mock.patch("builtins.input", side_effect=lambda q: asked.append(q) or "n"),
    ):
        assert "Nothing deleted." in run("purge_api_logs", "--before", "2026-02-01")
    assert asked == ["Delete 3 stored call(s) from before 2026-02-01? This cannot be undone. [y/N] "]
    assert ApiDocument.objects.count() == 3
    with mock.patch("sys.stdin.isatty", return_value=True), mock.patch("builtins.input", return_value="y"):
        assert "Deleted 3 stored call(s)" in run("purge_api_logs", "--before", "2026-02-01")


# --- purge -------------------------------------------------------------------------------


def make_logs(key, n, when):
    # Made at their time: fixed once written (on PostgreSQL it names the document's partition).
    stored_documents(key, n, created_at=when)


def test_purge_in_batches(make_key):
    key, other = make_key(), make_key()
    old = datetime(2026, 1, 1, tzinfo=UTC)
    make_logs(key, 2500, old)
    make_logs(other, 700, old)
    make_logs(key, 300, old + timedelta(days=60))
    assert "3200 stored call(s)" in run("purge_api_logs", "--before", "2026-02-01", "--dry-run")
    assert ApiDocument.objects.count() == 3500
    with CaptureQueriesContext(connection) as queries:
        out = run(
            "purge_api_logs", "--before", "2026-02-01", "--key", str(key.value), "--no-input", "--batch-size", "1000"
        )
    assert "Deleted 2500 stored call(s)" in out
    # On PostgreSQL a batch's DELETE comes in a statement that deletes its ids' claims too.
    batches = ('DELETE FROM "keys_apidocument"', 'WITH gone AS (DELETE FROM "keys_apidocument"')
    deletes = [q["sql"] for q in queries if q["sql"].startswith(batches)]
    assert len(deletes) >= 4  # at most 1,000 documents of any key per batch: 3,200 old ones make four windows
    assert ApiDocument.objects.count() == 1000
    run("purge_api_logs", "--before", "2026-02-01", "--noinput")
    assert ApiDocument.objects.count() == 300


def test_purge_keeps_documents_still_queued_or_running(make_key):
    key = make_key()
    make_logs(key, 4, datetime(2026, 1, 1, tzinfo=UTC))
    waiting = list(ApiDocument.objects.order_by("id")[:2])
    ApiDocument.objects.filter(pk=waiting[0].pk).update(status=ApiDocument.Status.IN_QUEUE, is_async=True)
    ApiDocument.objects.filter(pk=waiting[1].pk).update(status=ApiDocument.Status.IN_PROCESS, is_async=True)
    assert "Deleted 2 stored call(s)" in run("purge_api_logs", "--before", "2026-02-01", "--yes")
    assert set(ApiDocument.objects.values_list("pk", flat=True)) == {d.pk for d in waiting}


def test_purge_bad_date_deletes_nothing(make_key):
    make_logs(make_key(), 5, datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(CommandError, match="is not a date"):
        run("purge_api_logs", "--before", "last year")
    assert ApiDocument.objects.count() == 5
