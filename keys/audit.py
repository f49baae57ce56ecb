"""The audit trail of keys: who (Actor), what changed (snapshots and their
difference), written by the services in the same transaction as the change.

Why not django-simple-history or django-auditlog: both record one row per
model row through signals, so one edit of a key and ten of its API types
would be eleven unrelated entries, and the bulk writes of grants would not be
seen at all. Here one change is one entry, with every field and every
per-type grant as before → after.
"""

import getpass
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone

from .clients import client_address
from .models import ApiKey, KeyAudit

FIELD_LABELS = {
    "description": "description",
    "is_active": "is active",
    "expires_at": "expires",
    "allowed_for_all": "allowed for all",
    "logged_for_all": "logged for all",
    "logging_until": "logging until",
    "rate_per_second": "calls per second",
    "rate_per_minute": "calls per minute",
    "quota_per_day": "calls per day",
    "quota_per_month": "calls per month",
    "allowed_addresses": "client addresses",
    "contact_name": "contact name",
    "contact_email": "contact email",
}

# What an empty setting means, in the pane's words (a limit left empty is no limit at all).
EMPTY_MEANS = {
    "calls per second": "no limit",
    "calls per minute": "no limit",
    "calls per day": "no limit",
    "calls per month": "no limit",
    "client addresses": "any address",
}


@dataclass(frozen=True)
class Actor:
    user: AbstractBaseUser | None = None
    name: str = ""
    source: str = KeyAudit.Source.OTHER
    address: str | None = None

    @classmethod
    def from_request(cls, request: HttpRequest, source: str) -> "Actor":
        return cls(request.user, request.user.get_username(), source, client_address(request))

    @classmethod
    def for_command(cls, name: str | None = None) -> "Actor":
        """A command's actor: --actor, or the operating-system user who ran it."""
        try:
            os_user = getpass.getuser()
        except OSError:  # no user name for this uid (some containers)
            os_user = "unknown"
        return cls(None, name or os_user, KeyAudit.Source.COMMAND)


def snapshot(key: ApiKey) -> dict[str, Any]:
    """The key's settings and grants as plain data, read fresh from the database."""
    state = {label: getattr(key, name) for name, label in FIELD_LABELS.items()}
    state["logging until"] = state["logging until"].isoformat() if state["logging until"] else None
    # In the site's time zone, to the minute, as the dialog shows it.
    state["expires"] = timezone.localtime(key.expires_at).strftime("%Y-%m-%d %H:%M") if key.expires_at else None
    # Empty as None, so a new key's history does not list every limit it does not have.
    for label in ("client addresses", "contact name", "contact email"):
        state[label] = state[label] or None
    state["api_types"] = {g.api_type.name: _grant_state(g) for g in key.grants.select_related("api_type")}
    return state


def _grant_state(grant) -> dict[str, Any]:
    state = {"logged": grant.logged, "logging until": grant.logging_until.isoformat() if grant.logging_until else None}
    # Only when set: the entries written before per-type rates existed read the same.
    for name, label in (("rate_per_second", "calls per second"), ("rate_per_minute", "calls per minute")):
        if getattr(grant, name) is not None:
            state[label] = getattr(grant, name)
    return state


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changes = {k: [before.get(k), after.get(k)] for k in after if k != "api_types" and before.get(k) != after.get(k)}
    old, new = before.get("api_types", {}), after.get("api_types", {})
    types = {
        name: [old.get(name), new.get(name)] for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)
    }
    if types:
        changes["api_types"] = types
    return changes


def _shown(value: Any, field: str = "") -> str:
    """A field's value in the pane's words: yes/no, not Python's True/False; a list one by one."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value in (None, "", []):
        return EMPTY_MEANS.get(field, "(none)")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _grant_shown(grant: dict | None) -> str:
    if grant is None:
        return "not selected"
    if not grant.get("logged"):
        shown = "selected, not logged"
    else:
        until = grant.get("logging until")
        shown = f"selected, logged until {until}" if until else "selected, logged"
    rates = [f"{grant[label]} {label}" for label in ("calls per second", "calls per minute") if grant.get(label)]
    return f"{shown}, at most {' and '.join(rates)}" if rates else shown


def describe(changes: dict[str, Any]) -> list[str]:
    """One line per changed field or API type, before → after, as the history dialog shows them."""
    lines = []
    for field, change in changes.items():
        if field == "api_types":
            lines += _describe_types(change)
        elif isinstance(change, list) and len(change) == 2:
            lines.append(f"{field}: {_shown(change[0], field)} → {_shown(change[1], field)}")
        else:  # a shape this version does not write; shown rather than dropped
            lines.append(f"{field}: {change}")
    return lines


def _describe_types(change: dict | list) -> list[str]:
    # A change lists {name: [before, after]}; a removal stores [all grants before, None].
    if isinstance(change, list) and len(change) == 2:
        old, new = change[0] or {}, change[1] or {}
        change = {name: [old.get(name), new.get(name)] for name in sorted(set(old) | set(new))}
    return [f"{name}: {_grant_shown(old)} → {_grant_shown(new)}" for name, (old, new) in change.items()]


def record(key: ApiKey, action: str, changes: dict[str, Any], actor: Actor | None) -> KeyAudit | None:
    if action == KeyAudit.Action.CHANGED:
        if not changes:
            return None  # a save that changed nothing is not an event
        if set(changes) == {"is active"}:
            action = KeyAudit.Action.ACTIVATED if changes["is active"][1] else KeyAudit.Action.DEACTIVATED
    actor = actor or Actor()
    return KeyAudit.objects.create(
        key=key if action != KeyAudit.Action.REMOVED else None,
        key_last4=key.value.hex[-4:],
        key_description=key.description,
        action=action,
        actor=actor.user if actor.user and actor.user.is_authenticated else None,
        actor_name=actor.name[:150] or "unknown",
        source=actor.source,
        remote_address=actor.address,
        changes=changes,
    )
