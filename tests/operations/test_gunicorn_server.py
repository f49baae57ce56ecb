"""The production server as production runs it: gunicorn with chq/gunicorn.conf.py
(2 sync workers here) behind nginx with deploy/nginx-chq.conf, called over loopback
sockets by clients that misbehave."""

import http.client
import json
import socket
import time
import urllib.parse

import pytest

from tests import servers

# nginx's client_header_timeout and client_body_timeout (deploy/nginx-chq.conf); the
# calls in between must be answered well before it.
READ_TIMEOUT = 10
PROMPT = 5
DOCUMENT = json.dumps({"Source": "ERP", "Data": {"Request": {"Top": 1}}}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = servers.start(
        tmp_path_factory.mktemp("gunicorn"),
        workers=2,
        extra_env={"SECURE_PROXY_SSL_HEADER": "true", "KEYS_TRUSTED_PROXIES": "1"},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(server):
    return server.manage("create_api_key", "--description", "gunicorn", "--all", "--quiet")


@pytest.fixture(scope="module")
def front(server, tmp_path_factory):
    with servers.nginx_in_front(server, tmp_path_factory.mktemp("nginx")) as running:
        yield running


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


def test_more_slow_clients_than_workers_do_not_stop_the_api(server, front, key):
    """8 slow connections against 2 sync workers, through nginx: nginx holds them, gunicorn
    never sees them, other calls are answered at once, and nginx cuts the slow ones off."""
    headers = f"POST /chqapi/export/apidocument HTTP/1.1\r\nHost: 127.0.0.1\r\nApiKey: {key}\r\n"
    slow = []
    for number in range(8):  # 4 per worker
        sock = _connect(front)
        if number % 2:  # headers and 8 of the 100 bytes announced
            sock.sendall(f"{headers}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode())
            sock.sendall(DOCUMENT[:8])
        else:  # half the headers
            sock.sendall(headers.encode())
        slow.append(sock)
    time.sleep(1)  # every slow connection is open

    started = time.monotonic()
    for _ in range(10):
        status, _, _ = front.post(
            "/chqapi/export/apidocument", DOCUMENT, {"ApiKey": key, "Content-Type": "application/json"}, timeout=PROMPT
        )
        assert status == 200
    assert time.monotonic() - started < READ_TIMEOUT  # answered while every slow client was still connected

    for sock in slow:
        with sock:
            answer = _answer(sock)
        # nginx ends a request that did not arrive in time: a 408 or a plain close, never an HTML 500.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    # Through the front, the API's answers are its own (JSON).
    status, headers, _ = _request(front, "POST", "/chqapi/nope", {"Host": "127.0.0.1", "ApiKey": key})
    assert (status, headers["Content-Type"]) == (404, "application/json")


def test_the_front_answers_what_it_refuses_itself_in_json(server, front, key):
    big = b'{"Source": "' + b"x" * (3 * 1024 * 1024) + b'"}'  # over nginx's client_max_body_size
    status, headers, body = _request(
        front, "POST", "/chqapi/export/apidocument", {"Host": "127.0.0.1", "ApiKey": key}, big
    )
    assert (status, headers["Content-Type"]) == (413, "application/json")
    assert "larger" in json.loads(body)["Message"]
