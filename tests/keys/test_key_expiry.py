"""Keys that expire (issue 14, part 1): refused from the moment set, in the
site's time zone, by the one decision; set and shown by every door."""

import json
import re
import zoneinfo
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from keys.access import Reason, authenticate, decide, expiry_label, key_problems
from keys.models import ApiKey, KeyAudit
from keys.services import GrantSpec
from tests.api_calls import post

pytestmark = pytest.mark.django_db

UTC = zoneinfo.ZoneInfo("UTC")


def test_refused_from_the_exact_moment(decision_cache, make_key, inventory_export):
    moment = datetime(2027, 1, 31, 22, 30, tzinfo=UTC)
    key = make_key(expires_at=moment, grants=[GrantSpec(inventory_export.pk)])
    just_before = decide(key.value, direction="export", api_id="inventory", at=moment - timedelta(microseconds=1))
    assert just_before.allowed
    at_the_moment = decide(key.value, direction="export", api_id="inventory", at=moment)
    assert (at_the_moment.allowed, at_the_moment.reason, at_the_moment.key_id) == (False, Reason.EXPIRED_KEY, key.pk)
    assert not authenticate(key.value, at=moment).allowed
    assert authenticate(key.value, at=moment - timedelta(seconds=1)).allowed


def test_inactive_is_said_before_expired(decision_cache, make_key):
    key = make_key(is_active=False, allowed_for_all=True, expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert decide(key.value, direction="export", api_id="inventory").reason == Reason.INACTIVE_KEY


def test_expired_call_is_401_with_a_message(decision_cache, make_key):
    key = make_key(allowed_for_all=True, expires_at=timezone.now() - timedelta(seconds=1))
    api = Client()
    for path in ("/chqapi/export/inventory", "/chqapi/status"):
        response = post(path, key.value, client=api)
        assert response.status_code == 401
        assert response.json() == {"Message": "The API key has expired."}
    # Not expired yet: the same key is served.
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    response = post("/chqapi/export/inventory", key.value, client=api)
    assert response.status_code == 501


def test_dialog_sets_expiry_in_the_site_time_zone(client, administrator, settings, inventory_export):
    settings.TIME_ZONE = "America/New_York"
    client.force_login(administrator)
    data = {"is_active": "on", "selected": [inventory_export.pk], "expires_at": "2027-01-31 17:30"}
    assert client.post(reverse("keys:new"), data, HTTP_HX_REQUEST="true").status_code == 204
    key = ApiKey.objects.get()
    assert key.expires_at == datetime(2027, 1, 31, 22, 30, tzinfo=UTC)  # 17:30 in New York is 22:30 UTC
    html = client.get(reverse("keys:edit", args=[key.pk])).content.decode()
    assert 'value="2027-01-31 17:30"' in html
    entry = KeyAudit.objects.get(key=key)
    assert entry.changes["expires"] == [None, "2027-01-31 17:30"]


def test_dialog_refuses_a_bad_expiry_and_keeps_the_rest(client, administrator):
    client.force_login(administrator)
    data = {"description": "kept", "expires_at": "31/01/2027"}
    response = client.post(reverse("keys:new"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    html = response.content.decode()
    assert "Enter a valid date/time." in html
    assert 'value="kept"' in html
    assert not ApiKey.objects.exists()


def test_table_says_expired_and_flags_soon(client, administrator, make_key, settings):
    settings.KEYS_EXPIRY_WARNING_DAYS = 7
    now = timezone.now()
    gone = make_key(allowed_for_all=True, expires_at=now - timedelta(minutes=1))
    soon = make_key(allowed_for_all=True, expires_at=now + timedelta(days=3, hours=1))
    later = make_key(allowed_for_all=True, expires_at=now + timedelta(days=30, hours=1))
    client.force_login(administrator)
    html = client.get(reverse("keys:pane")).content.decode()
    rows = {int(i): row for i, row in re.findall(r'<tr data-id="(\d+)".*?>(.*?)</tr>', html, re.S)}
    assert '<span class="state state-warn">expired</span>' in rows[gone.pk]
    assert '<span class="state state-warn">expires in 3 days</span>' in rows[soon.pk]
    assert '<span class="state state-ok">expires in 30 days</span>' in rows[later.pk]


def test_expiry_labels():
    now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    assert expiry_label(None, at=now) == ""
    assert expiry_label(now, at=now) == "expired"
    assert expiry_label(now + timedelta(days=1), at=now) == "expires in 1 day"
    assert expiry_label(now + timedelta(days=2, hours=5), at=now) == "expires in 2 days"
    assert expiry_label(now + timedelta(hours=2, minutes=5), at=now) == "expires in 2 hours"
    assert expiry_label(now + timedelta(hours=1), at=now) == "expires in 1 hour"
    assert expiry_label(now + timedelta(minutes=5), at=now) == "expires within the hour"


def test_key_problems_include_expired(make_key):
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    key = make_key(allowed_for_all=True, expires_at=moment)
    assert key_problems(key, at=moment - timedelta(seconds=1)) == []
    assert key_problems(key, at=moment) == ["expired"]


def test_commands_set_show_and_clear_expiry(settings):
    settings.TIME_ZONE = "UTC"
    call_command("create_api_key", "--description", "c", "--all", "--expires", "2027-01-31T17:30", stdout=StringIO())
    key = ApiKey.objects.get()
    value = str(key.value)
    assert key.expires_at == datetime(2027, 1, 31, 17, 30, tzinfo=UTC)
    shown = StringIO()
    call_command("show_api_key", value, stdout=shown)
    assert "expires:         2027-01-31T17:30:00+00:00 (" in shown.getvalue()
    as_json = StringIO()
    call_command("show_api_key", value, "--json", stdout=as_json)
    assert json.loads(as_json.getvalue())["expires_at"] == "2027-01-31T17:30:00+00:00"
    call_command("update_api_key", value, "--expires", "never", stdout=StringIO())
    key.refresh_from_db()
    assert key.expires_at is None
    with pytest.raises(CommandError, match="--expires: 'soon' is not a date and time"):
        call_command("update_api_key", value, "--expires", "soon")


def test_admin_shows_and_saves_expiry(admin_client, make_key):
    key = make_key(allowed_for_all=True)
    url = reverse("admin:keys_apikey_change", args=[key.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="expires_at_0"' in html


def test_decide_for_type_knows_expiry(make_key, inventory_export):
    from keys.access import decide_for_type

    moment = datetime(2027, 1, 1, tzinfo=UTC)
    key = make_key(expires_at=moment, grants=[GrantSpec(inventory_export.pk, logged=True)])
    assert decide_for_type(key, inventory_export, at=moment - timedelta(seconds=1)).logged
    refused = decide_for_type(key, inventory_export, at=moment)
    assert (refused.allowed, refused.reason) == (False, Reason.EXPIRED_KEY)


def test_expiry_label_under_a_second_left():
    now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    assert expiry_label(now + timedelta(milliseconds=500), at=now) == "expires within the hour"


def test_authenticate_warm_makes_no_query(settings, make_key, django_assert_num_queries):
    settings.KEYS_DECISION_CACHE = True
    key = make_key()
    assert authenticate(key.value).allowed
    with django_assert_num_queries(0):
        assert authenticate(key.value).allowed


def test_authenticate_without_the_cache_reads_the_row_each_time(settings, make_key):
    from django.db import connection

    settings.KEYS_DECISION_CACHE = False
    key = make_key()
    assert authenticate(key.value).allowed
    with connection.cursor() as cursor:  # behind Django's back: no change marker moves
        cursor.execute(f"UPDATE {ApiKey._meta.db_table} SET is_active = %s WHERE id = %s", [False, key.pk])
    assert authenticate(key.value).reason == Reason.INACTIVE_KEY
