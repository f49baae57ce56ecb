"""show_api_key tells what remains of a key's quotas, in its text and in --json."""

import io
import json

from django.core.management import call_command

from keys.models import KeyUsage


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_show_tells_what_remains_of_the_quotas(make_key, inventory_export, time_machine, settings):
    settings.TIME_ZONE = "Europe/Amsterdam"
    time_machine.move_to("2026-06-15 10:00:00 +00:00", tick=False)
    key = make_key(allowed_for_all=True)
    key.quota_per_day, key.quota_per_month = 100, 5000
    key.save()
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-06-15", succeeded=30, server_errors=2)
    KeyUsage.objects.create(key=key, api_type=inventory_export, day="2026-06-10", succeeded=400, not_allowed=9)
    data = json.loads(run("show_api_key", str(key.value), "--json"))
    assert data["quota_left"] == [
        {"period": "day", "limit": 100, "used": 32, "left": 68, "resets_at": "2026-06-16T00:00:00+02:00"},
        {"period": "month", "limit": 5000, "used": 432, "left": 4568, "resets_at": "2026-07-01T00:00:00+02:00"},
    ]
    text = run("show_api_key", str(key.value))
    assert "quota left:      68 of 100 this day, starts again 2026-06-16T00:00:00+02:00" in text
    assert "quota left:      4568 of 5000 this month, starts again 2026-07-01T00:00:00+02:00" in text


def test_show_of_a_key_without_quotas_has_no_quota_lines(make_key):
    key = make_key(allowed_for_all=True)
    assert json.loads(run("show_api_key", str(key.value), "--json"))["quota_left"] == []
    assert "quota left" not in run("show_api_key", str(key.value))
