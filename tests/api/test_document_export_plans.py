"""No API Document Export request reads the documents table whole: every statement of every
request shape (no filter, each filter and operator, Contains lists, the sort either way, Skip)
on a table of enough documents, statistics gathered, is planned through an index. On PostgreSQL
by EXPLAIN (ANALYZE, FORMAT JSON): no Seq Scan of keys_apidocument or of any of its
partitions that holds documents (keys/partitions.py: an empty one, days ahead, costs nothing
to read); on SQLite by EXPLAIN QUERY
PLAN: keys_apidocument only SEARCHed, never SCANned."""

import json
import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from keys import partitions
from keys.models import ApiDocument, ApiType
from tests.api_calls import post
from tests.pg_plans import populated

pytestmark = pytest.mark.django_db

EXPORT = "/chqapi/export/apidocument"
ROWS = 30_000
TABLE = ApiDocument._meta.db_table


@pytest.fixture
def filled(make_key, inventory_export, customer_import):
    """ROWS documents of one key and as many of another, in a realistic mix: mostly successful
    synchronous calls of a few types and sources, some errors and async states, made over the
    last four weeks (on PostgreSQL, in their weeks' partitions: several partitions of thousands of
    documents each, the shape of a busy key's, where each is planned by itself); then ANALYZE."""
    rng = random.Random(24)
    key, other = make_key(allowed_for_all=True), make_key(allowed_for_all=True)
    own = ApiType.objects.get(direction="export", api_id="apidocument")
    types = [(inventory_export, "inventory-export"), (customer_import, "customer-import"), (own, "apidocument-export")]
    days = 28  # four or five weeks: partitions of thousands of documents each
    start = timezone.now() - timedelta(days=days)
    partitions.ensure(since=start.date())
    statuses = [ApiDocument.Status.SUCCESSFUL] * 90 + [ApiDocument.Status.ERROR] * 8 + [0, 2]

    def document(owner):
        api_type, request_type = rng.choice(types)
        moment = start + timedelta(seconds=rng.randrange(days * 86400))
        return ApiDocument(
            key=owner,
            key_last4="0000",
            api_type=api_type,
            api_type_name=api_type.name,
            request_type=request_type,
            method="POST",
            path="/",
            source=rng.choice(["ERP", "ERP", "ERP", "shop", "crm", "Integrator", ""]),
            status=rng.choice(statuses),
            status_code=200,
            duration_ms=1.0,
            created_at=moment,
            modified_at=moment + timedelta(seconds=rng.randrange(60)),
        )

    for owner in (key, other):
        ApiDocument.objects.bulk_create((document(owner) for _ in range(ROWS)), batch_size=2000)
    # A type's documents made under an earlier name, and a removed type's: ApiType resolves to those too.
    ApiDocument.objects.filter(pk__in=ApiDocument.objects.filter(key=key).values("pk")[:50]).update(
        request_type="stock-export", api_type_name="Stock Export"
    )
    ApiDocument.objects.filter(pk__in=ApiDocument.objects.filter(key=key).values("pk")[50:90]).update(
        api_type=None, request_type="gone-export", api_type_name="Gone"
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return key


def filters(field, operator, value):
    return {"Filters": [{"Field": field, "Operator": operator, "Value": value}]}


ASCENDING = {"SortDescriptions": [{"Name": "RecModified", "Direction": "Ascending"}]}
DESCENDING = {"SortDescriptions": [{"Name": "RecModified", "Direction": "Descending"}]}
SHAPES = {
    "no filter": {},
    "Status Equal": filters("Status", "Equal", "3"),
    "Status Equal, rare": filters("Status", "Equal", "InQueue"),
    "Status Equal, none": filters("Status", "Equal", "Validation"),
    "Status Notequal": filters("Status", "Notequal", "Successful"),
    "Status Contains": filters("Status", "Contains", "0,2,4"),
    "Source Equal": filters("Source", "Equal", "shop"),
    "Source Notequal": filters("Source", "Notequal", "ERP"),
    "Source Contains": filters("Source", "Contains", "shop,crm"),
    "ApiType Equal": filters("ApiType", "Equal", "customer-import"),
    "ApiType Equal, a type also made under another name": filters("ApiType", "Equal", "inventory-export"),
    "ApiType Equal, an earlier name": filters("ApiType", "Equal", "stock export"),
    "ApiType Equal, a removed type": filters("ApiType", "Equal", "gone-export"),
    "ApiType Notequal": filters("ApiType", "Notequal", "apidocument-export"),
    "ApiType Contains": filters("ApiType", "Contains", "customer-import,API Document Export"),
    "sorted ascending": ASCENDING,
    "sorted descending": DESCENDING,
    "Status Equal, sorted descending": filters("Status", "Equal", "4") | DESCENDING,
    "Skip": {"Skip": 20_000},
    "Skip, sorted ascending": {"Skip": 20_000} | ASCENDING,
    "Skip, Source Contains": {"Skip": 2_000} | filters("Source", "Contains", "shop,crm"),
}


def full_reads(sql: str) -> list[str]:
    """How the statement reads keys_apidocument whole, if it does: the plan's nodes that do."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            (plan,) = cursor.fetchone()
            nodes, found = [(json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]], []
            while nodes:
                node = nodes.pop()
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in populated():
                    found.append(f"Seq Scan, {node['Actual Rows']} rows")
                nodes.extend(node.get("Plans", []))
            return found
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return [d for *_, d in cursor.fetchall() if d.startswith("SCAN") and f" {TABLE}" in f" {d.split()[1]}"]


def test_no_export_request_reads_the_documents_table_whole(filled):
    # Every shape in one test: filling the table is most of its time.
    if connection.vendor == "postgresql":  # the documents are in their days' partitions
        assert len(populated()) >= 4
    found = {}
    for shape, request in SHAPES.items():
        with CaptureQueriesContext(connection) as queries:
            response = post(EXPORT, filled.value, {"Data": {"Request": request | {"Top": 10}}})
        assert response.status_code == 200, response.content
        statements = [q["sql"] for q in queries.captured_queries if TABLE in q["sql"]]
        assert statements, shape  # expire()'s UPDATE at least, and the page unless the counts say it is empty
        found |= {(shape, sql): reads for sql in statements if (reads := full_reads(sql))}
    assert found == {}
