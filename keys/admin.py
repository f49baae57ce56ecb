"""Django admin for keys, API types and call logs.

Rights follow CHQ's two permissions, not Django's per-model defaults: seeing
needs Access Integration Settings CHQ, changing needs Add/Edit too. Key saves
go through the same service as the pane (keys.services), and the form runs
the same model rules.
"""

import uuid
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from . import services
from .audit import Actor
from .forms import LimitsForm, limit_field
from .models import NOT_SUCCESSFUL, ApiDocument, ApiKey, ApiKeyGrant, ApiType, KeyAudit, KeyUsage
from .paginators import EstimatedCountPaginator
from .permissions import ACCESS, can_change
from .selectors import key_search, search_for_address


def _posted_version(request) -> int | None:
    try:
        return int(request.POST.get("version", ""))
    except ValueError:
        return None


# Django's own add/change/delete/view permissions on these models are left unused on purpose:
# CHQ's two rights are the only ones that grant anything, so a refusal says which one is missing.
ACCESS_NEEDED = (
    "This needs the right Access Integration Settings CHQ. Django's own permissions on the keys models "
    "(add, change, delete, view) grant nothing here: CHQ's two rights decide."
)
CHANGE_NEEDED = (
    "Changing this needs the rights Access Integration Settings CHQ and Add/Edit Integration Settings CHQ; "
    "with the first alone the admin shows it read-only."
)


class IntegrationRightsMixin:
    """has_*_permission from the two CHQ rights, for the admin classes and inlines alike,
    and a refusal that names the missing right instead of Django's bare 403."""

    refusal_of_change = CHANGE_NEEDED

    def _refuse_without_access(self, request) -> None:
        if not request.user.has_perm(ACCESS):
            raise PermissionDenied(ACCESS_NEEDED)

    def changelist_view(self, request, extra_context=None):
        self._refuse_without_access(request)
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        self._refuse_without_access(request)
        if request.method == "POST" and not can_change(request.user) and self.has_view_permission(request):
            raise PermissionDenied(self.refusal_of_change)
        if object_id is None and not self.has_add_permission(request):
            raise PermissionDenied(self.refusal_of_change)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._refuse_without_access(request)
        if not self.has_delete_permission(request):
            raise PermissionDenied(self.refusal_of_change)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._refuse_without_access(request)
        return super().history_view(request, object_id, extra_context)

    def has_module_permission(self, request):
        return request.user.has_perm(ACCESS)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(ACCESS)

    def has_add_permission(self, request, *args):
        return can_change(request.user)

    def has_change_permission(self, request, obj=None):
        return can_change(request.user)

    def has_delete_permission(self, request, obj=None):
        return can_change(request.user)


class LoggingOnFilter(admin.SimpleListFilter):
    title = "logging on"
    parameter_name = "logging"

    def lookups(self, request, model_admin):
        return [("yes", "yes"), ("no", "no")]

    def queryset(self, request, queryset):
        logged_grant = ApiKeyGrant.objects.filter(key=OuterRef("pk"), logged=True)
        on = Q(allowed_for_all=True, logged_for_all=True) | Q(Exists(logged_grant), allowed_for_all=False)
        if self.value() == "yes":
            return queryset.filter(on)
        if self.value() == "no":
            return queryset.exclude(on)
        return queryset


class ApiKeyGrantForm(forms.ModelForm):
    # A rate for this API type alone, besides the key's own: the same rule as the key's (at least 1).
    rate_per_second = limit_field("calls per second")
    rate_per_minute = limit_field("calls per minute")

    class Meta:
        model = ApiKeyGrant
        fields = ("api_type", "logged", "logging_until", "rate_per_second", "rate_per_minute")


class ApiKeyGrantInline(IntegrationRightsMixin, admin.TabularInline):
    model = ApiKeyGrant
    form = ApiKeyGrantForm
    fields = ("api_type", "logged", "logging_until", "rate_per_second", "rate_per_minute", "last_used_at")
    readonly_fields = ("last_used_at",)
    autocomplete_fields = ("api_type",)
    extra = 0


class ApiKeyAdminForm(LimitsForm, forms.ModelForm):
    # The version the form showed; saving over a newer one is refused, as in the pane.
    seen_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = ApiKey
        fields = list(services.KEY_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["seen_version"].initial = self.instance.version
        for field in self.fields.values():
            field.widget.attrs.pop("aria-describedby", None)  # they name help lines of the pane's dialog

    def clean(self):
        cleaned = super().clean()
        seen = cleaned.get("seen_version")
        # An early, friendly check; the binding one is the service's, under a row lock.
        if self.instance.pk and seen is not None and seen != self.instance.version:
            raise forms.ValidationError(
                f"{services.EditConflict(self.instance)} Reload the page to see the current settings."
            )
        return cleaned


# A search for a value finds one key, a long part of one hardly more; the address stays short.
SEARCH_FOUND_LIMIT = 200


@admin.register(ApiKey)
class ApiKeyAdmin(IntegrationRightsMixin, admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = ("value", "description", "is_active", "expires_at", "allowed_for_all", "last_used_at", "created_at")
    list_filter = ("is_active", "allowed_for_all", LoggingOnFilter)
    # Searched like the pane (description words, the whole value or a part of it): values are
    # stored encrypted, so the admin's own icontains over columns cannot find them.
    search_fields = ("description",)
    # The search box posts to search_view (keys/templates/admin/keys/apikey/search_form.html), never a GET ?q=.
    search_help_text = (
        "Description words, the last four characters of a value, or a whole value. A search for a value "
        "lists the keys it finds without putting the value in the address (or in the search box)."
    )
    readonly_fields = (
        "value",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "last_used_at",
        "previous_until",
    )
    fieldsets = (
        (None, {"fields": ("value", "description", "is_active", "expires_at", "seen_version")}),
        ("API types", {"fields": ("allowed_for_all", "logged_for_all", "logging_until")}),
        (
            "limits",
            {
                "fields": (
                    ("rate_per_second", "rate_per_minute"),
                    ("quota_per_day", "quota_per_month"),
                    "allowed_addresses",
                ),
                "description": "Empty: no limit. Over a rate or a quota, calls are answered 429; a quota counts "
                "in the site's time zone (a day from midnight, a month from the 1st). Client addresses: one a line, "
                "IP addresses and CIDR ranges, IPv4 or IPv6; empty: any address. A rate for one API type alone is "
                "set on its row below.",
            },
        ),
        (
            "contact",
            {"fields": ("contact_name", "contact_email"), "description": "Told before the key or its logging ends."},
        ),
        ("history", {"fields": ("created_at", "created_by", "updated_at", "updated_by", "last_used_at")}),
        ("rolled", {"fields": ("previous_until",)}),
    )
    inlines = (ApiKeyGrantInline,)
    actions = ("activate", "deactivate", "roll", "end_grace")
    # The confirmation page carries the version it showed, so a removal over a newer change is refused.
    delete_confirmation_template = "admin/keys/apikey/delete_confirmation.html"

    def get_search_results(self, request, queryset, search_term):
        return (queryset.filter(key_search(search_term)) if search_term.strip() else queryset), False

    def get_urls(self):
        search = path("search/", self.admin_site.admin_view(self.search_view), name="keys_apikey_search")
        return [search, *super().get_urls()]

    def search_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist's search, posted: a key value must never stand in an address (access logs,
        browser history). A search without one goes on to the changelist's own `?q=`; one with
        one is answered with the keys it finds, by id (`?id__in=`), and a message that says so."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        params = request.POST.copy()
        query = " ".join(params.pop("q", [""])[-1].split())
        for name in ("csrfmiddlewaretoken", "id__in"):  # the token, and the last value search's answer
            params.pop(name, None)
        if search_for_address(query) == query:
            if query:
                params["q"] = query
        else:
            found = list(ApiKey.objects.filter(key_search(query)).values_list("pk", flat=True)[:SEARCH_FOUND_LIMIT])
            params["id__in"] = ",".join(map(str, found)) or "0"
            self.message_user(request, f"{len(found)} key(s) match the search for a key value.")
        changelist = reverse("admin:keys_apikey_changelist")
        return HttpResponseRedirect(f"{changelist}?{params.urlencode()}" if params else changelist)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.EditConflict as exc:
            # Raised by the service under the row lock; the admin's transaction has rolled back.
            self.message_user(request, f"{exc} Nothing was saved; the page shows the current settings.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        except ValidationError as exc:
            # The form checks what the service does; this is a rule only the service could see.
            self.message_user(request, f"{' '.join(exc.messages)} Nothing was saved.", messages.ERROR)
            return HttpResponseRedirect(request.path)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except services.EditConflict as exc:
            self.message_user(request, f"{exc} The key was not removed; check its settings first.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:keys_apikey_change", args=[exc.key.pk]))
        except ApiKey.DoesNotExist:
            self.message_user(request, "This API key no longer exists; someone removed it.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:keys_apikey_changelist"))

    def delete_model(self, request, obj):
        services.api_key_remove(
            key=obj,
            actor=Actor.from_request(request, KeyAudit.Source.ADMIN),
            expected_version=_posted_version(request),
        )

    def delete_queryset(self, request, queryset):
        actor = Actor.from_request(request, KeyAudit.Source.ADMIN)
        for key in queryset:
            services.api_key_remove(key=key, actor=actor)

    # created_by / updated_by are shown on the change form only; the list needs no join.
    list_select_related = ()

    def save_model(self, request, obj, form, change):
        # Saving waits for save_related, where the grants are known: key and
        # grants are written together by the service, as the pane does.
        pass

    def save_related(self, request, form, formsets, change):
        grants = []
        for formset in formsets:
            for data in formset.cleaned_data:
                if data and not data.get("DELETE") and data.get("api_type"):
                    grants.append(
                        services.GrantSpec(
                            data["api_type"].pk,
                            data.get("logged", False),
                            data.get("logging_until"),
                            rate_per_second=data.get("rate_per_second"),
                            rate_per_minute=data.get("rate_per_minute"),
                        )
                    )
        fields = {name: form.cleaned_data[name] for name in services.KEY_FIELDS}
        actor = Actor.from_request(request, KeyAudit.Source.ADMIN)
        if change:
            services.api_key_update(
                key=form.instance,
                grants=grants,
                actor=actor,
                expected_version=form.cleaned_data.get("seen_version"),
                **fields,
            )
        else:
            services.api_key_create(instance=form.instance, grants=grants, actor=actor, **fields)
        for formset in formsets:
            # Fills new/changed/deleted_objects for the admin's history message; writes nothing.
            formset.save(commit=False)

    @admin.action(description="activate the selected API keys", permissions=["change"])
    def activate(self, request, queryset):
        actor = Actor.from_request(request, KeyAudit.Source.ADMIN)
        changed = services.api_key_set_active(keys=queryset, active=True, actor=actor)
        self.message_user(request, f"{changed} API key(s) activated.", messages.SUCCESS)

    @admin.action(description="deactivate the selected API keys", permissions=["change"])
    def deactivate(self, request, queryset):
        actor = Actor.from_request(request, KeyAudit.Source.ADMIN)
        changed = services.api_key_set_active(keys=queryset, active=False, actor=actor)
        self.message_user(request, f"{changed} API key(s) deactivated.", messages.SUCCESS)

    @admin.action(description="roll the selected API keys (old values keep working 24 hours)", permissions=["change"])
    def roll(self, request, queryset):
        actor = Actor.from_request(request, KeyAudit.Source.ADMIN)
        until = timezone.now() + timedelta(hours=24)
        for key in queryset:
            services.api_key_roll(key=key, grace_until=until, actor=actor)
        until_shown = timezone.localtime(until).strftime("%Y-%m-%d %H:%M")
        message = f"{len(queryset)} API key(s) rolled; their old values work until {until_shown}."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="stop the old values of the selected rolled keys now", permissions=["change"])
    def end_grace(self, request, queryset):
        actor = Actor.from_request(request, KeyAudit.Source.ADMIN)
        for key in queryset:
            services.api_key_end_grace(key=key, actor=actor)
        self.message_user(request, "Old values stopped.", messages.SUCCESS)


class ApiTypeAdminForm(forms.ModelForm):
    class Meta:
        model = ApiType
        fields = ("name", "direction", "api_id", "group")

    def clean(self):
        cleaned = super().clean()
        instance = self.instance
        moved = instance.pk and (cleaned.get("direction"), cleaned.get("api_id")) != (
            ApiType.objects.filter(pk=instance.pk).values_list("direction", "api_id").first()
        )
        if moved and ApiKeyGrant.objects.filter(api_type_id=instance.pk).exists():
            # The service refuses it too, under a lock; this says it next to the fields.
            raise forms.ValidationError(
                "Keys use this API type, so its direction and API id cannot change: callers name them in their URLs."
            )
        return cleaned


@admin.register(ApiType)
class ApiTypeAdmin(IntegrationRightsMixin, admin.ModelAdmin):
    form = ApiTypeAdminForm
    list_display = ("name", "direction", "api_id", "group")
    list_filter = ("direction", "group")
    search_fields = ("name", "api_id")
    ordering = ("name",)

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # Through the service, so keys that use the type record the change in their history.
        fields = {name: form.cleaned_data[name] for name in ("name", "group", "direction", "api_id")}
        services.api_type_update(api_type=obj, actor=Actor.from_request(request, KeyAudit.Source.ADMIN), **fields)


class EvidenceMixin(IntegrationRightsMixin):
    """Records that must not be edited from the admin: viewable with the access right, nothing more.
    They carry snapshots of the key (last four characters, description) to outlive it."""

    refusal_of_change = (
        "These are records of what happened: the admin shows them, and never adds, changes or deletes them."
    )

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="key")
    def key_summary(self, obj):
        return f"…{obj.key_last4} {obj.key_description}".strip()


class DocumentStatusFilter(admin.SimpleListFilter):
    """The document's status, through the partial status index: a status other than Successful
    names the index's condition too (SQLite uses a partial index only when the query says it)."""

    title = "status"
    parameter_name = "status__exact"

    def lookups(self, request, model_admin):
        return ApiDocument.Status.choices

    def queryset(self, request, queryset):
        try:
            status = ApiDocument.Status(int(self.value()))
        except (TypeError, ValueError):
            return queryset
        queryset = queryset.filter(status=status)
        return queryset if status == ApiDocument.Status.SUCCESSFUL else queryset.filter(NOT_SUCCESSFUL)


class DocumentKeyFilter(admin.SimpleListFilter):
    """The documents of one key, or of removed keys. The choices come from the keys table and name
    a key by description and number: a key's own name shows the end of its value, which would
    decrypt every key's value to draw the filter."""

    title = "key"
    parameter_name = "key__id__exact"
    REMOVED = "none"

    def lookups(self, request, model_admin):
        keys = ApiKey.objects.order_by("description", "pk").values_list("pk", "description")
        return [(str(pk), f"{description or 'API key'} (number {pk})") for pk, description in keys] + [
            (self.REMOVED, "removed keys")
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.REMOVED:
            return queryset.filter(key=None)
        return queryset.filter(key_id=int(value)) if value and value.isdigit() else queryset


class StatusCodeFilter(admin.SimpleListFilter):
    """The answer's HTTP status, from a fixed list: Django's own filter for the column would ask
    for its distinct values, which reads every document."""

    title = "HTTP status"
    parameter_name = "status_code"
    CODES = (200, 201, 202, 400, 401, 403, 404, 409, 413, 422, 429, 500, 501, 503)

    def lookups(self, request, model_admin):
        return [(str(code), str(code)) for code in self.CODES]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(status_code=int(value)) if value and value.isdigit() and len(value) == 3 else queryset


@admin.register(ApiDocument)
class ApiDocumentAdmin(EvidenceMixin, admin.ModelAdmin):
    """Read-only: logs are evidence. Old ones go with `manage.py purge_api_logs`.

    Built for tables of millions of documents: no page counts the table (an exact count up
    to 10,000, then an estimate, said as such: keys/paginators.py); the key and type filters
    list keys and types from their own tables (Django's "related only" filter would ask the
    documents for their distinct keys, reading them all, and name each key by its decrypted
    value); no date hierarchy (its year and month links are distinct dates of every document),
    a date filter instead; no facet counts."""

    list_display = (
        "created_at",
        "api_type_name",
        "key_summary",
        "status",
        "is_async",
        "status_code",
        "duration_ms",
        "client_address",
    )
    list_filter = (
        DocumentKeyFilter,
        ("api_type", admin.RelatedFieldListFilter),
        DocumentStatusFilter,
        "is_async",
        StatusCodeFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    # Source and path are matched row by row: a search is the one list query that may read the
    # table (on purpose, by a person). An ApiDocumentId is found through its unique index alone.
    search_fields = ("source", "path")
    search_help_text = "An ApiDocumentId finds its document at once; other text is looked for in source and path."
    fields = (
        "document_id",
        "created_at",
        "key",
        "key_last4",
        "key_description",
        "api_type",
        "api_type_name",
        "method",
        "path",
        "source",
        "request_type",
        "is_async",
        "status",
        "status_code",
        "error_message",
        "started_at",
        "ended_at",
        "modified_at",
        "duration_ms",
        "total_records",
        "records_count",
        "accepted_records",
        "error_records",
        "lines",
        "client_address",
        "keep_content",
        "truncated",
        "request",
        "response",
    )
    readonly_fields = fields
    # The key column shows snapshot fields, so the list needs no join at all.
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        try:
            document_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(document_id=document_id), False

    @admin.display(description="request body")
    def request(self, obj):
        return format_html("<pre>{}</pre>", obj.request_body)

    @admin.display(description="response body")
    def response(self, obj):
        # An async export's answer lives in chunks and may be megabytes: the first part, as a sync log keeps.
        return format_html("<pre>{}</pre>", obj.response_text(limit=settings.KEYS_LOG_BODY_LIMIT))


@admin.register(KeyUsage)
class KeyUsageAdmin(EvidenceMixin, admin.ModelAdmin):
    """Read-only: the counts the guard stores (keys/usage.py); the pane's usage view draws them."""

    list_display = ("day", "key", "api_type", *KeyUsage.COUNTS)
    list_filter = (("key", admin.RelatedOnlyFieldListFilter), ("api_type", admin.RelatedOnlyFieldListFilter))
    date_hierarchy = "day"
    list_select_related = ("key", "api_type")
    ordering = ("-day", "key", "api_type")
    fields = ("day", "key", "api_type", *KeyUsage.COUNTS)
    readonly_fields = fields


@admin.register(KeyAudit)
class KeyAuditAdmin(EvidenceMixin, admin.ModelAdmin):
    """The audit trail, read-only; entries outlive their keys."""

    list_display = ("at", "action", "key_summary", "actor_name", "source", "remote_address")
    list_filter = ("action", "source", ("key", admin.RelatedOnlyFieldListFilter))
    date_hierarchy = "at"
    search_fields = ("key_description", "key_last4", "actor_name")
    fields = (
        "at",
        "action",
        "key",
        "key_last4",
        "key_description",
        "actor",
        "actor_name",
        "source",
        "remote_address",
        "changes",
    )
    readonly_fields = fields
