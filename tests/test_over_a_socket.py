"""What only a real server shows: gunicorn with several worker processes on a
scratch database, called over loopback sockets."""

import http.client
import json
import urllib.parse
import uuid

import pytest

from tests import servers


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = servers.start(
        tmp_path_factory.mktemp("gunicorn"),
        workers=4,
        extra_env={"KEYS_THROTTLE_REFUSALS": "20", "KEYS_THROTTLE_BLOCK": "60"},
    )
    yield running
    running.stop()


def test_chunked_body_is_refused_with_411_never_read_as_empty(server):
    value = server.manage("create_api_key", "--description", "chunked", "--all", "--logged", "--quiet")
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    body = json.dumps({"Source": "ERP", "Data": {"Request": {"Top": 1}}}).encode()
    # A generator body without a length: http.client sends it chunked.
    connection.request(
        "POST",
        "/chqapi/export/apidocument",
        body=iter([body[:10], body[10:]]),
        headers={"ApiKey": value, "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.getheader("Transfer-Encoding") is None
    assert response.status == 411, answer
    assert "Content-Length" in answer["ErrorMessage"]
    # The same body with its length is served.
    status, _, _ = server.post(
        "/chqapi/export/apidocument", body, {"ApiKey": value, "Content-Type": "application/json"}
    )
    assert status == 200


def test_refused_keys_are_counted_across_all_workers(server):
    """4 workers, a limit of 20: the 21st guess is refused with 429 whichever worker takes it."""
    statuses = [server.post("/chqapi/export/inventory", b"{}", {"ApiKey": str(uuid.uuid4())})[0] for _ in range(60)]
    assert statuses[:20] == [401] * 20
    assert statuses[20:] == [429] * 40
