"""Every change to keys and the API-type catalog goes through these functions,
whichever door it comes in by (pane, admin, command)."""

import functools
import ipaddress
import logging
import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import audit, catalog, sealing, shared, usage
from .audit import Actor
from .calllog import writer
from .models import ApiDocument, ApiKey, ApiKeyGrant, ApiType, KeyAudit
from .text import storable_text

security_log = logging.getLogger("keys.security")

# CHQ's own catalog (keys.catalog.CHQ), the one file a host may choose among its KEYS_CATALOGS.

INTEGRATION_GROUPS = {
    "Integration viewers": ["access_integration_settings"],
    "Integration administrators": ["access_integration_settings", "change_integration_settings"],
}


# The limits a key carries and whom to tell before it ends (all optional).
RATE_FIELDS = ("rate_per_second", "rate_per_minute")
COUNT_FIELDS = (*RATE_FIELDS, "quota_per_day", "quota_per_month")
LIMIT_FIELDS = (*COUNT_FIELDS, "allowed_addresses")
CONTACT_FIELDS = ("contact_name", "contact_email")

# A key's own settings, as the dialog, the admin and the commands name them.
KEY_FIELDS = (
    "description",
    "is_active",
    "expires_at",
    "allowed_for_all",
    "logged_for_all",
    "logging_until",
    *LIMIT_FIELDS,
    *CONTACT_FIELDS,
)

# A key with no limits and no contact: what --no-limits sets, and what a caller that
# replaces every setting (api_key_update) passes when it means none.
NO_LIMITS: dict[str, Any] = {name: None for name in LIMIT_FIELDS} | {"allowed_addresses": []}
NO_CONTACT: dict[str, Any] = {name: "" for name in CONTACT_FIELDS}

# The largest count a PositiveIntegerField holds on every database Django supports.
LIMIT_MAX = 2_147_483_647


@dataclass(frozen=True)
class GrantSpec:
    """One selected API type as the dialog (or a command) states it."""

    api_type_id: int
    logged: bool = False
    logging_until: date | None = None
    # A rate for this API type alone, besides the key's own (both hold); None: no limit.
    rate_per_second: int | None = None
    rate_per_minute: int | None = None


# What a grant row holds of its GrantSpec.
GRANT_FIELDS = ("logged", "logging_until", *RATE_FIELDS)


def _limit_problem(value: Any) -> str | None:
    """Why `value` cannot be a rate or quota, or None when it can (None itself: no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{value!r} is not a whole number."
    if value < 1:
        # 0 would refuse every call: that is what "is active" off says, with a clearer answer.
        return "Write a whole number of at least 1, or leave it empty for no limit."
    if value > LIMIT_MAX:
        return f"Write a number up to {LIMIT_MAX}, or leave it empty for no limit."
    return None


def normalized_addresses(entries: Iterable[Any]) -> list[str]:
    """A key's client addresses as stored: each stripped, blank ones dropped, written the one
    canonical way (`str(ip_network(...))`: "2001:DB8::0/32" and "2001:db8::/32" are one range),
    each once, in the order given. Every entry that is not an address or a range is named."""
    if isinstance(entries, str):
        entries = entries.splitlines()
    kept, wrong = {}, []
    for entry in entries:
        text = str(entry).strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            wrong.append(address_problem(text))
            continue
        kept.setdefault(str(network), None)
    if wrong:
        raise ValidationError({"allowed_addresses": wrong})
    return list(kept)


def address_problem(text: str) -> str:
    """What is wrong with one client-address entry, in words that name it."""
    shown = text[:60]
    try:
        meant = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f"“{shown}” is not an IP address or a CIDR range (such as 192.0.2.10, 198.51.100.0/24 or 2001:db8::/32)."
    return f"“{shown}” has bits set after its prefix length: the range it lies in is {meant}."


def _clean_limits(values: dict[str, Any]) -> dict[str, Any]:
    """The limits and contact of `values`, normalised, or a ValidationError naming each field."""
    errors: dict[str, list[str]] = {}
    for name in COUNT_FIELDS:
        if problem := _limit_problem(values[name]):
            errors[name] = [problem]
    addresses = values["allowed_addresses"]
    try:
        addresses = normalized_addresses(addresses or [])
    except ValidationError as exc:
        errors |= exc.message_dict
    if errors:
        raise ValidationError(errors)
    return values | {
        "allowed_addresses": addresses,
        "contact_name": (values["contact_name"] or "").strip(),
        "contact_email": (values["contact_email"] or "").strip(),
    }


def _validate_grants(grants: Sequence[GrantSpec]) -> None:
    ids = [g.api_type_id for g in grants]
    if len(ids) != len(set(ids)):
        raise ValidationError({"api_types": "An API type is selected more than once."})
    known = {pk: name for pk, name in ApiType.objects.filter(pk__in=ids).values_list("pk", "name")}
    if unknown := sorted(set(ids) - set(known)):
        raise ValidationError({"api_types": f"Unknown API type id(s): {', '.join(map(str, unknown))}."})
    for grant in grants:
        if grant.logging_until and not grant.logged:
            raise ValidationError({"api_types": "A logging expiration date needs logged."})
        for name in RATE_FIELDS:
            if problem := _limit_problem(getattr(grant, name)):
                label = name.replace("rate_per_", "calls per ")
                raise ValidationError({"api_types": f"{known[grant.api_type_id]}, {label}: {problem}"})


def _write_grants(key: ApiKey, grants: Sequence[GrantSpec]) -> None:
    wanted = {g.api_type_id: g for g in grants}
    existing = {g.api_type_id: g for g in key.grants.all()}
    key.grants.filter(api_type_id__in=set(existing) - set(wanted)).delete()
    changed = []
    for type_id, spec in wanted.items():
        grant = existing.get(type_id)
        if grant is None:
            continue
        settings_now = {name: getattr(spec, name) for name in GRANT_FIELDS}
        if {name: getattr(grant, name) for name in GRANT_FIELDS} != settings_now:
            for name, value in settings_now.items():
                setattr(grant, name, value)
            changed.append(grant)
    ApiKeyGrant.objects.bulk_update(changed, list(GRANT_FIELDS))
    ApiKeyGrant.objects.bulk_create(
        ApiKeyGrant(key=key, api_type_id=t, **{name: getattr(s, name) for name in GRANT_FIELDS})
        for t, s in wanted.items()
        if t not in existing
    )


class EditConflict(Exception):
    """The key changed since the dialog (or command) read it."""

    def __init__(self, key: ApiKey):
        self.key = key
        who = key.updated_by.get_username() if key.updated_by else "someone"
        when = timezone.localtime(key.updated_at).strftime("%Y-%m-%d %H:%M")
        super().__init__(f"This API key was changed by {who} at {when} since you opened it.")


def _locked(key: ApiKey, expected_version: int | None) -> ApiKey:
    """The key's row, locked for this transaction, checked against the version the caller saw."""
    # `of=("self",)`: PostgreSQL cannot lock the nullable side of the outer join to updated_by.
    current = ApiKey.objects.select_for_update(of=("self",)).select_related("updated_by").filter(pk=key.pk).first()
    if current is None:
        raise ApiKey.DoesNotExist("This API key no longer exists; someone removed it.")
    if expected_version is not None and current.version != expected_version:
        raise EditConflict(current)
    return current


def api_key_create(
    *,
    description: str = "",
    is_active: bool = False,
    expires_at: datetime | None = None,
    allowed_for_all: bool = False,
    logged_for_all: bool = False,
    logging_until: date | None = None,
    rate_per_second: int | None = None,
    rate_per_minute: int | None = None,
    quota_per_day: int | None = None,
    quota_per_month: int | None = None,
    allowed_addresses: Sequence[str] = (),
    contact_name: str = "",
    contact_email: str = "",
    grants: Sequence[GrantSpec] = (),
    actor: Actor | None = None,
    instance: ApiKey | None = None,
) -> ApiKey:
    """Create a key; its value (GUID) is made here. `instance` lets the admin
    pass the unsaved object its form built, so the admin shows the saved key."""
    given = locals()  # the KEY_FIELDS arguments, set on the key below
    with transaction.atomic():
        key = instance or ApiKey()
        key.created_by = key.updated_by = _user(actor)
        _set_settings(key, given)
        _validate_grants(grants)
        key.save()
        _write_grants(key, grants)
        audit.record(key, KeyAudit.Action.CREATED, audit.difference({}, audit.snapshot(key)), actor)
        return key


def _set_settings(key: ApiKey, values: dict) -> None:
    """Set the settings a dialog, the admin or a command gives (KEY_FIELDS) from `values`, and
    check them all at once: one ValidationError naming every field that is wrong, before
    anything is written."""
    try:
        values, problems = _clean_limits(values), {}
    except ValidationError as exc:
        problems = exc.message_dict
    for name in KEY_FIELDS:
        if name not in problems:
            setattr(key, name, values[name])
    try:
        key.full_clean(exclude=list(problems))
    except ValidationError as exc:
        problems = exc.message_dict | problems
    if problems:
        raise ValidationError(problems)


def _user(actor: Actor | None):
    return actor.user if actor and actor.user and actor.user.is_authenticated else None


def api_key_update(
    *,
    key: ApiKey,
    description: str,
    is_active: bool,
    expires_at: datetime | None,
    allowed_for_all: bool,
    logged_for_all: bool,
    logging_until: date | None,
    rate_per_second: int | None,
    rate_per_minute: int | None,
    quota_per_day: int | None,
    quota_per_month: int | None,
    allowed_addresses: Sequence[str],
    contact_name: str,
    contact_email: str,
    grants: Sequence[GrantSpec],
    actor: Actor | None = None,
    expected_version: int | None = None,
) -> ApiKey:
    """Replace a key's settings and grants. With `expected_version`, refuse
    (EditConflict) when someone else changed the key in between."""
    given = locals()  # the KEY_FIELDS arguments, set on the key below
    with transaction.atomic():
        current = _locked(key, expected_version)
        before = audit.snapshot(current)
        key.updated_by = _user(actor)
        key.version = current.version + 1
        _set_settings(key, given)
        _validate_grants(grants)
        key.save()
        _write_grants(key, grants)
        audit.record(key, KeyAudit.Action.CHANGED, audit.difference(before, audit.snapshot(key)), actor)
        return key


def current_grants(key: ApiKey) -> list[GrantSpec]:
    return [GrantSpec(g.api_type_id, **{name: getattr(g, name) for name in GRANT_FIELDS}) for g in key.grants.all()]


def api_key_change(
    *,
    key: ApiKey,
    actor: Actor | None = None,
    add_grants: Sequence[GrantSpec] = (),
    remove_type_ids: Sequence[int] = (),
    **fields,
) -> ApiKey:
    """A partial update: fields not named keep their values; grants are added
    (or replaced, for a type already selected) and removed by type."""
    with transaction.atomic():
        unknown = set(fields) - set(KEY_FIELDS)
        if unknown:
            raise TypeError(f"api_key_change() got unexpected fields: {', '.join(sorted(unknown))}")
        key = _locked(key, None)
        grants = {g.api_type_id: g for g in current_grants(key) if g.api_type_id not in set(remove_type_ids)}
        grants |= {g.api_type_id: g for g in add_grants}
        current = {name: getattr(key, name) for name in KEY_FIELDS}
        return api_key_update(key=key, actor=actor, grants=list(grants.values()), **(current | fields))


def api_key_set_active(*, keys: Iterable[ApiKey], active: bool, actor: Actor | None = None) -> int:
    """Activate or deactivate keys (admin actions, commands); returns how many changed."""
    with transaction.atomic():
        changed = 0
        for key in keys:
            if key.is_active != active:
                api_key_change(key=key, actor=actor, is_active=active)
                changed += 1
        return changed


def _minute(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def api_key_roll(
    *, key: ApiKey, grace_until: datetime, actor: Actor | None = None, expected_version: int | None = None
) -> ApiKey:
    """Give the key a new value; the value it had keeps working until `grace_until`
    (now or earlier: not at all). The key keeps its id, settings, grants, logs and
    history. An old value still in its grace from an earlier roll stops at once:
    a key has at most two working values. The audit entry records the grace end,
    never a value."""
    with transaction.atomic():
        current = _locked(key, expected_version)
        now = timezone.now()
        dropped = current.previous_until is not None and current.previous_until > now
        current.previous_value, current.previous_until = current.value, max(grace_until, now)
        current.value = uuid.uuid4()
        current.updated_by = _user(actor)
        current.version += 1
        current.save()
        changes = {"old value works until": [None, _minute(current.previous_until)]}
        if dropped:
            changes["an older value"] = ["working", "stopped"]
        audit.record(current, KeyAudit.Action.ROLLED, changes, actor)
        return current


def api_key_end_grace(*, key: ApiKey, actor: Actor | None = None) -> ApiKey:
    """Stop the old value of a rolled key now; the next call in every process obeys."""
    with transaction.atomic():
        current = _locked(key, None)
        now = timezone.now()
        if current.previous_until is None or current.previous_until <= now:
            return current
        before = _minute(current.previous_until)
        current.previous_until = now
        current.updated_by = _user(actor)
        current.version += 1
        current.save()
        audit.record(current, KeyAudit.Action.CHANGED, {"old value works until": [before, _minute(now)]}, actor)
        return current


def api_key_remove(*, key: ApiKey, actor: Actor | None = None, expected_version: int | None = None) -> None:
    """Remove a key; its stored calls and its audit trail stay."""
    with transaction.atomic():
        current = _locked(key, expected_version)
        before = audit.snapshot(current)
        audit.record(current, KeyAudit.Action.REMOVED, {k: [v, None] for k, v in before.items()}, actor)
        current.delete()


# --- key values at rest ------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    keys: int  # keys read
    resealed: int  # values (current and old) encrypted again under the first key
    current: int  # values that already were


def key_encryption_rotate() -> RotationReport:
    """Re-encrypt every stored key value under the first of KEYS_ENCRYPTION_KEYS, so an
    operator can then drop the older keys. All or nothing: a value that no configured
    key opens stops the run (sealing.SealError) and nothing is changed."""
    with transaction.atomic():
        keys = list(ApiKey.objects.select_for_update().only("pk", "value_sealed", "previous_sealed"))
        changed, resealed, current = {}, 0, 0
        for key in keys:
            for name in ("value_sealed", "previous_sealed"):
                token = getattr(key, name)
                if not token:
                    continue
                if sealing.is_current(token):
                    current += 1
                else:
                    setattr(key, name, sealing.reseal(token))
                    changed[key.pk] = key
                    resealed += 1
        ApiKey.objects.bulk_update(changed.values(), ["value_sealed", "previous_sealed"], batch_size=500)
        return RotationReport(keys=len(keys), resealed=resealed, current=current)


# --- API-type catalog ---------------------------------------------------------


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # undeclared, removed (--prune only)
    kept_in_use: list[str] = field(default_factory=list)  # undeclared, kept with --prune: a key uses it
    undeclared: list[str] = field(default_factory=list)  # undeclared, kept: no --prune
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def catalog_sync(
    entries: Iterable[dict],
    *,
    prune: bool = False,
    confirmed: Iterable[str] | None = None,
    dry_run: bool = False,
    api_type_model: type[ApiType] = ApiType,
    grant_model: type[ApiKeyGrant] = ApiKeyGrant,
) -> SyncReport:
    """Make the API-type table match the declared `entries` (keys.catalog.declared()):
    add new types, update names and groups. A type not declared (one added in the
    admin or the ORM, or dropped from a catalog) stays unless `prune`, and even then
    while a key uses it. All or nothing: one transaction; a declared name that an
    undeclared type being kept holds is a CatalogError before anything is written.
    `confirmed`: the names a person agreed to see removed; removing any other
    (a type added since they were asked) is a CatalogError and nothing changes.

    The model classes are parameters so the data migration can pass its
    historical models.
    """
    report = SyncReport()
    with transaction.atomic():
        existing = {(t.direction, t.api_id): t for t in api_type_model.objects.select_for_update()}
        wanted = {(e["direction"], e["api_id"]): e for e in entries}
        in_use = set(grant_model.objects.values_list("api_type_id", flat=True).distinct())
        gone = [t for ident, t in existing.items() if ident not in wanted]
        removed = [t for t in gone if prune and t.pk not in in_use]
        for api_type in gone:
            if api_type in removed:
                report.removed.append(api_type.name)
            elif prune:
                report.kept_in_use.append(api_type.name)
            else:
                report.undeclared.append(api_type.name)
        if confirmed is not None and (unseen := sorted(set(report.removed) - set(confirmed))):
            raise catalog.CatalogError(
                f"Since the question, more API types would be removed ({', '.join(unseen)}). "
                "Run the command again to see them."
            )
        staying = {t.name: t for t in gone if t not in removed}
        for entry in wanted.values():
            if holder := staying.get(entry["name"]):
                why = "a key uses it" if prune else "run with --prune to remove it, if no key uses it"
                raise catalog.CatalogError(
                    f"The declared API type {entry['direction']}:{entry['api_id']} is named {entry['name']!r}, "
                    f"as the undeclared {holder.direction}:{holder.api_id} is, which stays ({why}). "
                    "Rename one of them."
                )
        if not dry_run:
            api_type_model.objects.filter(pk__in=[t.pk for t in removed]).delete()
        # Renames go in two passes so that two types swapping names never
        # collide with the unique name constraint half-way.
        to_update = []
        for ident, entry in wanted.items():
            api_type = existing.get(ident)
            group = entry.get("group", "")
            if api_type is None:
                report.added.append(entry["name"])
            elif (api_type.name, api_type.group) != (entry["name"], group):
                report.updated.append(
                    f"{api_type.name} → {entry['name']}" if api_type.name != entry["name"] else entry["name"]
                )
                to_update.append((api_type, entry["name"], group))
            else:
                report.unchanged += 1
        if not dry_run:
            for api_type, _, _ in to_update:
                api_type.name = f"~renaming {api_type.pk}~"
            api_type_model.objects.bulk_update([t for t, _, _ in to_update], ["name"])
            for api_type, name, group in to_update:
                api_type.name, api_type.group = name, group
            api_type_model.objects.bulk_update([t for t, _, _ in to_update], ["name", "group"])
            api_type_model.objects.bulk_create(
                api_type_model(direction=e["direction"], api_id=e["api_id"], name=e["name"], group=e.get("group", ""))
                for ident, e in wanted.items()
                if ident not in existing
            )
    return report


def _type_label(api_type: ApiType) -> str:
    return f"{api_type.name} ({api_type.direction}:{api_type.api_id}{', ' + api_type.group if api_type.group else ''})"


def api_type_update(
    *, api_type: ApiType, name: str, group: str, direction: str, api_id: str, actor: Actor | None = None
) -> ApiType:
    """Change one API type (admin). A type that keys use keeps its direction and
    API id (callers' URLs name them); a rename or regrouping is recorded in the
    audit trail of every key that uses it."""
    with transaction.atomic():
        current = ApiType.objects.select_for_update().get(pk=api_type.pk)
        users = list(ApiKey.objects.filter(grants__api_type=current).distinct())
        if users and (direction, api_id) != (current.direction, current.api_id):
            raise ValidationError(
                f"{current.name} is selected for {len(users)} API key(s), so its direction and API id cannot change: "
                "callers name them in their URLs. Add a new API type instead, or remove it from those keys first."
            )
        before = _type_label(current)
        api_type.name, api_type.group, api_type.direction, api_type.api_id = name, group, direction, api_id
        api_type.full_clean()
        api_type.save()
        after = _type_label(api_type)
        if before != after:
            for key in users:
                audit.record(key, KeyAudit.Action.CHANGED, {"API type": [before, after]}, actor)
        return api_type


def integration_groups_ensure(*, group_model=None, permission_model=None) -> None:
    """Create the two integration-settings groups with their rights (idempotent).
    The model classes are parameters so the data migration can pass its
    historical models."""
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = group_model or Group, permission_model or Permission
    for name, codenames in INTEGRATION_GROUPS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(*permission_model.objects.filter(content_type__app_label="keys", codename__in=codenames))


# --- API calls ------------------------------------------------------------------


@functools.cache
def _field_limit(name: str) -> int | None:
    return ApiDocument._meta.get_field(name).max_length


def _api_document_row(
    *,
    document_id: uuid.UUID,
    key_id: int,
    key_last4: str,
    key_description: str,
    api_type_id: int | None,
    api_type_name: str,
    method: str,
    path: str,
    source: str,
    status_code: int,
    duration_ms: float,
    client_address: str | None,
    request_body: bytes,
    response_body: bytes,
    request_type: str = "",
    total_records: int | None = None,
    records_count: int | None = None,
    error_message: str = "",
    summary: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A logged call's document as the row keys/calllog/writer.py writes: every text made storable.
    `created_at`: the moment its id was reserved, for the row that completes the reservation."""
    limit = settings.KEYS_LOG_BODY_LIMIT
    request_text, response_text = storable_text(request_body), storable_text(response_body)
    now = timezone.now()
    row = {
        "document_id": str(document_id),
        # Moments as datetimes: the writer converts each distinct one once (the spool writes them as text).
        "created_at": created_at or now,
        "modified_at": now,
        "started_at": now - timedelta(milliseconds=duration_ms),
        "ended_at": now,
        "request_type": storable_text(request_type, _field_limit("request_type")),
        "status": ApiDocument.Status.SUCCESSFUL if 200 <= status_code < 300 else ApiDocument.Status.ERROR,
        "total_records": total_records,
        "records_count": records_count,
        "error_message": storable_text(error_message, 2000),
        "key_id": key_id,
        "key_last4": storable_text(key_last4, 4),
        "key_description": storable_text(key_description, _field_limit("key_description")),
        "api_type_id": api_type_id,
        "api_type_name": storable_text(api_type_name or path, _field_limit("api_type_name")),
        "method": storable_text(method, _field_limit("method")),
        "path": storable_text(path, _field_limit("path")),
        "source": storable_text(source, _field_limit("source")),
        "status_code": status_code,
        "duration_ms": duration_ms,
        "client_address": client_address,
        "request_body": request_text[:limit],
        "response_body": response_text[:limit],
        "truncated": len(request_text) > limit or len(response_text) > limit,
        # An import's own counts and lines (keys/chqapi/documents.py summary()).
        **(summary or {}),
    }
    return row


def api_call_record(**fields: Any) -> None:
    """Store one logged call: the only database write a verified call makes, committed
    before its answer is sent (keys/calllog/writer.py stores it exactly once).

    Never raises: what the database refuses waits in the spool. Takes the fields of
    `_api_document_row`.
    """
    writer.store(_api_document_row(**fields))


def api_document_reserve(**fields: Any) -> datetime:
    """Take a caller's ApiDocumentId before its handler runs: its document stored InProcess,
    completed by api_call_record given the `created_at` returned (the row it completes has it:
    on PostgreSQL the moment names the document's partition). Raises keys.calllog.writer.Taken
    when the id is taken."""
    row = _api_document_row(status_code=202, duration_ms=0.0, response_body=b"", **fields)
    writer.reserve(row | {"ended_at": None, "status": ApiDocument.Status.IN_PROCESS})
    return row["created_at"]


_touched: dict[tuple[str, int], float] = {}


def _first_touch(kind: str, pk: int, interval: int) -> bool:
    """True for the first call in each interval that touches this key (or grant).

    This process's memory answers most calls with no round trip at all. With a
    shared cache (Redis) the cache then decides among the processes, so that
    N workers do not write N times; without one, each process writes at most
    once per interval, which is the bound that matters.
    """
    moment = time.time()
    if moment - _touched.get((kind, pk), -math.inf) < interval:
        return False
    if len(_touched) >= 100_000:  # keys come and go; never let this grow without bound
        _touched.clear()
    _touched[(kind, pk)] = moment
    if shared.uses_cache():
        return cache.add(f"keys:touched:{kind}:{pk}", 1, timeout=interval)
    return True


def api_key_touch(*, key_id: int, grant_id: int | None) -> None:
    """Record "last used" at most once per KEYS_LAST_USED_INTERVAL per key and per grant.
    Written by keys/usage.py's flush, never in the call: the answer must not wait for it."""
    interval = settings.KEYS_LAST_USED_INTERVAL
    try:
        if _first_touch("key", key_id, interval):
            usage.touch("key", key_id, timezone.now())
        if grant_id and _first_touch("grant", grant_id, interval):
            usage.touch("grant", grant_id, timezone.now())
    except Exception as exc:  # "last used" is a hint; it must never change a call's answer
        security_log.warning("last used not recorded for key %s: %s", key_id, exc.__class__.__name__)
