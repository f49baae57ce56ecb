"""The admin's API document list at scale: no page counts the whole table (an exact count up
to a cap, then an estimate on PostgreSQL or "10,000+" on SQLite, said as such), and no filter
asks the documents for their distinct values. Pages render for a superuser and a read-only
user, with every filter; query counts are bounded."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from keys import paginators
from keys.models import ApiDocument
from tests import pg_plans
from tests.conftest import make_user, stored_documents

pytestmark = pytest.mark.django_db
LIST = "admin:keys_apidocument_changelist"


@pytest.fixture(params=["superuser", "viewer"])
def reader(request, db):
    if request.param == "superuser":
        return make_user("root", is_superuser=True, is_staff=True)
    return make_user("vera", group="Integration viewers", is_staff=True)


@pytest.fixture
def logs(make_key, inventory_export):
    key, other = make_key(description="erp"), make_key(description="shop")
    stored_documents(key, 30, api_type=inventory_export, key_last4="abcd")
    stored_documents(key, 3, status=ApiDocument.Status.ERROR, status_code=500, key_last4="abcd")
    stored_documents(other, 5, key_last4="wxyz", source="shop-1")
    return key, other


def document_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "keys_apidocument" in q["sql"]]


FILTERS = [
    {},
    {"key__id__exact": "KEY"},
    {"status__exact": "4"},
    {"status__exact": "3"},
    {"status_code": "500"},
    {"is_async__exact": "0"},
    {"created_at__gte": "2020-01-01 00:00:00+00:00"},
    {"api_type__id__exact": "TYPE"},
    {"q": "shop-1"},
]


@pytest.mark.parametrize("query", FILTERS, ids=lambda q: ",".join(q) or "all")
def test_the_list_renders_with_every_filter_and_never_counts_or_lists_all_documents(
    client, reader, logs, inventory_export, query
):
    key, _ = logs
    query = {k: {"KEY": str(key.pk), "TYPE": str(inventory_export.pk)}.get(v, v) for k, v in query.items()}
    client.force_login(reader)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(LIST), query)
    assert response.status_code == 200, response.content[:500]
    sql = document_queries(queries)
    assert len(queries) <= 12
    assert len(sql) == 2  # the capped count and the page
    assert not [s for s in sql if "DISTINCT" in s]  # no filter asks the documents for their values
    counts = [s for s in sql if "COUNT(" in s]
    assert len(counts) == 1
    assert re.search(r"LIMIT 10001", counts[0])  # counted up to the cap, never the whole table


def test_the_filters_select_what_they_say(client, reader, logs):
    _, other = logs
    client.force_login(reader)
    shown = lambda **q: client.get(reverse(LIST), q).context["cl"].result_count  # noqa: E731
    assert shown() == 38
    assert shown(key__id__exact=other.pk) == 5
    assert shown(status__exact=4) == 3
    assert shown(status__exact=3) == 35
    assert shown(status_code=500) == 3
    assert shown(q="shop-1") == 5
    document = ApiDocument.objects.filter(key=other).first()
    assert shown(q=str(document.document_id)) == 1
    assert shown(q=str(document.document_id).upper()) == 1


def test_an_exact_count_is_said_plainly(client, reader, logs):
    client.force_login(reader)
    html = client.get(reverse(LIST)).text
    assert "38 API documents" in html
    assert "not counted one by one" not in html


def test_beyond_the_cap_the_count_is_said_to_be_capped_or_estimated(client, reader, logs, monkeypatch):
    monkeypatch.setattr(paginators, "CAP", 10)
    client.force_login(reader)
    response = client.get(reverse(LIST))
    html = response.text
    paginator = response.context["cl"].paginator
    assert paginator.is_estimate
    if connection.vendor == "postgresql":
        assert re.search(r"about [\d,]+ API documents \(an estimate from the database's statistics", html)
    else:
        assert "10+ API documents (counted up to 10; not counted one by one)" in html
        assert paginator.count == 11
    assert response.context["cl"].result_list is not None
    assert len(response.context["cl"].result_list) <= 100
    filtered = client.get(reverse(LIST), {"status__exact": "4"}).text  # 3 errors: exact again
    assert "3 results" in filtered


def test_a_bad_filter_value_is_ignored_not_a_500(client, reader, logs):
    client.force_login(reader)
    for query in ({"status__exact": "x"}, {"status__exact": "99"}, {"status_code": "99999"}, {"q": "not-a-uuid"}):
        assert client.get(reverse(LIST), query).status_code == 200


@pytest.mark.parametrize(("n", "shown"), [(10_001, 10_000), (12_345, 12_000), (9_834_567, 9_800_000), (99, 99)])
def test_an_estimate_is_shown_to_two_significant_digits(n, shown):
    assert paginators._rounded(n) == shown


def test_the_paginator_counts_exactly_up_to_the_cap_and_says_so(make_key, monkeypatch):
    monkeypatch.setattr(paginators, "CAP", 4)
    stored_documents(make_key(), 4)
    exact = paginators.EstimatedCountPaginator(ApiDocument.objects.order_by("-id"), 2)
    assert (exact.count, exact.is_estimate, exact.count_text, exact.num_pages) == (4, False, "4", 2)
    stored_documents(make_key(), 1)
    beyond = paginators.EstimatedCountPaginator(ApiDocument.objects.order_by("-id"), 2)
    assert beyond.is_estimate
    assert beyond.count >= 5  # never below the cap + 1: the admin must not take it for a short list
    expected = r"about [\d,]+" if connection.vendor == "postgresql" else r"4\+"
    assert re.fullmatch(expected, beyond.count_text)
    assert len(beyond.page(3).object_list) == 1  # a page past the exact count still answers


def test_a_status_filter_reads_the_partial_status_index_not_the_table(make_key):
    """Errors and documents in flight are few among many: their page comes from the index only
    they enter, read in the page's order (SQLite: its plan; PostgreSQL: after ANALYZE)."""
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    key = make_key()
    stored_documents(key, 20_000)
    stored_documents(key, 20, status=ApiDocument.Status.ERROR)
    stored_documents(key, 5, status=ApiDocument.Status.IN_QUEUE, is_async=True)
    model_admin = site._registry[ApiDocument]
    status_filter = next(f for f in model_admin.list_filter if getattr(f, "parameter_name", "") == "status__exact")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        for status in [s for s in ApiDocument.Status if s != ApiDocument.Status.SUCCESSFUL]:
            request = RequestFactory().get("/", {"status__exact": str(int(status))})
            chosen = status_filter(request, dict(request.GET.items()), ApiDocument, model_admin)
            page = chosen.queryset(request, ApiDocument.objects.order_by("-id"))[:101]
            sql, params = page.query.sql_with_params()
            if connection.vendor == "postgresql":
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                (plan,) = cursor.fetchone()
                read = [n for n in pg_plans.nodes(plan) if n.get("Relation Name") in pg_plans.populated()]
                # Read from an index only unsucceeded documents enter (each partition's copy of it):
                # the status index, or for InProcess the running documents' index (a few rows,
                # sorted). A partitioned table's few rows are sorted after the partitions' scans.
                partial = pg_plans.copies("keys_doc_unsucceeded_idx", "keys_doc_running_started_idx")
                assert read, plan
                assert all(n.get("Index Name") in partial for n in read), plan
            else:
                cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
                plan = " ".join(str(row[-1]) for row in cursor.fetchall())
                assert "TEMP B-TREE" not in plan, plan  # read in the page's order: no sort
                assert "keys_doc_unsucceeded_idx" in plan, plan


def test_the_key_filter_decrypts_no_key_value_and_offers_removed_keys(client, reader, logs):
    """Drawing the filter names keys by description and number: no key's value is decrypted
    (thousands of keys would be thousands of decryptions, and one unreadable key a 500)."""
    from unittest import mock

    from keys import sealing

    key, other = logs
    removed = ApiDocument.objects.filter(key=other)[:2]
    ApiDocument.objects.filter(pk__in=[d.pk for d in removed]).update(key=None)
    client.force_login(reader)
    with mock.patch.object(sealing, "unseal", side_effect=AssertionError("a key value was decrypted")):
        response = client.get(reverse(LIST))
        assert response.status_code == 200
        assert f"erp (number {key.pk})" in response.text
        assert "removed keys" in response.text
        assert client.get(reverse(LIST), {"key__id__exact": "none"}).context["cl"].result_count == 2
