"""The warnings before keys end, sent by the task worker's schedule (keys/warnings.py's
Schedule, started by keys/worker.py): in process through Django's locmem backend, and by
two real `manage.py db_worker` processes at once through the console backend on a scratch
database with production settings, each warning printed once per recipient."""

import email
import email.policy
import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from keys import warnings
from keys.models import ApiKey, KeyWarning
from tests import servers
from tests.servers import wait_for
from tests.task_workers import make_worker

SETUP = """
from datetime import timedelta
from unittest import mock
from django.contrib.auth.models import Group, User
from django.utils import timezone
from keys.models import ApiKey
from keys.services import api_key_create
admin = User.objects.create_user("ada", email="ada@example.com", password="a-long-test-password")
admin.groups.add(Group.objects.get(name="Integration administrators"))
User.objects.create_user("vera", email="vera@example.com").groups.add(Group.objects.get(name="Integration viewers"))
expiring = api_key_create(description="erp", is_active=True, allowed_for_all=True,
                          expires_at=timezone.now() + timedelta(days=2, hours=1))
ApiKey.objects.filter(pk=expiring.pk).update(contact_email="erp@example.com")
api_key_create(description="shop", is_active=True, allowed_for_all=True, logged_for_all=True,
               logging_until=timezone.localdate() + timedelta(days=10))
api_key_create(description="far", is_active=True, allowed_for_all=True, expires_at=timezone.now() + timedelta(days=60))
print(expiring.pk, expiring.value)
"""


@pytest.mark.django_db(transaction=True)
def test_the_task_worker_sends_a_due_warning_on_its_schedule_once(settings, migrated_data, make_key):
    """The worker's own loop and its schedule thread (a connection of its own, hence a
    transactional test), rounds every 0.3 s; one message however many rounds run."""
    settings.KEYS_WARNING_CHECK_MINUTES = 0.005
    settings.KEYS_EXPIRY_WARNING_DAYS = [3]
    key = make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=1))
    ApiKey.objects.filter(pk=key.pk).update(contact_email="erp@example.com")
    worker = make_worker("warnings")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: KeyWarning.objects.exclude(recipients=[]).exists())
        time.sleep(1.5)  # five more rounds
    finally:
        worker.running = False
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["erp@example.com"], f"API key number {key.pk} expires in 23 hours")
    ]
    assert KeyWarning.objects.get().recipients == ["erp@example.com"]


def test_a_round_that_fails_is_logged_and_the_next_comes(settings, caplog):
    settings.KEYS_WARNING_CHECK_MINUTES = 0.001  # 60 ms
    calls = []

    def send_due():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("a bug in one round")
        return 0

    with mock.patch.object(warnings, "send_due", send_due):
        schedule = warnings.Schedule()
        schedule.start()
        wait_for(lambda: len(calls) >= 3)
        schedule.stop()
    assert not schedule.thread.is_alive()
    assert "Key warnings: this round failed" in caplog.text
    assert "a bug in one round" in caplog.text


def test_no_schedule_when_its_minutes_are_0(settings):
    settings.KEYS_WARNING_CHECK_MINUTES = 0
    with mock.patch.object(warnings, "send_due") as send_due:
        schedule = warnings.Schedule()
        schedule.start()
        time.sleep(0.2)
        schedule.stop()
    assert not schedule.thread.is_alive()
    send_due.assert_not_called()


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=servers.ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_two_task_workers_send_each_warning_once_through_the_console_backend(tmp_path):
    env = servers.server_env(
        tmp_path,
        {
            "EMAIL_URL": "consolemail://",
            "DEFAULT_FROM_EMAIL": "CHQ keys <keys@example.com>",
            "KEYS_EXPIRY_WARNING_DAYS": "14,3",
            "KEYS_WARNING_CHECK_MINUTES": "0.01",  # a round every 0.6 s
        },
    )
    key_id, value = manage(env, "shell", "-v", "0", "-c", SETUP).split()
    outputs = [tmp_path / f"worker{n}.out" for n in range(2)]
    errors = [tmp_path / f"worker{n}.err" for n in range(2)]
    command = [sys.executable, "manage.py", "db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"]
    workers = [
        subprocess.Popen(command, cwd=servers.ROOT, env=env, stdout=open(out, "wb"), stderr=open(err, "wb"))  # noqa: SIM115
        for out, err in zip(outputs, errors, strict=True)
    ]
    try:
        printed = lambda: "".join(path.read_text() for path in outputs)  # noqa: E731
        # The expiring key: its contact and the administrator; the logging key (no contact): the administrator.
        wait_for(lambda: printed().count("\nSubject: ") >= 3)
        time.sleep(4)  # several more rounds of both workers
        assert all(worker.poll() is None for worker in workers), [e.read_text() for e in errors]
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)

    text = printed()
    messages = [
        email.message_from_string(part.strip(), policy=email.policy.default)
        for part in text.split("-" * 79)
        if "Subject: " in part
    ]
    assert sorted((m["To"], m["Subject"]) for m in messages) == [
        ("ada@example.com", "API key “erp” expires in 2 days"),
        ("ada@example.com", "Logging of API key “shop” ends in 10 days"),
        ("erp@example.com", "API key “erp” expires in 2 days"),
    ]
    assert {m["From"] for m in messages} == {"CHQ keys <keys@example.com>"}
    bodies = {(m["To"], m["Subject"]): m.get_content() for m in messages}
    assert "when the end is 3 days away or less." in bodies[("erp@example.com", "API key “erp” expires in 2 days")]
    shop = bodies[("ada@example.com", "Logging of API key “shop” ends in 10 days")]
    assert "when the end is 14 days away or less; another follows at 3 days." in shop
    assert "vera@example.com" not in text  # a viewer is not an administrator
    assert value not in text
    for err in errors:
        assert "Traceback" not in err.read_text(), err.read_text()
    due = json.loads(manage(env, "keys_due", "--json"))["due"]
    assert [(end["description"], end["ends"], end["warned_days"]) for end in due] == [
        ("erp", "key", [3]),
        ("shop", "logging", [14]),
    ]
    assert int(key_id) == due[0]["key_id"]
