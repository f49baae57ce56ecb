"""Who changed what, when and from where; and no edit lost silently."""

import io
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse

from keys.audit import Actor
from keys.models import ApiKey, KeyAudit
from keys.services import NO_CONTACT, NO_LIMITS, EditConflict, GrantSpec, api_key_change, api_key_remove, api_key_update
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_pane_create_and_edit_are_recorded(administrator_client, administrator, inventory_export, customer_import):
    administrator_client.post(
        reverse("keys:new"),
        {"description": "feed", "is_active": "on", "selected": [inventory_export.pk]},
        REMOTE_ADDR="10.0.0.7",
    )
    key = ApiKey.objects.get()
    created = key.audit.get()
    assert (created.action, created.actor, created.actor_name, created.source, created.remote_address) == (
        "created",
        administrator,
        "administrator",
        "pane",
        "10.0.0.7",
    )
    assert created.changes["description"] == [None, "feed"]
    assert created.changes["api_types"] == {"Inventory Export": [None, {"logged": False, "logging until": None}]}

    administrator_client.post(
        reverse("keys:edit", args=[key.pk]),
        {
            "description": "feed 2",
            "is_active": "on",
            "version": key.version,
            "selected": [inventory_export.pk, customer_import.pk],
            "logged": [inventory_export.pk],
            f"until-{inventory_export.pk}": "2027-01-31",
        },
    )
    changed = key.audit.first()
    assert changed.action == "changed"
    assert changed.changes == {
        "description": ["feed", "feed 2"],
        "api_types": {
            "Customer Import": [None, {"logged": False, "logging until": None}],
            "Inventory Export": [
                {"logged": False, "logging until": None},
                {"logged": True, "logging until": "2027-01-31"},
            ],
        },
    }


def test_history_dialog_lists_changes(administrator_client, viewer, client, make_key):
    key = make_key(description="h")
    api_key_change(key=key, actor=Actor(name="ops", source="command"), is_active=False)
    client.force_login(viewer)
    html = client.get(reverse("keys:history", args=[key.pk])).content.decode()
    assert "deactivated</strong> by ops" in html
    assert "is active: yes → no" in html


def test_admin_actions_and_delete_are_recorded(client, make_key):
    staff = make_user("boss", group="Integration administrators", is_staff=True)
    client.force_login(staff)
    key = make_key(is_active=True)
    client.post(reverse("admin:keys_apikey_changelist"), {"action": "deactivate", "_selected_action": [key.pk]})
    entry = key.audit.first()
    assert (entry.action, entry.source, entry.actor_name) == ("deactivated", "admin", "boss")
    client.post(reverse("admin:keys_apikey_delete", args=[key.pk]), {"post": "yes"})
    removed = KeyAudit.objects.get(action="removed")
    assert (removed.key, removed.key_last4, removed.source) == (None, key.value.hex[-4:], "admin")
    assert client.get(reverse("admin:keys_keyaudit_changelist")).status_code == 200


def test_commands_record_actor_or_os_user(make_key):
    out = io.StringIO()
    call_command("create_api_key", "--description", "cli", "--actor", "jenkins", "--quiet", stdout=out)
    key = ApiKey.objects.get()
    assert (key.audit.get().actor_name, key.audit.get().source) == ("jenkins", "command")
    with mock.patch("keys.audit.getpass.getuser", return_value="alice"):
        call_command("update_api_key", str(key.value), "--deactivate", stdout=out)
    assert key.audit.first().actor_name == "alice"


def test_removal_keeps_the_trail(make_key):
    key = make_key(description="gone")
    api_key_remove(key=key, actor=Actor(name="ops"))
    entries = list(KeyAudit.objects.order_by("id").values_list("action", "key_id", "key_description"))
    assert entries == [("created", None, "gone"), ("removed", None, "gone")]


def test_a_save_that_changes_nothing_is_not_an_event(make_key):
    key = make_key()
    api_key_change(key=key, description=key.description)
    assert key.audit.count() == 1


# --- edit conflicts ------------------------------------------------------------


def test_second_save_is_refused_and_names_who_changed_it(administrator_client, administrator, make_key):
    key = make_key(description="original")
    other = make_user("colleague", group="Integration administrators")
    seen = key.version
    api_key_change(key=key, actor=Actor(user=other, name="colleague"), description="theirs")
    response = administrator_client.post(
        reverse("keys:edit", args=[key.pk]), {"description": "mine", "version": seen}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "This API key was changed by colleague" in html
    assert ">reload</button>" in html
    assert 'value="mine"' in html  # what the user typed is still on screen
    assert ApiKey.objects.get(pk=key.pk).description == "theirs"


def test_save_with_current_version_passes(administrator_client, make_key):
    key = make_key()
    response = administrator_client.post(
        reverse("keys:edit", args=[key.pk]), {"description": "ok", "version": key.version}
    )
    assert response.status_code == 204
    assert ApiKey.objects.get(pk=key.pk).version == key.version + 1


def test_remove_after_a_change_is_refused(administrator_client, make_key):
    key = make_key(description="before")
    seen = key.version
    api_key_change(key=key, description="changed meanwhile")
    response = administrator_client.post(reverse("keys:remove", args=[key.pk]), {"version": seen})
    assert response.status_code == 409
    assert "changed meanwhile" in response.content.decode()  # the dialog shows the key as it is now
    assert ApiKey.objects.filter(pk=key.pk).exists()
    fresh = ApiKey.objects.get(pk=key.pk).version
    assert administrator_client.post(reverse("keys:remove", args=[key.pk]), {"version": fresh}).status_code == 204


def test_service_level_conflict(make_key):
    key = make_key()
    api_key_change(key=key, description="x")
    with pytest.raises(EditConflict):
        api_key_update(
            key=key,
            description="y",
            is_active=True,
            expires_at=None,
            allowed_for_all=False,
            logged_for_all=False,
            logging_until=None,
            **NO_LIMITS,
            **NO_CONTACT,
            grants=[GrantSpec(1)],
            expected_version=1,
        )


def test_admin_conflict(client, make_key):
    staff = make_user("boss", group="Integration administrators", is_staff=True)
    client.force_login(staff)
    key = make_key(description="a")
    seen = key.version
    api_key_change(key=key, description="b")
    data = {
        "description": "c",
        "seen_version": seen,
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
    }
    response = client.post(reverse("admin:keys_apikey_change", args=[key.pk]), data)
    assert response.status_code == 200
    assert "since you opened it" in response.content.decode()
    assert ApiKey.objects.get(pk=key.pk).description == "b"
