"""The one request path of /chqapi/ calls (keys/chqapi/middleware.py): ApiMiddleware, first
in MIDDLEWARE, answers them through KEYS_API_MIDDLEWARE's short chain under Django's own
handler. Called in process through chq/wsgi.py's application as gunicorn calls it, through
the test client and Django's ASGI handler, and over sockets from a real gunicorn and a real
uvicorn: the same security headers and JSON answers everywhere."""

import http.client
import io
import json
import urllib.parse
import warnings

import pytest
from asgiref.sync import async_to_sync
from django.core import signals
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIHandler
from django.db import DatabaseError, connection, connections
from django.http import StreamingHttpResponse
from django.test import AsyncClient, override_settings
from django.urls import include, reverse
from django.urls import path as route

from bench.common import wsgi_environ
from chq.wsgi import application
from keys.chqapi import middleware
from keys.chqapi.exports import STREAM_ABOVE
from keys.chqapi.urls import missed
from keys.guard import flow
from keys.models import ApiType
from tests import servers
from tests.api_calls import post
from tests.conftest import stored_documents

pytestmark = pytest.mark.usefixtures("connections_kept")


def wsgi_call(
    path: str, key: str = "", body: bytes = b"{}", method: str = "POST", app=application, **environ
) -> tuple[int, dict, bytes]:
    """One WSGI call; (status, headers, body). A test that changes the middleware's settings passes
    a handler made after the change (WSGIHandler()): middleware read them once, when made."""
    base = wsgi_environ(path, key, body, method)
    started = []
    result = app(base | environ, lambda status, headers, *a: started.append((status, headers)))
    try:
        content = b"".join(result)
    finally:
        result.close()
    status, headers = started[0]
    return int(status.split()[0]), dict(headers), content


@pytest.fixture
def allowed_key(make_key, inventory_export):
    return str(make_key(grants=[inventory_export.pk]).value)


def test_an_allowed_call_gets_the_sites_security_headers_and_no_cookie(client, allowed_key, settings):
    status, headers, content = wsgi_call("/chqapi/export/inventory", allowed_key)
    assert status == 501
    assert json.loads(content)["Message"].startswith("Your API key may call ")
    site = post("/chqapi/export/inventory", allowed_key, client=client)
    for name in ("X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy", "Content-Type"):
        assert headers[name] == site[name], name
    assert headers["Content-Length"] == str(len(content))
    assert "Set-Cookie" not in headers
    assert "Content-Security-Policy" not in headers  # nothing here renders a page


def test_hsts_is_sent_over_https(allowed_key, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    _, headers, _ = wsgi_call(
        "/chqapi/export/inventory", allowed_key, app=WSGIHandler(), **{"wsgi.url_scheme": "https"}
    )
    assert headers["Strict-Transport-Security"].startswith("max-age=3600")


def test_plain_http_is_redirected_when_https_is_required(allowed_key, settings):
    settings.SECURE_SSL_REDIRECT = True
    status, headers, _ = wsgi_call("/chqapi/export/inventory", allowed_key, app=WSGIHandler())
    assert status == 301
    assert headers["Location"] == "https://127.0.0.1/chqapi/export/inventory"


HOST_REFUSED = {"Message": "This server does not answer for that host."}


@pytest.mark.parametrize(
    ("redirect", "environ"),
    [
        (False, {}),  # nothing on the way reads the host
        (True, {}),  # the HTTPS redirect would have read it, and answered the site's HTML 400
        (True, {"HTTP_X_FORWARDED_PROTO": "https"}),  # behind a TLS proxy: no redirect, nothing read it
    ],
    ids=["plain", "https-redirect", "tls-proxy"],
)
def test_a_disallowed_host_is_a_json_400_before_any_work(
    allowed_key, settings, django_assert_num_queries, redirect, environ
):
    settings.SECURE_SSL_REDIRECT = redirect
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["chq.example"]
    app = WSGIHandler()
    with django_assert_num_queries(0):  # no key lookup: a valid key made no difference
        status, headers, content = wsgi_call(
            "/chqapi/export/inventory", allowed_key, app=app, HTTP_HOST="evil.example", **environ
        )
    assert (status, json.loads(content)) == (400, HOST_REFUSED)
    assert headers["Content-Type"] == "application/json"
    assert "Set-Cookie" not in headers
    status, _, _ = wsgi_call("/chqapi/export/inventory", allowed_key, app=app, HTTP_HOST="chq.example", **environ)
    assert status == (301 if redirect and not environ else 501)


def test_a_host_once_accepted_is_refused_when_allowed_hosts_no_longer_name_it(allowed_key, settings):
    # keys/chqapi/errors.py remembers accepted Host headers with the settings that accepted them.
    settings.ALLOWED_HOSTS = ["chq.example", "old.example"]
    assert wsgi_call("/chqapi/export/inventory", allowed_key, HTTP_HOST="old.example")[0] == 501
    assert wsgi_call("/chqapi/export/inventory", allowed_key, HTTP_HOST="old.example")[0] == 501  # remembered
    settings.ALLOWED_HOSTS = ["chq.example"]
    status, _, content = wsgi_call("/chqapi/export/inventory", allowed_key, HTTP_HOST="old.example")
    assert (status, json.loads(content)) == (400, HOST_REFUSED)
    settings.USE_X_FORWARDED_HOST = True  # another header decides: the remembered Host does not count
    status, _, _ = wsgi_call(
        "/chqapi/export/inventory", allowed_key, HTTP_HOST="chq.example", HTTP_X_FORWARDED_HOST="evil.example"
    )
    assert status == 400


def test_a_disallowed_host_is_refused_on_site_pages_and_through_the_test_client_too(allowed_key, settings, client):
    settings.ALLOWED_HOSTS = ["chq.example"]
    for path in ("/settings/integrations/keys/", "/accounts/login/", "/healthz"):
        status, headers, content = wsgi_call(path, method="GET", HTTP_HOST="evil.example")
        assert (status, json.loads(content)) == (400, HOST_REFUSED), path
        assert "Set-Cookie" not in headers
    response = post("/chqapi/export/inventory", allowed_key, HTTP_HOST="evil.example", client=client)
    assert (response.status_code, response.json()) == (400, HOST_REFUSED)
    assert not response.cookies
    assert client.get("/accounts/login/", HTTP_HOST="chq.example").status_code == 200


@pytest.mark.parametrize(
    ("path", "method"), [("//chqapi/export/inventory", "POST"), ("/chqapi", "POST"), ("/chqapi", "GET")]
)
def test_paths_next_to_the_apis_answer_its_json_404(allowed_key, client, path, method):
    status, headers, content = wsgi_call(path, allowed_key, method=method)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert "no such API route" in json.loads(content)["Message"]
    assert "Set-Cookie" not in headers
    if path.startswith("//"):
        return  # the test client would read "//chqapi" as a host name; the socket test sends it
    response = client.generic(method, path, b"{}", content_type="application/json", HTTP_APIKEY=allowed_key)
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")


def test_every_route_is_served_and_the_rest_is_a_json_404_or_405(allowed_key):
    status, _, content = wsgi_call("/chqapi/nowhere", allowed_key)
    assert status == 404
    assert "no such API route" in json.loads(content)["Message"]
    status, headers, content = wsgi_call("/chqapi/export/inventory", allowed_key, method="GET")
    assert status == 405
    assert headers["Allow"] == "POST"
    assert json.loads(content)["Message"]
    status, _, content = wsgi_call("/chqapi/status", allowed_key, json.dumps({"ApiDocumentId": "x"}).encode())
    assert status == 400
    assert json.loads(content)["ModelState"]


def test_a_failing_view_answers_json_and_the_database_failing_answers_503(allowed_key, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(flow, "guarded_call", explode)
    status, _, content = wsgi_call("/chqapi/export/inventory", allowed_key)
    assert (status, json.loads(content)) == (500, {"Message": "The server failed while carrying out the call."})
    assert "boom" not in content.decode()

    def database_down(*args, **kwargs):
        raise DatabaseError("unreachable")

    monkeypatch.setattr(flow, "guarded_call", database_down)
    status, headers, content = wsgi_call("/chqapi/export/inventory", allowed_key)
    assert status == 503
    assert headers["Retry-After"]
    assert "unreachable" not in content.decode()


def test_djangos_handler_sends_request_started_and_request_finished_for_an_api_call(allowed_key):
    seen = []

    def started(sender, environ, **kwargs):
        seen.append(("started", environ["PATH_INFO"]))

    def finished(**kwargs):
        seen.append(("finished", None))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        status, _, _ = wsgi_call("/chqapi/export/inventory", allowed_key)
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert status == 501
    assert seen == [("started", "/chqapi/export/inventory"), ("finished", None)]


def test_a_refused_calls_body_is_never_read(allowed_key):
    class Unreadable(io.RawIOBase):
        def readinto(self, buffer):
            raise AssertionError("the body of a refused call was read")

    status, _, _ = wsgi_call("/chqapi/export/inventory", "not-a-key", **{"wsgi.input": Unreadable()})
    assert status == 401
    status, _, _ = wsgi_call("/chqapi/export/inventory", allowed_key, body=b'{"Source": "x"}')
    assert status == 501


def test_remembered_routes_are_bounded_and_right(allowed_key):
    middleware.api_route.cache_clear()
    for n in range(3):
        wsgi_call(f"/chqapi/export/made-up-{n}", allowed_key)
    wsgi_call("/chqapi/export/inventory/async", allowed_key)
    assert middleware.api_route.cache_info().currsize == 4
    assert middleware.api_route("chq.urls", "/chqapi/export/inventory/async").url_name == "chqapi-export-async"
    assert middleware.api_route("chq.urls", "/chqapi/export/echo/EcommQty").kwargs == {"api_id": "echo/EcommQty"}
    assert middleware.api_route("chq.urls", "/settings/integrations/keys/") is None  # a site page
    assert middleware.api_route("chq.urls", "/no/such/page") is None
    assert middleware.api_route.cache_info().maxsize == middleware.RESOLVED_PATHS


@override_settings(KEYS_DECISION_CACHE=True)
def test_a_warm_allowed_call_makes_no_query_through_the_handler(allowed_key, django_assert_num_queries):
    wsgi_call("/chqapi/export/inventory", allowed_key)
    with django_assert_num_queries(0):
        status, _, _ = wsgi_call("/chqapi/export/inventory", allowed_key)
    assert status == 501


class SiteMarker:
    """A site middleware: marks every answer that went through the site's chain."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Site-Chain"] = "yes"
        return response


class ApiMarker(SiteMarker):
    """A host's middleware named in KEYS_API_MIDDLEWARE: sees the API's calls and their failures."""

    failures: list = []

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Api-Chain"] = request.resolver_match.url_name
        return response

    def process_exception(self, request, exception):
        self.failures.append(str(exception))


def test_only_the_middleware_the_host_names_run_on_the_api(settings, allowed_key, monkeypatch):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.api.test_api_handler.SiteMarker"]
    settings.KEYS_API_MIDDLEWARE = [*settings.KEYS_API_MIDDLEWARE, "tests.api.test_api_handler.ApiMarker"]
    app = WSGIHandler()
    status, headers, _ = wsgi_call("/chqapi/export/inventory", allowed_key, app=app)
    assert (status, headers["X-Api-Chain"]) == (501, "chqapi-export")
    assert "X-Site-Chain" not in headers
    assert headers["X-Content-Type-Options"] == "nosniff"  # the API's chain keeps its defaults
    status, headers, _ = wsgi_call("/accounts/login/", method="GET", app=app)
    assert (status, headers["X-Site-Chain"]) == (200, "yes")
    assert "X-Api-Chain" not in headers

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(flow, "guarded_call", explode)
    ApiMarker.failures.clear()
    status, _, content = wsgi_call("/chqapi/export/inventory", allowed_key, app=app)
    assert (status, ApiMarker.failures) == (500, ["boom"])  # the host's hook saw it, the answer stays JSON
    assert json.loads(content)["Message"] == "The server failed while carrying out the call."


def test_no_api_middleware_at_all_still_answers_json_with_a_length(settings, allowed_key):
    settings.KEYS_API_MIDDLEWARE = []
    status, headers, content = wsgi_call("/chqapi/export/inventory", allowed_key, app=WSGIHandler())
    assert (status, headers["Content-Length"]) == (501, str(len(content)))
    assert "X-Content-Type-Options" not in headers  # the host chose no security headers


def test_atomic_requests_wraps_the_api_view_as_django_wraps_any_view(allowed_key, monkeypatch):
    depth = []
    view = flow.guarded_call

    def recording(*args, **kwargs):
        depth.append(len(connection.atomic_blocks))
        return view(*args, **kwargs)

    monkeypatch.setattr(flow, "guarded_call", recording)
    wsgi_call("/chqapi/export/inventory", allowed_key, app=WSGIHandler())
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    status, _, _ = wsgi_call("/chqapi/export/inventory", allowed_key, app=WSGIHandler())
    assert status == 501
    assert depth[1] == depth[0] + 1  # one transaction more around the view (the test's own is outside)


# A host that mounts the API elsewhere: its paths are the API's, wherever they are.
urlpatterns = [route("integrations/chq/", include("keys.chqapi.urls")), *missed]


@override_settings(ROOT_URLCONF=__name__)
def test_the_api_mounted_elsewhere_takes_the_same_path_and_reverses_there(settings, allowed_key):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.api.test_api_handler.SiteMarker"]
    url = reverse("chqapi-export", kwargs={"api_id": "inventory"})
    assert url == "/integrations/chq/export/inventory"
    status, headers, content = wsgi_call(url, allowed_key, app=WSGIHandler())
    assert status == 501
    assert json.loads(content)["Message"].startswith("Your API key may call ")
    assert "X-Site-Chain" not in headers
    status, headers, _ = wsgi_call("/integrations/chq/nowhere", allowed_key, app=WSGIHandler())
    assert (status, headers["Content-Type"]) == (404, "application/json")


def test_djangos_asgi_handler_takes_the_same_path(allowed_key, client):
    """In process, through the async chain Django builds under ASGI (the async test client)."""
    site = post("/chqapi/export/inventory", allowed_key, client=client)
    response = async_to_sync(AsyncClient().post)(
        "/chqapi/export/inventory", b"{}", content_type="application/json", headers={"ApiKey": allowed_key}
    )
    assert response.status_code == 501
    assert sorted(response.headers.items()) == sorted(site.headers.items())
    assert response["Content-Length"] == str(len(response.content))


def test_a_streamed_export_is_an_async_iterator_under_asgi(make_key):
    """Django's ASGI handler would read a sync iterator whole (and warn); the export is streamed
    through an async iterator instead, chunk by chunk, and is the same text as under WSGI."""
    documents = ApiType.objects.get(direction="export", api_id="apidocument")
    key = make_key(grants=[documents.pk])
    stored_documents(key, STREAM_ABOVE + 500)
    status, _, content = wsgi_call("/chqapi/export/apidocument", str(key.value))  # WSGI: a sync iterator, as before
    assert status == 200
    assert len(json.loads(content)["ApiDocument"]["Response"]["ApiDocuments"]) == STREAM_ABOVE + 500

    async def export() -> tuple[StreamingHttpResponse, list[bytes]]:
        response = await AsyncClient().post(
            "/chqapi/export/apidocument", b"{}", content_type="application/json", headers={"ApiKey": str(key.value)}
        )
        return response, [part async for part in response]

    with warnings.catch_warnings():
        warnings.filterwarnings("error", "StreamingHttpResponse must consume synchronous iterators")
        response, parts = async_to_sync(export)()
    assert (response.status_code, response.streaming, response.is_async) == (200, True, True)
    assert len(parts) > 2  # sent in pieces, as made
    assert len(json.loads(b"".join(parts))["ApiDocument"]["Response"]["ApiDocuments"]) == STREAM_ABOVE + 500


def test_under_an_async_chain_the_middleware_is_async_and_streams_too(settings, make_key, monkeypatch):
    """A host whose chain below is async-capable (here: nothing else) gets ApiMiddleware as an
    async middleware: no thread hop of its own; the API's chain still runs in Django's sync thread."""
    settings.MIDDLEWARE = ["keys.chqapi.middleware.ApiMiddleware"]
    awaited = []
    acall = middleware.ApiMiddleware._acall

    def counted(self, request):
        awaited.append(request.path)
        return acall(self, request)

    monkeypatch.setattr(middleware.ApiMiddleware, "_acall", counted)
    documents = ApiType.objects.get(direction="export", api_id="apidocument")
    key = make_key(grants=[documents.pk])
    stored_documents(key, STREAM_ABOVE + 1)

    async def calls():
        client = AsyncClient()
        export = await client.post(
            "/chqapi/export/apidocument", b"{}", content_type="application/json", headers={"ApiKey": str(key.value)}
        )
        parts = [part async for part in export]
        site = await client.get("/healthz")
        return export, parts, site

    with warnings.catch_warnings():
        warnings.filterwarnings("error", "StreamingHttpResponse must consume synchronous iterators")
        export, parts, site = async_to_sync(calls)()
    assert awaited == ["/chqapi/export/apidocument", "/healthz"]
    assert (export.status_code, export.is_async, export["X-Content-Type-Options"]) == (200, True, "nosniff")
    assert len(json.loads(b"".join(parts))["ApiDocument"]["Response"]["ApiDocuments"]) == STREAM_ABOVE + 1
    assert site.status_code == 200
    assert "X-Content-Type-Options" not in site  # the site's chain (here: empty) answered it


def test_an_async_only_api_middleware_is_refused_by_name(settings):
    with pytest.raises(ImproperlyConfigured, match=r"tests\.api\.test_api_handler\.AsyncOnly"):
        middleware.api_chain(["tests.api.test_api_handler.AsyncOnly"])


class AsyncOnly(SiteMarker):
    sync_capable = False
    async_capable = True


# --- Over sockets: gunicorn (chq/wsgi.py) and uvicorn (chq/asgi.py) on one database -----------------

# What the server itself adds (or writes in its own case): not the application's answer.
SERVER_HEADERS = {"date", "server", "connection", "keep-alive", "transfer-encoding"}


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    running = servers.start(tmp_path_factory.mktemp("gunicorn"), workers=1)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def uvicorn(gunicorn, tmp_path_factory):
    running = servers.start_uvicorn(tmp_path_factory.mktemp("uvicorn"), env=gunicorn.env)
    yield running
    running.stop()


def _application_headers(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items() if name.lower() not in SERVER_HEADERS}


@pytest.mark.django_db(transaction=True)
def test_gunicorn_uvicorn_and_the_test_client_answer_with_the_same_headers(
    migrated_data, gunicorn, uvicorn, client, make_key, inventory_export
):
    served = gunicorn.manage("create_api_key", "--description", "headers", "--all", "--quiet")
    local = str(make_key(allowed_for_all=True).value)
    calls = {"allowed": (501, served, local), "refused": (401, "not-a-key", "not-a-key")}
    for name, (expect, key, local_key) in calls.items():
        answers = {}
        for server in (gunicorn, uvicorn):
            status, body, headers = server.post("/chqapi/export/inventory", headers={"ApiKey": key})
            assert status == expect, (name, server.url, body)
            answers[server.url] = _application_headers(headers)
        response = post("/chqapi/export/inventory", local_key, client=client)
        assert response.status_code == expect
        answers["test client"] = _application_headers(response.headers)
        assert answers["test client"]["content-length"] == str(len(response.content))
        first, *others = answers.values()
        for other in others:
            assert other.keys() == first.keys(), name
            assert {k: v for k, v in other.items() if k != "content-length"} == {
                k: v for k, v in first.items() if k != "content-length"
            }, name


STREAMED_ROWS = 30000  # an answer of megabytes, far more than the sockets between server and client hold


def test_a_streamed_export_streams_under_uvicorn(gunicorn, uvicorn):
    """The first bytes of a large export arrive while the server is still making the rest: the
    logged call is recorded only once its answer has been sent, and it is not yet."""
    code = f"""
from keys.models import ApiDocument, ApiType
from keys.services import GrantSpec, api_key_create
documents = ApiType.objects.get(direction="export", api_id="apidocument")
key = api_key_create(description="stream", is_active=True, grants=[GrantSpec(documents.pk, logged=True)])
row = dict(key_last4="0000", api_type_name="x", request_type="location-export", method="POST", path="/",
           status_code=200, duration_ms=1.0)
ApiDocument.objects.bulk_create((ApiDocument(key_id=key.pk, **row) for _ in range({STREAMED_ROWS})), batch_size=2000)
print(key.value)
"""
    key = gunicorn.manage("shell", "-c", code).split()[-1]
    address = urllib.parse.urlsplit(uvicorn.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    connection.request("POST", "/chqapi/export/apidocument", b"{}", {"ApiKey": key, "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    document_id = response.getheader("ApiDocumentId")
    first = response.read(1000)
    assert first.startswith(b'{"ApiDocument": {')
    recorded = f"from keys.models import ApiDocument as D; print(D.objects.filter(document_id='{document_id}').count())"
    assert gunicorn.manage("shell", "-c", recorded).split()[-1] == "0"  # still being made and sent
    rest = response.read()
    connection.close()
    # Far more than the server could have sent ahead into the sockets' buffers (4 MiB for the
    # sender at most, tcp_wmem; the reader's window stays small while it reads nothing).
    assert len(first + rest) > 8 * 2**20
    answer = json.loads(first + rest)
    assert len(answer["ApiDocument"]["Response"]["ApiDocuments"]) == STREAMED_ROWS
    assert servers.wait_for(lambda: gunicorn.manage("shell", "-c", recorded).split()[-1] == "1")
    # Django's ASGI handler warns when it reads a sync iterator whole instead.
    assert "must consume synchronous iterators" not in uvicorn.log.read_text()


def test_system_checks_name_a_missing_or_late_api_middleware_and_a_wrong_chain(settings):
    from keys.chqapi.checks import check_api_middleware

    assert check_api_middleware(None) == []  # the demo project: first, and the default chain
    site = [name for name in settings.MIDDLEWARE if name != "keys.chqapi.middleware.ApiMiddleware"]
    settings.MIDDLEWARE = site
    assert [check.id for check in check_api_middleware(None)] == ["keys.W020"]
    settings.MIDDLEWARE = [site[0], "keys.chqapi.middleware.ApiMiddleware", *site[1:]]
    (late,) = check_api_middleware(None)
    assert (late.id, site[0] in late.msg) == ("keys.W021", True)
    settings.MIDDLEWARE = ["keys.chqapi.middleware.ApiMiddleware", *site]
    settings.KEYS_API_MIDDLEWARE = "django.middleware.security.SecurityMiddleware"
    assert [check.id for check in check_api_middleware(None)] == ["keys.E022"]
