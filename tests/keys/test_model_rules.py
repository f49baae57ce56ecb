"""The rules on keys and grants hold in the service layer, not only in forms."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from keys.models import ApiKey, ApiKeyGrant
from keys.services import NO_CONTACT, NO_LIMITS, GrantSpec, api_key_create, api_key_remove, api_key_update

pytestmark = pytest.mark.django_db


def test_new_key_gets_a_server_made_guid():
    first, second = api_key_create(description="a"), api_key_create(description="b")
    assert first.value.version == 4
    assert first.value != second.value


@pytest.mark.parametrize("name", ["value_digest", "value_sealed", "previous_digest", "previous_sealed"])
def test_value_is_not_editable(name):
    assert ApiKey._meta.get_field(name).editable is False


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"logged_for_all": True}, "logged_for_all"),
        ({"allowed_for_all": True, "logging_until": date(2030, 1, 1)}, "logging_until"),
        ({"logging_until": date(2030, 1, 1)}, "logging_until"),
    ],
)
def test_logging_flags_need_their_parent(fields, error_field):
    with pytest.raises(ValidationError) as excinfo:
        api_key_create(description="bad", **fields)
    assert error_field in excinfo.value.message_dict
    assert not ApiKey.objects.exists()


def test_grant_date_needs_logged(inventory_export):
    with pytest.raises(ValidationError):
        api_key_create(grants=[GrantSpec(inventory_export.pk, logged=False, logging_until=date(2030, 1, 1))])
    assert not ApiKey.objects.exists()


def test_unknown_api_type_saves_nothing():
    with pytest.raises(ValidationError, match="Unknown API type"):
        api_key_create(description="x", grants=[GrantSpec(999_999)])
    assert not ApiKey.objects.exists()


def test_update_replaces_grants_and_keeps_value(make_key, inventory_export, customer_import):
    key = make_key(grants=[inventory_export.pk])
    value = key.value
    api_key_update(
        key=key,
        description="new",
        is_active=False,
        expires_at=None,
        allowed_for_all=False,
        logged_for_all=False,
        logging_until=None,
        **NO_LIMITS,
        **NO_CONTACT,
        grants=[GrantSpec(customer_import.pk, logged=True, logging_until=date(2031, 5, 1))],
    )
    key.refresh_from_db()
    assert key.value == value
    assert [(g.api_type_id, g.logged, g.logging_until) for g in key.grants.all()] == [
        (customer_import.pk, True, date(2031, 5, 1))
    ]


def test_failed_update_changes_nothing(make_key, inventory_export):
    key = make_key(description="before", grants=[inventory_export.pk])
    with pytest.raises(ValidationError):
        api_key_update(
            key=key,
            description="after",
            is_active=True,
            expires_at=None,
            allowed_for_all=False,
            logged_for_all=True,
            logging_until=None,
            **NO_LIMITS,
            **NO_CONTACT,
            grants=[],
        )
    key = ApiKey.objects.get(pk=key.pk)
    assert key.description == "before"
    assert key.grants.count() == 1


def test_grants_are_kept_while_allowed_for_all(make_key, inventory_export):
    key = make_key(allowed_for_all=True, grants=[GrantSpec(inventory_export.pk, logged=True)])
    assert key.grants.get().logged is True


def test_one_grant_per_key_and_type(make_key, inventory_export):
    with pytest.raises(ValidationError, match="more than once"):
        make_key(grants=[inventory_export.pk, inventory_export.pk])


def test_remove_deletes_grants(make_key, inventory_export):
    key = make_key(grants=[inventory_export.pk])
    api_key_remove(key=key)
    assert not ApiKeyGrant.objects.exists()


def test_document_ids_made_here_are_version_7_and_sort_by_time(monkeypatch):
    """RFC 9562's layout: 48 bits of Unix milliseconds, version 7, the RFC variant, random
    bits after; ids from later milliseconds sort after earlier ones, as text (SQLite's
    column) and as bytes (PostgreSQL's uuid)."""
    import time
    import uuid

    from keys.models import ApiDocument, new_document_id

    moments = iter([1_764_590_000_000_000_000 + n * 1_000_000 for n in range(1_000)])
    monkeypatch.setattr(time, "time_ns", lambda: next(moments))
    ids = [new_document_id() for _ in range(1_000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert [i.int >> 80 for i in ids[:2]] == [1_764_590_000_000, 1_764_590_000_001]
    assert ids == sorted(ids, key=lambda i: i.hex) == sorted(ids, key=lambda i: i.bytes)
    monkeypatch.undo()
    assert len({new_document_id() for _ in range(10_000)}) == 10_000  # 74 random bits within one millisecond
    assert ApiDocument._meta.get_field("document_id").default is new_document_id
