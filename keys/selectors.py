"""Reads for the pane and dialogs; every queryset a page needs, made in one place."""

from django.db.models import QuerySet

from .models import ApiKey, ApiKeyGrant, ApiType


def api_key_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.only(
        "pk", "value", "description", "is_active", "allowed_for_all", "logged_for_all", "created_at"
    )


def api_type_list() -> QuerySet[ApiType]:
    return ApiType.objects.order_by("name")


def api_key_grants(key: ApiKey) -> QuerySet[ApiKeyGrant]:
    return key.grants.select_related("api_type").order_by("api_type__name")
