"""The API key dialog's form: the key's own fields plus the API-type listbox.

The listbox posts three kinds of field for every API type row:
`selected=<type id>`, `logged=<type id>` and `until-<type id>=<date>`.
Parsing them here keeps the view thin; the rules themselves are enforced
again by the model and the services.
"""

import ipaddress
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone

from .models import ApiKey, ApiType
from .selectors import called_api_type_ids, log_reads
from .services import (
    CONTACT_FIELDS,
    KEY_FIELDS,
    LIMIT_FIELDS,
    LIMIT_MAX,
    RATE_FIELDS,
    GrantSpec,
    address_problem,
    normalized_addresses,
)


@dataclass
class TypeRow:
    """One row of the listbox as the dialog shows it (bound data or saved grants)."""

    api_type: ApiType
    selected: bool
    logged: bool
    until: str
    error: str = ""
    last_used: datetime | None = None
    rates: str = ""  # the type's own rate, set in the admin or by a command (the dialog keeps it)


# Dates are typed and shown as YYYY-MM-DD everywhere, as every table shows them: a
# browser's date input would show the browser's locale format instead.
ISO_DATE_ATTRS = {
    "inputmode": "numeric",
    "autocomplete": "off",
    "placeholder": "YYYY-MM-DD",
    "maxlength": "10",
    "pattern": "[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "title": "a date written YYYY-MM-DD",
}


def moment_field(label: str, **attrs) -> forms.DateTimeField:
    """An optional moment typed as YYYY-MM-DD HH:MM in the site's time zone; a date alone means its first minute."""
    return forms.DateTimeField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(
            format="%Y-%m-%d %H:%M",
            attrs={"autocomplete": "off", "placeholder": "YYYY-MM-DD HH:MM", "maxlength": "16", **attrs},
        ),
    )


class IsoDateInput(forms.DateInput):
    def __init__(self, attrs=None):
        super().__init__(attrs={**ISO_DATE_ATTRS, **(attrs or {})}, format="%Y-%m-%d")


def limit_field(label: str, help_id: str = "") -> forms.IntegerField:
    """An optional count of calls; empty is no limit. A text input: a number input would send
    nothing for "abc", and the key would be saved with no limit instead of the error shown."""
    words = "Write a whole number of at least 1, or leave it empty for no limit."
    return forms.IntegerField(
        label=label,
        required=False,
        min_value=1,
        max_value=LIMIT_MAX,
        error_messages={
            "invalid": words,
            "min_value": words,
            "max_value": f"Write a number up to {LIMIT_MAX}, or leave it empty for no limit.",
        },
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "off", "size": "9"}
            | ({"aria-describedby": help_id} if help_id else {})
        ),
    )


class AddressesField(forms.CharField):
    """A key's client addresses typed one per line; every wrong line is named by its number."""

    widget = forms.Textarea(
        attrs={
            "rows": "3",
            "autocomplete": "off",
            "spellcheck": "false",
            "placeholder": "192.0.2.10\n198.51.100.0/24\n2001:db8::/32",
            "aria-describedby": "addresses-help",
        }
    )

    def __init__(self, **kwargs):
        super().__init__(label="client addresses", required=False, strip=False, **kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def clean(self, value) -> list[str]:
        text = super().clean(value) or ""
        wrong = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line:
                try:
                    ipaddress.ip_network(line, strict=True)
                except ValueError:
                    wrong.append(f"line {number}: {address_problem(line)}")
        if wrong:
            raise forms.ValidationError(wrong)
        return normalized_addresses(text.splitlines())

    def has_changed(self, initial, data) -> bool:
        try:
            return normalized_addresses(initial or []) != normalized_addresses(str(data or "").splitlines())
        except ValidationError:
            return True


class LimitsForm(forms.Form):
    """The limits a key carries and its contact, as the dialog and the admin both edit them."""

    rate_per_second = limit_field("calls per second", "rates-help")
    rate_per_minute = limit_field("calls per minute", "rates-help")
    quota_per_day = limit_field("calls per day", "quotas-help")
    quota_per_month = limit_field("calls per month", "quotas-help")
    allowed_addresses = AddressesField()
    contact_name = forms.CharField(
        label="contact name", required=False, max_length=150, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    contact_email = forms.EmailField(
        label="contact email",
        required=False,
        error_messages={"invalid": "Write an email address, such as erp-team@example.com."},
        widget=forms.EmailInput(attrs={"autocomplete": "off", "aria-describedby": "contact-help"}),
    )

    def add_service_error(self, error: ValidationError) -> None:
        """A service's ValidationError shown by the fields it names (the rest above the form)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error.messages)
            return
        for name, messages in error.message_dict.items():
            self.add_error(name if name in self.fields and name != NON_FIELD_ERRORS else None, messages)


class ApiKeyForm(LimitsForm, forms.ModelForm):
    logging_until = forms.DateField(label="logging until", required=False, widget=IsoDateInput())
    expires_at = moment_field("expires", **{"aria-describedby": "expires-help"})

    # The version the dialog showed; a save over a newer version is refused.
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    class Meta:
        model = ApiKey
        fields = list(KEY_FIELDS)

    def __init__(self, *args, api_types: list[ApiType], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].initial = self.instance.version if self.instance.pk else None
        self.api_types = api_types
        self.types_by_id = {t.pk: t for t in api_types}
        self.grants: list[GrantSpec] = []
        self.row_errors: dict[int, str] = {}

    def clean(self):
        cleaned = super().clean()
        if self.is_bound:
            self.grants = self._clean_grants()
        return cleaned

    LIMITS_PART = LIMIT_FIELDS + CONTACT_FIELDS  # the dialog's folded "limits and contact"

    def limits_open(self) -> bool:
        """The dialog's limits part starts open when it holds anything, or an error."""
        return any(self[name].errors or self[name].value() for name in self.LIMITS_PART)

    def limits_errors(self) -> list[str]:
        """The fields of the limits part that are wrong, named for the alert at the top."""
        return [self[name].label for name in self.LIMITS_PART if self[name].errors]

    def limits_summary(self) -> str:
        """The limits part folded: what is set, in a few words."""
        value = {name: self[name].value() for name in self.LIMITS_PART}
        words = [
            f"{value[name]} {label}"
            for name, label in (
                ("rate_per_second", "a second"),
                ("rate_per_minute", "a minute"),
                ("quota_per_day", "a day"),
                ("quota_per_month", "a month"),
            )
            if value[name] not in (None, "")
        ]
        addresses = value["allowed_addresses"]
        lines = addresses if isinstance(addresses, list) else [a for a in str(addresses).splitlines() if a.strip()]
        if lines:
            words.append(f"{len(lines)} client address{'es' if len(lines) != 1 else ''}")
        if value["contact_name"] or value["contact_email"]:
            words.append(f"contact {value['contact_name'] or value['contact_email']}")
        return " · ".join(words) or "no limits, any address, no contact"

    def _ids(self, name: str) -> set[int]:
        ids = set()
        for raw in self.data.getlist(name):
            try:
                ids.add(int(raw))
            except (TypeError, ValueError):
                self.add_error(None, f"{name}: {raw!r} is not an API type id.")
        return ids

    def _saved_grants(self) -> dict:
        return {g.api_type_id: g for g in self.instance.grants.all()} if self.instance.pk else {}

    def _clean_grants(self) -> list[GrantSpec]:
        saved = self._saved_grants()
        selected, logged = self._ids("selected"), self._ids("logged")
        until_fields = {k: v for k, v in self.data.items() if k.startswith("until-")}
        known = {str(t) for t in self.types_by_id}
        unknown = sorted(str(i) for i in (selected | logged) - set(self.types_by_id))
        unknown += sorted(k for k in until_fields if k.removeprefix("until-") not in known)
        if unknown:
            self.add_error(None, f"Unknown API type(s): {', '.join(unknown)}. Reload the dialog and try again.")
        grants = []
        for type_id in self.types_by_id:
            raw_until = (until_fields.get(f"until-{type_id}") or "").strip()
            until = None
            if raw_until:
                try:
                    until = date.fromisoformat(raw_until)
                except ValueError:
                    self.row_errors[type_id] = f"“{raw_until[:20]}” is not a date (YYYY-MM-DD)."
            if type_id in logged and type_id not in selected:
                self.row_errors[type_id] = "logged needs selected."
            elif raw_until and type_id not in logged:
                self.row_errors[type_id] = "An expiration date needs logged."
            if type_id in selected:
                # A type's own rate is set in the admin or by a command; the dialog keeps it.
                rates = {name: getattr(saved.get(type_id), name, None) for name in RATE_FIELDS}
                grants.append(GrantSpec(type_id, logged=type_id in logged, logging_until=until, **rates))
        if self.row_errors:
            names = ", ".join(self.types_by_id[i].name for i in self.row_errors)
            self.add_error(None, f"Check the API types marked below: {names}.")
        return grants

    def type_rows(self) -> list[TypeRow]:
        """The listbox rows: what the user posted (so nothing is lost on an
        error) or what the key has saved; selected types first, so an edit
        opens on what the key can call."""
        grants = self._saved_grants()
        if self.is_bound:
            selected, logged = set(self.data.getlist("selected")), set(self.data.getlist("logged"))
            rows = [
                TypeRow(
                    t,
                    str(t.pk) in selected,
                    str(t.pk) in logged,
                    self.data.get(f"until-{t.pk}", ""),
                    self.row_errors.get(t.pk, ""),
                )
                for t in self.api_types
            ]
        else:
            rows = []
            for t in self.api_types:
                grant = grants.get(t.pk)
                until = grant.logging_until.isoformat() if grant and grant.logging_until else ""
                rows.append(TypeRow(t, grant is not None, bool(grant and grant.logged), until))
        for row in rows:
            if grant := grants.get(row.api_type.pk):
                row.last_used = grant.last_used_at
                row.rates = grant_rates(grant)
        return sorted(rows, key=lambda row: not row.selected)  # stable: by name within each part


def grant_rates(grant) -> str:
    """A type's own rate in words ("at most 5 calls per second"), or "" when it has none."""
    rates = [
        f"{value} {label}"
        for value, label in ((grant.rate_per_second, "calls per second"), (grant.rate_per_minute, "calls per minute"))
        if value
    ]
    return f"at most {' and '.join(rates)}" if rates else ""


GRACE_CHOICES = [
    ("now", "now: only the new value works"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("until", "until a date and time"),
]
GRACE_PERIODS = {"now": timedelta(0), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


class RollForm(forms.Form):
    """How long the old value keeps working after a roll."""

    grace = forms.ChoiceField(
        label="the old value keeps working", choices=GRACE_CHOICES, initial="24h", widget=forms.RadioSelect
    )
    until = moment_field("until")
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("grace") == "until" and not cleaned.get("until"):
            self.add_error("until", "Write the date and time the old value stops working (YYYY-MM-DD HH:MM).")
        return cleaned

    def grace_until(self) -> datetime:
        if self.cleaned_data["grace"] == "until":
            return self.cleaned_data["until"]
        return timezone.now() + GRACE_PERIODS[self.cleaned_data["grace"]]


MAX_ROW_ID = 2**63 - 1


class LogFilterForm(forms.Form):
    api_type = forms.ModelChoiceField(
        label="API type", queryset=ApiType.objects.none(), required=False, empty_label="all API types"
    )
    date_from = forms.DateField(label="from (YYYY-MM-DD)", required=False, widget=IsoDateInput())
    date_to = forms.DateField(label="to (YYYY-MM-DD)", required=False, widget=IsoDateInput())
    status = forms.IntegerField(label="status code", required=False, min_value=100, max_value=599)
    # Row ids: bounded so a huge number is a form error, not an overflow in the database driver.
    before = forms.IntegerField(required=False, min_value=1, max_value=MAX_ROW_ID, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, max_value=MAX_ROW_ID, widget=forms.HiddenInput)

    def __init__(self, *args, key: ApiKey, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the types this key has stored calls of (keys/selectors.py: one index probe per such type),
        # read where the viewer's rows are read (KEYS_LOG_READ_DATABASE), so the choices match them.
        called = called_api_type_ids(key)
        self.fields["api_type"].queryset = ApiType.objects.using(log_reads()).filter(pk__in=called).order_by("name")

    def clean(self):
        cleaned = super().clean()
        for name in ("date_from", "date_to"):
            # The viewer reads "to" as up to the end of that day; the last day of year 9999 has no next day.
            if cleaned.get(name) and cleaned[name] >= date.max:
                self.add_error(name, "Choose a date before 9999-12-31.")
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned


class TableQueryForm(forms.Form):
    """The keys table's query parameters, bounded: a page a person can read, sorted by a real column."""

    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    per_page = forms.IntegerField(required=False, min_value=1, max_value=100)
    sort = forms.CharField(required=False, max_length=40)
    q = forms.CharField(required=False, max_length=200, strip=True)

    def __init__(self, *args, columns: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.columns = columns

    def clean_sort(self) -> str:
        sort = self.cleaned_data["sort"]
        if sort and sort.removeprefix("-") not in self.columns:
            raise forms.ValidationError(f"sort must be one of {', '.join(self.columns)} (with - for descending).")
        return sort

    def problem(self) -> str:
        return " ".join(f"{name}: {' '.join(errors)}" for name, errors in self.errors.items())
