"""The pane's notice of keys that end soon (pane.html#due-notice): what it lists, where its
links go for each right, that the table's own reloads leave it alone, and that it reloads
itself after a change."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from keys.services import GrantSpec

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.KEYS_EXPIRY_WARNING_DAYS = [14, 3]


def notice(html: str) -> str:
    found = re.search(r'<section class="due-notice".*?</section>', html, re.S)
    return found.group(0) if found else ""


def test_lists_each_end_with_its_key_and_the_edit_link(administrator_client, make_key, inventory_export):
    now = timezone.now()
    expiring = make_key(description="ERP <orders>", allowed_for_all=True, expires_at=now + timedelta(days=2, minutes=5))
    logging = make_key(
        grants=[GrantSpec(inventory_export.pk, logged=True, logging_until=timezone.localdate() + timedelta(days=5))]
    )
    make_key(description="far", allowed_for_all=True, expires_at=now + timedelta(days=30))
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    part = notice(html)
    assert '<h2 id="due-title">ending soon</h2>' in part
    items = re.findall(r"<li>.*?</li>", part, re.S)
    assert len(items) == 2
    assert "ERP &lt;orders&gt;" in items[0]  # escaped
    assert f'hx-get="{reverse("keys:edit", args=[expiring.pk])}"' in items[0]
    assert f"key {expiring.pk}</span>" in items[0]
    assert "in 2 days" in items[0]
    assert "(no description)" in items[1]
    assert f"logging of {inventory_export.name} ends after" in items[1]
    assert f'hx-get="{reverse("keys:edit", args=[logging.pk])}"' in items[1]
    assert "far" not in part
    # No key value in the notice: it names keys by description and number.
    assert str(expiring.value) not in part


def test_a_viewer_gets_the_details_link(client, viewer, make_key):
    key = make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=1))
    client.force_login(viewer)
    part = notice(client.get(reverse("keys:pane")).content.decode())
    assert f'hx-get="{reverse("keys:details", args=[key.pk])}"' in part
    assert reverse("keys:edit", args=[key.pk]) not in part


def test_nothing_ending_means_no_notice_but_the_reloading_place(administrator_client, make_key):
    make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=30))
    html = administrator_client.get(reverse("keys:pane")).content.decode()
    assert notice(html) == ""
    assert f'<div id="due-notice" hx-get="{reverse("keys:due")}" hx-trigger="keysChanged from:body"' in html


def test_the_table_reloading_itself_does_not_look_for_ends(administrator_client, make_key):
    make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=1))
    full = administrator_client.get(reverse("keys:pane"))
    assert notice(full.content.decode())
    reload = administrator_client.post(reverse("keys:pane"), HTTP_HX_REQUEST="true")
    assert reload.status_code == 200
    assert "due-notice" not in reload.content.decode()


def test_the_notice_reloads_itself_after_a_change(administrator_client, make_key, django_assert_max_num_queries):
    key = make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=1))
    with django_assert_max_num_queries(7):  # session, user, rights, keys, grants, warnings
        answer = administrator_client.get(reverse("keys:due"), HTTP_HX_REQUEST="true")
    html = answer.content.decode()
    assert html.lstrip().startswith('<div id="due-notice"')
    assert f"key {key.pk}</span>" in html
    assert "<html" not in html
    key.expires_at = timezone.now() + timedelta(days=40)
    key.save()
    assert notice(administrator_client.get(reverse("keys:due")).content.decode()) == ""


def test_the_warnings_already_sent_are_said(administrator_client, make_key):
    from keys.models import KeyWarning

    key = make_key(allowed_for_all=True, expires_at=timezone.now() + timedelta(days=1))
    KeyWarning.objects.create(key=key, ends="key", ends_at=key.expires_at, days_before=3, recipients=["a@example.com"])
    assert "warned 3 days before" in notice(administrator_client.get(reverse("keys:pane")).content.decode())


def test_past_five_the_rest_fold(administrator_client, make_key):
    now = timezone.now()
    keys = [
        make_key(description=f"key {n}", allowed_for_all=True, expires_at=now + timedelta(days=n + 1)) for n in range(7)
    ]
    part = notice(administrator_client.get(reverse("keys:pane")).content.decode())
    shown, folded = part.split("<details>")
    assert len(re.findall("<li>", shown)) == 5
    assert "<summary>2 more</summary>" in folded
    assert len(re.findall("<li>", folded)) == 2
    assert reverse("keys:edit", args=[keys[6].pk]) not in shown
    assert reverse("keys:edit", args=[keys[6].pk]) in folded
