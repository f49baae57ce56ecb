"""What the management commands share: naming keys and API types on the
command line (a key value also from standard input, as `-`), parsing dates,
a key as plain data for --json, Django's own spellings for not asking
(`--no-input`) and for quiet output (`-v 0`), and asking before a loss."""

import difflib
import json
import re
import sys
from argparse import ArgumentParser
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import quotas, selectors
from .access import decide_for_type, expiry_label, parse_key
from .models import ApiKey, ApiType
from .services import LIMIT_MAX, GrantSpec, normalized_addresses

# NAME[:logged[:DATE]]; NAME may itself be "import:<id>" or "export:<id>".
TYPE_SPEC = re.compile(r"^(?P<name>.+?)(?::(?P<logged>logged)(?::(?P<date>[^:]*))?)?$")


VALUE_HELP = "the key's value (GUID), or - to read it from standard input (kept out of ps and shell history)"


def read_value(raw: str) -> str:
    """A key value as given, or from standard input's first line when it is `-`."""
    if raw != "-":
        return raw
    line = sys.stdin.readline().strip()
    if not line:
        raise CommandError("Expected a key value on standard input (for -), but it was empty.")
    return line


def key_by_value(raw: str) -> ApiKey:
    raw = read_value(raw)
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


# --- limits: the options create_api_key and update_api_key share ------------------------------

# A key's limit settings and the options that set them.
LIMIT_OPTIONS = {
    "rate_per_second": "--rate-per-second",
    "rate_per_minute": "--rate-per-minute",
    "quota_per_day": "--quota-per-day",
    "quota_per_month": "--quota-per-month",
}
FIELD_OPTIONS = LIMIT_OPTIONS | {
    "allowed_addresses": "--allow-address",
    "contact_name": "--contact-name",
    "contact_email": "--contact-email",
}
TYPE_RATE = re.compile(r"^(?P<count>\d+)/(?P<per>s|second|min|minute)$")


def add_limit_arguments(parser: ArgumentParser, *, clearing: bool) -> None:
    """The limits and contact options; `clearing` (update_api_key) also takes "none" and the
    options that remove limits."""
    empty = "|none" if clearing else ""
    for name, option in LIMIT_OPTIONS.items():
        label = ApiKey._meta.get_field(name).verbose_name
        parser.add_argument(option, metavar=f"N{empty}", help=f"at most N {label}")
    parser.add_argument(
        "--allow-address",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="an IP address or CIDR range (IPv4 or IPv6) the key may call from; repeat for more"
        + ("; added to the key's" if clearing else "; none: any address"),
    )
    parser.add_argument(
        "--type-rate",
        action="append",
        default=[],
        metavar="API-TYPE:N/s|N/min" + ("|none" if clearing else ""),
        help='a rate for one selected API type alone, e.g. "Inventory Export:5/s"'
        + ('; "API-TYPE:none" removes both of its rates' if clearing else ""),
    )
    parser.add_argument(
        "--contact-name", metavar="NAME", help="whom to tell before the key ends" + (' ("": none)' if clearing else "")
    )
    parser.add_argument(
        "--contact-email", metavar="EMAIL", help="their email address" + (' ("": none)' if clearing else "")
    )
    if clearing:
        parser.add_argument(
            "--disallow-address", action="append", default=[], metavar="ADDRESS", help="remove a client address"
        )
        parser.add_argument(
            "--any-address", action="store_true", help="remove every client address: any address may call"
        )
        parser.add_argument(
            "--no-limits",
            action="store_true",
            help="remove every rate, quota and client address of the key and of its API types "
            "(before the other options apply)",
        )


def parse_limit(raw: str, option: str, *, clearing: bool = False) -> int | None:
    if clearing and raw.strip().lower() == "none":
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not 1 <= count <= LIMIT_MAX:
        also = ', or "none" for no limit' if clearing else ""
        raise CommandError(
            f"{option}: {raw!r} is not a count of calls; write a whole number from 1 to {LIMIT_MAX}{also}."
        )
    return count


def limit_values(options: dict[str, Any], *, clearing: bool = False) -> dict[str, Any]:
    """The key limits named on the command line (only those)."""
    values = {}
    for name, option in LIMIT_OPTIONS.items():
        if options[name] is not None:
            values[name] = parse_limit(options[name], option, clearing=clearing)
    for name in ("contact_name", "contact_email"):
        if options[name] is not None:
            values[name] = options[name].strip()
    return values


def addresses(raw: list[str], option: str) -> list[str]:
    try:
        return normalized_addresses(raw)
    except ValidationError as exc:
        raise CommandError(f"{option}: {' '.join(exc.messages)}") from None


def with_type_rates(grants: list[GrantSpec], raw: list[str], *, clearing: bool = False) -> list[GrantSpec]:
    """`grants` with the --type-rate options applied; each names a type among them."""
    grants = list(grants)  # a type named twice stays twice: the service says so
    at = {g.api_type_id: i for i, g in reversed(list(enumerate(grants)))}
    for spec in raw:
        name, _, rate = spec.rpartition(":")
        match = TYPE_RATE.match(rate.strip())
        if not name or not (match or (clearing and rate.strip().lower() == "none")):
            raise CommandError(
                f"--type-rate: {spec!r} is not API-TYPE:N/s or API-TYPE:N/min"
                + (" or API-TYPE:none" if clearing else "")
                + ', e.g. "Inventory Export:5/s".'
            )
        api_type = api_type_by_name(name)
        if api_type.pk not in at:
            raise CommandError(
                f"--type-rate: {api_type.name} is not selected for the key; select it too (--type / --add-type)."
            )
        i = at[api_type.pk]
        if match is None:
            grants[i] = replace(grants[i], rate_per_second=None, rate_per_minute=None)
            continue
        count = parse_limit(match["count"], "--type-rate")
        field = "rate_per_second" if match["per"] in ("s", "second") else "rate_per_minute"
        grants[i] = replace(grants[i], **{field: count})
    return grants


def validation_problem(exc: ValidationError) -> str:
    """A service's ValidationError in the command's words: each problem after the option it is about."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return " ".join(
        f"{FIELD_OPTIONS[name]}: {message}" if name in FIELD_OPTIONS else message
        for name, messages in exc.message_dict.items()
        for message in messages
    )


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
        # Limits: None (or an empty list of addresses) is no limit.
        "rate_per_second": key.rate_per_second,
        "rate_per_minute": key.rate_per_minute,
        "quota_per_day": key.quota_per_day,
        "quota_per_month": key.quota_per_month,
        "allowed_addresses": list(key.allowed_addresses),
        "contact_name": key.contact_name,
        "contact_email": key.contact_email,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "api_types": [
            {
                "name": g.api_type.name,
                "id": f"{g.api_type.direction}:{g.api_type.api_id}",
                "logged": g.logged,
                "logging_until": g.logging_until.isoformat() if g.logging_until else None,
                "logging_now": decide_for_type(key, g.api_type, at=now).logged,
                "rate_per_second": g.rate_per_second,
                "rate_per_minute": g.rate_per_minute,
                "last_used_at": g.last_used_at.isoformat() if g.last_used_at else None,
            }
            for g in grants
        ],
        "usage": usage_data(selectors.key_usage(key)),
        "quota_left": quota_data(key),
    }


def quota_data(key: ApiKey) -> list[dict]:
    """What remains of the key's quotas (day, then month; none when it has no quota)."""
    return [
        {"period": q.period, "limit": q.limit, "used": q.used, "left": q.left, "resets_at": q.resets_at.isoformat()}
        for q in quotas.remaining(key)
    ]


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


# --- conventions every command shares -------------------------------------------------------


def add_json(parser: ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")


def add_no_input(parser: ArgumentParser) -> None:
    """Django's --no-input (and --noinput), with this project's older --yes kept as an alias."""
    parser.add_argument(
        "--no-input",
        "--noinput",
        "--yes",
        action="store_false",
        dest="interactive",
        help="do not ask for confirmation (needed when no terminal can answer)",
    )


def add_quiet(parser: ArgumentParser) -> None:
    """--quiet, an alias of Django's -v 0: only what a script needs is printed."""
    parser.add_argument("--quiet", action="store_const", const=0, dest="verbosity", help="the same as -v 0")


def emit(command: BaseCommand, options: dict[str, Any], data: Any, text: str, *, quiet: str | None = None) -> None:
    """Print `data` as JSON with --json, `quiet` with -v 0 (when given), `text` otherwise."""
    if options.get("json"):
        command.stdout.write(json.dumps(data, indent=2, default=str))
    elif options.get("verbosity", 1) == 0:
        if quiet is not None:
            command.stdout.write(quiet)
    else:
        command.stdout.write(command.style.SUCCESS(text))


def confirm(command: BaseCommand, options: dict[str, Any], question: str) -> bool:
    """Ask `question` on a terminal; without one, refuse unless --no-input was given."""
    if not options.get("interactive", True):
        return True
    if not sys.stdin.isatty():
        raise CommandError("Not going ahead without confirmation: add --no-input when no terminal can answer.")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
