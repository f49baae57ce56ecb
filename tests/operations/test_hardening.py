"""Nothing a caller sends becomes a 500, a lost log, a silent overwrite or a lockout.

Each test here failed before the fix it names (issue 11)."""

import csv
import io
import json
import logging
import threading
import uuid
from contextlib import contextmanager
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import Client, override_settings
from django.urls import reverse

from keys.calllog import spool
from keys.guard import refusal_counts, registry, throttle
from keys.models import ApiDocument, ApiKey, ApiType, KeyAudit
from keys.services import api_call_record
from tests.api_calls import post
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

EXPORT = "/chqapi/export/apidocument"


@pytest.fixture
def logged_key(make_key):
    return make_key(description="erp", allowed_for_all=True, logged_for_all=True)


@contextmanager
def refuse_writes_to(table: str, error=OperationalError, statement: str = "INSERT INTO"):
    """Make the database refuse every INSERT into `table` (or each statement holding
    `statement`), as a full disk or a lost server would."""

    def wrapper(execute, sql, params, many, context):
        if statement in sql.upper() and table in sql:
            raise error("injected failure")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


# --- 1. bookkeeping never changes the answer; nothing is lost -------------------------


def test_lone_surrogate_in_source_is_stored_not_a_500(logged_key):
    response = post(EXPORT, logged_key.value, raw='{"Source": "\\ud800 erp"}')
    assert response.status_code == 200
    log = ApiDocument.objects.get()
    assert log.source == "\ufffd erp"
    assert str(log.document_id) == response["ApiDocumentId"]


def test_every_stored_text_is_cut_and_cleaned(logged_key):
    api_call_record(
        document_id=uuid.uuid4(),
        key_id=logged_key.pk,
        key_last4="abcdef",
        key_description="d\x00" * 200,
        api_type_id=None,
        api_type_name="t" * 400,
        method="VERYLONGMETHOD\x00",
        path="/chqapi/" + "p\ud800" * 400,
        source="s\x00" * 300,
        status_code=200,
        duration_ms=1.0,
        client_address="127.0.0.1",
        request_body=b"\xff\x00body",
        response_body=b"{}",
    )
    log = ApiDocument.objects.get()
    assert (len(log.method), len(log.path), len(log.source), len(log.api_type_name)) == (10, 500, 200, 150)
    assert "\x00" not in log.key_description + log.source + log.request_body
    assert "\ud800" not in log.path


@pytest.mark.django_db(transaction=True)  # foreign keys are checked at commit, as in production
def test_key_removed_while_its_call_runs_keeps_the_row(migrated_data, logged_key, monkeypatch):
    from keys.chqapi import handlers

    original = handlers.api_document_export

    def removing_handler(call):
        ApiKey.objects.filter(pk=call.decision.key_id).delete()
        return original(call)

    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(removing_handler))
    response = post(EXPORT, logged_key.value, {"Source": "ERP"})
    assert response.status_code == 200
    log = ApiDocument.objects.get()
    assert (log.key_id, log.key_last4, log.key_description, log.source) == (
        None,
        logged_key.value.hex[-4:],
        "erp",
        "ERP",
    )


def test_database_refusing_the_log_row_keeps_the_answer_and_the_row(logged_key, caplog):
    with caplog.at_level(logging.ERROR, logger="keys.security"), refuse_writes_to("keys_apidocument"):
        response = post(EXPORT, logged_key.value, {"Source": "ERP"})
    assert response.status_code == 200  # the answer the handler gave
    assert not ApiDocument.objects.exists()
    assert spool.pending() == 1
    assert "kept in the spool" in caplog.text
    assert str(logged_key.value) not in caplog.text
    out = io.StringIO()
    call_command("replay_api_call_spool", stdout=out)
    assert "1 spooled call(s) stored" in out.getvalue()
    log = ApiDocument.objects.get()
    assert (str(log.document_id), log.source, log.status_code) == (response["ApiDocumentId"], "ERP", 200)
    # Idempotent: a second replay stores nothing twice.
    call_command("replay_api_call_spool", stdout=io.StringIO())
    assert ApiDocument.objects.count() == 1


def test_a_reserved_document_whose_finished_row_is_refused_is_completed_by_the_replay(logged_key):
    document_id = str(uuid.uuid4())
    with refuse_writes_to("keys_apidocument", statement="DO UPDATE"):
        response = post(EXPORT, logged_key.value, {"Source": "ERP", "Data": {"ApiDocumentId": document_id}})
        assert response.status_code == 200
        reserved = ApiDocument.objects.get()  # taken before the handler ran, still InProcess
        assert (str(reserved.document_id), reserved.status) == (document_id, ApiDocument.Status.IN_PROCESS)
        # The id stays taken while its finished row waits in the spool.
        assert post(EXPORT, logged_key.value, {"Data": {"ApiDocumentId": document_id}}).status_code == 409
    assert spool.pending() == 2  # the finished row, and the 409's own document
    call_command("replay_api_call_spool", stdout=io.StringIO())
    done = ApiDocument.objects.get(document_id=document_id)
    assert (done.status, done.status_code, done.source) == (ApiDocument.Status.SUCCESSFUL, 200, "ERP")
    assert ApiDocument.objects.filter(status_code=409).count() == 1
    call_command("replay_api_call_spool", stdout=io.StringIO())  # nothing twice
    assert ApiDocument.objects.count() == 2


def test_a_database_refusing_the_reservation_is_503_before_the_handler_runs(logged_key, monkeypatch):
    from keys.guard import registry

    ran = []
    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(ran.append))
    with refuse_writes_to("keys_apidocument"):
        response = post(EXPORT, logged_key.value, {"Data": {"ApiDocumentId": str(uuid.uuid4())}})
    assert response.status_code == 503
    assert ran == []


def test_replay_that_still_fails_keeps_the_rows_and_says_so(logged_key):
    with refuse_writes_to("keys_apidocument"):
        post(EXPORT, logged_key.value)
        from django.core.management.base import CommandError

        with pytest.raises(CommandError, match="could not be stored yet"):
            call_command("replay_api_call_spool", stdout=io.StringIO())
    assert spool.pending() == 1


def test_the_process_that_spooled_replays_on_its_next_write(logged_key, monkeypatch):
    monkeypatch.setattr(spool, "REPLAY_INTERVAL", 0)
    with refuse_writes_to("keys_apidocument"):
        post(EXPORT, logged_key.value)
    post(EXPORT, logged_key.value)
    assert spool.pending() == 0
    assert ApiDocument.objects.count() == 2


def test_last_used_failure_does_not_change_the_answer(logged_key):
    post(EXPORT, logged_key.value)  # warms the decision
    from keys.services import _touched

    _touched.clear()  # so that the next call writes "last used" again
    with mock.patch("keys.services.ApiKey.objects.filter", side_effect=OperationalError("locked")):
        response = post(EXPORT, logged_key.value)
    assert response.status_code == 200
    assert ApiDocument.objects.count() == 2


def test_handler_that_raises_is_json_500_and_stored_as_500(logged_key, monkeypatch):
    def broken(call):
        raise RuntimeError("bug")

    monkeypatch.setitem(registry._handlers, ("export", "apidocument"), registry.Registration(broken))
    response = post(EXPORT, logged_key.value)
    assert response.status_code == 500
    assert response.json() == {"Message": "The server failed while carrying out the call."}
    assert ApiDocument.objects.get().status_code == 500


# --- 2. chunked bodies ----------------------------------------------------------------


def test_chunked_body_without_length_is_411_in_the_test_client(logged_key):
    response = post(EXPORT, logged_key.value, HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="")
    assert response.status_code == 411
    assert "Content-Length" in response.json()["Message"]
    assert not ApiDocument.objects.exists()


@pytest.mark.parametrize(("length", "status"), [("abc", 400), ("-5", 400), ("1000", 200), ("1001", 413)])
@override_settings(KEYS_MAX_BODY_BYTES=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_content_length_edges(logged_key, length, status):
    body = "{}" + " " * 998 if length == "1000" else "{}"
    response = post(EXPORT, logged_key.value, raw=body, CONTENT_LENGTH=length)
    assert response.status_code == status


# --- 4. CSV formulas --------------------------------------------------------------------


@pytest.mark.parametrize("source", ['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3", "\tx", "\rx"])
def test_csv_cells_never_start_a_formula(client, viewer, logged_key, source):
    post(EXPORT, logged_key.value, {"Source": source})
    client.force_login(viewer)
    response = client.get(reverse("keys:logs-csv", args=[logged_key.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][5] == "'" + source
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in rows[1])


# --- 5. a valid key can no longer produce a 500 ----------------------------------------

HOSTILE_BODIES = [
    "[" * 100_000 + "]" * 100_000,
    '{"Data": {"Request": {"Top": ' + "9" * 5000 + "}}}",
    json.dumps({"Data": {"Request": {"Filters": [{"Field": "StatusCode", "Operator": "Equal", "Value": "²"}]}}}),
    json.dumps(
        {
            "Data": {
                "Request": {
                    "Filters": [{"Field": "CreatedAt", "Operator": "GreaterThan", "Value": "2024-02-30T00:00:00"}]
                }
            }
        }
    ),
    json.dumps({"Data": {"Request": {"Filters": [{"Field": ["Source"], "Operator": "Equal", "Value": "x"}]}}}),
    json.dumps({"Data": {"Request": {"Filters": [{"Field": "Source", "Operator": {"a": 1}, "Value": "x"}]}}}),
    json.dumps({"Data": {"Request": {"Skip": 2**63}}}),
    json.dumps({"Data": {"Request": {"Filters": [{"Field": "StatusCode", "Operator": "Equal", "Value": 10**30}]}}}),
]


@pytest.mark.parametrize(
    "body",
    HOSTILE_BODIES,
    ids=["deep", "long-int", "superscript", "feb-30", "list-field", "object-operator", "skip-2^63", "huge-status"],
)
def test_hostile_bodies_with_a_valid_key_are_400_json(logged_key, body):
    response = post(EXPORT, logged_key.value, raw=body)
    assert response.status_code == 400, response.content[:200]
    assert "Message" in response.json()
    assert ApiDocument.objects.get().status_code == 400


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", "x\x00\udfff"])
@pytest.mark.parametrize("field", ["Source", "ApiType"])
def test_nul_and_surrogates_in_filter_values_match_what_was_stored(logged_key, field, value):
    post(EXPORT, logged_key.value, {"Source": value})
    body = {"Data": {"Request": {"Filters": [{"Field": field, "Operator": "Contains", "Value": value}]}}}
    response = post(EXPORT, logged_key.value, raw=json.dumps(body))
    assert response.status_code == 200
    if field == "Source":
        assert response.json()["ApiDocument"]["TotalRecords"] == 1


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/chqapi/nothing-here", 404),
        ("get", "/chqapi/", 404),
        ("get", EXPORT, 405),
        ("put", "/chqapi/status", 405),
    ],
)
def test_every_chqapi_answer_is_json(logged_key, method, path, status):
    response = getattr(Client(), method)(path, HTTP_APIKEY=str(logged_key.value))
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["Message"]
    if status == 405:
        assert response["Allow"] == "POST"


def test_database_unreachable_is_503_json_with_retry_after(logged_key):
    with mock.patch("keys.guard.flow.decide", side_effect=OperationalError("connection refused")):
        response = post("/chqapi/export/inventory", logged_key.value)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "database" in response.json()["Message"]
    with mock.patch("keys.guard.flow.authenticate", side_effect=OperationalError("connection refused")):
        assert post("/chqapi/status", logged_key.value).status_code == 503


def test_exception_outside_the_guard_is_json_500(logged_key):
    with mock.patch("keys.guard.flow.too_large", side_effect=RuntimeError("bug")):
        response = post(EXPORT, logged_key.value)
    assert response.status_code == 500
    assert response.json()["Message"].startswith("The server failed")


# --- 6. query parameters of every page --------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["per_page=-1", "per_page=0", "per_page=100000000", "page=0", "page=abc", "sort=nonsense", "sort=-value%00"],
)
def test_pane_query_is_bounded(client, viewer, query):
    client.force_login(viewer)
    response = client.get(f"{reverse('keys:pane')}?{query}")
    assert response.status_code == 400
    assert b"bad request" in response.content


def test_pane_page_past_the_end_shows_the_last_page(client, viewer, make_key):
    make_key()
    client.force_login(viewer)
    assert client.get(f"{reverse('keys:pane')}?page=99&per_page=100").status_code == 200


@pytest.mark.parametrize(
    "query", ["before=99999999999999999999", "after=-1", "date_to=9999-12-31", "date_from=9999-12-31", "status=99999"]
)
@pytest.mark.parametrize("name", ["keys:logs", "keys:logs-csv"])
def test_log_viewer_query_is_bounded(client, viewer, make_key, name, query):
    key = make_key()
    client.force_login(viewer)
    assert client.get(f"{reverse(name, args=[key.pk])}?{query}").status_code == 400


# --- 7. log injection -------------------------------------------------------------------


def test_control_characters_in_a_path_cannot_forge_log_lines(caplog):
    with caplog.at_level(logging.INFO, logger="keys.security"):
        post("/chqapi/export/x%0DINFO forged line%1B[31m", "not-a-key")
    lines = [r.getMessage() for r in caplog.records if r.name == "keys.security"]
    assert lines
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines)
    assert "\\rINFO forged line\\x1b[31m" in lines[0]


def test_printable_escapes_every_control_character():
    from keys.text import printable

    assert printable("a\nb\r\x00\x7f\x85\ud800") == "a\\nb\\r\\x00\\x7f\\x85\\ud800"
    assert printable("x" * 500) == "x" * 300


# --- 8. throttling -----------------------------------------------------------------------


@override_settings(KEYS_THROTTLE_REFUSALS=3)
def test_ipv6_clients_are_counted_by_their_64():
    statuses = [
        post("/chqapi/export/inventory", uuid.uuid4(), REMOTE_ADDR=f"2001:db8:1:2::{n:x}").status_code
        for n in range(1, 7)
    ]
    assert statuses == [401, 401, 401, 429, 429, 429]
    # Another /64 is another client.
    assert post("/chqapi/export/inventory", uuid.uuid4(), REMOTE_ADDR="2001:db8:1:3::1").status_code == 401


def test_throttle_subjects():
    assert throttle.throttle_subject("2001:db8::1") == throttle.throttle_subject("2001:db8::ffff:1") == "2001:db8::/64"
    assert throttle.throttle_subject("203.0.113.9") == "203.0.113.9"
    assert throttle.throttle_subject(None) == "None"


@override_settings(KEYS_THROTTLE_REFUSALS=1)
def test_throttle_at_a_limit_of_one():
    assert post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.50").status_code == 401
    blocked = post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.50")
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= 60


# --- 9. logins, caching, files --------------------------------------------------------------


def test_failed_logins_are_throttled_per_username_and_address(client, administrator):
    for _ in range(4):
        assert client.post("/accounts/login/", {"username": "administrator", "password": "wrong"}).status_code == 200
    # The fifth failure locks the username from this address, for the right password too.
    assert client.post("/accounts/login/", {"username": "administrator", "password": "wrong"}).status_code == 429
    locked = client.post("/accounts/login/", {"username": "administrator", "password": "a-long-test-password"})
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    # The same user from another address is not locked out by the guesser.
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert (
        other.post("/accounts/login/", {"username": "administrator", "password": "a-long-test-password"}).status_code
        == 302
    )


@pytest.mark.parametrize("name", ["keys:pane", "keys:details", "keys:edit", "keys:history", "keys:logs"])
def test_pages_with_key_values_are_never_cached(client, administrator, make_key, name):
    key = make_key()
    client.force_login(administrator)
    url = reverse(name) if name == "keys:pane" else reverse(name, args=[key.pk])
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


# --- admin -----------------------------------------------------------------------------------


def test_admin_delete_over_a_newer_change_is_refused(client, make_key):
    key = make_key(description="x")
    client.force_login(make_user("boss", group="Integration administrators", is_staff=True))
    url = reverse("admin:keys_apikey_delete", args=[key.pk])
    assert f'name="version" value="{key.version}"' in client.get(url).content.decode()
    ApiKey.objects.filter(pk=key.pk).update(version=key.version + 1)
    response = client.post(url, {"post": "yes", "version": key.version}, follow=True)
    assert ApiKey.objects.filter(pk=key.pk).exists()
    assert "was not removed" in response.content.decode()
    client.post(url, {"post": "yes", "version": key.version + 1})
    assert not ApiKey.objects.filter(pk=key.pk).exists()


def test_admin_save_over_a_newer_change_is_refused_by_the_service(client, make_key):
    key = make_key(description="old")
    client.force_login(make_user("boss", group="Integration administrators", is_staff=True))
    data = {
        "description": "mine",
        "seen_version": key.version,
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
    }
    # The form's early check passes (it reads the row before the other change lands)...
    from keys import admin as keys_admin

    original = keys_admin.ApiKeyAdminForm.clean

    def clean_then_someone_else_saves(form):
        cleaned = original(form)
        ApiKey.objects.filter(pk=key.pk).update(version=key.version + 1, description="theirs")
        return cleaned

    with mock.patch.object(keys_admin.ApiKeyAdminForm, "clean", clean_then_someone_else_saves):
        response = client.post(reverse("admin:keys_apikey_change", args=[key.pk]), data, follow=True)
    # ...and the service, under the row lock, refuses the save (the whole admin transaction rolls back).
    assert ApiKey.objects.get(pk=key.pk).description == "old"
    assert "Nothing was saved" in response.content.decode()


def test_used_api_type_keeps_its_id_and_renames_are_audited(client, make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    client.force_login(make_user("boss", group="Integration administrators", is_staff=True))
    url = reverse("admin:keys_apitype_change", args=[inventory_export.pk])
    moved = {"name": "Inventory Export", "direction": "export", "api_id": "stock", "group": ""}
    response = client.post(url, moved)
    assert response.status_code == 200
    assert "cannot change" in response.content.decode()
    assert ApiType.objects.get(pk=inventory_export.pk).api_id == "inventory"
    renamed = moved | {"api_id": "inventory", "name": "Stock Export"}
    assert client.post(url, renamed).status_code == 302
    entry = KeyAudit.objects.filter(key=key).first()
    assert entry.changes["API type"][1].startswith("Stock Export")
    assert entry.source == "admin"


def test_admin_edits_from_two_concurrent_requests_one_wins(live_server, migrated_data):
    """Two administrators save the same key with the same seen version at the same
    moment, over HTTP: exactly one save lands, the other is told (PostgreSQL's row
    lock or SQLite's write lock, whichever the suite runs on)."""
    from keys.services import api_key_create

    key = api_key_create(description="shared", is_active=True)
    user = make_user("boss", group="Integration administrators", is_staff=True)
    import http.cookiejar
    import urllib.parse
    import urllib.request

    def session():
        client = Client()
        client.force_login(user)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        sessionid = client.cookies["sessionid"].value
        opener.addheaders = [
            ("Cookie", f"sessionid={sessionid}; csrftoken=t" + "k" * 31),
            ("X-CSRFToken", "t" + "k" * 31),
        ]
        return opener

    url = f"{live_server.url}{reverse('admin:keys_apikey_change', args=[key.pk])}"
    rounds = 4
    for n in range(rounds):
        version = ApiKey.objects.get(pk=key.pk).version
        barrier = threading.Barrier(2)
        results = []

        def save(who, opener=None, version=version, barrier=barrier, results=results, n=n):
            data = {
                "description": f"{who}-{n}",
                "seen_version": version,
                "grants-TOTAL_FORMS": "0",
                "grants-INITIAL_FORMS": "0",
                "grants-MIN_NUM_FORMS": "0",
                "grants-MAX_NUM_FORMS": "1000",
            }
            barrier.wait()
            with opener.open(url, urllib.parse.urlencode(data).encode(), timeout=30) as response:
                results.append((who, response.geturl()))

        threads = [threading.Thread(target=save, args=(who,), kwargs={"opener": session()}) for who in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        landed = [who for who, final in results if final.endswith("/admin/keys/apikey/")]
        assert len(results) == 2
        assert len(landed) == 1, (results, list(ApiKey.objects.values("version", "description")))
        current = ApiKey.objects.get(pk=key.pk)
        assert (current.version, current.description) == (version + 1, f"{landed[0]}-{n}")


@override_settings(KEYS_THROTTLE_REFUSALS=2)
def test_reset_api_throttle_lifts_every_block_at_once():
    for _ in range(3):
        post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.60")
    assert post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.60").status_code == 429
    out = io.StringIO()
    call_command("reset_api_throttle", stdout=out)
    assert "cleared" in out.getvalue()
    assert post("/chqapi/export/inventory", "x", REMOTE_ADDR="203.0.113.60").status_code == 401
    assert refusal_counts()["malformed_key"] == 1  # counted again from zero


@pytest.mark.django_db(transaction=True)
def test_the_drivers_own_insert_stores_the_row_and_a_held_lock_sends_it_to_the_spool(logged_key):
    """Outside a transaction, with nothing watching queries, SQLite's own connection runs the
    write (keys/calllog/writer.py): its refusals are Django's errors. Proven with the fault
    itself: another connection holding SQLite's write lock past the busy timeout."""
    import sqlite3

    from django.db import IntegrityError

    from keys import services
    from keys.calllog import writer

    if connection.vendor != "sqlite":
        pytest.skip(
            "the fault under test is SQLite's own write lock on its driver path; on PostgreSQL the row goes"
            " through Django's cursor, whose refusals the refuse_writes_to tests above cover"
        )
    fields = {
        "key_id": logged_key.pk,
        "key_last4": "abcd",
        "key_description": "erp",
        "api_type_id": None,
        "api_type_name": "API Document Export",
        "method": "POST",
        "path": EXPORT,
        "source": "ERP",
        "status_code": 200,
        "duration_ms": 1.0,
        "client_address": "192.0.2.1",
        "request_body": b"{}",
        "response_body": b"{}",
    }
    row = services._api_document_row(document_id=uuid.uuid4(), **fields)
    assert not connection.in_atomic_block
    assert not connection.queries_logged
    assert not connection.execute_wrappers
    writer.store_one(row)
    assert ApiDocument.objects.get(document_id=row["document_id"]).source == "ERP"
    with pytest.raises(IntegrityError):  # the id is taken: sqlite3's error, as Django's
        writer._execute(0, row)

    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    connection.connection.execute("PRAGMA busy_timeout = 50")
    try:
        second = services._api_document_row(document_id=uuid.uuid4(), **fields)
        assert writer.store(second) is False  # refused: "database is locked"
        assert spool.pending() == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        connection.connection.execute("PRAGMA busy_timeout = 5000")
    call_command("replay_api_call_spool", stdout=io.StringIO())
    assert ApiDocument.objects.filter(document_id=second["document_id"]).exists()
