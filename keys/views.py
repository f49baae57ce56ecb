"""Views of settings › integrations › keys. Thin: rights, forms, a service call,
a template or partial. Changes answer 204 + a `keysChanged` event that the
table listens for."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails
from django_tables2 import RequestConfig

from . import selectors, services
from .access import decide_for_type
from .forms import ApiKeyForm
from .models import ApiKey
from .permissions import can_change, integration_access_required, integration_change_required
from .tables import ApiKeyTable

PER_PAGE = 25


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def keys_changed(message: str, *, select: int | None = None) -> HttpResponse:
    response = HttpResponse(status=204)
    return trigger_client_event(response, "keysChanged", {"message": message, "select": select})


@require_GET
@integration_access_required
def settings_index(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "keys/settings.html")


@require_GET
@integration_access_required
def keys_pane(request: HtmxHttpRequest) -> HttpResponse:
    table = ApiKeyTable(selectors.api_key_list())
    RequestConfig(request, paginate={"per_page": PER_PAGE}).configure(table)
    template = "keys/pane.html#key-table" if request.htmx else "keys/pane.html"
    context = {"table": table, "can_change": can_change(request.user), "section": "integrations"}
    return render(request, template, context)


def _key_dialog(request: HtmxHttpRequest, key: ApiKey | None) -> HttpResponse:
    api_types = list(selectors.api_type_list())
    instance = key or ApiKey()
    if request.method == "POST":
        form = ApiKeyForm(request.POST, instance=instance, api_types=api_types)
        if form.is_valid():
            fields = {name: form.cleaned_data[name] for name in ApiKeyForm.Meta.fields}
            try:
                if key is None:
                    key = services.api_key_create(**fields, grants=form.grants, user=request.user)
                    return keys_changed("API key created.", select=key.pk)
                services.api_key_update(key=key, **fields, grants=form.grants, user=request.user)
                return keys_changed("API key saved.", select=key.pk)
            except ValidationError as exc:
                form.add_error(None, exc.messages)
        status = 422
    else:
        form = ApiKeyForm(instance=instance, api_types=api_types)
        status = 200
    return render(request, "keys/dialogs.html#key-form", {"form": form, "key": key}, status=status)


@require_http_methods(["GET", "POST"])
@integration_change_required
def key_new(request: HtmxHttpRequest) -> HttpResponse:
    return _key_dialog(request, None)


@require_http_methods(["GET", "POST"])
@integration_change_required
def key_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.prefetch_related("grants"), pk=pk)
    return _key_dialog(request, key)


@require_http_methods(["GET", "POST"])
@integration_change_required
def key_remove(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    if request.method == "POST":
        services.api_key_remove(key=key)
        return keys_changed("API key removed.")
    return render(request, "keys/dialogs.html#remove-confirm", {"key": key})


@require_GET
@integration_access_required
def key_details(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.prefetch_related("grants__api_type"), pk=pk)
    grants = sorted(key.grants.all(), key=lambda g: g.api_type.name)
    rows = [(g, decide_for_type(key, g.api_type)) for g in grants]
    return render(request, "keys/dialogs.html#key-details", {"key": key, "rows": rows})
