"""Views of settings › integrations › keys. Thin: rights, forms, a service call,
a template or partial. Changes answer 204 + a `keysChanged` event that the
table listens for."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.shortcuts import render as django_render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url, trigger_client_event
from django_htmx.middleware import HtmxDetails

from . import quotas, selectors, services, streams, warnings
from .access import decide_for_type, expiry_label
from .audit import Actor, describe
from .charts import NARROW, WIDE, usage_chart
from .forms import ApiKeyForm, LogFilterForm, RollForm, TableQueryForm
from .guard import refusal_counts
from .models import ApiDocument, ApiKey, KeyAudit, KeyUsage
from .permissions import can_change, integration_access_required, integration_change_required
from .tables import ApiDocumentTable, ApiKeyTable

PER_PAGE = 25
SORTABLE = [name for name, column in ApiKeyTable.base_columns.items() if column.orderable is not False]
LOGS_PER_PAGE = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def render(request: HttpRequest, template: str, context: dict | None = None, status: int | None = None) -> HttpResponse:
    """A page or partial of the pane; its pages extend the host's base template (KEYS_BASE_TEMPLATE)."""
    context = {"keys_base_template": settings.KEYS_BASE_TEMPLATE, **(context or {})}
    return django_render(request, template, context, status=status)


def keys_changed(message: str, *, select: int | None = None) -> HttpResponse:
    response = HttpResponse(status=204)
    return trigger_client_event(response, "keysChanged", {"message": message, "select": select})


@require_GET
@integration_access_required
def settings_index(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "keys/settings.html")


@require_http_methods(["GET", "POST"])
@integration_access_required
def keys_pane(request: HtmxHttpRequest) -> HttpResponse:
    """The keys table. The search box posts its words (a POST that changes nothing): they may be
    a key's value, which must never stand in an address. The address shown (pushed into the
    browser's history) and the table's sort and page links carry the search without such words."""
    query = TableQueryForm(request.POST if request.method == "POST" else request.GET, columns=SORTABLE)
    if not query.is_valid():
        return render(request, "keys/400.html", {"message": query.problem()}, status=400)
    search = query.cleaned_data["q"]
    state = {name: value for name, value in query.cleaned_data.items() if value}
    address = QueryDict(mutable=True)
    address.update({name: str(value) for name, value in state.items() if name != "q"})
    if searched_for := selectors.search_for_address(search):
        address["q"] = searched_for
    request.GET = address  # what django-tables2's sort and page links start from (an old ?q=<value> too)
    table = ApiKeyTable(selectors.api_key_list(search))
    if search:
        table.empty_text = "No key matches the search. Search looks in the value and the description."
    elif can_change(request.user):
        table.empty_text = "No API keys yet. Press new to create the first key."
    else:
        table.empty_text = "No API keys yet. Someone with the right Add/Edit Integration Settings CHQ can create one."
    if query.cleaned_data["sort"]:
        table.order_by = query.cleaned_data["sort"]
    table.request = request
    per_page = query.cleaned_data["per_page"] or PER_PAGE
    try:
        table.paginate(page=query.cleaned_data["page"] or 1, per_page=per_page)
    except EmptyPage:  # past the end (keys were removed since): the last page, as RequestConfig does
        table.paginate(page=table.paginator.num_pages, per_page=per_page)
    template = "keys/pane.html#key-table" if request.htmx else "keys/pane.html"
    context = {
        "table": table,
        "can_change": can_change(request.user),
        "search": search,
        "table_state": json.dumps(state),
        "section": "integrations",
        "refused": {reason.replace("_", " "): n for reason, n in refusal_counts().items() if n},
        # The table reloading itself leaves the notice alone: it reloads itself (keys_due).
        "due": () if request.htmx else warnings.due(),
    }
    response = render(request, template, context)
    if request.method == "POST" and request.htmx.trigger == "key-search-form":
        # Only a search is a step back can return to; the table reloading itself is not.
        push_url(response, f"{request.path}?{address.urlencode()}" if address else request.path)
    return response


@require_GET
@integration_access_required
def keys_due(request: HtmxHttpRequest) -> HttpResponse:
    """The notice of keys that end soon (KEYS_EXPIRY_WARNING_DAYS), reloaded after every change."""
    context = {"due": warnings.due(), "can_change": can_change(request.user)}
    return render(request, "keys/pane.html#due-notice", context)


def _key_dialog(request: HtmxHttpRequest, key: ApiKey | None) -> HttpResponse:
    api_types = list(selectors.api_type_list())
    instance = key or ApiKey()
    status, conflict = 200, None
    if request.method == "POST":
        form = ApiKeyForm(request.POST, instance=instance, api_types=api_types)
        if form.is_valid():
            fields = {name: form.cleaned_data[name] for name in services.KEY_FIELDS}
            actor = Actor.from_request(request, KeyAudit.Source.PANE)
            try:
                if key is None:
                    key = services.api_key_create(**fields, grants=form.grants, actor=actor)
                    return keys_changed("API key created.", select=key.pk)
                services.api_key_update(
                    key=key, **fields, grants=form.grants, actor=actor, expected_version=form.cleaned_data["version"]
                )
                return keys_changed("API key saved.", select=key.pk)
            except services.EditConflict as exc:
                conflict, status = str(exc), 409
            except ValidationError as exc:
                form.add_service_error(exc)
        status = status if conflict else 422
    else:
        form = ApiKeyForm(instance=instance, api_types=api_types)
    context = {"form": form, "key": key, "conflict": conflict}
    return render(request, "keys/dialogs.html#key-form", context, status=status)


def _gone(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "keys/404.html", status=404)


@require_http_methods(["GET", "POST"])
@integration_change_required
def key_new(request: HtmxHttpRequest) -> HttpResponse:
    return _key_dialog(request, None)


@require_http_methods(["GET", "POST"])
@integration_change_required
def key_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.prefetch_related("grants"), pk=pk)
    try:
        return _key_dialog(request, key)
    except ApiKey.DoesNotExist:  # removed by someone else while this request ran
        return _gone(request)


@require_http_methods(["GET", "POST"])
@integration_change_required
def key_remove(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    conflict = None
    if request.method == "POST":
        try:
            version = int(request.POST.get("version", ""))
        except ValueError:
            version = None  # an old page without the field: remove what is there, as before
        try:
            services.api_key_remove(
                key=key, actor=Actor.from_request(request, KeyAudit.Source.PANE), expected_version=version
            )
            return keys_changed("API key removed.")
        except services.EditConflict as exc:
            conflict, key = str(exc), exc.key
        except ApiKey.DoesNotExist:
            return _gone(request)
    status = 409 if conflict else 200
    return render(request, "keys/dialogs.html#remove-confirm", {"key": key, "conflict": conflict}, status=status)


@require_http_methods(["GET", "POST"])
@integration_change_required
def key_roll(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    form = RollForm(request.POST or None, initial={"version": key.version})
    conflict, status = None, 200
    if request.method == "POST":
        if form.is_valid():
            actor = Actor.from_request(request, KeyAudit.Source.PANE)
            try:
                key = services.api_key_roll(
                    key=key, grace_until=form.grace_until(), actor=actor, expected_version=form.cleaned_data["version"]
                )
                return keys_changed(f"API key rolled. Its new value is …{key.value.hex[-4:]}.", select=key.pk)
            except services.EditConflict as exc:
                conflict, status, key = str(exc), 409, exc.key
            except ApiKey.DoesNotExist:
                return _gone(request)
        else:
            status = 422
    context = {"key": key, "form": form, "conflict": conflict, "grace": _grace(key)}
    return render(request, "keys/dialogs.html#roll-key", context, status=status)


@require_POST
@integration_change_required
def key_end_grace(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    try:
        services.api_key_end_grace(key=key, actor=Actor.from_request(request, KeyAudit.Source.PANE))
    except ApiKey.DoesNotExist:
        return _gone(request)
    return keys_changed("The old value no longer works.", select=key.pk)


def _grace(key: ApiKey) -> dict | None:
    """The pending old value of a rolled key, while it still works."""
    if key.previous_until and key.previous_until > timezone.now():
        return {"last4": key.previous_value.hex[-4:], "until": key.previous_until}
    return None


@require_GET
@integration_access_required
def key_history(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    entries = [(entry, describe(entry.changes)) for entry in key.audit.select_related("actor")[:100]]
    return render(request, "keys/dialogs.html#key-history", {"key": key, "entries": entries})


# One heading per KeyUsage count, in the pane's words (a 429 of a limit is a 4xx column of its own).
USAGE_HEADING_OF = {
    "succeeded": "2xx",
    "client_errors": "4xx",
    "server_errors": "5xx",
    "not_allowed": "403 not allowed",
    "inactive": "401 inactive or expired",
    "wrong_address": "403 client address",
    "limited": "429 rate or quota",
}
USAGE_HEADINGS = [USAGE_HEADING_OF[column] for column in KeyUsage.COUNTS]


@require_GET
@integration_access_required
def key_usage(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    report = selectors.key_usage(key)
    context = {
        "key": key,
        "report": report,
        "charts": [("wide", usage_chart(report, WIDE)), ("narrow", usage_chart(report, NARROW))],
        "headings": USAGE_HEADINGS,
        "quotas": quotas.remaining(key),
        "totals": list(zip(USAGE_HEADINGS, report.totals.values(), strict=True)),
        "days_and_calls": list(zip(report.days, report.per_day, strict=True))[::-1],  # newest first
        "flush_seconds": settings.KEYS_USAGE_FLUSH_SECONDS,
    }
    return render(request, "keys/dialogs.html#key-usage", context)


@require_GET
@integration_access_required
def key_details(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.prefetch_related("grants__api_type"), pk=pk)
    grants = sorted(key.grants.all(), key=lambda g: g.api_type.name)
    rows = [(g, decide_for_type(key, g.api_type)) for g in grants]
    context = {
        "key": key,
        "rows": rows,
        "expiry": expiry_label(key.expires_at),
        "grace": _grace(key),
        "can_change": can_change(request.user),
        "quotas": quotas.remaining(key),
    }
    return render(request, "keys/dialogs.html#key-details", context)


@require_GET
@integration_access_required
def key_logs(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    form = LogFilterForm(request.GET or None, key=key)
    context = {"key": key, "form": form, "section": "integrations"}
    if form.is_bound and not form.is_valid():
        context["table"] = ApiDocumentTable([], key_pk=key.pk)
        return render(request, "keys/logs.html", context, status=400)
    filters = form.cleaned_data if form.is_bound else {}
    logs = selectors.api_call_logs(key=key, filters=filters)
    rows, newer, older = selectors.log_page(
        logs, before=filters.get("before"), after=filters.get("after"), size=LOGS_PER_PAGE
    )
    query = request.GET.copy()
    for name in ("before", "after"):
        query.pop(name, None)
    context |= {
        "table": ApiDocumentTable(rows, key_pk=key.pk),
        "newer_query": f"{query.urlencode()}&after={rows[0].pk}" if newer and rows else None,
        "older_query": f"{query.urlencode()}&before={rows[-1].pk}" if older and rows else None,
        "first_query": query.urlencode() if newer else None,
        "filter_query": query.urlencode(),
    }
    return render(request, "keys/logs.html", context)


@require_GET
@integration_access_required
def key_logs_csv(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    form = LogFilterForm(request.GET or None, key=key)
    if form.is_bound and not form.is_valid():
        return HttpResponse(f"Invalid filter: {form.errors.as_text()}", status=400, content_type="text/plain")
    logs = selectors.api_call_logs(key=key, filters=form.cleaned_data if form.is_bound else {})
    rows = streams.for_server(request, selectors.api_call_logs_csv(logs))  # ASGI too: never read whole
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="api-calls-key-{key.pk}.csv"'
    return response


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


@require_GET
@integration_access_required
def log_entry(request: HtmxHttpRequest, pk: int, log_pk: int) -> HttpResponse:
    log = get_object_or_404(ApiDocument.objects.using(selectors.log_reads()), key_id=pk, pk=log_pk)
    # An async export's answer lives in chunks and may be megabytes: the first part, as a sync log keeps.
    response_text = log.response_text(limit=settings.KEYS_LOG_BODY_LIMIT)
    context = {"log": log, "request_body": _pretty(log.request_body), "response_body": _pretty(response_text)}
    return render(request, "keys/dialogs.html#log-entry", context)
