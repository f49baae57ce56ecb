from datetime import timedelta

import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .access import expiry_label, key_problems
from .models import ApiDocument, ApiKey
from .warnings import horizon_days


def yes_no(value: bool) -> str:
    return format_html('<span class="flag flag-{}">{}</span>', "on" if value else "off", "yes" if value else "no")


def when(moment) -> str:
    """A moment in the site's time as "YYYY-MM-DD HH:MM", day and time each kept whole."""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}"><span>{}</span> <span>{}</span></time>',
        local.isoformat(timespec="minutes"),
        local.strftime("%Y-%m-%d"),
        local.strftime("%H:%M"),
    )


def labelled(name: str, **td) -> dict:
    """Cell attributes naming the column, which the narrow layout shows before each value
    (a phone gets one card per key instead of a table wider than the screen)."""
    return {"td": {"data-label": name, **td}}


class ApiKeyTable(tables.Table):
    # Values are stored encrypted, so the database cannot sort by them (nor would the order mean anything).
    value = tables.Column(
        verbose_name="value", empty_values=(), orderable=False, attrs=labelled("value", **{"class": "value-cell"})
    )
    description = tables.Column(verbose_name="description", default="", attrs=labelled("description"))
    state = tables.Column(
        verbose_name="state", empty_values=(), orderable=False, attrs=labelled("state", **{"class": "state-cell"})
    )
    is_active = tables.Column(verbose_name="is active", attrs=labelled("is active"))
    allowed_for_all = tables.Column(verbose_name="allowed for all", attrs=labelled("allowed for all"))
    # Day and time wrap onto two lines at desk widths, so every column fits from 1024 px up.
    created_at = tables.DateTimeColumn(verbose_name="created", attrs=labelled("created", **{"class": "when-cell"}))
    last_used_at = tables.DateTimeColumn(
        verbose_name="last used", default="never", attrs=labelled("last used", **{"class": "when-cell"})
    )
    # Annotated by selectors.api_key_list: answered and refused calls, today and the six days before.
    calls_7_days = tables.Column(verbose_name="calls, 7 days", attrs=labelled("calls, 7 days", **{"class": "number"}))

    class Meta:
        model = ApiKey
        fields = ["value", "description", "state", "is_active", "allowed_for_all", "created_at", "last_used_at"]
        sequence = [*fields, "calls_7_days"]
        order_by = "-created_at"
        # The pane's own table template, set here rather than through DJANGO_TABLES2_TEMPLATE (the host's tables).
        template_name = "keys/table.html"
        empty_text = "No API keys yet."
        # A grid, because rows are selectable with the mouse and the arrow keys.
        attrs = {"class": "keys-table", "role": "grid", "aria-label": "keys", "aria-multiselectable": "false"}
        # Only the id per row: the pane holds one URL pattern per action (pane.html), which
        # halved the first page's render time against five reverse() calls per row.
        row_attrs = {"data-id": lambda record: record.pk, "aria-selected": "false", "tabindex": "-1"}

    def render_value(self, value) -> str:
        # Plain selectable text (CHQ users drag over it to copy) plus a copy button.
        return format_html(
            '<span class="key-value" title="double-click to see its API types">{}</span>'
            '<button type="button" class="copy-button" data-copy="{}" aria-label="copy {}">copy</button>',
            value,
            value,
            value,
        )

    def render_state(self, record: ApiKey) -> str:
        now = timezone.now()
        problems = key_problems(record, at=now)
        chips = [("state-warn", p) for p in problems]
        if record.expires_at and "expired" not in problems:
            soon = record.expires_at - now <= timedelta(days=horizon_days())
            chips.append(("state-warn" if soon else "state-ok", expiry_label(record.expires_at, at=now)))
        if record.previous_until and record.previous_until > now:
            until = timezone.localtime(record.previous_until).strftime("%Y-%m-%d %H:%M")
            chips.append(("state-warn", f"old value …{record.previous_value.hex[-4:]} works until {until}"))
        if not problems:
            chips.insert(0, ("state-ok", "calls allowed"))
        return format_html_join(" ", '<span class="state {}">{}</span>', chips)

    def render_created_at(self, value) -> str:
        return when(value)

    def render_last_used_at(self, value) -> str:
        return when(value)

    def render_calls_7_days(self, value: int) -> str:
        return f"{value:,}"

    def render_is_active(self, value: bool) -> str:
        return yes_no(value)

    def render_allowed_for_all(self, value: bool) -> str:
        return yes_no(value)


class ApiDocumentTable(tables.Table):
    """The log viewer's rows; paging is keyset-based in the view, not the table's."""

    created_at = tables.DateTimeColumn(verbose_name="when", format="Y-m-d H:i:s", attrs=labelled("when"))
    api_type_name = tables.Column(verbose_name="API type", attrs=labelled("API type"))
    status_code = tables.Column(verbose_name="status", attrs=labelled("status"))
    duration_ms = tables.Column(verbose_name="ms", attrs=labelled("ms"))
    source = tables.Column(verbose_name="source", default="", attrs=labelled("source"))
    client_address = tables.Column(verbose_name="client", default="", attrs=labelled("client"))
    open = tables.Column(verbose_name="", empty_values=(), orderable=False, attrs=labelled(""))

    class Meta:
        model = ApiDocument
        fields = ["created_at", "api_type_name", "status_code", "duration_ms", "source", "client_address"]
        orderable = False
        template_name = "keys/table.html"
        empty_text = (
            "No stored calls match. Calls are stored only while logging is on for the key and API type; "
            "asynchronous calls always are."
        )
        attrs = {"class": "keys-table logs-table", "aria-label": "stored calls"}
        row_attrs = {"data-id": lambda record: record.pk, "class": lambda record: "" if record.succeeded else "failed"}

    def __init__(self, *args, key_pk: int, **kwargs):
        super().__init__(*args, **kwargs)
        # One reverse() per page, not per row.
        self.entry_url = reverse("keys:log-entry", args=[key_pk, 0]).removesuffix("0/")

    def render_duration_ms(self, value: float) -> str:
        return f"{value:.1f}"

    def render_status_code(self, record: ApiDocument) -> str:
        # An asynchronous document still queued or running has no answer code yet worth showing.
        return str(record.status_code) if record.finished else record.get_status_display()

    def render_open(self, record: ApiDocument) -> str:
        return format_html(
            '<button type="button" class="link" hx-get="{}{}/" hx-target="#dialog" hx-swap="innerHTML">open</button>',
            self.entry_url,
            record.pk,
        )
