"""Reads for the pane and dialogs; every queryset a page needs, made in one place."""

import csv
import io
import operator
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce

from django.conf import settings
from django.db import connections
from django.db.models import F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import sealing
from .models import ApiDocument, ApiKey, ApiKeyGrant, ApiType, KeyUsage


def api_key_list(search: str = "") -> QuerySet[ApiKey]:
    """The keys table: one query for the page plus one for its keys' grants (their state column)."""
    keys = ApiKey.objects.only(
        "pk",
        "value_sealed",
        "description",
        "is_active",
        "allowed_for_all",
        "logged_for_all",
        "logging_until",
        "expires_at",
        "previous_sealed",
        "previous_until",
        "created_at",
        "last_used_at",
    ).prefetch_related(Prefetch("grants", queryset=ApiKeyGrant.objects.only("key_id", "logged", "logging_until")))
    keys = keys.annotate(calls_7_days=calls_since(7))
    return keys.filter(key_search(search)) if search else keys


GUID_CHARACTERS = set("0123456789abcdef-")


def key_search(search: str) -> Q:
    """Every word must match the description or a part of the value (the last
    four characters, as CHQ users quote a key, or the whole GUID)."""
    condition = Q()
    for word in search.lower().split():
        matches = Q(description__icontains=word)
        if set(word) <= GUID_CHARACTERS:
            whole = len(word.replace("-", "")) == 32
            matches |= Q(value_digest=sealing.digest(uuid.UUID(word))) if whole else Q(pk__in=_values_containing(word))
        condition &= matches
    return condition


# At most this many hex digits of a key's value may stand in an address (URL): the last four
# characters, as CHQ users quote a key, and any part up to one group of a GUID (32 of its 122 bits).
ADDRESS_VALUE_DIGITS = 8


def search_for_address(search: str) -> str:
    """`search` as an address may carry it: without the words that are a longer part of a key
    value (a whole value above all). URLs end up in access logs, browser history and a login's
    `next=`; the value is the key."""
    return " ".join(
        word
        for word in search.split()
        if not (set(word.lower()) <= GUID_CHARACTERS and len(word.replace("-", "")) > ADDRESS_VALUE_DIGITS)
    )


def _values_containing(part: str) -> list[int]:
    """Keys whose value contains `part`. Values are stored only encrypted, so the
    database cannot compare them: each is decrypted here (about 12 µs a key measured, so
    0.12 s for 10,000 keys; only a search for a partial value pays it)."""
    return [
        pk
        for pk, sealed in ApiKey.objects.values_list("pk", "value_sealed").iterator(chunk_size=2000)
        if part in str(value := sealing.unseal(sealed)) or part in value.hex
    ]


def api_type_list() -> QuerySet[ApiType]:
    return ApiType.objects.order_by("name")


def api_key_grants(key: ApiKey) -> QuerySet[ApiKeyGrant]:
    return key.grants.select_related("api_type").order_by("api_type__name")


def log_reads() -> str:
    """The database alias the log viewer, its CSV and usage read (KEYS_LOG_READ_DATABASE; a replica may
    serve them, where a page a moment behind is harmless). The API's own reads (status, getdata, API
    Document Export) stay on "default": a caller must see its document the moment it is answered."""
    return settings.KEYS_LOG_READ_DATABASE


def api_call_logs(*, key: ApiKey, filters: dict) -> QuerySet[ApiDocument]:
    """A key's stored calls, newest first, filtered by the log viewer's form.
    Dates are whole days in the site's time zone."""
    logs = ApiDocument.objects.using(log_reads()).filter(key_id=key.pk)
    if filters.get("api_type"):
        logs = logs.filter(api_type=filters["api_type"])
    if filters.get("date_from"):
        logs = logs.filter(created_at__gte=start_of_day(filters["date_from"]))
    if filters.get("date_to"):
        logs = logs.filter(created_at__lt=start_of_day(filters["date_to"] + timedelta(days=1)))
    if filters.get("status") is not None:
        logs = logs.filter(status_code=filters["status"])
    if filters.get("date_from") or filters.get("date_to"):
        # Newest first by time, through created_at's index from the range's end: in id order,
        # a range that ends in the past would read every newer document of the key to skip them.
        return logs.order_by(*BY_TIME)
    return logs.order_by("-id")


BY_TIME = ("-created_at", "-id")


def called_api_type_ids(key: ApiKey) -> list[int]:
    """The API types a key has stored calls of, in one query that reads one entry of the
    (key, api_type, id) index per such type (a "loose index scan": each step is the next type
    after the last one found). Not EXISTS per type, nor DISTINCT: PostgreSQL plans either as a
    read of every document of the key (390 ms at 200,000 documents), and a LIMIT 1 probe per
    type as a scan of the whole table for each type the key never called."""
    connection = connections[log_reads()]  # where the viewer's rows are read
    quote = connection.ops.quote_name
    table = quote(ApiDocument._meta.db_table)
    step = f"SELECT MIN(api_type_id) FROM {table} WHERE key_id = %s AND api_type_id > called.id"
    sql = (
        f"WITH RECURSIVE called(id) AS (SELECT MIN(api_type_id) FROM {table} WHERE key_id = %s"
        f" UNION ALL SELECT ({step}) FROM called WHERE called.id IS NOT NULL)"
        " SELECT id FROM called WHERE id IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key.pk, key.pk])
        return [row[0] for row in cursor.fetchall()]


def start_of_day(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def log_page(logs: QuerySet[ApiDocument], *, before: int | None, after: int | None, size: int):
    """Keyset paging: constant work per page however many rows there are. On id, or for logs in
    time order (BY_TIME, a date filter's) on (created_at, id) from the row named by `before` or
    `after` (one probe of the primary key), so the links keep naming a row by its id.
    Returns (rows, newer_exists, older_exists)."""
    by_time = tuple(logs.query.order_by) == BY_TIME
    anchor = after if after is not None else before
    if anchor is not None:
        past = _past(anchor, by_time=by_time, newer=after is not None)
    if after is not None:
        rows = list(logs.filter(past).order_by(*(f.lstrip("-") for f in logs.query.order_by))[: size + 1])
        newer = len(rows) > size
        rows = rows[:size][::-1]
        return rows, newer, True
    if before is not None:
        logs = logs.filter(past)
    rows = list(logs[: size + 1])
    return rows[:size], before is not None, len(rows) > size


def _past(anchor: int, *, by_time: bool, newer: bool) -> Q:
    """The rows after the anchor row in the page's order: newer ones (`newer`) or older ones."""
    side = "gt" if newer else "lt"
    at = ApiDocument.objects.filter(pk=anchor).values_list("created_at", flat=True).first() if by_time else None
    if at is None:  # id order, or the anchor row is gone (purged): its id still splits the pages
        return Q(**{f"id__{side}": anchor})
    # The bound on created_at alone too: it is what the index range starts from.
    within = Q(**{f"created_at__{side}e": at})
    return within & (Q(**{f"created_at__{side}": at}) | Q(created_at=at, **{f"id__{side}": anchor}))


class _Echo:
    """csv.writer target that hands each row back instead of buffering it."""

    def write(self, value: str) -> str:
        return value


# A cell a spreadsheet would run as a formula starts with one of these (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A caller's text as a CSV cell no spreadsheet runs: a leading quote makes it plain text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


CSV_HEADER = ["ApiDocumentId", "when", "API type", "method", "path", "source", "status", "duration ms", "client"]
# The columns CSV_HEADER's cells come from, in its order.
CSV_COLUMNS = (
    "document_id",
    "created_at",
    "api_type_name",
    "method",
    "path",
    "source",
    "status_code",
    "duration_ms",
    "client_address",
)


# The most rows one CSV holds: at about 50,000 rows a second (bench/logs_at_scale.py), 500,000 take
# 10 s, well inside a sync gunicorn worker's 30 s timeout, which a streamed answer does not reset:
# a month of a busy key (1,666,667 rows at 10,000,000 documents) took 29 s, and more would have been
# cut off mid-file. A longer selection gets its newest CSV_ROWS and a last line that says so.
CSV_ROWS = 500_000
CSV_MORE = (
    "… more than {rows:,} calls match: this file holds the newest {rows:,}. Export a shorter date range for the others."
)


def api_call_logs_csv(logs: QuerySet[ApiDocument], *, piece_rows: int = 1000, most: int = CSV_ROWS) -> Iterator[str]:
    """The logs as CSV lines, read in chunks, so a million rows never sit in memory at once.
    Only CSV_COLUMNS, as tuples, written piece_rows rows at a time: model instances of every
    column (the bodies too), a row a write, made a month of a busy key (1,666,667 rows at
    10,000,000 documents) take about 70 s, past gunicorn's 30 s worker timeout, which cut the
    download off. At most `most` rows (the newest: the logs come newest first), then a line
    saying there were more."""
    piece = io.StringIO()
    writer = csv.writer(piece)
    writer.writerow(CSV_HEADER)
    rows = []
    read = logs.values_list(*CSV_COLUMNS)[: most + 1].iterator(chunk_size=2000)
    for n, (document_id, created_at, type_name, method, path, source, code, duration, client) in enumerate(read):
        if n == most:
            writer.writerows(rows)
            writer.writerow([CSV_MORE.format(rows=most)])
            yield piece.getvalue()
            return
        # The caller's text is made safe; the id, the time and the numbers start with a digit.
        rows.append(
            (
                document_id,
                created_at.isoformat(),
                csv_cell(type_name),
                csv_cell(method),
                csv_cell(path),
                csv_cell(source),
                code,
                f"{duration:.3f}",
                client,  # an IP address, or None: an empty cell
            )
        )
        if len(rows) >= piece_rows:
            writer.writerows(rows)
            rows = []
            yield piece.getvalue()
            piece.seek(0)
            piece.truncate()
    writer.writerows(rows)
    yield piece.getvalue()


# --- usage -------------------------------------------------------------------------------

USAGE_DAYS = 30
CALL_COUNTS = [F(name) for name in KeyUsage.COUNTS]


def calls_since(days: int) -> Subquery:
    """Per key in the outer query: its calls (answered and refused) in the last `days` days, today included."""
    first = timezone.localdate() - timedelta(days=days - 1)
    usage = KeyUsage.objects.filter(key=OuterRef("pk"), day__gte=first).order_by().values("key")
    total = usage.annotate(n=Sum(reduce(operator.add, CALL_COUNTS))).values("n")
    return Coalesce(Subquery(total), 0)


@dataclass
class TypeUsage:
    name: str
    counts: dict[str, int]  # KeyUsage.COUNTS -> calls over the period
    per_day: list[int]  # calls per day, oldest first

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class UsageReport:
    days: list[date]
    types: list[TypeUsage]  # busiest first

    @property
    def totals(self) -> dict[str, int]:
        return {name: sum(t.counts[name] for t in self.types) for name in KeyUsage.COUNTS}

    @property
    def total(self) -> int:
        return sum(t.total for t in self.types)

    @property
    def per_day(self) -> list[int]:
        return [sum(day) for day in zip(*(t.per_day for t in self.types), strict=True)] or [0] * len(self.days)


def key_usage(key: ApiKey, *, days: int = USAGE_DAYS, today: date | None = None) -> UsageReport:
    """A key's calls per API type and day over the last `days` days (today included), one query."""
    today = today or timezone.localdate()
    span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    index = {day: n for n, day in enumerate(span)}
    rows = (
        KeyUsage.objects.using(log_reads())
        .filter(key_id=key.pk, day__gte=span[0], day__lte=today)
        .values_list("api_type__name", "day", *KeyUsage.COUNTS)
        .order_by()
    )
    types: dict[str, TypeUsage] = {}
    for name, day, *counts in rows:
        usage = types.setdefault(name, TypeUsage(name, dict.fromkeys(KeyUsage.COUNTS, 0), [0] * days))
        for column, n in zip(KeyUsage.COUNTS, counts, strict=True):
            usage.counts[column] += n
        usage.per_day[index[day]] += sum(counts)
    return UsageReport(span, sorted(types.values(), key=lambda t: (-t.total, t.name)))
