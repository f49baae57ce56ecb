"""The one guard on every kind of view a host writes (tests/guard_views_urls.py): a sync
function view, an `async def` view, class-based views (the mixin, sync and async, and
method_decorator), a DRF APIView and django-ninja endpoints (sync and async). For each:
allowed, refused (unknown key, key not allowed for the type), logged (its document stored
with what was sent), unlogged (no document), usage counted, and a warm call's queries.
Each is called through Django's test client (WSGI-like) and its AsyncClient (the ASGI
handler), and the async ones once more behind a real uvicorn server."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client, override_settings

from keys import usage
from keys.models import ApiDocument, KeyUsage
from keys.services import GrantSpec

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.guard_views_urls")]

KINDS = {
    "function": "/plain",
    "async function": "/async",
    "class-based": "/cbv",
    "async class-based": "/cbv-async",
    "method_decorator": "/cbv-decorated",
    "drf": "/drf",
    "ninja": "/ninja/inventory",
    "async ninja": "/ninja/inventory-async",
}


def sync_post(path, key, body=b"{}"):
    headers = {} if key is None else {"ApiKey": str(key)}
    return Client().post(path, body, content_type="application/json", headers=headers)


def asgi_post(path, key, body=b"{}"):
    """Through Django's ASGI handler; the guard's database work runs in this test's thread
    (thread-sensitive sync_to_async), so it sees the test's transaction."""
    headers = {} if key is None else {"ApiKey": str(key)}
    return async_to_sync(AsyncClient().post)(path, body, content_type="application/json", headers=headers)


@pytest.fixture(params=[sync_post, asgi_post], ids=["client", "asgi"])
def post(request):
    return request.param


@pytest.fixture(params=list(KINDS.values()), ids=list(KINDS))
def path(request):
    return request.param


@pytest.fixture
def allowed(make_key, inventory_export):
    return make_key(grants=[inventory_export.pk])


@pytest.fixture
def logged(make_key, inventory_export):
    return make_key(grants=[GrantSpec(inventory_export.pk, logged=True)])


def test_an_allowed_call_reaches_the_view_with_its_context(post, path, allowed):
    response = post(path, allowed.value)
    assert response.status_code == 200
    assert json.loads(response.content) == {"Items": [], "Key": allowed.pk}
    assert "ApiDocumentId" not in response  # not logged: no document to name
    assert ApiDocument.objects.count() == 0
    usage.flush()
    assert KeyUsage.objects.get(key=allowed).succeeded == 1


def test_an_unknown_key_is_refused_as_the_guard_refuses_it(post, path, db):
    response = post(path, "00000000-0000-0000-0000-000000000000")
    assert response.status_code == 401
    assert json.loads(response.content) == {"Message": "The API key is not known."}
    assert response["WWW-Authenticate"] == 'ApiKey realm="chqapi"'


def test_no_key_is_refused_with_401(post, path, db):
    response = post(path, None)
    assert response.status_code == 401
    assert set(json.loads(response.content)) == {"Message"}


def test_a_key_not_allowed_for_the_type_is_refused_403_and_counted(post, path, make_key, customer_import):
    key = make_key(grants=[customer_import.pk])
    response = post(path, key.value)
    assert response.status_code == 403
    assert json.loads(response.content) == {"Message": "The API key is not allowed to call Inventory Export."}
    usage.flush()
    assert KeyUsage.objects.get(key=key).not_allowed == 1


def test_a_call_over_the_key_rate_is_429_with_its_headers_on_every_kind(post, path, allowed, time_machine):
    time_machine.move_to("2026-06-15 10:00:00.100 +00:00", tick=False)
    allowed.rate_per_second = 1
    allowed.save()
    answered = post(path, allowed.value)
    assert answered.status_code == 200
    assert answered["RateLimit"] == '"second";r=0;t=1'  # the view's own answer carries them too
    refused = post(path, allowed.value)
    assert refused.status_code == 429
    assert json.loads(refused.content) == {
        "Message": "Too many calls with this API key. Try again after Retry-After seconds."
    }
    assert (refused["Retry-After"], refused["RateLimit-Policy"]) == ("1", '"second";q=1;w=1')
    usage.flush()
    row = KeyUsage.objects.get(key=allowed)
    assert (row.succeeded, row.limited) == (1, 1)


def test_a_call_from_an_address_not_listed_is_403_naming_it_on_every_kind(post, path, allowed):
    allowed.allowed_addresses = ["192.0.2.0/24"]
    allowed.save()
    response = post(path, allowed.value)  # the test clients call from 127.0.0.1
    assert response.status_code == 403
    assert json.loads(response.content) == {"Message": "The API key is not allowed to call from 127.0.0.1."}
    usage.flush()
    assert KeyUsage.objects.get(key=allowed).wrong_address == 1


def test_a_logged_call_is_stored_with_what_was_sent(post, path, logged):
    response = post(path, logged.value, b'{"Source": "widgets"}')
    assert response.status_code == 200
    document = ApiDocument.objects.get()
    assert str(document.document_id) == response["ApiDocumentId"]
    assert (document.status_code, document.key_id, document.source) == (200, logged.pk, "widgets")
    assert json.loads(document.response_body) == {"Items": [], "Key": logged.pk}
    assert document.request_type == "inventory-export"


@pytest.mark.parametrize("teapot", ["/async-teapot", "/drf-teapot", "/ninja/teapot"])
def test_an_api_error_is_answered_and_stored_as_the_guard_does(post, teapot, logged):
    response = post(teapot, logged.value)
    assert (response.status_code, json.loads(response.content)) == (418, {"Message": "short and stout"})
    document = ApiDocument.objects.get()
    assert (document.status_code, document.error_message) == (418, "short and stout")


@pytest.mark.parametrize("stream", ["/async-stream", "/sync-stream"])
def test_a_streamed_answer_is_sent_whole_and_stored(post, stream, logged):
    response = post(stream, logged.value)
    assert response.status_code == 200
    # An async stream stays one, and under ASGI a sync one becomes one (keys/streams.py): ASGI
    # sends it as it comes, where Django would read a sync iterator whole first.
    assert response.is_async == (stream == "/async-stream" or post is asgi_post)
    if response.is_async:
        body = async_to_sync(_collect)(response.streaming_content)
    else:
        body = b"".join(response.streaming_content)
    assert body == b'{"Chunk": 0}\n{"Chunk": 1}\n{"Chunk": 2}\n'
    document = ApiDocument.objects.get()  # recorded before the last chunk went
    assert (document.status_code, document.response_body) == (200, body.decode())


async def _collect(chunks) -> bytes:
    return b"".join([chunk async for chunk in chunks])


@override_settings(KEYS_DECISION_CACHE=True)
def test_warm_calls_make_no_query(path, allowed, make_key, customer_import, django_assert_num_queries):
    refused = make_key(grants=[customer_import.pk])
    sync_post(path, allowed.value)
    sync_post(path, refused.value)
    with django_assert_num_queries(0):
        assert sync_post(path, allowed.value).status_code == 200
    with django_assert_num_queries(0):
        assert sync_post(path, refused.value).status_code == 403


def test_importing_the_guard_imports_neither_framework_nor_the_wire_format():
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'chq.settings'; import django; django.setup(); "
        "import keys.guard; print(sorted(m for m in ('rest_framework', 'ninja') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_plain_ninja_api_still_decides_with_the_guard(allowed, make_key, customer_import):
    assert sync_post("/plain-ninja/inventory", allowed.value).json() == {"Items": [], "Key": allowed.pk}
    refused = sync_post("/plain-ninja/inventory", make_key(grants=[customer_import.pk]).value)
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "The API key is not allowed to call Inventory Export."},
    )


def test_drf_classes_without_the_mixin_still_decide_with_the_guard(allowed, make_key, customer_import):
    assert sync_post("/drf-without-mixin", allowed.value).json() == {"Items": [], "Key": allowed.pk}
    refused = sync_post("/drf-without-mixin", make_key(grants=[customer_import.pk]).value)
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "The API key is not allowed to call Inventory Export."},
    )
    assert sync_post("/drf-without-mixin", None).status_code == 401


def test_an_async_view_about_the_key_needs_only_an_active_key(post, make_key):
    key = make_key()  # no API type at all
    assert json.loads(post("/about-the-key", key.value).content) == {"Key": key.pk}
    refused = post("/about-the-key", "00000000-0000-0000-0000-000000000000")
    assert (refused.status_code, json.loads(refused.content)) == (401, {"Message": "The API key is not known."})
    assert ApiDocument.objects.count() == 0  # calls about the key are never logged


API_KEY_SCHEME = {"type": "apiKey", "in": "header", "name": "ApiKey"}


def test_drf_spectacular_documents_the_apikey_header(settings):
    from drf_spectacular.generators import SchemaGenerator

    from tests.guard_views_urls import urlpatterns

    settings.REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
    drf = [p for p in urlpatterns if str(p.pattern) == "drf"]
    schema = SchemaGenerator(patterns=drf).get_schema(request=None, public=True)
    assert schema["components"]["securitySchemes"] == {"ApiKey": API_KEY_SCHEME}
    assert schema["paths"]["/drf"]["post"]["security"] == [{"ApiKey": []}]


def test_ninjas_openapi_documents_the_apikey_header():
    from tests.guard_views_urls import ninja_api

    schema = ninja_api.get_openapi_schema()
    assert schema["components"]["securitySchemes"] == {"ApiKey": API_KEY_SCHEME}
    assert schema["paths"]["/ninja/inventory"]["post"]["security"] == [{"ApiKey": []}]
