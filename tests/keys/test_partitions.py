"""PostgreSQL's daily partitions of the documents (keys/partitions.py): made ahead, a document
in its day's, DEFAULT's documents moved when their day's partition is made, whole partitions
dropped by a purge with their counts, chunks and claims, a drop that cannot have its lock in
time changing nothing, a caller's id taken once across partitions, and the migration keeping
the documents where they are, both ways. SQLite keeps one table (the command says so)."""

import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from keys import partitions, retention
from keys.calllog import writer
from keys.models import ApiDocument, ApiDocumentChunk, DocumentIdClaim
from tests.api.test_document_counts import assert_counts_match

Status = ApiDocument.Status
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps the documents in one table: no partitions"
)
TODAY = timezone.now().astimezone(UTC).date()


def document(key, when, **fields) -> ApiDocument:
    values = {
        "key": key,
        "key_last4": "abcd",
        "api_type_name": "x",
        "method": "POST",
        "path": "/",
        "status_code": 200,
        "duration_ms": 1,
        "created_at": when,
    }
    return ApiDocument.objects.create(**(values | fields))


def partition_of(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {partitions.PARENT} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def waits_for_locks_as_before() -> bool:
    """The test's transaction has no lock_timeout left over from a partition made or dropped in
    it (a SET LOCAL would outlast their savepoint: this suite's ANALYZE then gave up after 200 ms)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        return cursor.fetchone()[0] == "0"


def names() -> set[str]:
    return {p.name for p in partitions.partitions()}


def day(n: int) -> datetime:
    """Noon of the day n days from today (UTC)."""
    return partitions.day_start(TODAY + timedelta(days=n)) + timedelta(hours=12)


@pytest.fixture
def daily(settings):
    """Partitions of a day (the tests' days are their partitions); migration 0021 made weeks."""
    settings.KEYS_LOG_PARTITION = "day"


def covering(moment: datetime) -> list[str]:
    return [p.name for p in partitions.partitions() if not p.is_default and (p.start or moment) <= moment < p.end]


@pytest.mark.parametrize("value", ["weekly", "", None, 7])
def test_a_partition_span_it_cannot_read_is_a_system_check_error(settings, value):
    settings.KEYS_LOG_PARTITION = value
    assert [e.id for e in run_checks() if e.id == "keys.E032"] == ["keys.E032"]


@pytest.mark.parametrize("value", partitions.SPANS)
def test_each_partition_span_passes_the_checks(settings, value):
    settings.KEYS_LOG_PARTITION = value
    assert not [e for e in run_checks() if e.id == "keys.E032"]


def test_spans_are_a_day_a_monday_to_monday_week_or_a_calendar_month():
    d = date(2026, 12, 2)  # a Wednesday
    assert partitions.span_of(d, "day") == (d, date(2026, 12, 3))
    assert partitions.span_of(d, "week") == (date(2026, 11, 30), date(2026, 12, 7))
    assert partitions.span_of(d, "month") == (date(2026, 12, 1), date(2027, 1, 1))
    assert partitions.span_of(date(2027, 2, 28), "month") == (date(2027, 2, 1), date(2027, 3, 1))


def test_the_gaps_of_a_span_are_what_no_partition_holds():
    at = [datetime(2026, 12, n, tzinfo=UTC) for n in range(1, 15)]
    taken = [(None, at[1]), (at[3], at[4]), (at[4], at[5])]  # up to the 2nd, the 4th to the 6th
    assert list(partitions._gaps(at[0], at[7], taken)) == [(at[1], at[3]), (at[5], at[7])]
    assert list(partitions._gaps(at[3], at[5], taken)) == []
    assert list(partitions._gaps(at[8], at[9], taken)) == [(at[8], at[9])]


@pytest.mark.django_db
def test_the_command_says_sqlite_has_no_partitions_or_lists_them():
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="one table"):
            call_command("api_log_partitions")
        return
    with pytest.raises(CommandError, match="--ahead"):
        call_command("api_log_partitions", "--ahead", "-1")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("api_log_partitions", "--since", "yesterday")


@on_postgresql
@pytest.mark.django_db
def test_partitions_are_made_a_week_ahead_and_a_default_takes_any_other_day(make_key):
    for n in range(partitions.AHEAD_DAYS + 1):  # each day one partition's (weeks, as the migration made them)
        (holding,) = covering(day(n))
        assert holding == f"{partitions.PARENT}_{partitions.span_of(TODAY + timedelta(days=n), 'week')[0]:%Y%m%d}"
    assert partitions.DEFAULT in names()
    key = make_key()
    assert partition_of(document(key, day(1)).pk) == covering(day(1))[0]
    assert partition_of(document(key, day(-400)).pk) == partitions.DEFAULT
    assert partitions.ensure() == []  # nothing missing: made once
    # Another worker's ensure() made it between this one's look and its turn: nothing happens.
    (this_week,) = [p for p in partitions.partitions() if p.name == covering(day(0))[0]]
    assert partitions._make(this_week.start, this_week.end, "default") is None
    assert covering(day(0)) == [this_week.name]


@on_postgresql
@pytest.mark.django_db
def test_a_changed_span_fills_only_what_the_partitions_made_before_do_not_hold(settings):
    settings.KEYS_LOG_PARTITION = "day"
    monday = partitions.span_of(TODAY - timedelta(days=21), "week")[0]
    assert len(partitions.ensure(since=monday + timedelta(days=2), ahead=0)) >= 19  # days from a Wednesday
    settings.KEYS_LOG_PARTITION = "month"
    partitions.ensure(since=monday - timedelta(days=40), ahead=0)
    settings.KEYS_LOG_PARTITION = "week"
    partitions.ensure(since=monday - timedelta(days=40), ahead=partitions.AHEAD_DAYS)
    for n in range(-40, partitions.AHEAD_DAYS + 1):  # every day in exactly one partition
        assert len(covering(partitions.day_start(monday + timedelta(days=n)))) == 1, n


@on_postgresql
@pytest.mark.django_db
def test_a_days_documents_in_default_move_into_its_partition_when_it_is_made(daily, make_key):
    key = make_key()
    old = [document(key, day(-30)).pk for _ in range(3)]
    other = document(key, day(-31)).pk
    assert {partition_of(pk) for pk in old} == {partitions.DEFAULT}
    (made,) = partitions.ensure(since=TODAY - timedelta(days=30))[:1]
    assert made == f"{partitions.PARENT}_{TODAY - timedelta(days=30):%Y%m%d}"
    assert {partition_of(pk) for pk in old} == {made}
    assert partition_of(other) == partitions.DEFAULT
    assert waits_for_locks_as_before()
    assert ApiDocument.objects.count() == 4
    assert_counts_match()


@on_postgresql
@pytest.mark.django_db
def test_a_documents_time_cannot_change(make_key):
    pk = document(make_key(), day(0)).pk
    with pytest.raises(IntegrityError, match="created_at cannot change"), transaction.atomic():
        ApiDocument.objects.filter(pk=pk).update(created_at=day(-400))
    ApiDocument.objects.filter(pk=pk).update(status_code=500)  # anything else may
    assert_counts_match()


@on_postgresql
@pytest.mark.django_db
def test_a_purge_drops_whole_finished_partitions_and_deletes_only_at_the_edges(daily, make_key):
    key, other = make_key(), make_key()
    partitions.ensure(since=TODAY - timedelta(days=10))
    dropped_days = [-10, -9, -8]
    gone = [document(key, day(n)).pk for n in dropped_days for _ in range(4)]
    gone += [document(other, day(-9), status=Status.ERROR).pk]
    exported = document(key, day(-8), is_async=True)
    ApiDocumentChunk.objects.create(document=exported, seq=0, text="{}")
    gone.append(exported.pk)
    claimed = uuid.uuid4()
    DocumentIdClaim.objects.create(document_id=claimed, created_at=day(-9))
    # A day holding a running document is kept, its finished documents deleted in batches.
    running = document(key, day(-7), is_async=True, status=Status.IN_PROCESS).pk
    gone.append(document(key, day(-7)).pk)
    # The edge: the cutoff falls inside day -6; what is before it goes, what is after stays.
    cutoff = partitions.day_start(TODAY - timedelta(days=6)) + timedelta(hours=12)
    gone.append(document(key, cutoff - timedelta(hours=1)).pk)
    kept = [running, document(key, cutoff + timedelta(hours=1)).pk, document(key, day(0)).pk]
    before = names()
    with connection.cursor() as cursor:  # the test's own inserts' key checks, which a DROP may not leave pending
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    done = retention.documents_purge(before=cutoff)

    assert done.deleted == len(gone)
    assert set(ApiDocument.objects.values_list("pk", flat=True)) == set(kept)
    dropped = {f"{partitions.PARENT}_{TODAY + timedelta(days=n):%Y%m%d}" for n in dropped_days}
    assert names() == before - dropped  # the days before them (-10 ...) were dropped too, empty or not
    assert f"{partitions.PARENT}_{TODAY - timedelta(days=7):%Y%m%d}" in names()
    assert not ApiDocumentChunk.objects.exists()
    assert not DocumentIdClaim.objects.filter(document_id=claimed).exists()
    assert waits_for_locks_as_before()
    assert_counts_match()


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_drop_that_cannot_have_its_lock_in_time_changes_nothing_and_a_later_one_drops(daily, make_key, caplog):
    """A long reader (a streamed export) holds the documents table: the drop waits LOCK_TIMEOUT,
    gives up, and writers were held up no longer than that; once the reader is done it drops."""
    key = make_key()
    partitions.ensure(since=TODAY - timedelta(days=10))  # days before this week's partition
    ids = [document(key, day(-10)).pk for _ in range(3)]
    (partition,) = partitions.droppable(partitions.day_start(TODAY - timedelta(days=9)))
    settings = connection.settings_dict
    reader = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
    )
    try:
        reader.execute(f"SELECT count(*) FROM {partitions.PARENT}")  # its transaction stays open
        with transaction.atomic():
            assert partitions.drop(partition) is None
        assert "its lock was not had within" in caplog.text
        assert set(ApiDocument.objects.values_list("pk", flat=True)) == set(ids)
        assert partition.name in names()
        assert_counts_match()
    finally:
        reader.rollback()
        reader.close()
    with transaction.atomic():
        assert partitions.drop(partition) == 3
    assert not ApiDocument.objects.exists()
    assert partition.name not in names()
    assert_counts_match()


def _row(document_id, when) -> dict:
    return {
        "document_id": str(document_id),
        "created_at": when,
        "key_last4": "abcd",
        "api_type_name": "x",
        "method": "POST",
        "path": "/",
        "status_code": 200,
        "duration_ms": 1.0,
    }


@on_postgresql
@pytest.mark.django_db
def test_a_callers_id_is_taken_once_whatever_the_day_of_either_document():
    given = uuid.uuid4()
    writer.reserve(_row(given, day(-400)))  # in DEFAULT
    with pytest.raises(writer.Taken):
        writer.reserve(_row(given, day(0)))  # another partition: the claim refuses it
    # An id made here, stored, then sent back as a caller's own: no claim of it, but the document.
    made = uuid.uuid4()
    assert writer.store(_row(made, day(1)))
    with pytest.raises(writer.Taken):
        writer.reserve(_row(made, day(0)))
    assert ApiDocument.objects.filter(document_id=given).count() == 1
    assert ApiDocument.objects.filter(document_id=made).count() == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_reservations_of_one_id_racing_store_one_document():
    given, start = uuid.uuid4(), threading.Barrier(2)
    outcomes = []

    def reserve(when):
        start.wait()
        try:
            writer.reserve(_row(given, when))
            outcomes.append("stored")
        except writer.Taken:
            outcomes.append("taken")
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve, args=(when,)) for when in (day(0), day(1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["stored", "taken"]
    assert ApiDocument.objects.filter(document_id=given).count() == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_documents_in_place_and_reverses(make_key):
    key = make_key()  # 0021 leaves the keys' table as it is
    executor = MigrationExecutor(connection)
    executor.migrate([("keys", "0020_document_counts")])
    old = executor.loader.project_state(("keys", "0020_document_counts")).apps
    OldDocument, OldChunk = old.get_model("keys", "ApiDocument"), old.get_model("keys", "ApiDocumentChunk")
    fields = {"key_last4": "abcd", "api_type_name": "x", "method": "POST", "path": "/", "status_code": 200}
    earlier = OldDocument.objects.create(key_id=key.pk, duration_ms=1, created_at=day(-3), **fields)
    newest = OldDocument.objects.create(key_id=key.pk, duration_ms=1, created_at=day(0), is_async=True, **fields)
    OldChunk.objects.create(document=newest, seq=0, text="answer")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("keys"))
    assert partition_of(earlier.pk) == partition_of(newest.pk) == partitions.LEGACY
    legacy = next(p for p in partitions.partitions() if p.name == partitions.LEGACY)
    assert legacy.start is None
    assert legacy.end == partitions.day_start(TODAY + timedelta(days=1))
    assert f"{partitions.PARENT}_{TODAY + timedelta(days=1):%Y%m%d}" in names()
    assert ApiDocument.objects.get(pk=newest.pk).response_text() == "answer"
    assert_counts_match()
    later = document(key, day(1))
    assert later.pk > newest.pk  # the ids go on from the old table's
    with pytest.raises(writer.Taken):  # an id of the old table is taken, though never claimed
        writer.reserve(_row(ApiDocument.objects.get(pk=earlier.pk).document_id, day(1)))

    executor = MigrationExecutor(connection)
    executor.migrate([("keys", "0020_document_counts")])
    OldDocument = executor.loader.project_state(("keys", "0020_document_counts")).apps.get_model("keys", "ApiDocument")
    assert set(OldDocument.objects.values_list("pk", flat=True)) == {earlier.pk, newest.pk, later.pk}
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [partitions.PARENT])
        assert cursor.fetchone()[0] == "r"  # one plain table again

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("keys"))
    assert ApiDocument.objects.count() == 3
    assert_counts_match()
