"""Django admin: access by the two CHQ rights, saves through the services with
the dialog's rules, actions, and read-only call logs."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from keys.models import ApiDocument, ApiKey
from keys.services import GrantSpec
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    def make(level):
        group = {
            "viewer": "Integration viewers",
            "admin": "Integration administrators",
            "none": None,
            "django-perms": None,
        }[level]
        user = make_user(f"staff-{level}", group=group, is_staff=True)
        if level == "django-perms":  # how every other Django admin grants rights: all of the keys models'
            user.user_permissions.set(
                Permission.objects.filter(content_type__app_label="keys").exclude(
                    codename__in=["access_integration_settings", "change_integration_settings"]
                )
            )
        return user

    return make


@pytest.fixture
def log(make_key):
    key = make_key()
    return ApiDocument.objects.create(
        key=key,
        key_last4="abcd",
        api_type_name="Inventory Export",
        request_type="inventory-export",
        method="POST",
        path="/chqapi/export/inventory",
        status_code=200,
        duration_ms=1.0,
        request_body='{"Source": "ERP"}',
        response_body='{"ok": true}',
    )


URLS = [
    ("admin:keys_apikey_changelist", None),
    ("admin:keys_apikey_add", None),
    ("admin:keys_apitype_changelist", None),
    ("admin:keys_apidocument_changelist", None),
    ("admin:keys_apikey_change", "key"),
    ("admin:keys_apidocument_change", "log"),
    ("admin:keys_apidocument_add", None),
    ("admin:keys_keyusage_changelist", None),
    ("admin:keys_keyusage_add", None),
]

# level -> status per url name
EXPECTED = {
    "none": {name: 403 for name, _ in URLS},
    "django-perms": {name: 403 for name, _ in URLS},
    "viewer": {
        "admin:keys_apikey_changelist": 200,
        "admin:keys_apikey_add": 403,
        "admin:keys_apitype_changelist": 200,
        "admin:keys_apidocument_changelist": 200,
        "admin:keys_apikey_change": 200,
        "admin:keys_apidocument_change": 200,
        "admin:keys_apidocument_add": 403,
        "admin:keys_keyusage_changelist": 200,
        "admin:keys_keyusage_add": 403,
    },
    "admin": {
        "admin:keys_apikey_changelist": 200,
        "admin:keys_apikey_add": 200,
        "admin:keys_apitype_changelist": 200,
        "admin:keys_apidocument_changelist": 200,
        "admin:keys_apikey_change": 200,
        "admin:keys_apidocument_change": 200,
        "admin:keys_apidocument_add": 403,
        "admin:keys_keyusage_changelist": 200,
        "admin:keys_keyusage_add": 403,
    },
}


@pytest.mark.parametrize("level", ["none", "django-perms", "viewer", "admin"])
@pytest.mark.parametrize(("name", "arg"), URLS)
def test_admin_access_by_rights(client, staff, make_key, log, level, name, arg):
    client.force_login(staff(level))
    args = {"key": [log.key_id], "log": [log.pk], None: []}[arg]
    response = client.get(reverse(name, args=args))
    assert response.status_code == EXPECTED[level][name]
    if response.status_code == 403:  # a refusal says which right is missing, or why nobody may
        assert "Integration Settings CHQ" in response.text or "records of what happened" in response.text


@pytest.mark.parametrize(
    ("level", "listed"), [("none", False), ("django-perms", False), ("viewer", True), ("admin", True)]
)
def test_admin_index_lists_the_keys_models_only_with_the_access_right(client, staff, level, listed):
    client.force_login(staff(level))
    index = client.get(reverse("admin:index")).text
    assert ("API keys" in index) is listed
    assert (reverse("admin:keys_apikey_changelist") in index) is listed


def test_django_model_permissions_alone_are_refused_with_the_reason(client, staff, make_key):
    key = make_key()
    client.force_login(staff("django-perms"))
    response = client.get(reverse("admin:keys_apikey_change", args=[key.pk]))
    assert response.status_code == 403
    assert "Access Integration Settings CHQ" in response.text
    assert "grant nothing here" in response.text


def test_viewer_change_view_opens_read_only_and_says_why_a_save_is_refused(client, staff, make_key):
    key = make_key(description="ro")
    client.force_login(staff("viewer"))
    page = client.get(reverse("admin:keys_apikey_change", args=[key.pk]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.text  # no save button: read-only
    refused = client.post(reverse("admin:keys_apikey_change", args=[key.pk]), {"description": "changed"})
    assert refused.status_code == 403
    assert "Add/Edit Integration Settings CHQ" in refused.text


def test_viewer_sees_key_read_only(client, staff, make_key):
    key = make_key(description="ro")
    client.force_login(staff("viewer"))
    html = client.get(reverse("admin:keys_apikey_change", args=[key.pk])).content.decode()
    assert 'name="description"' not in html
    response = client.post(reverse("admin:keys_apikey_change", args=[key.pk]), {"description": "changed"})
    assert response.status_code == 403
    key.refresh_from_db()
    assert key.description == "ro"


def inline(prefix="grants", rows=()):
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        data |= {f"{prefix}-{i}-{k}": v for k, v in row.items()}
    return data


def test_add_key_with_grants_through_the_service(client, staff, inventory_export):
    user = staff("admin")
    client.force_login(user)
    data = {"description": "from admin", "is_active": "on"} | inline(
        rows=[{"api_type": inventory_export.pk, "logged": "on", "logging_until": "2027-01-31"}]
    )
    response = client.post(reverse("admin:keys_apikey_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    key = ApiKey.objects.get()
    assert (key.description, key.created_by, key.updated_by) == ("from admin", user, user)
    assert [(g.api_type_id, g.logged, str(g.logging_until)) for g in key.grants.all()] == [
        (inventory_export.pk, True, "2027-01-31")
    ]


@pytest.mark.parametrize(
    ("fields", "rows", "message"),
    [
        ({"logged_for_all": "on"}, [], "logged for all needs allowed for all."),
        ({}, [{"api_type": "{inv}", "logging_until": "2027-01-31"}], "A logging expiration date needs logged."),
        ({}, [{"api_type": "{inv}"}, {"api_type": "{inv}"}], "Please correct the duplicate data"),
    ],
)
def test_admin_applies_the_dialogs_rules(client, staff, inventory_export, fields, rows, message):
    client.force_login(staff("admin"))
    rows = [{k: str(inventory_export.pk) if v == "{inv}" else v for k, v in r.items()} for r in rows]
    response = client.post(reverse("admin:keys_apikey_add"), {"description": "bad"} | fields | inline(rows=rows))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ApiKey.objects.exists()


def test_edit_in_admin_keeps_value(client, staff, make_key, inventory_export):
    key = make_key(description="old", grants=[inventory_export.pk])
    client.force_login(staff("admin"))
    data = {"description": "new"} | inline(rows=[])
    data["grants-INITIAL_FORMS"] = "0"
    response = client.post(reverse("admin:keys_apikey_change", args=[key.pk]), data)
    assert response.status_code == 302
    edited = ApiKey.objects.get(pk=key.pk)
    assert (edited.value, edited.description, edited.is_active) == (key.value, "new", False)


def test_search_by_value_and_description(client, staff, make_key):
    wanted, other = make_key(description="shopify"), make_key(description="erp")
    client.force_login(staff("viewer"))
    url = reverse("admin:keys_apikey_changelist")
    for term in (str(wanted.value), str(wanted.value)[:13], "shopi"):
        html = client.get(url, {"q": term}).content.decode()
        assert str(wanted.value) in html, term
        assert str(other.value) not in html, term


def test_the_changelist_search_posts_and_a_key_value_never_reaches_an_address(client, staff, make_key):
    wanted, other = make_key(description="shopify"), make_key(description="shopify")
    client.force_login(staff("viewer"))
    changelist = reverse("admin:keys_apikey_changelist")
    html = client.get(changelist, {"is_active__exact": "1"}).content.decode()
    assert f'<form id="changelist-search" method="post" action="{reverse("admin:keys_apikey_search")}"' in html
    assert '<input type="hidden" name="is_active__exact" value="1">' in html  # the filters go along
    value = str(wanted.value)
    for term in (value, value.upper().replace("-", ""), f"shopify {value[:20]}"):
        response = client.post(reverse("admin:keys_apikey_search"), {"q": term, "is_active__exact": "1"})
        assert response.status_code == 302
        assert response["Location"] == f"{changelist}?is_active__exact=1&id__in={wanted.pk}", term
        html = client.get(response["Location"]).content.decode()
        assert value in html  # the key's own row
        assert str(other.value) not in html
        assert "1 key(s) match the search for a key value." in html
        assert f'value="{term}"' not in html  # the search box does not show it either


def test_a_changelist_search_without_a_value_is_the_admins_own(client, staff, make_key):
    client.force_login(staff("viewer"))
    changelist = reverse("admin:keys_apikey_changelist")
    search = reverse("admin:keys_apikey_search")
    response = client.post(search, {"q": " shopify  eu ", "id__in": "7"})  # a value search's answer is replaced
    assert response["Location"] == f"{changelist}?q=shopify+eu"
    assert client.post(search, {"q": ""})["Location"] == changelist
    assert client.get(search).status_code == 405
    client.force_login(staff("none"))
    assert client.post(search, {"q": "x"}).status_code == 403


def test_logging_on_filter(client, staff, make_key, inventory_export):
    on = make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])
    off = make_key(grants=[inventory_export.pk])
    client.force_login(staff("viewer"))
    html = client.get(reverse("admin:keys_apikey_changelist"), {"logging": "yes"}).content.decode()
    assert str(on.value) in html
    assert str(off.value) not in html


@pytest.mark.parametrize(("action", "start", "end"), [("activate", False, True), ("deactivate", True, False)])
def test_actions(client, staff, make_key, action, start, end):
    keys = [make_key(is_active=start) for _ in range(3)]
    client.force_login(staff("admin"))
    response = client.post(
        reverse("admin:keys_apikey_changelist"), {"action": action, "_selected_action": [k.pk for k in keys[:2]]}
    )
    assert response.status_code == 302
    assert [ApiKey.objects.get(pk=k.pk).is_active for k in keys] == [end, end, start]


def test_viewer_cannot_run_actions(client, staff, make_key):
    key = make_key(is_active=True)
    client.force_login(staff("viewer"))
    client.post(reverse("admin:keys_apikey_changelist"), {"action": "deactivate", "_selected_action": [key.pk]})
    assert ApiKey.objects.get(pk=key.pk).is_active


def test_call_logs_are_read_only_and_readable(client, staff, log):
    client.force_login(staff("admin"))
    html = client.get(reverse("admin:keys_apidocument_change", args=[log.pk])).content.decode()
    assert "&quot;Source&quot;: &quot;ERP&quot;" in html
    assert 'name="status_code"' not in html
    assert "Successful" in html  # the document's status and CHQ's name for its type
    assert "inventory-export" in html
    response = client.post(reverse("admin:keys_apidocument_delete", args=[log.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert ApiDocument.objects.filter(pk=log.pk).exists()


def test_log_changelist_filters_and_date_hierarchy(client, staff, log):
    client.force_login(staff("viewer"))
    response = client.get(reverse("admin:keys_apidocument_changelist"), {"status_code": "200"})
    assert response.status_code == 200
    assert "…abcd" in response.content.decode()


def test_usage_counts_are_listed_read_only(client, staff, make_key, inventory_export):
    from django.utils import timezone

    from keys.models import KeyUsage

    key = make_key(description="counted")
    KeyUsage.objects.create(key=key, api_type=inventory_export, day=timezone.localdate(), succeeded=12, inactive=3)
    client.force_login(staff("admin"))
    html = client.get(reverse("admin:keys_keyusage_changelist")).content.decode()
    assert "Inventory Export" in html
    assert '<td class="field-succeeded">12</td>' in html
    assert '<td class="field-inactive">3</td>' in html
    assert "Add key usage" not in html
