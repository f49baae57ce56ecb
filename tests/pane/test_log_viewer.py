"""The log viewer: a key's stored calls with filters, keyset paging, the
entry view and the CSV export."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from keys.models import ApiDocument
from tests.api_calls import post

pytestmark = pytest.mark.django_db


def make_logs(key, api_type, n, *, start=datetime(2026, 3, 1, 12, 0, tzinfo=UTC), status=200):
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
        )
        for i in range(n)
    )
    for i, log in enumerate(logs):  # auto_now_add ignores given values; set the times afterwards
        log.created_at = start + timedelta(hours=i)
    ApiDocument.objects.bulk_update(logs, ["created_at"])
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
