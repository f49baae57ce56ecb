"""The API key dialog's form: the key's own fields plus the API-type listbox.

The listbox posts three kinds of field for every API type row:
`selected=<type id>`, `logged=<type id>` and `until-<type id>=<date>`.
Parsing them here keeps the view thin; the rules themselves are enforced
again by the model and the services.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django import forms
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .models import ApiDocument, ApiKey, ApiType
from .services import KEY_FIELDS, GrantSpec


@dataclass
class TypeRow:
    """One row of the listbox as the dialog shows it (bound data or saved grants)."""

    api_type: ApiType
    selected: bool
    logged: bool
    until: str
    error: str = ""
    last_used: datetime | None = None


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


class ApiKeyForm(forms.ModelForm):
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

    def _ids(self, name: str) -> set[int]:
        ids = set()
        for raw in self.data.getlist(name):
            try:
                ids.add(int(raw))
            except (TypeError, ValueError):
                self.add_error(None, f"{name}: {raw!r} is not an API type id.")
        return ids

    def _clean_grants(self) -> list[GrantSpec]:
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
                grants.append(GrantSpec(type_id, logged=type_id in logged, logging_until=until))
        if self.row_errors:
            names = ", ".join(self.types_by_id[i].name for i in self.row_errors)
            self.add_error(None, f"Check the API types marked below: {names}.")
        return grants

    def type_rows(self) -> list[TypeRow]:
        """The listbox rows: what the user posted (so nothing is lost on an
        error) or what the key has saved; selected types first, so an edit
        opens on what the key can call."""
        grants = {g.api_type_id: g for g in self.instance.grants.all()} if self.instance.pk else {}
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
        return sorted(rows, key=lambda row: not row.selected)  # stable: by name within each part


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
        # Only the types this key has stored calls of: one index probe per type, however many logs there are.
        called = ApiDocument.objects.filter(key=key, api_type=OuterRef("pk"))
        self.fields["api_type"].queryset = ApiType.objects.filter(Exists(called)).order_by("name")

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
