"""What the management commands share: naming keys and API types on the
command line, parsing dates, and a key as plain data for --json."""

import difflib
import re
from datetime import date, datetime

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import selectors
from .access import decide_for_type, expiry_label, parse_key
from .models import ApiKey, ApiType
from .services import GrantSpec

# NAME[:logged[:DATE]]; NAME may itself be "import:<id>" or "export:<id>".
TYPE_SPEC = re.compile(r"^(?P<name>.+?)(?::(?P<logged>logged)(?::(?P<date>[^:]*))?)?$")


def key_by_value(raw: str) -> ApiKey:
    value = parse_key(raw)
    if value is None:
        raise CommandError(
            f"{raw[:40]!r} is not an API key value (a GUID such as 7f457d6a-d05e-4e1e-af5c-90393c3b7091)."
        )
    try:
        # The old value of a rolled key names the key too, as long as the key keeps it.
        return ApiKey.objects.prefetch_related("grants__api_type").with_value(value).get()
    except ApiKey.DoesNotExist:
        raise CommandError("No API key has that value. List the keys with: manage.py list_api_keys") from None


def parse_date(raw: str, option: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"{option}: {raw!r} is not a date; write it as YYYY-MM-DD, e.g. 2027-01-31.") from None


def parse_instant(raw: str, option: str) -> datetime:
    try:
        parsed = parse_datetime(raw) or datetime.combine(date.fromisoformat(raw), datetime.min.time())
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"{option}: {raw!r} is not a date and time; write e.g. 2027-01-31T17:30 or 2027-01-31.")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def api_type_by_name(name: str) -> ApiType:
    """An API type by its display name ("Inventory Export", any case) or as
    import:<api-id> / export:<api-id>; an unknown name lists close matches."""
    direction, _, api_id = name.partition(":")
    if direction in ("import", "export") and api_id:
        found = ApiType.objects.filter(direction=direction, api_id=api_id).first()
    else:
        found = ApiType.objects.filter(name__iexact=name.strip()).first()
    if found:
        return found
    candidates = [t.name for t in ApiType.objects.all()] + [f"{t.direction}:{t.api_id}" for t in ApiType.objects.all()]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    contains = [c for c in candidates if name.lower() in c.lower()][:5]
    suggestions = list(dict.fromkeys(close + contains))[:5]
    hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else " See the names in Django admin › API types."
    raise CommandError(f"Unknown API type {name!r}.{hint}")


def grant_spec(raw: str) -> GrantSpec:
    match = TYPE_SPEC.match(raw)
    api_type = api_type_by_name(match["name"])
    until = parse_date(match["date"], "--type") if match["date"] else None
    return GrantSpec(api_type.pk, logged=bool(match["logged"]), logging_until=until)


def key_data(key: ApiKey) -> dict:
    grants = sorted(key.grants.all(), key=lambda g: g.api_type.name)
    now = timezone.now()
    return {
        "value": str(key.value),
        "description": key.description,
        "is_active": key.is_active,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "expiry": expiry_label(key.expires_at, at=now),
        "old_value_works_until": key.previous_until.isoformat()
        if key.previous_until and key.previous_until > now
        else None,
        "allowed_for_all": key.allowed_for_all,
        "logged_for_all": key.logged_for_all,
        "logging_until": key.logging_until.isoformat() if key.logging_until else None,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "api_types": [
            {
                "name": g.api_type.name,
                "id": f"{g.api_type.direction}:{g.api_type.api_id}",
                "logged": g.logged,
                "logging_until": g.logging_until.isoformat() if g.logging_until else None,
                "logging_now": decide_for_type(key, g.api_type, at=now).logged,
                "last_used_at": g.last_used_at.isoformat() if g.last_used_at else None,
            }
            for g in grants
        ],
        "usage": usage_data(selectors.key_usage(key)),
    }


def usage_data(report: selectors.UsageReport) -> dict:
    """The last 30 days of calls; each type's `per_day` runs from `from` to `to`, one number a day."""
    return {
        "from": report.days[0].isoformat(),
        "to": report.days[-1].isoformat(),
        "calls": report.total,
        "counts": report.totals,
        "api_types": [
            {"name": t.name, "calls": t.total, "counts": t.counts, "per_day": t.per_day} for t in report.types
        ],
    }
