"""API types, API keys and the per-type grants that tie them together.

Rules that must hold whatever writes the rows (pane, admin, commands) live in
`clean()` here; services call `full_clean()` before every save.

Per-type grants are *kept but ignored* while a key is allowed for all: an
administrator who switches "allowed for all" off again gets the selection
they had back, and the dialog shows the kept selection dimmed meanwhile.
"""

import ipaddress
import os
import time
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

# Every KEYS_* setting gets its default here, while the app registry loads (before ready()).
from . import conf, sealing  # noqa: F401


class DecisionQuerySet(models.QuerySet):
    """The writes Django sends no signal for (update, bulk_create, bulk_update) send
    keys.signals.rows_changed, so a cached decision goes stale by the one way every
    other change takes (keys/signals.py says why signals), `ApiKey.objects.filter(...)
    .update(is_active=False)` in a shell included. delete() needs nothing: Django
    sends post_delete for each row."""

    def _changed(self, fields) -> None:
        from .signals import rows_changed

        rows_changed.send(sender=self.model, fields=fields)

    def update(self, **kwargs):
        count = super().update(**kwargs)
        if count:
            self._changed(set(kwargs))
        return count

    def bulk_create(self, *args, **kwargs):
        created = super().bulk_create(*args, **kwargs)
        if created:
            self._changed(None)
        return created

    def bulk_update(self, objs, fields, *args, **kwargs):
        count = super().bulk_update(objs, fields, *args, **kwargs)
        if count:
            self._changed(set(fields))
        return count


class ApiKeyQuerySet(DecisionQuerySet):
    def with_value(self, value: uuid.UUID, *, or_previous: bool = True) -> "ApiKeyQuerySet":
        """The key whose value is `value` (or, while kept after a roll, whose old value is)."""
        digest = sealing.digest(value)
        current = models.Q(value_digest=digest)
        return self.filter(current | models.Q(previous_digest=digest) if or_previous else current)

    def bulk_create(self, objs, *args, **kwargs):
        # bulk_create skips save(), where a new key gets its value.
        objs = list(objs)
        for key in objs:
            if not key.value_digest:
                key.value = uuid.uuid4()
        return super().bulk_create(objs, *args, **kwargs)


class Direction(models.TextChoices):
    IMPORT = "import", "import"
    EXPORT = "export", "export"


class ApiType(models.Model):
    direction = models.CharField(max_length=6, choices=Direction.choices)
    api_id = models.CharField(
        "API id",
        max_length=100,
        help_text="The id in the URL: /chqapi/<direction>/<API id>. May contain '/'.",
    )
    name = models.CharField(max_length=150, unique=True, help_text="As the API key dialog shows it.")
    group = models.CharField(max_length=60, blank=True)

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API type"
        constraints = [
            models.UniqueConstraint(fields=["direction", "api_id"], name="keys_apitype_direction_api_id_uniq"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> str:
        """Where CHQ's API serves the type, wherever the host mounted it; without that API
        (a host guarding its own views), the type's "<direction>/<api id>"."""
        try:
            return reverse(f"chqapi-{self.direction}", kwargs={"api_id": self.api_id})
        except NoReverseMatch:
            return f"{self.direction}/{self.api_id}"


def validate_networks(value) -> None:
    """A key's client addresses: a list of IPv4/IPv6 addresses and CIDR ranges
    ("192.0.2.10", "198.51.100.0/24", "2001:db8::/32"). Host bits set in a range
    ("10.0.0.1/8") are refused: the administrator meant some other range."""
    if not isinstance(value, list):
        raise ValidationError("Client addresses are a list of IP addresses and CIDR ranges.")
    wrong = []
    for entry in value:
        try:
            ipaddress.ip_network(str(entry).strip(), strict=True)
        except ValueError:
            wrong.append(str(entry))
    if wrong:
        raise ValidationError(f"Not an IP address or CIDR range: {', '.join(wrong[:5])}.")


class ApiKey(models.Model):
    # The GUID itself is the secret; it is made on the server and never edited. It is never
    # stored in the clear (keys/sealing.py): `value_digest` finds the key, `value_sealed` holds
    # the value encrypted so the pane can show it. Code reads and sets `key.value`.
    value_digest = models.CharField(max_length=sealing.DIGEST_LENGTH, unique=True, editable=False)
    value_sealed = models.TextField(editable=False)
    # After a roll, the value before it keeps working until previous_until (keys.services.api_key_roll).
    previous_digest = models.CharField(
        max_length=sealing.DIGEST_LENGTH, null=True, blank=True, unique=True, editable=False
    )
    previous_sealed = models.TextField(blank=True, default="", editable=False)
    previous_until = models.DateTimeField("old value works until", null=True, blank=True, editable=False)
    description = models.CharField(max_length=255, blank=True, validators=[ProhibitNullCharactersValidator()])
    is_active = models.BooleanField("is active", default=False)
    allowed_for_all = models.BooleanField("allowed for all", default=False)
    logged_for_all = models.BooleanField("logged for all", default=False)
    logging_until = models.DateField(
        "logging until",
        null=True,
        blank=True,
        help_text="Logging for all API types stops after the end of this day (site time zone).",
    )
    expires_at = models.DateTimeField(
        "expires",
        null=True,
        blank=True,
        help_text="From this moment every call with the key is refused as expired. Empty: never.",
    )
    api_types = models.ManyToManyField(ApiType, through="ApiKeyGrant", related_name="api_keys", blank=True)
    # Limits the key carries (all optional; empty: no limit). Enforced by the one decision
    # (keys/guard), in state every worker process shares, never by a database query per call.
    rate_per_second = models.PositiveIntegerField(
        "calls per second", null=True, blank=True, help_text="Over it, calls are answered 429 until the second ends."
    )
    rate_per_minute = models.PositiveIntegerField(
        "calls per minute", null=True, blank=True, help_text="Over it, calls are answered 429 until the minute ends."
    )
    quota_per_day = models.PositiveIntegerField(
        "calls per day", null=True, blank=True, help_text="Site time zone; the count starts again at midnight."
    )
    quota_per_month = models.PositiveIntegerField(
        "calls per month", null=True, blank=True, help_text="Site time zone; the count starts again on the 1st."
    )
    allowed_addresses = models.JSONField(
        "client addresses",
        default=list,
        blank=True,
        validators=[validate_networks],
        help_text="IP addresses and CIDR ranges the key may call from. Empty: any address.",
    )
    # Whom to tell before the key (or its logging) ends (keys_due, the warning emails).
    contact_name = models.CharField(
        "contact name", max_length=150, blank=True, validators=[ProhibitNullCharactersValidator()]
    )
    contact_email = models.EmailField("contact email", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Raised by every change; a dialog posts the version it showed, so a save over
    # someone else's newer change is refused instead of silently overwriting it.
    version = models.PositiveIntegerField(default=1, editable=False)
    # Written at most once a minute per key (see services.api_key_touch), never on every call.
    last_used_at = models.DateTimeField("last used", null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API key"
        # The pane's default order; without it the first page sorts the whole table.
        indexes = [models.Index(fields=["-created_at", "-id"], name="keys_apikey_created_idx")]
        permissions = [
            ("access_integration_settings", "Access Integration Settings CHQ"),
            ("change_integration_settings", "Add/Edit Integration Settings CHQ"),
        ]

    def __str__(self) -> str:
        return f"{self.description or 'API key'} (…{self.value.hex[-4:] if self.value else '????'})"

    def save(self, *args, **kwargs):
        if not self.value_digest:  # a new key: its value is made here, on the server
            self.value = uuid.uuid4()
        super().save(*args, **kwargs)

    # --- the value, sealed at rest ---------------------------------------------------

    @property
    def value(self) -> uuid.UUID | None:
        """The key's value (GUID), decrypted on first use; None before one is made."""
        return self._unsealed(self.value_sealed)

    @value.setter
    def value(self, value: uuid.UUID) -> None:
        self.value_digest, self.value_sealed = sealing.digest(value), sealing.seal(value)

    @property
    def previous_value(self) -> uuid.UUID | None:
        """The value before the last roll, while it is kept (see previous_until)."""
        return self._unsealed(self.previous_sealed)

    @previous_value.setter
    def previous_value(self, value: uuid.UUID | None) -> None:
        if value is None:
            self.previous_digest, self.previous_sealed = None, ""
        else:
            self.previous_digest, self.previous_sealed = sealing.digest(value), sealing.seal(value)

    def _unsealed(self, token: str) -> uuid.UUID | None:
        # Remembered per token, so a table row decrypts once however often it shows the value,
        # and a refresh_from_db() that brings another token is never answered from memory.
        if not token:
            return None
        opened = self.__dict__.setdefault("_opened", {})
        if token not in opened:
            opened[token] = sealing.unseal(token)
        return opened[token]

    def clean(self) -> None:
        errors = {}
        if self.logged_for_all and not self.allowed_for_all:
            errors["logged_for_all"] = "logged for all needs allowed for all."
        if self.logging_until and not self.logged_for_all:
            errors["logging_until"] = "A logging expiration date needs logged for all."
        if errors:
            raise ValidationError(errors)


class ApiKeyGrant(models.Model):
    """One selected API type of a key: the dialog's selected / logged / logging until."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="grants")
    api_type = models.ForeignKey(ApiType, on_delete=models.PROTECT, related_name="grants")
    logged = models.BooleanField(default=False)
    logging_until = models.DateField("logging until", null=True, blank=True)
    # A rate for this API type alone, besides the key's own (both hold).
    rate_per_second = models.PositiveIntegerField("calls per second", null=True, blank=True)
    rate_per_minute = models.PositiveIntegerField("calls per minute", null=True, blank=True)
    last_used_at = models.DateTimeField("last used", null=True, blank=True, editable=False)

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["api_type__name"]
        verbose_name = "API type grant"
        constraints = [
            models.UniqueConstraint(fields=["key", "api_type"], name="keys_grant_key_api_type_uniq"),
        ]

    def __str__(self) -> str:
        return str(self.api_type)

    def clean(self) -> None:
        if self.logging_until and not self.logged:
            raise ValidationError({"logging_until": "A logging expiration date needs logged."})


def new_document_id() -> uuid.UUID:
    """An ApiDocumentId made here: a UUID version 7 (RFC 9562: the Unix time in milliseconds,
    then 74 random bits). Ids made one after another sort together, so each new document's
    entry goes at the end of the unique index instead of on a random page of it: at millions
    of documents a random GUID's insert reads and writes a page no other recent insert
    touched. Not a library's: `uuid6.uuid7()` moves its clock a millisecond ahead for every id
    beyond one per millisecond (ahead of real time at a busy key's rate), and the standard
    library has uuid7 only from Python 3.14."""
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 for rand_a, 62 for rand_b
    rand_a, rand_b = random >> 68, random & ((1 << 62) - 1)
    return uuid.UUID(int=(milliseconds << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)


# The condition of the status index below; a query must name it to use the index on SQLite,
# whose planner proves no implication ("status = 4" does not tell it "status <> 3").
NOT_SUCCESSFUL = ~models.Q(status=3)


class ApiDocument(models.Model):
    """One API document: a call a key was allowed to make, CHQ's unit of work.

    Written for every asynchronous call (its work runs later, in a task worker,
    and the caller polls /chqapi/status for it) and for every synchronous call
    while logging is on for the key and type. Snapshots of the key (last four
    characters, description) and of the API type keep a document readable
    after the key or type is gone. Deleted only by `purge_api_logs` or, when the site sets
    KEYS_LOG_RETENTION_DAYS, by the task workers (keys/retention.py).
    """

    class Status(models.IntegerChoices):
        # CHQ's codes: its API Document Export examples show 2 for an asynchronous
        # document still running and 3 for a successful one; the others follow the
        # order of its status enum (keys/chqapi/wire.py writes them as names).
        IN_QUEUE = 0, "InQueue"
        VALIDATION = 1, "Validation"
        IN_PROCESS = 2, "InProcess"
        SUCCESSFUL = 3, "Successful"
        ERROR = 4, "Error"

    # CHQ's ApiDocumentId: the caller's own GUID when it sent one, else one made here. Unique
    # across keys. On PostgreSQL the table is partitioned by created_at (keys/partitions.py),
    # where no index can hold document_id alone unique: DocumentIdClaim keeps a caller's id
    # unique there, and the index is (document_id, created_at) in each partition.
    document_id = models.UUIDField("API document id", default=new_document_id, unique=True, editable=False)
    # The partition key on PostgreSQL: never changed once written.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    modified_at = models.DateTimeField(default=timezone.now)
    # No index of its own: the (key, ...) indexes below lead with it. Every index is one more
    # B-tree page written by each logged call, before its answer leaves (keys/calllog/writer.py).
    key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs", db_index=False
    )
    key_last4 = models.CharField("key (last 4)", max_length=4)
    key_description = models.CharField(max_length=255, blank=True)
    api_type = models.ForeignKey(ApiType, null=True, blank=True, on_delete=models.SET_NULL, related_name="logs")
    api_type_name = models.CharField("API type", max_length=150)
    # CHQ's ApiType / ApiRequestType: "<api-id>-<direction>", such as "location-export".
    # Not indexed: API Document Export compares it case-insensitively (an index on the column
    # serves no query), and an unused index is a page written by every logged call.
    request_type = models.CharField("API request type", max_length=160, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    source = models.CharField(max_length=200, blank=True)
    is_async = models.BooleanField("asynchronous", default=False)
    status = models.PositiveSmallIntegerField(choices=Status, default=Status.SUCCESSFUL)
    # The HTTP status of the answer that carried the document's result.
    status_code = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField("duration (ms)")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    total_records = models.IntegerField(null=True, blank=True)
    records_count = models.IntegerField(null=True, blank=True)
    accepted_records = models.IntegerField(null=True, blank=True)
    error_records = models.IntegerField(null=True, blank=True)
    progress = models.FloatField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    lines = models.JSONField("document lines", default=list, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    # The key's "logged" flag for the type when the call came: whether the request and
    # response content are kept after the result has been delivered to the caller.
    keep_content = models.BooleanField(default=True)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    truncated = models.BooleanField(default=False, help_text="A body was longer than KEYS_LOG_BODY_LIMIT and was cut.")

    class Meta:
        ordering = ["-id"]
        verbose_name = "API document"
        indexes = [
            # The log viewer pages newest-first per key (keyset on id), with or without a type filter.
            models.Index(fields=["key", "-id"], name="keys_log_key_id_idx"),
            models.Index(fields=["key", "api_type", "-id"], name="keys_log_key_type_id_idx"),
            # A status filter (say, the rare 500s) must not scan a million rows to fill a page.
            models.Index(fields=["key", "status_code", "-id"], name="keys_log_key_status_id_idx"),
            # API Document Export (keys/chqapi/handlers.py): its sort by RecModified either way (the
            # id after it breaks ties), and its Status and Source filters in the order of ids. Each
            # is one more B-tree page written by every logged call (README, bench/log_insert.py).
            models.Index(fields=["key", "modified_at", "id"], name="keys_doc_key_modified_idx"),
            models.Index(fields=["key", "status", "id"], name="keys_doc_key_state_idx"),
            models.Index(fields=["key", "source", "id"], name="keys_doc_key_source_idx"),
            # Finding documents whose worker stopped (keys/chqapi/documents.py): only running
            # ones, so a finished call's document never enters this index.
            models.Index(
                fields=["started_at"], condition=models.Q(status=2), name="keys_doc_running_started_idx"
            ),
            # The admin's status filter, newest first (keys/admin.py), without reading the table:
            # only documents not Successful enter it (errors, async ones in flight), so the logged
            # call that succeeds, nearly every one, writes no page of it. Successful is found at
            # once by the primary key, being nearly every row.
            models.Index(fields=["status", "-id"], condition=NOT_SUCCESSFUL, name="keys_doc_unsucceeded_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.api_type_name} {self.status_code} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCESSFUL, self.Status.ERROR)

    def answer_pieces(self):
        """An asynchronous export's stored answer, one chunk in memory at a time."""
        chunks = self.chunks.order_by("seq")
        return chunks.values_list("text", flat=True).iterator(chunk_size=4)

    def response_text(self, *, limit: int | None = None) -> str:
        """The stored answer's text, or its first `limit` characters (read only that far):
        an asynchronous export's from its chunks, any other from its response body."""
        if self.response_body or not self.is_async:
            return self.response_body[:limit]
        taken, length = [], 0
        for piece in self.answer_pieces():
            taken.append(piece)
            length += len(piece)
            if limit is not None and length >= limit:
                break
        return "".join(taken)[:limit]


class ApiDocumentChunk(models.Model):
    """One piece of an asynchronous export's stored answer, in order of `seq`.

    The task worker spools the answer as the export's rows come and writes its
    pieces in one transaction once they are read (the head, seq 0, is made last:
    it carries the elapsed time); status and getdata read them back one by one.
    So neither process holds the whole answer, however many rows it has. Cleared
    with the document's other content once it has been delivered
    (keys/chqapi/documents.py).
    """

    # The unique (document, seq) index serves the document's lookups: no index of its own. No
    # constraint in the database: on PostgreSQL the documents' primary key is (id, created_at)
    # (partitioned, keys/partitions.py), which a reference to the id alone cannot name. Django
    # deletes a document's chunks with it; a purge deletes them itself (keys/retention.py).
    document = models.ForeignKey(
        ApiDocument, on_delete=models.CASCADE, related_name="chunks", db_index=False, db_constraint=False
    )
    seq = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        verbose_name = "API document chunk"
        constraints = [models.UniqueConstraint(fields=["document", "seq"], name="keys_doc_chunk_seq_uniq")]

    def __str__(self) -> str:
        return f"{self.document_id} #{self.seq}"


class DocumentIdClaim(models.Model):
    """A caller's own ApiDocumentId, taken: on PostgreSQL, where the documents table is
    partitioned by created_at and no index can hold document_id alone unique across the
    partitions, this table's primary key is what refuses a second document with the id,
    claimed in the same statement (or transaction) as the document is written
    (keys/calllog/writer.py). A synchronous call's id made here needs none (no caller can
    send it before its document is committed); an asynchronous call claims its id whoever
    made it (one insert more, beside its task's). Deleted with the
    documents of its time by the purge (keys/retention.py); a claim gone before its document
    is harmless, since a claim is refused too while any committed document has the id.
    Unused on SQLite, whose one table keeps document_id's own unique index."""

    document_id = models.UUIDField(primary_key=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "API document id claim"

    def __str__(self) -> str:
        return str(self.document_id)


class DocumentCount(models.Model):
    """How many API documents have one combination of the columns API Document Export
    filters on, so its TotalRecords is a sum over a few rows instead of a COUNT(*) of the
    documents table (keys/counts.py). Kept by database triggers on keys_apidocument
    (migration 0020), in the same transaction as every write of a document, whatever makes
    it: never written by Python.

    The column names are ApiDocument's, so the export's filter conditions apply to both.
    Plain integers, not foreign keys: a removed key or type must not cascade here or wait
    for this table (0 stands for "none", since a unique index takes NULLs as distinct).
    """

    key_id = models.BigIntegerField()
    api_type_id = models.BigIntegerField()
    request_type = models.CharField(max_length=160)
    api_type_name = models.CharField(max_length=150)
    status = models.PositiveSmallIntegerField(choices=ApiDocument.Status)
    source = models.CharField(max_length=200)
    # PostgreSQL spreads a busy key's increments over SLOTS rows (a random one per statement),
    # so its concurrent logged calls do not queue on one row's lock; SQLite has one writer: 0.
    slot = models.PositiveSmallIntegerField()
    # Can go below 0 in one slot (a delete takes any slot); the sum over the slots is exact.
    n = models.BigIntegerField()

    class Meta:
        verbose_name = "API document count"
        constraints = [
            models.UniqueConstraint(
                fields=["key_id", "api_type_id", "request_type", "api_type_name", "status", "source", "slot"],
                name="keys_doc_count_uniq",
            )
        ]

    def __str__(self) -> str:
        return f"key {self.key_id} {self.request_type} {self.status} {self.source!r}: {self.n}"


class KeyAudit(models.Model):
    """Who changed which key, when, from where, and what changed (before → after).

    One entry per change of a key, its per-type grants included, kept after
    the key is removed (snapshots of the key's last four characters and
    description).
    """

    class Action(models.TextChoices):
        CREATED = "created", "created"
        CHANGED = "changed", "changed"
        ACTIVATED = "activated", "activated"
        DEACTIVATED = "deactivated", "deactivated"
        ROLLED = "rolled", "rolled"
        REMOVED = "removed", "removed"

    class Source(models.TextChoices):
        PANE = "pane", "keys pane"
        ADMIN = "admin", "Django admin"
        COMMAND = "command", "management command"
        OTHER = "other", "other"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit")
    key_last4 = models.CharField("key (last 4)", max_length=4)
    key_description = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=12, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="The user's name, or the operating-system user.")
    source = models.CharField(max_length=8, choices=Source.choices)
    remote_address = models.GenericIPAddressField(null=True, blank=True)
    # {"field": [before, after], "api_types": {"<type name>": [before, after]}}; a grant is
    # {"logged": bool, "logging until": "YYYY-MM-DD" | null}, or null when not selected.
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "key change"
        indexes = [models.Index(fields=["key", "-at"], name="keys_audit_key_at_idx")]

    def __str__(self) -> str:
        return f"{self.action} …{self.key_last4} by {self.actor_name}"


class KeyUsage(models.Model):
    """Calls of one key to one API type on one day (site time zone), counted for every
    call, logged or not. Each worker adds up its calls in memory and adds them here at
    least every KEYS_USAGE_FLUSH_SECONDS (keys/usage.py): no write per call."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    api_type = models.ForeignKey(ApiType, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    succeeded = models.PositiveBigIntegerField("2xx", default=0)
    client_errors = models.PositiveBigIntegerField("4xx", default=0)
    server_errors = models.PositiveBigIntegerField("5xx", default=0)
    not_allowed = models.PositiveBigIntegerField("refused: not allowed (403)", default=0)
    inactive = models.PositiveBigIntegerField("refused: inactive or expired (401)", default=0)
    wrong_address = models.PositiveBigIntegerField("refused: client address (403)", default=0)
    # Over a rate or out of quota: a 4xx of its own, not in client_errors.
    limited = models.PositiveBigIntegerField("refused: rate or quota (429)", default=0)

    COUNTS = ("succeeded", "client_errors", "server_errors", "not_allowed", "inactive", "wrong_address", "limited")

    class Meta:
        verbose_name = "key usage"
        verbose_name_plural = "key usage"
        constraints = [
            models.UniqueConstraint(fields=["key", "api_type", "day"], name="keys_keyusage_key_type_day_uniq"),
        ]
        indexes = [models.Index(fields=["key", "day"], name="keys_keyusage_key_day_idx")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.api_type_id} {self.day}"


class KeyWarning(models.Model):
    """A warning sent that a key, or its logging, is about to end: one row per key, what
    ends, the moment it ends and the threshold (days before), so each warning goes once,
    and a key whose end moved is warned again for its new end."""

    class Ends(models.TextChoices):
        KEY = "key", "the key expires"
        LOGGING = "logging", "logging ends"

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="warnings")
    ends = models.CharField(max_length=10, choices=Ends)
    ends_at = models.DateTimeField()
    days_before = models.PositiveSmallIntegerField()
    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "key warning"
        constraints = [
            models.UniqueConstraint(
                fields=["key", "ends", "ends_at", "days_before"], name="keys_keywarning_once_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key_id}: {self.get_ends_display()} at {self.ends_at:%Y-%m-%d %H:%M} ({self.days_before} days)"


class WorkerHeartbeat(models.Model):
    """A task worker's sign of life (keys/worker.py): every worker process writes
    its row every KEYS_WORKER_HEARTBEAT_SECONDS, in the database every web host reads,
    so /healthz and status can tell a waiting queue from one that nobody serves. Times
    are the database's own clock (one clock for every host)."""

    worker_id = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    # Set by a worker that stopped cleanly: it is gone at once, not after the bound.
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "task worker heartbeat"

    def __str__(self) -> str:
        return f"{self.worker_id} on {self.host} (pid {self.pid})"
