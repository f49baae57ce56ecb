"""Rolling a key (issue 14, part 2): a new value, the old one working until the
grace end the user picked, then only the new one; from every door."""

import json
import re
import uuid
import zoneinfo
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from keys import sealing, services
from keys.access import Reason, authenticate, decide
from keys.audit import Actor
from keys.models import ApiDocument, ApiKey, KeyAudit
from keys.services import GrantSpec
from tests.api_calls import post

pytestmark = pytest.mark.django_db

UTC = zoneinfo.ZoneInfo("UTC")


def call(value, path="/chqapi/export/inventory"):
    return post(path, value)


def test_both_values_work_until_the_grace_end_then_only_the_new(decision_cache, make_key, inventory_export):
    key = make_key(description="kept", grants=[GrantSpec(inventory_export.pk, logged=True)])
    old = key.value
    end = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    rolled = services.api_key_roll(key=key, grace_until=end)
    assert rolled.pk == key.pk
    assert rolled.value != old
    assert (rolled.previous_value, rolled.previous_until) == (old, end)
    before_end = end - timedelta(microseconds=1)
    for value in (old, rolled.value):
        decision = decide(value, direction="export", api_id="inventory", at=before_end)
        assert (decision.allowed, decision.logged, decision.key_id) == (True, True, key.pk)
        assert authenticate(value, at=before_end).allowed
    after = decide(old, direction="export", api_id="inventory", at=end)
    assert (after.allowed, after.reason, after.key_id) == (False, Reason.UNKNOWN_KEY, None)  # reveals nothing
    assert not authenticate(old, at=end).allowed
    assert decide(rolled.value, direction="export", api_id="inventory", at=end).allowed


def test_roll_keeps_id_grants_logs_and_history(make_key, inventory_export):
    key = make_key(description="kept", grants=[GrantSpec(inventory_export.pk, logged=True)])
    assert call(key.value).status_code == 501
    services.api_key_roll(key=key, grace_until=timezone.now() + timedelta(hours=1), actor=Actor(name="ops"))
    key.refresh_from_db()
    assert key.description == "kept"
    assert list(key.grants.values_list("api_type_id", "logged")) == [(inventory_export.pk, True)]
    assert ApiDocument.objects.filter(key=key).count() == 1
    assert [e.action for e in key.audit.order_by("id")] == ["created", "rolled"]


def test_audit_records_the_grace_end_never_a_value(make_key, settings):
    settings.TIME_ZONE = "UTC"
    key = make_key()
    old = key.value
    services.api_key_roll(key=key, grace_until=datetime(2030, 1, 2, 3, 4, tzinfo=UTC))
    key.refresh_from_db()
    entry = KeyAudit.objects.get(action="rolled")
    assert entry.changes == {"old value works until": [None, "2030-01-02 03:04"]}
    stored = json.dumps(entry.changes) + entry.key_description
    for value in (old, key.value):
        assert value.hex not in stored.replace("-", "")
        assert str(value) not in stored


def test_grace_now_lets_only_the_new_value_in(decision_cache, make_key):
    key = make_key(allowed_for_all=True)
    old = key.value
    rolled = services.api_key_roll(key=key, grace_until=timezone.now() - timedelta(days=1))
    assert call(old).status_code == 401
    assert call(rolled.value).status_code == 501


def test_ending_the_grace_early_is_obeyed_by_the_next_call(decision_cache, make_key):
    key = make_key(allowed_for_all=True)
    old = key.value
    services.api_key_roll(key=key, grace_until=timezone.now() + timedelta(days=7))
    assert call(old).status_code == 501  # warm the decision cache with the old value
    services.api_key_end_grace(key=ApiKey.objects.get(pk=key.pk), actor=Actor(name="ops"))
    assert call(old).status_code == 401
    entry = KeyAudit.objects.filter(key=key).order_by("-id").first()
    assert entry.action == "changed"
    assert list(entry.changes) == ["old value works until"]


def test_rolling_again_stops_the_older_value_at_once(decision_cache, make_key):
    key = make_key(allowed_for_all=True)
    first = key.value
    second = services.api_key_roll(key=key, grace_until=timezone.now() + timedelta(days=7)).value
    third = services.api_key_roll(key=ApiKey.objects.get(pk=key.pk), grace_until=timezone.now() + timedelta(days=7))
    assert call(first).status_code == 401
    assert call(second).status_code == 501
    assert call(third.value).status_code == 501
    last_roll = KeyAudit.objects.filter(action="rolled").order_by("id").last()
    assert last_roll.changes["an older value"] == ["working", "stopped"]


def test_pane_rolls_with_a_chosen_grace(client, administrator, make_key):
    key = make_key(allowed_for_all=True)
    old = key.value
    client.force_login(administrator)
    dialog = client.get(reverse("keys:roll", args=[key.pk])).content.decode()
    assert "roll API key" in dialog
    assert 'value="24h"' in dialog
    response = client.post(
        reverse("keys:roll", args=[key.pk]), {"grace": "1h", "version": key.version}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204
    key.refresh_from_db()
    assert key.previous_value == old
    assert timedelta(minutes=59) < key.previous_until - timezone.now() <= timedelta(hours=1)
    html = client.get(reverse("keys:pane")).content.decode()
    assert re.search(rf"old value …{old.hex[-4:]} works until \d{{4}}-\d\d-\d\d \d\d:\d\d", html)
    details = client.get(reverse("keys:details", args=[key.pk])).content.decode()
    assert "stop the old value now" in details
    assert client.post(reverse("keys:end-grace", args=[key.pk]), HTTP_HX_REQUEST="true").status_code == 204
    assert call(old).status_code == 401


def test_pane_roll_until_needs_a_moment_and_a_fresh_version(client, administrator, make_key):
    key = make_key(allowed_for_all=True)
    client.force_login(administrator)
    url = reverse("keys:roll", args=[key.pk])
    response = client.post(url, {"grace": "until", "version": key.version})
    assert response.status_code == 422
    assert "Write the date and time the old value stops working" in response.content.decode()
    response = client.post(url, {"grace": "until", "until": "2030-01-01 10:00", "version": key.version + 1})
    assert response.status_code == 409
    key.refresh_from_db()
    assert key.previous_value is None


def test_viewer_cannot_roll(client, viewer, make_key):
    key = make_key()
    client.force_login(viewer)
    assert client.post(reverse("keys:roll", args=[key.pk]), {"grace": "now"}).status_code == 403
    assert client.post(reverse("keys:end-grace", args=[key.pk])).status_code == 403
    assert ApiKey.objects.get(pk=key.pk).value == key.value


def test_roll_command(make_key):
    key = make_key(allowed_for_all=True)
    old = str(key.value)
    out = StringIO()
    call_command("roll_api_key", old, "--grace", "7d", "--quiet", stdout=out)
    new = out.getvalue().strip()
    key.refresh_from_db()
    assert str(key.value) == new
    assert timedelta(days=6, hours=23) < key.previous_until - timezone.now() <= timedelta(days=7)
    shown = StringIO()
    call_command("show_api_key", old, stdout=shown)  # the old value still names the key
    assert "the old value works until" in shown.getvalue()
    call_command("roll_api_key", new, "--end-grace", stdout=StringIO())
    assert call(old).status_code == 401
    with pytest.raises(CommandError, match="--grace: 'soon' is not now, a period"):
        call_command("roll_api_key", new, "--grace", "soon")


def test_admin_roll_action(client, superuser, make_key):
    key = make_key(allowed_for_all=True)
    old = key.value
    client.force_login(superuser)
    client.post(reverse("admin:keys_apikey_changelist"), {"action": "roll", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.previous_value == old
    assert KeyAudit.objects.filter(key=key, action="rolled", source="admin").exists()
    client.post(reverse("admin:keys_apikey_changelist"), {"action": "end_grace", "_selected_action": [key.pk]})
    assert call(old).status_code == 401


def test_an_old_value_without_a_grace_end_is_refused(decision_cache, make_key):
    # Services always set both; a hand-made row with only the old value must still let nothing in.
    key = make_key(allowed_for_all=True)
    old = uuid.uuid4()
    ApiKey.objects.filter(pk=key.pk).update(
        previous_digest=sealing.digest(old), previous_sealed=sealing.seal(old), previous_until=None
    )
    assert decide(old, direction="export", api_id="inventory").reason == Reason.UNKNOWN_KEY
