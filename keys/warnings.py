"""Warnings before a key, or its logging, ends (README: "Warnings before the end").

A key *ends* when it expires (`expires_at`), and its logging ends at the end of its
logging-until day in the site's time zone: the key's own date while it is allowed for
all, else each logged grant's (grants ending the same day are one end). The
thresholds are KEYS_EXPIRY_WARNING_DAYS, e.g. [14, 3]: an end within the largest is
*due*, listed on the pane and by `keys_due`. A warning email goes for the smallest
threshold the end is within, once per key, end, moment and threshold (a KeyWarning
row): a key created two days before its end gets the 3-day warning only, and a key
whose end moved is warned again for its new moment. Inactive keys are left alone
(they call nothing), and so is a logging end at or after the key's own expiry.

Who sends: every task worker (`manage.py db_worker`) runs send_due() every
KEYS_WARNING_CHECK_MINUTES in a thread of its own (Schedule, started by
keys/worker.py); `keys_due --send` does the same from cron where the queue is not
the database's. Emails go through Django's email backend, one message per
recipient (the key's contact, and each integration administrator: an active user
with an email and the right Add/Edit Integration Settings CHQ), so no recipient
sees another's address. No message carries the key's value, only its last four.

Failure modes. Several workers: each claims a warning by inserting its row in a
short transaction of its own before sending; the unique constraint lets one insert
win and the others skip it. No database lock is held while the mail server answers
(on SQLite that would stop every logged API call). A claim has no recipients until
the send succeeded; a send that fails deletes its claim, so the next round tries
again. A worker that dies between its claim and the confirmation leaves a claim
without recipients, which counts as not sent once it is CLAIM_LEASE old and is
claimed again: a warning may go twice, never zero times. A key with nobody to write
to is not claimed, and is tried again each round (an administrator may be added).
"""

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import formataddr, parseaddr

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Q
from django.template.loader import render_to_string
from django.utils import timezone

from .models import ApiKey, ApiKeyGrant, KeyWarning
from .schedule import Schedule as BaseSchedule
from .selectors import start_of_day
from .text import time_left

log = logging.getLogger("keys.warnings")

# A claim (a KeyWarning row without recipients) older than this is a worker that died
# mid-send: longer than any mail server's timeout, so a live send is never taken over.
CLAIM_LEASE = timedelta(minutes=15)
CHANGE_CODENAME = "change_integration_settings"


def warning_days() -> tuple[int, ...]:
    """KEYS_EXPIRY_WARNING_DAYS as thresholds, largest first; a single number (the setting's
    old form) is one threshold. keys/checks.py reports a value this cannot read."""
    value = settings.KEYS_EXPIRY_WARNING_DAYS
    days = [value] if isinstance(value, int) else list(value)
    return tuple(sorted(set(days), reverse=True))


def horizon_days() -> int:
    """How far ahead ends are due (0: warnings are off)."""
    return max(warning_days(), default=0)


@dataclass(frozen=True)
class End:
    """One moment a key, or some of its logging, stops."""

    key: ApiKey
    ends: str  # a KeyWarning.Ends value
    ends_at: datetime
    # Logging ends: the day logged through, and the API types whose logging ends (none: the key's own).
    logging_until: date | None = None
    api_types: tuple[str, ...] = ()
    # Thresholds already warned for (filled by due(): sent, or being sent).
    warned: tuple[int, ...] = field(default=(), compare=False)

    def what(self) -> str:
        if self.ends == KeyWarning.Ends.KEY:
            return f"expires {timezone.localtime(self.ends_at):%Y-%m-%d %H:%M}"
        types = f" of {', '.join(self.api_types)}" if self.api_types else ""
        return f"logging{types} ends after {self.logging_until:%Y-%m-%d}"

    def left(self) -> str:
        return time_left(self.ends_at, timezone.now())

    def threshold(self, at: datetime, thresholds: Iterable[int]) -> int | None:
        """The smallest threshold this end is within at `at` (None: not within any)."""
        left = self.ends_at - at
        return min((days for days in thresholds if left <= timedelta(days=days)), default=None)

    def as_json(self, at: datetime) -> dict:
        return {
            "key_id": self.key.pk,
            "description": self.key.description,
            "ends": self.ends,
            "ends_at": self.ends_at.isoformat(),
            "logging_until": self.logging_until.isoformat() if self.logging_until else None,
            "api_types": list(self.api_types),
            "seconds_left": int((self.ends_at - at).total_seconds()),
            "warned_days": list(self.warned),
        }


def _ends_of(key: ApiKey, at: datetime, horizon: datetime) -> list[End]:
    ends = []
    if key.expires_at is not None and at < key.expires_at <= horizon:
        ends.append(End(key, KeyWarning.Ends.KEY, key.expires_at))
    if key.allowed_for_all:
        logged = [(key.logging_until, None)] if key.logged_for_all and key.logging_until else []
    else:
        logged = [(g.logging_until, g.api_type.name) for g in key.grants.all() if g.logged and g.logging_until]
    by_day: dict[date, list[str]] = {}
    for day, api_type in logged:
        by_day.setdefault(day, []).extend([api_type] if api_type else [])
    for day, api_types in sorted(by_day.items()):
        # Logging "until D" logs through the end of day D in the site's time zone (keys.access.logging_on).
        ends_at = start_of_day(day + timedelta(days=1))
        stops_first = key.expires_at is not None and key.expires_at <= ends_at
        if at < ends_at <= horizon and not stops_first:
            ends.append(End(key, KeyWarning.Ends.LOGGING, ends_at, day, tuple(sorted(api_types))))
    return ends


def due(*, at: datetime | None = None, days: float | None = None) -> list[End]:
    """The ends within `days` (default: the largest threshold) after `at`, soonest first, each
    with the thresholds already warned for. Three queries: keys, their logged grants, warnings."""
    at = at or timezone.now()
    days = horizon_days() if days is None else days
    if days <= 0:
        return []
    horizon = at + timedelta(days=days)
    days_range = (timezone.localdate(at), timezone.localdate(horizon))
    logged_grants = ApiKeyGrant.objects.filter(logged=True, logging_until__range=days_range)
    keys = (
        ApiKey.objects.filter(is_active=True)
        .filter(Q(expires_at=None) | Q(expires_at__gt=at))
        .filter(
            Q(expires_at__lte=horizon)
            | Q(allowed_for_all=True, logged_for_all=True, logging_until__range=days_range)
            | Q(allowed_for_all=False, pk__in=logged_grants.values("key_id"))
        )
        .prefetch_related(Prefetch("grants", queryset=logged_grants.select_related("api_type")))
    )
    ends = [end for key in keys for end in _ends_of(key, at, horizon)]
    if not ends:
        return []
    warned: dict[tuple, list[int]] = {}
    for row in _standing_warnings(at).filter(key__in=[end.key.pk for end in ends]):
        warned.setdefault((row.key_id, row.ends, row.ends_at), []).append(row.days_before)
    ends = [
        End(e.key, e.ends, e.ends_at, e.logging_until, e.api_types, tuple(sorted(warned.get(_id(e), []), reverse=True)))
        for e in ends
    ]
    return sorted(ends, key=lambda e: (e.ends_at, e.key.pk, e.ends))


def _id(end: End) -> tuple:
    return (end.key.pk, end.ends, end.ends_at)


def _standing_warnings(at: datetime):
    """Warnings sent, or being sent (a claim younger than the lease)."""
    return KeyWarning.objects.exclude(recipients=[], sent_at__lt=at - CLAIM_LEASE)


def pending(*, at: datetime | None = None) -> list[tuple[End, int]]:
    """The warnings to send now: each due end with its smallest threshold, not yet warned for it."""
    at = at or timezone.now()
    thresholds = warning_days()
    found = []
    for end in due(at=at):
        days = end.threshold(at, thresholds)
        if days is not None and days not in end.warned:
            found.append((end, days))
    return found


# --- sending -----------------------------------------------------------------------


def administrators() -> list[str]:
    """The integration administrators' addresses: active users with an email who hold the right
    Add/Edit Integration Settings CHQ (directly, through a group, or as superusers)."""
    right = Q(user_permissions__codename=CHANGE_CODENAME, user_permissions__content_type__app_label="keys")
    right |= Q(groups__permissions__codename=CHANGE_CODENAME, groups__permissions__content_type__app_label="keys")
    users = get_user_model().objects.filter(right | Q(is_superuser=True), is_active=True).exclude(email="")
    return sorted({formataddr((user.get_full_name(), user.email)) for user in users.distinct()})


def recipients(key: ApiKey, admins: list[str]) -> list[str]:
    """The key's contact first, then the administrators (an administrator who is the contact once)."""
    if not key.contact_email:
        return list(admins)
    contact = key.contact_email.lower()
    return [formataddr((key.contact_name, key.contact_email))] + [
        a for a in admins if parseaddr(a)[1].lower() != contact
    ]


def message(end: End, days: int, at: datetime, to: str, *, to_contact: bool) -> EmailMessage:
    key = end.key
    name = f"“{key.description}”" if key.description else f"number {key.pk}"
    subject = (
        f"API key {name} expires {time_left(end.ends_at, at)}"
        if end.ends == KeyWarning.Ends.KEY
        else f"Logging of API key {name} ends {time_left(end.ends_at, at)}"
    )
    context = {
        "end": end,
        "key": key,
        "name": name,
        "what": end.what(),
        "left": time_left(end.ends_at, at),
        "days": days,
        "last4": key.value.hex[-4:],
        "to_contact": to_contact,
        "zone": timezone.get_current_timezone_name(),
        "next_days": max((d for d in warning_days() if d < days), default=None),
    }
    body = render_to_string("keys/warning_email.txt", context)
    return EmailMessage(subject=subject, body=body, to=[to])


def _claim(end: End, days: int, at: datetime) -> KeyWarning | None:
    """Insert the warning's row (without recipients: a claim) in a transaction of its own, or take
    over a claim older than the lease; None when another worker has it, or it was sent."""
    identity = {"key_id": end.key.pk, "ends": end.ends, "ends_at": end.ends_at, "days_before": days}
    try:
        with transaction.atomic():
            return KeyWarning.objects.create(**identity, sent_at=at, recipients=[])
    except IntegrityError:
        stale = KeyWarning.objects.filter(**identity, recipients=[], sent_at__lt=at - CLAIM_LEASE)
        row = stale.first()
        # Compare and set on sent_at: of two workers taking over the same claim, one updates it.
        if row and KeyWarning.objects.filter(pk=row.pk, sent_at=row.sent_at, recipients=[]).update(sent_at=at):
            row.sent_at = at
            return row
        return None


def send(end: End, days: int, *, at: datetime, admins: list[str]) -> bool:
    """Send one warning unless another worker has it; True when this call sent it."""
    to = recipients(end.key, admins)
    if not to:
        log.warning("Key %s: %s %s, but there is nobody to warn (no contact, no administrator with an email)",
                    end.key.pk, end.what(), time_left(end.ends_at, at))  # fmt: skip
        return False
    claim = _claim(end, days, at)
    if claim is None:
        return False
    try:
        with get_connection() as connection:
            messages = [
                message(end, days, at, address, to_contact=n == 0 and bool(end.key.contact_email))
                for n, address in enumerate(to)
            ]
            connection.send_messages(messages)
    except Exception:
        # Not sent: the claim goes, so the next round tries again.
        KeyWarning.objects.filter(pk=claim.pk, recipients=[]).delete()
        log.exception("Key %s: the %d-day warning (%s) was not sent; it is tried again", end.key.pk, days, end.ends)
        return False
    KeyWarning.objects.filter(pk=claim.pk).update(recipients=to, sent_at=timezone.now())
    log.info("Key %s: %d-day warning (%s) sent to %d recipient(s)", end.key.pk, days, end.what(), len(to))
    return True


def send_due(*, at: datetime | None = None) -> int:
    """Send every pending warning; the number sent."""
    at = at or timezone.now()
    found = pending(at=at)
    if not found:
        return 0
    admins = administrators()
    return sum(send(end, days, at=at, admins=admins) for end, days in found)


# --- the schedule, in each task worker ---------------------------------------------------


class Schedule(BaseSchedule):
    """send_due() every KEYS_WARNING_CHECK_MINUTES (0: never) in a thread of the task worker."""

    name = "keys-warnings"
    what = "Key warnings"

    def minutes(self) -> float:
        return settings.KEYS_WARNING_CHECK_MINUTES

    def round(self, stopping: threading.Event) -> None:
        send_due()
