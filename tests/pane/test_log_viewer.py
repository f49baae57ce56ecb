"""The log viewer: a key's stored calls with filters, keyset paging, the
entry view and the CSV export."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from keys.models import ApiDocument
from keys.selectors import CSV_COLUMNS, start_of_day
from tests.api_calls import post

pytestmark = pytest.mark.django_db


def make_logs(key, api_type, n, *, start=datetime(2026, 3, 1, 12, 0, tzinfo=UTC), status=200, times=None):
    """`n` documents an hour apart from `start` (or at `times`): a document's time is fixed once
    written (on PostgreSQL it names the document's partition)."""
    times = times or [start + timedelta(hours=i) for i in range(n)]
    logs = ApiDocument.objects.bulk_create(
        ApiDocument(
            key=key,
            key_last4=key.value.hex[-4:],
            api_type=api_type,
            api_type_name=api_type.name,
            method="POST",
            path=api_type.path,
            source=f"src-{i}",
            status_code=status,
            duration_ms=1.5,
            request_body='{"Source": "src"}',
            response_body='{"ok": true}',
            created_at=times[i],
        )
        for i in range(n)
    )
    return logs


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def shown_ids(response):
    return [int(chunk.split('"')[0]) for chunk in response.content.decode().split('<tr data-id="')[1:]]


def test_newest_first_and_keyset_paging(viewer_client, make_key, inventory_export):
    key = make_key()
    logs = make_logs(key, inventory_export, 120)
    url = reverse("keys:logs", args=[key.pk])
    first = viewer_client.get(url)
    ids = shown_ids(first)
    assert ids == [log.pk for log in reversed(logs)][:50]
    older = viewer_client.get(url, {"before": ids[-1]})
    assert shown_ids(older) == [log.pk for log in reversed(logs)][50:100]
    last = viewer_client.get(url, {"before": shown_ids(older)[-1]})
    assert len(shown_ids(last)) == 20
    assert 'rel="next"' not in last.content.decode()
    newer = viewer_client.get(url, {"after": shown_ids(older)[0]})
    assert shown_ids(newer) == ids


def test_filters(viewer_client, make_key, inventory_export, customer_import):
    key = make_key()
    make_logs(key, inventory_export, 3)
    make_logs(key, customer_import, 2, status=500)
    make_logs(key, customer_import, 2, start=datetime(2026, 4, 10, 12, tzinfo=UTC))
    url = reverse("keys:logs", args=[key.pk])
    assert len(shown_ids(viewer_client.get(url, {"api_type": customer_import.pk}))) == 4
    assert len(shown_ids(viewer_client.get(url, {"status": 500}))) == 2
    assert len(shown_ids(viewer_client.get(url, {"date_from": "2026-04-01", "date_to": "2026-04-30"}))) == 2


def test_other_keys_logs_are_not_shown(viewer_client, make_key, inventory_export):
    mine, other = make_key(), make_key()
    make_logs(other, inventory_export, 3)
    assert shown_ids(viewer_client.get(reverse("keys:logs", args=[mine.pk]))) == []


@pytest.mark.parametrize(
    "params", [{"status": "abc"}, {"date_from": "2026-13-01"}, {"date_from": "2026-05-02", "date_to": "2026-05-01"}]
)
def test_bad_filters_are_400_with_a_message(viewer_client, make_key, params):
    key = make_key()
    response = viewer_client.get(reverse("keys:logs", args=[key.pk]), params)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()


def test_entry_shows_request_and_response(viewer_client, make_key, inventory_export):
    key = make_key()
    log = make_logs(key, inventory_export, 1)[0]
    html = viewer_client.get(reverse("keys:log-entry", args=[key.pk, log.pk])).content.decode()
    assert "&quot;Source&quot;: &quot;src&quot;" in html
    assert str(log.document_id) in html
    other = make_key()
    assert viewer_client.get(reverse("keys:log-entry", args=[other.pk, log.pk])).status_code == 404


def test_entry_shows_the_start_of_a_large_async_exports_stored_answer(viewer_client, make_key, settings):

    from keys.chqapi import documents
    from tests.conftest import stored_documents

    settings.KEYS_LOG_BODY_LIMIT = 2000
    key = make_key(allowed_for_all=True, logged_for_all=True)
    stored_documents(key, 50)
    answer = post("/chqapi/export/apidocument/async", key.value)
    document = ApiDocument.objects.get(document_id=answer.json()["Id"])
    documents.run(str(document.document_id))
    html = viewer_client.get(reverse("keys:log-entry", args=[key.pk, document.pk])).content.decode()
    shown = html.split('<pre class="body">')[2].split("</pre>")[0]
    assert shown.startswith("{&quot;ApiDocument&quot;: {&quot;ApiDocumentId&quot;: &quot;")
    assert 1900 < len(shown.replace("&quot;", '"')) <= 2000  # the first part only, however long the answer


def test_csv_export_of_the_filtered_list(viewer_client, make_key, inventory_export, customer_import):
    key = make_key()
    make_logs(key, inventory_export, 3)
    make_logs(key, customer_import, 2)
    response = viewer_client.get(reverse("keys:logs-csv", args=[key.pk]), {"api_type": inventory_export.pk})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["ApiDocumentId", "when", "API type"]
    assert [r[2] for r in rows[1:]] == ["Inventory Export"] * 3


def test_the_csv_reads_only_the_columns_it_writes(viewer_client, make_key, inventory_export):
    """A month of a busy key is over a million rows: made as model instances with their bodies
    they took past gunicorn's 30 s worker timeout (bench/logs_at_scale.py at 10,000,000)."""
    key = make_key()
    make_logs(key, inventory_export, 3)
    response = viewer_client.get(reverse("keys:logs-csv", args=[key.pk]))
    with CaptureQueriesContext(connection) as queries:
        pieces = list(response.streaming_content)
    assert len(pieces) == 1  # rows go out in pieces of many, not a write each
    assert len(list(csv.reader(io.StringIO(pieces[0].decode())))) == 4
    (read,) = [q["sql"] for q in queries.captured_queries if ApiDocument._meta.db_table in q["sql"]]
    selected = read.split(" FROM ")[0]
    assert "request_body" not in selected
    assert "response_body" not in selected
    assert selected.count('"keys_apidocument".') == len(CSV_COLUMNS)


def test_logs_need_access_right(client, nobody, make_key):
    key = make_key()
    client.force_login(nobody)
    for name in ("keys:logs", "keys:logs-csv"):
        assert client.get(reverse(name, args=[key.pk])).status_code == 403


def test_first_page_query_count_does_not_grow(viewer_client, make_key, inventory_export, django_assert_max_num_queries):
    key = make_key()
    make_logs(key, inventory_export, 500)
    # session, user, 2 x permissions, key, API types for the filter, page of logs
    with django_assert_max_num_queries(8):
        response = viewer_client.get(reverse("keys:logs", args=[key.pk]))
    assert len(shown_ids(response)) == 50


# --- a date filter pages in time order, from created_at's index ---------------------------


def test_a_date_filter_pages_newest_first_by_time_and_back(viewer_client, make_key, inventory_export):
    """Times that do not follow the ids (a long call stored at its end, a bulk load): the
    filtered pages follow the times, and paging back returns the same pages."""
    key = make_key()
    # Times falling as ids rise, two per hour.
    times = [datetime(2026, 3, 20, 12, tzinfo=UTC) - timedelta(hours=n // 2) for n in range(130)]
    logs = make_logs(key, inventory_export, 130, times=times)
    url = reverse("keys:logs", args=[key.pk])
    query = {"date_from": "2026-03-18", "date_to": "2026-03-19"}
    expected = sorted(
        (log for log in logs if start_of_day(date(2026, 3, 18)) <= log.created_at < start_of_day(date(2026, 3, 20))),
        key=lambda log: (log.created_at, log.pk),
        reverse=True,
    )
    expected = [log.pk for log in expected]
    assert 50 < len(expected) < 100  # two pages; the range cuts off newer and older documents
    first = shown_ids(viewer_client.get(url, query))
    assert first == expected[:50]
    second = shown_ids(viewer_client.get(url, query | {"before": first[-1]}))
    assert second == expected[50:]
    assert shown_ids(viewer_client.get(url, query | {"after": second[0]})) == first


def test_a_date_filters_page_after_its_anchor_was_purged_still_answers(viewer_client, make_key, inventory_export):
    key = make_key()
    logs = make_logs(key, inventory_export, 60)
    url = reverse("keys:logs", args=[key.pk])
    query = {"date_from": "2026-03-01"}
    first = shown_ids(viewer_client.get(url, query))
    ApiDocument.objects.filter(pk=first[-1]).delete()
    older = viewer_client.get(url, query | {"before": first[-1]})
    assert older.status_code == 200
    assert shown_ids(older) == [log.pk for log in reversed(logs)][50:]


def test_a_date_filter_reads_the_range_from_the_index_not_the_keys_newer_documents(make_key, inventory_export):
    """The first page of a range that ends long ago: an index range read from its end, no sort of
    the key's documents (SQLite's plan; PostgreSQL's after ANALYZE of 20,000 documents)."""
    from keys import selectors
    from tests.conftest import stored_documents

    key = make_key()
    stored_documents(key, 20_000, created_at=datetime(2026, 3, 1, tzinfo=UTC))
    make_logs(key, inventory_export, 30, start=datetime(2026, 1, 1, tzinfo=UTC))
    filters = {"date_to": datetime(2026, 1, 31, tzinfo=UTC).date()}
    page = selectors.api_call_logs(key=key, filters=filters)[:51]
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            plan = str(cursor.fetchone()[0])
            assert "Seq Scan" not in plan, plan
            # The created_at index (on PostgreSQL each partition's copy of it: keys/partitions.py).
            assert re.search(r"'Index Name': '[a-z0-9_]*created_at", plan), plan
            assert "'Rows Removed by Filter': 0" in plan or "Rows Removed by Filter" not in plan, plan
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "created_at" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
    assert len(list(page)) == 30


def test_the_type_filter_offers_the_types_the_key_called_in_one_query(
    make_key, inventory_export, customer_import, django_assert_num_queries
):
    """One recursive query, one index entry per type called (keys/selectors.py says why not EXISTS)."""
    from keys.selectors import called_api_type_ids

    key, other, silent = make_key(), make_key(), make_key()
    make_logs(key, inventory_export, 3)
    make_logs(key, customer_import, 2)
    make_logs(other, customer_import, 1)
    ApiDocument.objects.filter(pk=make_logs(key, inventory_export, 1)[0].pk).update(api_type=None)  # a removed type
    with django_assert_num_queries(1):
        assert sorted(called_api_type_ids(key)) == sorted([inventory_export.pk, customer_import.pk])
    assert called_api_type_ids(other) == [customer_import.pk]
    assert called_api_type_ids(silent) == []


@pytest.mark.parametrize("made", [4, 5, 6])
def test_a_csv_holds_the_newest_rows_it_may_and_says_when_there_were_more(make_key, inventory_export, made):
    """CSV_ROWS keeps a download inside the worker's timeout: a longer selection gets the newest
    rows and a last line that says more match (here the limit is 5)."""
    from keys import selectors

    key = make_key()
    logs = make_logs(key, inventory_export, made)
    text = "".join(selectors.api_call_logs_csv(selectors.api_call_logs(key=key, filters={}), most=5))
    rows = list(csv.reader(io.StringIO(text)))
    data = [r for r in rows[1:] if len(r) > 1]
    assert [r[0] for r in data] == [str(d.document_id) for d in reversed(logs)][:5]
    notice = [r[0] for r in rows[1:] if len(r) == 1]
    assert notice == (
        ["… more than 5 calls match: this file holds the newest 5. Export a shorter date range for the others."]
        if made > 5
        else []
    )


def test_the_csv_streams_under_asgi_too(viewer, make_key, inventory_export):
    """Django's ASGI handler would read a sync iterator whole before its first byte (and warn):
    the CSV goes as an async iterator that takes each piece in the view's thread (keys/streams.py)."""
    import warnings

    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    key = make_key()
    logs = make_logs(key, inventory_export, 2500)

    async def download():
        client = AsyncClient()
        await client.aforce_login(viewer)
        response = await client.get(reverse("keys:logs-csv", args=[key.pk]))
        return response, [piece async for piece in response]

    with warnings.catch_warnings():
        warnings.filterwarnings("error", "StreamingHttpResponse must consume synchronous iterators")
        response, pieces = async_to_sync(download)()
    assert (response.status_code, response.is_async) == (200, True)
    assert len(pieces) > 2  # sent in pieces, as made
    rows = list(csv.reader(io.StringIO(b"".join(pieces).decode())))
    assert [r[0] for r in rows[1:]] == [str(d.document_id) for d in reversed(logs)]
