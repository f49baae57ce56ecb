"""The guard on async views behind a real ASGI server (uvicorn, one process, the demo
project's production settings on a scratch database, tests/guard_asgi.py): allowed,
refused, logged and stored, and an async streamed answer sent as it is made."""

import http.client
import json
import time
import urllib.parse

import pytest

from tests import servers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = servers.start_uvicorn(tmp_path_factory.mktemp("uvicorn"), "tests.guard_asgi:application")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def logged_key(server) -> str:
    return server.manage("create_api_key", "--description", "uvicorn", "--all", "--logged", "--quiet")


@pytest.fixture(scope="module")
def no_types_key(server) -> str:
    return server.manage("create_api_key", "--description", "no types", "--quiet")


def stored(server, document_id: str) -> dict:
    code = (
        "import json; from keys.models import ApiDocument; "
        f"d = ApiDocument.objects.get(document_id='{document_id}'); "
        "print(json.dumps({'status_code': d.status_code, 'response_body': d.response_body}))"
    )
    return json.loads(server.manage("shell", "-c", code).splitlines()[-1])  # after shell's own line


@pytest.mark.parametrize("path", ["/async", "/cbv-async", "/ninja/inventory-async", "/plain", "/drf"])
def test_an_allowed_logged_call_is_answered_and_stored(server, logged_key, path):
    status, body, headers = server.post(path, b"{}", {"ApiKey": logged_key, "Content-Type": "application/json"})
    assert status == 200
    assert json.loads(body)["Items"] == []
    assert stored(server, headers["ApiDocumentId"]) == {"status_code": 200, "response_body": body.decode()}


@pytest.mark.parametrize("path", ["/async", "/ninja/inventory-async"])
def test_refusals(server, no_types_key, path):
    status, body, headers = server.post(path, b"{}", {"ApiKey": "00000000-0000-0000-0000-000000000000"})
    assert (status, json.loads(body)) == (401, {"Message": "The API key is not known."})
    assert headers["WWW-Authenticate"] == 'ApiKey realm="chqapi"'
    status, body, _ = server.post(path, b"{}", {"ApiKey": no_types_key})
    assert (status, json.loads(body)) == (403, {"Message": "The API key is not allowed to call Inventory Export."})


def test_an_async_stream_is_sent_as_it_is_made_and_stored(server, logged_key):
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("POST", "/async-slow-stream", b"{}", {"ApiKey": logged_key})
    started = time.monotonic()
    response = connection.getresponse()
    first = response.readline()
    first_after = time.monotonic() - started
    rest = response.read()
    everything_after = time.monotonic() - started
    connection.close()
    assert (response.status, first, rest) == (200, b'{"Chunk": 0}\n', b'{"Chunk": 1}\n{"Chunk": 2}\n')
    # The guard holds each chunk until the next is made (the last goes only once the document is
    # stored), so the first leaves at 1 s and the last at 2 s: nothing buffered the answer whole.
    assert first_after < 1.7
    assert everything_after >= 2.0
    stored_body = stored(server, response.headers["ApiDocumentId"])["response_body"]
    assert stored_body == '{"Chunk": 0}\n{"Chunk": 1}\n{"Chunk": 2}\n'
