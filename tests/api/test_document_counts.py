"""Kept document counts (keys/counts.py): equal to a COUNT(*) of the documents, grouped,
after every kind of write, and API Document Export's TotalRecords and pages from them equal to
what the COUNT(*) and the unresolved filters gave, for every filter. On the database the run
uses (SQLite by default, PostgreSQL with DATABASE_URL set); the query plans on PostgreSQL are
in test_document_export_plans.py."""

import io
import itertools
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from keys import counts
from keys.calllog import writer
from keys.chqapi import documents, handlers
from keys.chqapi.export_request import Filter
from keys.models import ApiDocument, ApiKey, ApiType, DocumentCount
from keys.services import GrantSpec, api_key_remove
from tests.api_calls import post
from tests.conftest import stored_documents

pytestmark = pytest.mark.django_db

EXPORT = "/chqapi/export/apidocument"
Status = ApiDocument.Status
COLUMNS = ("key", "api_type", "request_type", "api_type_name", "status", "source")


def counted() -> dict[tuple, int]:
    """What the kept counts say, per combination (slots summed, zeros left out)."""
    rows = DocumentCount.objects.values(*(f"{c}_id" if c in ("key", "api_type") else c for c in COLUMNS))
    return {tuple(r.values())[:-1]: r["n"] for r in rows.annotate(n=Sum("n")).order_by() if r["n"]}


def actual() -> dict[tuple, int]:
    """What COUNT(*) of the documents says, per combination (0 for no key or type)."""
    rows = (
        ApiDocument.objects.annotate(k=Coalesce("key_id", 0), t=Coalesce("api_type_id", 0))
        .values("k", "t", *COLUMNS[2:])
        .annotate(n=Count("id"))
        .order_by()
    )
    return {tuple(r.values())[:-1]: r["n"] for r in rows}


def assert_counts_match() -> None:
    assert counted() == actual()


@pytest.fixture
def own_type(db) -> ApiType:
    return ApiType.objects.get(direction="export", api_id="apidocument")


@pytest.fixture
def key(make_key, own_type, inventory_export):
    return make_key(
        description="integrator",
        grants=[GrantSpec(own_type.pk, logged=True), GrantSpec(inventory_export.pk, logged=True)],
    )


def export(key, request=None, **data):
    response = post(EXPORT, key.value, {"Data": {"Request": request or {}, **data}})
    assert response.status_code == 200, response.content
    return response.json()["ApiDocument"]


def queue(key, body=None) -> str:
    return post(f"{EXPORT}/async", key.value, body).json()["Id"]


# --- every kind of write ----------------------------------------------------------------------


def test_a_logged_call_with_the_callers_id_is_counted_once_when_reserved_and_stored(key):
    export(key, ApiDocumentId=str(uuid.uuid4()))  # reserve (InProcess), then the upsert (Successful)
    export(key)  # a fresh id: one INSERT
    post("/chqapi/export/inventory", key.value, {"Source": "ERP"})  # 501, logged all the same
    assert_counts_match()
    assert sum(counted().values()) == 3


def test_a_spooled_row_stored_twice_is_counted_once(key, own_type):
    row = {
        "document_id": str(uuid.uuid4()),
        # As services makes a row: the reservation's moment, which its completion carries.
        "created_at": timezone.now(),
        "key_id": key.pk,
        "key_last4": "abcd",
        "api_type_id": own_type.pk,
        "api_type_name": own_type.name,
        "request_type": "apidocument-export",
        "method": "POST",
        "path": EXPORT,
        "source": "spool",
        "status": Status.SUCCESSFUL,
        "status_code": 200,
        "duration_ms": 1.0,
    }
    writer.reserve(row)
    assert writer.store(row)
    assert writer.store(row)  # the upsert's WHERE leaves a finished document as it is
    assert_counts_match()
    assert counted()[(key.pk, own_type.pk, "apidocument-export", own_type.name, Status.SUCCESSFUL, "spool")] == 1


def test_async_documents_are_counted_through_every_status(key, settings):
    done, failed, waiting = queue(key, {"Source": "a"}), queue(key, {"Data": {"Request": {"Top": -1}}}), queue(key)
    assert_counts_match()
    documents.run(done)
    documents.run(failed)
    assert_counts_match()
    # One stopped while running: expire() marks it Error.
    ApiDocument.objects.filter(document_id=waiting).update(
        status=Status.IN_PROCESS, started_at=timezone.now() - timedelta(days=1)
    )
    settings.KEYS_ASYNC_TIMEOUT_SECONDS = 1
    documents.expire()
    assert ApiDocument.objects.get(document_id=waiting).status == Status.ERROR
    assert_counts_match()


def test_removing_a_key_or_a_type_moves_its_counts_to_none(key, make_key, inventory_export):
    other = make_key(allowed_for_all=True, logged_for_all=True)
    for caller in (key, other):
        post("/chqapi/export/inventory", caller.value)
        export(caller)
    api_key_remove(key=key)
    assert_counts_match()
    inventory_export.delete()  # documents keep their snapshots, SET_NULL on the reference
    assert_counts_match()
    assert any(combination[:2] == (0, 0) for combination in counted())


def test_purge_and_a_bulk_delete_take_their_documents_out_of_the_counts(key):
    stored_documents(key, 30, source="old", created_at=timezone.now() - timedelta(days=400))
    stored_documents(key, 5, source="queued", status=Status.IN_QUEUE, created_at=timezone.now() - timedelta(days=400))
    stored_documents(key, 7, source="new")
    assert_counts_match()
    before = (timezone.localdate() - timedelta(days=30)).isoformat()
    call_command("purge_api_logs", "--before", before, "--no-input", stdout=io.StringIO())
    assert_counts_match()
    assert sum(counted().values()) == 12  # the queued ones are kept
    ApiDocument.objects.filter(source="new").delete()
    assert_counts_match()
    ApiDocument.objects.all().delete()
    assert counted() == {}


def test_admin_changes_and_queryset_updates_are_counted(key):
    stored_documents(key, 4, source="x")
    document = ApiDocument.objects.first()
    document.source, document.status = "edited", Status.ERROR
    document.save()
    ApiDocument.objects.filter(source="x").update(request_type="renamed-export", api_type_name="Renamed")
    ApiDocument.objects.filter(source="edited").update(progress=0.5)  # no counted column changed
    assert_counts_match()


def test_any_sequence_of_writes_keeps_the_counts_exact(key, make_key, inventory_export, customer_import):
    """Hypothesis's sequences of the writes above (bulk inserts, updates of each counted column,
    deletes, logged calls with and without the caller's id, a key or a type removed), the counts
    checked against COUNT(*) after each step."""
    keys = [key, make_key(allowed_for_all=True, logged_for_all=True), make_key(allowed_for_all=True)]
    types = [inventory_export, customer_import, ApiType.objects.get(direction="import", api_id="location")]
    texts = st.sampled_from(["a", "B", "c-export", "Customer Import", ""])

    class Writes(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            ApiDocument.objects.all().delete()  # each sequence starts empty: a bulk delete too

        def documents(self, offset: int, count: int) -> list[int]:
            return list(ApiDocument.objects.order_by("id").values_list("pk", flat=True)[offset : offset + count])

        @rule(
            count=st.integers(1, 20),
            owner=st.sampled_from(keys),
            api_type=st.sampled_from([*types, None]),
            status=st.sampled_from(Status.values),
            source=texts,
        )
        def bulk_insert(self, count, owner, api_type, status, source):
            kept = ApiType.objects.filter(pk=getattr(api_type, "pk", None)).exists()
            owner = owner if ApiKey.objects.filter(pk=owner.pk).exists() else key  # `key` is never removed
            stored_documents(owner, count, api_type=api_type if kept else None, status=status, source=source)

        @rule(
            offset=st.integers(0, 40),
            count=st.integers(1, 10),
            change=st.one_of(
                st.tuples(st.just("status"), st.sampled_from(Status.values)),
                st.tuples(st.sampled_from(["source", "request_type", "api_type_name"]), texts),
                st.tuples(st.just("key_id"), st.sampled_from([None, *(k.pk for k in keys)])),
                st.tuples(st.just("api_type_id"), st.sampled_from([None, *(t.pk for t in types)])),
                st.tuples(st.just("progress"), st.floats(0, 1)),  # no counted column
            ),
        )
        def update(self, offset, count, change):
            field, value = change
            if field in ("key_id", "api_type_id") and value is not None:
                model = ApiKey if field == "key_id" else ApiType
                value = value if model.objects.filter(pk=value).exists() else None
            ApiDocument.objects.filter(pk__in=self.documents(offset, count)).update(**{field: value})

        @rule(offset=st.integers(0, 40), count=st.integers(1, 15))
        def delete(self, offset, count):
            ApiDocument.objects.filter(pk__in=self.documents(offset, count)).delete()

        @rule(own_id=st.booleans())
        def logged_call(self, own_id):
            if ApiKey.objects.filter(pk=key.pk).exists():
                export(key, **({"ApiDocumentId": str(uuid.uuid4())} if own_id else {}))

        @rule(which=st.sampled_from([*keys[1:], *types[1:]]))
        def remove(self, which):
            if isinstance(which, ApiKey) and ApiKey.objects.filter(pk=which.pk).exists():
                api_key_remove(key=ApiKey.objects.get(pk=which.pk))
            elif isinstance(which, ApiType):
                ApiType.objects.filter(pk=which.pk).delete()  # SET_NULL on its documents

        @invariant()
        def counts_match(self):
            assert_counts_match()

    run_state_machine_as_test(
        Writes, settings=settings(max_examples=30, stateful_step_count=15, deadline=None, database=None)
    )


def test_rebuild_counts_every_document_again(key):
    stored_documents(key, 9, source="s")
    DocumentCount.objects.all().delete()  # as after a TRUNCATE the triggers did not see
    counts.rebuild()
    assert_counts_match()


# --- API Document Export from the counts ------------------------------------------------------


@pytest.fixture
def mixed(make_key, own_type, inventory_export, customer_import):
    """Documents of every kind the filters tell apart: types (one renamed since, one removed), request
    types in any case, statuses, sources; and another key's, which no count of this key includes.
    The key's own exports are not logged, so each request finds what the one before did."""
    key = make_key(allowed_for_all=True, description="reader")
    kinds = itertools.product(
        [(inventory_export.pk, "inventory-export", "Inventory Export"), (own_type.pk, "apidocument-export", "X")],
        Status.values,
        ["alpha", "beta", "Gamma"],
    )
    for (type_id, request_type, name), status, source in kinds:
        stored_documents(
            key, 2, api_type_id=type_id, request_type=request_type, api_type_name=name, status=status, source=source
        )
    # Made under other names: "inventory-export" finds only part of the type's documents.
    stored_documents(key, 2, api_type_id=inventory_export.pk, request_type="stock-export", api_type_name="Old Stock")
    stored_documents(key, 3, api_type_id=customer_import.pk, request_type="Customer-IMPORT", api_type_name="Cust")
    stored_documents(key, 4, api_type_id=None, request_type="gone-export", api_type_name="Gone", source="alpha")
    stored_documents(make_key(allowed_for_all=True), 5, source="alpha")
    ApiType.objects.filter(pk=inventory_export.pk).update(name="Stock Export")
    return key


FILTER_VALUES = {
    "Status": ["3", "Error", "0,4", "InQueue,Successful,1"],
    "Source": ["alpha", "Gamma", "gamma", "alpha,beta", "nobody"],
    "ApiType": [
        "inventory-export",
        "INVENTORY-EXPORT",
        "stock export",
        "Inventory Export",
        "customer-import",
        "gone-export",
        "x",
        "old stock",
        "apidocument-export,gone-export",
        "0",
        "nothing-export",
    ],
}


def one_filters():
    for field, values in FILTER_VALUES.items():
        for value, operator in itertools.product(values, ["Equal", "Notequal", "Contains"]):
            if field == "Status" and "," in value and operator != "Contains":
                continue  # Equal takes one status: a 400 (test_documents.py)
            yield [{"Field": field, "Operator": operator, "Value": value}]


def two_filters():
    picks = [("Status", "Contains", "3,4"), ("Source", "Notequal", "beta"), ("ApiType", "Contains", "x,gone-export")]
    picks += [("ApiType", "Notequal", "stock export"), ("Status", "Equal", "0")]
    for a, b in itertools.combinations(picks, 2):
        yield [{"Field": f, "Operator": o, "Value": v} for f, o, v in (a, b)]


def old_found(key, filters):
    """The documents the export found before the counts: its conditions on ApiDocument as they are."""
    parsed = [Filter(field=f["Field"], operator=f["Operator"], value=f["Value"], path="p") for f in filters]
    conditions = [c for _, c in handlers._conditions(parsed)]
    return ApiDocument.objects.filter(key_id=key.pk).alias(**counts.FOLDED).filter(*conditions)


@pytest.mark.parametrize("filters", [*one_filters(), *two_filters()], ids=str)
def test_total_records_and_the_page_are_what_the_count_and_the_filters_gave(mixed, filters):
    answer = export(mixed, {"Filters": filters, "Top": 1000})
    expected = old_found(mixed, filters)
    assert answer["TotalRecords"] == expected.count()
    listed = [d["APIDocumentId"].lower() for d in answer["Response"]["ApiDocuments"]]
    assert listed == [str(u) for u in expected.order_by("id").values_list("document_id", flat=True)]


@pytest.mark.parametrize(
    "request_",
    [
        {"Skip": 3, "Top": 4},
        {"Skip": 3, "Top": 4, "SortDescriptions": [{"Name": "RecModified", "Direction": "Descending"}]},
        {"Skip": 2, "Top": 50, "Filters": [{"Field": "Status", "Operator": "Contains", "Value": "3,4"}]},
        {"Skip": 1, "Top": 3, "Filters": [{"Field": "ApiType", "Operator": "Contains", "Value": "x,gone-export"}]},
    ],
    ids=str,
)
def test_a_page_far_in_lists_what_the_plain_page_would(mixed, monkeypatch, request_):
    """From DEFERRED_SKIP on, the page's ids are found first (an index-only scan of the skipped
    entries): the same documents, in the same order, as slicing the rows themselves."""
    plain = export(mixed, request_)
    monkeypatch.setattr(handlers, "DEFERRED_SKIP", 1)
    deferred = export(mixed, request_)
    assert deferred["TotalRecords"] == plain["TotalRecords"]
    assert deferred["Response"]["ApiDocuments"] == plain["Response"]["ApiDocuments"]
    assert plain["Response"]["ApiDocuments"]


def test_skip_past_the_total_lists_nothing_and_sorts_hold(mixed):
    total = ApiDocument.objects.filter(key_id=mixed.pk).count()
    for request in ({"Skip": total, "Top": 5}, {"Skip": total + 1}):
        answer = export(mixed, request)
        assert (answer["TotalRecords"], answer["Response"]["ApiDocuments"]) == (total, [])
    last = export(mixed, {"Skip": total - 1})["Response"]["ApiDocuments"]
    assert [d["APIDocumentId"].lower() for d in last] == [
        str(ApiDocument.objects.filter(key_id=mixed.pk).latest("id").document_id)
    ]
    ApiDocument.objects.filter(pk=ApiDocument.objects.filter(key_id=mixed.pk).order_by("id")[0].pk).update(
        modified_at=timezone.now() + timedelta(days=1)
    )
    sort = [{"Name": "RecModified", "Direction": "Descending"}]
    newest = export(mixed, {"SortDescriptions": sort, "Top": 2})["Response"]["ApiDocuments"]
    first = ApiDocument.objects.filter(key_id=mixed.pk).order_by("id")[0]
    assert newest[0]["APIDocumentId"].lower() == str(first.document_id)


def test_query_counts_of_an_export(mixed, django_assert_num_queries):
    post(EXPORT, mixed.value)  # warm the decision cache
    # Stale documents to mark, the count, the page (the key's exports are not logged).
    with django_assert_num_queries(3):
        export(mixed, {"Top": 10})
    # ApiType adds the names' ids and the one query that resolves every ApiType filter on the counts.
    filters = [
        {"Field": "ApiType", "Operator": "Contains", "Value": "x,stock export"},
        {"Field": "ApiType", "Operator": "Notequal", "Value": "gone-export"},
        {"Field": "Status", "Operator": "Contains", "Value": "3,4"},
    ]
    with django_assert_num_queries(5):
        export(mixed, {"Filters": filters, "Top": 10})
