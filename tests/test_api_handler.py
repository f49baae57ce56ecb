"""The lean handler that answers /chqapi/ calls in production (keys/chqapi/wsgi.py),
called in process through chq/wsgi.py's application as gunicorn calls it: the
same security headers and JSON answers as the site's full middleware chain."""

import io
import json
from unittest import mock

import pytest
from django.core import signals
from django.db import DatabaseError, close_old_connections
from django.test import override_settings

from bench.common import wsgi_environ
from chq.wsgi import application
from keys.chqapi import wsgi as api_wsgi
from keys.chqapi.wsgi import ApiHandler
from keys.guard import flow

pytestmark = pytest.mark.usefixtures("connections_kept")


def call(
    path: str, key: str = "", body: bytes = b"{}", method: str = "POST", app=application, **environ
) -> tuple[int, dict, bytes]:
    """One WSGI call; (status, headers, body). A test that changes the security settings passes
    a handler made after the change (a handler reads them once, when it is made, as Django's does)."""
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
    status, headers, content = call("/chqapi/export/inventory", allowed_key)
    assert status == 501
    assert json.loads(content)["Message"].startswith("Your API key may call ")
    site = client.post("/chqapi/export/inventory", b"{}", content_type="application/json", HTTP_APIKEY=allowed_key)
    for name in ("X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy", "Content-Type"):
        assert headers[name] == site[name], name
    assert headers["Content-Length"] == str(len(content))
    assert "Set-Cookie" not in headers
    assert "Content-Security-Policy" not in headers  # nothing here renders a page


def test_hsts_is_sent_over_https(allowed_key, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    _, headers, _ = call("/chqapi/export/inventory", allowed_key, app=ApiHandler(), **{"wsgi.url_scheme": "https"})
    assert headers["Strict-Transport-Security"].startswith("max-age=3600")


def test_plain_http_is_redirected_when_https_is_required(allowed_key, settings):
    settings.SECURE_SSL_REDIRECT = True
    status, headers, _ = call("/chqapi/export/inventory", allowed_key, app=ApiHandler())
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
    with django_assert_num_queries(0):  # no key lookup: a valid key made no difference
        status, headers, content = call(
            "/chqapi/export/inventory", allowed_key, app=ApiHandler(), HTTP_HOST="evil.example", **environ
        )
    assert (status, json.loads(content)) == (400, HOST_REFUSED)
    assert headers["Content-Type"] == "application/json"
    assert "Set-Cookie" not in headers
    status, _, _ = call("/chqapi/export/inventory", allowed_key, app=ApiHandler(), HTTP_HOST="chq.example", **environ)
    assert status == (301 if redirect and not environ else 501)


def test_a_disallowed_host_is_refused_on_site_pages_and_through_the_test_client_too(allowed_key, settings, client):
    settings.ALLOWED_HOSTS = ["chq.example"]
    for path in ("/settings/integrations/keys/", "/accounts/login/", "/healthz"):
        status, headers, content = call(path, method="GET", HTTP_HOST="evil.example")
        assert (status, json.loads(content)) == (400, HOST_REFUSED), path
        assert "Set-Cookie" not in headers
    # The test client runs the site's MIDDLEWARE for /chqapi/ too: the same check comes first.
    response = client.post(
        "/chqapi/export/inventory",
        b"{}",
        content_type="application/json",
        HTTP_APIKEY=allowed_key,
        HTTP_HOST="evil.example",
    )
    assert (response.status_code, response.json()) == (400, HOST_REFUSED)
    assert not response.cookies
    assert client.get("/accounts/login/", HTTP_HOST="chq.example").status_code == 200


@pytest.mark.parametrize(
    ("path", "method"), [("//chqapi/export/inventory", "POST"), ("/chqapi", "POST"), ("/chqapi", "GET")]
)
def test_paths_next_to_the_apis_answer_its_json_404(allowed_key, client, path, method):
    status, headers, content = call(path, allowed_key, method=method)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert "no such API route" in json.loads(content)["Message"]
    assert "Set-Cookie" not in headers
    if path.startswith("//"):
        return  # the test client would read "//chqapi" as a host name; the socket test sends it
    response = client.generic(method, path, b"{}", content_type="application/json", HTTP_APIKEY=allowed_key)
    assert (response.status_code, response["Content-Type"]) == (404, "application/json")


def test_every_route_is_served_and_the_rest_is_a_json_404_or_405(allowed_key):
    status, _, content = call("/chqapi/nowhere", allowed_key)
    assert status == 404
    assert "no such API route" in json.loads(content)["Message"]
    status, headers, content = call("/chqapi/export/inventory", allowed_key, method="GET")
    assert status == 405
    assert headers["Allow"] == "POST"
    assert json.loads(content)["Message"]
    status, _, content = call("/chqapi/status", allowed_key, json.dumps({"ApiDocumentId": "x"}).encode())
    assert status == 400
    assert json.loads(content)["ModelState"]


def test_a_failing_view_answers_json_and_the_database_failing_answers_503(allowed_key, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(flow, "guarded_call", explode)
    status, _, content = call("/chqapi/export/inventory", allowed_key)
    assert (status, json.loads(content)) == (500, {"Message": "The server failed while carrying out the call."})
    assert "boom" not in content.decode()

    def database_down(*args, **kwargs):
        raise DatabaseError("unreachable")

    monkeypatch.setattr(flow, "guarded_call", database_down)
    status, headers, content = call("/chqapi/export/inventory", allowed_key)
    assert status == 503
    assert headers["Retry-After"]
    assert "unreachable" not in content.decode()


@pytest.fixture
def started_as_in_production():
    """request_started with Django's receivers only, as in production; the test's connection is
    kept open by taking close_old_connections off request_finished (as the test client does)."""
    signals.request_started.connect(close_old_connections)
    yield
    signals.request_started.disconnect(close_old_connections)


def test_request_started_work_is_done_directly_while_only_djangos_receivers_listen(
    allowed_key, started_as_in_production, monkeypatch
):
    closed = []
    monkeypatch.setattr(api_wsgi, "close_old_connections", lambda: closed.append(1))
    with mock.patch.object(signals.request_started, "send") as sent:
        status, _, _ = call("/chqapi/export/inventory", allowed_key)
    assert status == 501
    assert closed == [1]  # what close_old_connections, the receiver, would have done
    sent.assert_not_called()


def test_any_other_receiver_gets_the_signal_and_request_finished_is_always_sent(
    allowed_key, started_as_in_production, monkeypatch
):
    monkeypatch.setattr(api_wsgi, "close_old_connections", lambda: None)  # the test's connection stays
    seen = []

    def started(sender, environ, **kwargs):
        seen.append(("started", environ["PATH_INFO"]))

    def finished(**kwargs):
        seen.append(("finished", None))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        call("/chqapi/export/inventory", allowed_key)
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert seen == [("started", "/chqapi/export/inventory"), ("finished", None)]
    with mock.patch.object(signals.request_started, "send") as sent:
        call("/chqapi/export/inventory", allowed_key)  # back to Django's receivers alone
    sent.assert_not_called()


def test_a_refused_calls_body_is_never_read(allowed_key):
    class Unreadable(io.RawIOBase):
        def readinto(self, buffer):
            raise AssertionError("the body of a refused call was read")

    status, _, _ = call("/chqapi/export/inventory", "not-a-key", **{"wsgi.input": Unreadable()})
    assert status == 401
    status, _, _ = call("/chqapi/export/inventory", allowed_key, body=b'{"Source": "x"}')
    assert status == 501


def test_remembered_routes_are_bounded_and_right(allowed_key):
    api_wsgi.resolve.cache_clear()
    for n in range(3):
        call(f"/chqapi/export/made-up-{n}", allowed_key)
    call("/chqapi/export/inventory/async", allowed_key)
    assert api_wsgi.resolve("/chqapi/export/inventory/async").url_name == "chqapi-export-async"
    assert api_wsgi.resolve("/chqapi/export/echo/EcommQty").kwargs == {"api_id": "echo/EcommQty"}
    assert api_wsgi.resolve.cache_info().maxsize == api_wsgi.RESOLVED_PATHS


@override_settings(KEYS_DECISION_CACHE=True)
def test_a_warm_allowed_call_makes_no_query_through_the_handler(allowed_key, django_assert_num_queries):
    call("/chqapi/export/inventory", allowed_key)
    with django_assert_num_queries(0):
        status, _, _ = call("/chqapi/export/inventory", allowed_key)
    assert status == 501
