"""`manage.py keys_due`: the keys that expire, or whose logging ends, within the warning
thresholds, as text and --json; --days looks further; --send sends what is due (cron)."""

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from keys.models import ApiKey, KeyWarning
from keys.services import GrantSpec
from tests.servers import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.KEYS_EXPIRY_WARNING_DAYS = [14, 3]


def run(*args: str) -> str:
    out = StringIO()
    call_command("keys_due", *args, stdout=out)
    return out.getvalue()


def test_lists_the_ends_soonest_first(make_key, inventory_export):
    now = timezone.now()
    later = make_key(description="later", allowed_for_all=True, expires_at=now + timedelta(days=10, minutes=1))
    sooner = make_key(
        description="sooner",
        grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=timezone.localdate() + timedelta(days=1))],
    )
    make_key(description="far", allowed_for_all=True, expires_at=now + timedelta(days=20))
    lines = run().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"key {sooner.pk:<6} sooner: logging of {inventory_export.name} ends after ")
    assert lines[1].startswith(f"key {later.pk:<6} later: expires ")
    assert lines[1].endswith(", in 10 days")


def test_json_carries_each_end_and_the_warnings_sent(make_key):
    key = make_key(description="erp", allowed_for_all=True, expires_at=timezone.now() + timedelta(days=2))
    KeyWarning.objects.create(key=key, ends="key", ends_at=key.expires_at, days_before=3, recipients=["a@example.com"])
    data = json.loads(run("--json"))
    assert data["days"] == 14
    (end,) = data["due"]
    assert end == {
        "key_id": key.pk,
        "description": "erp",
        "ends": "key",
        "ends_at": key.expires_at.isoformat(),
        "logging_until": None,
        "api_types": [],
        "seconds_left": end["seconds_left"],
        "warned_days": [3],
    }
    assert 2 * 86400 - 60 < end["seconds_left"] <= 2 * 86400
    assert "(warned 3 days before)" in run()
    assert str(key.value) not in run("--json")


def test_days_looks_further_and_nothing_due_says_so(make_key):
    make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=20))
    assert run() == "No key expires, and no key's logging ends, within 14 days.\n"
    assert len(json.loads(run("--json", "--days", "30"))["due"]) == 1
    assert len(json.loads(run("--json", "--days", "0.5"))["due"]) == 0


@pytest.mark.parametrize("bad", ["0", "-3", "soon", "nan", "99999"])
def test_a_bad_days_is_a_command_error(bad):
    with pytest.raises(CommandError, match="--days"):
        run("--days", bad)


def test_warnings_off_says_so(settings, make_key):
    settings.KEYS_EXPIRY_WARNING_DAYS = []
    make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=1))
    assert "Warnings are off" in run()
    assert len(json.loads(run("--json", "--days", "2"))["due"]) == 1


def test_send_sends_what_is_due_once(make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True, logging_until=timezone.localdate() + timedelta(days=1))
    ApiKey.objects.filter(pk=key.pk).update(contact_email="erp@example.com")
    assert run("--send").startswith("1 warning sent.\n")
    assert json.loads(run("--send", "--json"))["sent"] == 0
    assert [m.to for m in mail.outbox] == [["erp@example.com"]]
    assert KeyWarning.objects.get().ends == "logging"
    assert date.fromisoformat(json.loads(run("--json"))["due"][0]["logging_until"]) == key.logging_until


def test_the_demo_reads_the_thresholds_from_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env |= {"DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "KEYS_EXPIRY_WARNING_DAYS": "30,2"}
    command = [sys.executable, "manage.py", "keys_due", "--json"]
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    answer = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert json.loads(answer.stdout)["days"] == 30
    env["KEYS_EXPIRY_WARNING_DAYS"] = "14,soon"
    answer = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert answer.returncode != 0
    assert "KEYS_EXPIRY_WARNING_DAYS='14,soon': give whole numbers of days, comma-separated" in answer.stderr
