"""The production server as production runs it: gunicorn with chq/gunicorn.conf.py
(2 workers here), called over loopback sockets by clients that misbehave."""

import http.client
import json
import socket
import time
import urllib.parse

import pytest

from tests import servers

# Short, so the test does not wait long for the slow clients to be cut off; the calls
# in between must be answered well before it.
READ_TIMEOUT = 8
PROMPT = 5
DOCUMENT = json.dumps({"Source": "ERP", "Data": {"Request": {"Top": 1}}}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = servers.start(
        tmp_path_factory.mktemp("gunicorn"),
        workers=2,
        extra_env={"GUNICORN_READ_TIMEOUT": str(READ_TIMEOUT), "SECURE_PROXY_SSL_HEADER": "true"},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(server):
    return server.manage("create_api_key", "--description", "gunicorn", "--all", "--quiet")


def _connect(server) -> socket.socket:
    address = urllib.parse.urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=READ_TIMEOUT + 10)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (b"" when it closes without a word)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _request(server, method: str, target: str, headers: dict[str, str], body: bytes = DOCUMENT):
    """One request exactly as given (Host header, request target): status, headers, body."""
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, target, body=body, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("proxy", [{}, {"X-Forwarded-Proto": "https"}], ids=["direct", "behind-a-tls-proxy"])
@pytest.mark.parametrize("target", ["/chqapi/export/apidocument", "/settings/integrations/keys/"])
def test_a_disallowed_host_is_a_json_400_without_a_cookie(server, key, proxy, target):
    status, headers, body = _request(server, "POST", target, {"Host": "evil.example", "ApiKey": key, **proxy})
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"Message": "This server does not answer for that host."}
    assert headers.get("Set-Cookie") is None
    status, _, _ = _request(server, "POST", "/chqapi/export/apidocument", {"Host": "127.0.0.1", "ApiKey": key, **proxy})
    assert status == 200


@pytest.mark.parametrize("target", ["//chqapi/export/apidocument", "/chqapi", "//chqapi"])
def test_paths_next_to_the_apis_answer_its_json_404(server, key, target):
    status, headers, body = _request(server, "POST", target, {"Host": "127.0.0.1", "ApiKey": key})
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert "no such API route" in json.loads(body)["Message"]
    assert headers.get("Set-Cookie") is None


def test_more_slow_clients_than_workers_do_not_stop_the_api(server, key):
    headers = f"POST /chqapi/export/apidocument HTTP/1.1\r\nHost: 127.0.0.1\r\nApiKey: {key}\r\n"
    slow = []
    for number in range(8):  # 4 per worker
        sock = _connect(server)
        if number % 2:  # headers and 8 of the 100 bytes announced
            sock.sendall(f"{headers}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode())
            sock.sendall(DOCUMENT[:8])
        else:  # half the headers
            sock.sendall(headers.encode())
        slow.append(sock)
    time.sleep(1)  # every slow connection has reached a worker

    started = time.monotonic()
    for _ in range(10):
        status, _, _ = server.post(
            "/chqapi/export/apidocument", DOCUMENT, {"ApiKey": key, "Content-Type": "application/json"}, timeout=PROMPT
        )
        assert status == 200
    assert time.monotonic() - started < READ_TIMEOUT  # answered while every slow client was still connected

    for number, sock in enumerate(slow):
        with sock:
            answer = _answer(sock)
        if number % 2:  # the application was reading the body: the API's JSON 400
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 "), answer
            assert b"application/json" in head
            assert "did not arrive" in json.loads(body)["Message"]
        else:  # gunicorn was still reading the headers: closed, no answer (never gunicorn's HTML 500)
            assert answer == b""
