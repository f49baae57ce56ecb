"""bench/logs_at_scale.py keeps what it measured when a request fails: a row counts a 5xx, a
request past its timeout and a connection the server dropped as that row's statuses (no median),
instead of the whole run dying; and LOGS_REUSE takes only a database holding the bench's key with
LOGS_SCALE documents."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import logs_at_scale
from bench.logs_at_scale import DESCRIPTION, Row


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/drop":
            # Headers and the start of a body, then the connection closes: a worker gunicorn killed.
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"ApiDocument": ')
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path == "/drop-chunked":
            # As a streamed answer (StreamingHttpResponse) ends when its worker is killed.
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"10\r\n" + b'{"ApiDocument": ' + b"\r\n")
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = 500 if self.path == "/fail" else 200
        body = b'<tr data-id="1">'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # the dropped connections' broken pipes
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize(
    ("path", "status"),
    [("/ok", 200), ("/fail", 500), ("/slow", "timeout"), ("/drop", "dropped"), ("/drop-chunked", "dropped")],
)
def test_a_request_is_counted_with_what_it_got(base, path, status):
    row = Row("a row", "GET", path, shows=b"<tr data-id=")
    assert row.call(base, timeout=0.5) == status
    assert row.statuses == {status: 1}
    assert len(row.times) == 1


def test_a_row_with_a_failed_request_has_no_median(base):
    row = Row("a row", "GET", "/ok")
    row.call(base)
    assert row.median != "-"
    row.path = "/slow"
    row.call(base, timeout=0.5)
    assert row.statuses == {200: 1, "timeout": 1}
    assert row.median == "-"


@pytest.mark.django_db
def test_reuse_takes_the_benchs_key_with_a_new_value(make_key, monkeypatch):
    monkeypatch.setattr(logs_at_scale, "SCALE", 0)
    key = make_key(description=DESCRIPTION)
    old = key.value_digest
    reused = logs_at_scale.reused_key()
    assert reused.pk == key.pk
    key.refresh_from_db()
    assert key.value_digest != old
    assert key.value == reused.value


@pytest.mark.django_db
def test_reuse_refuses_a_database_of_another_scale(make_key, monkeypatch):
    monkeypatch.setattr(logs_at_scale, "SCALE", 10)
    make_key(description=DESCRIPTION)
    with pytest.raises(SystemExit, match="has 0 documents, not LOGS_SCALE=10"):
        logs_at_scale.reused_key()


@pytest.mark.django_db
def test_reuse_refuses_a_database_with_keys_of_someone_else(make_key, monkeypatch):
    monkeypatch.setattr(logs_at_scale, "SCALE", 0)
    make_key(description=DESCRIPTION)
    make_key(description="production")
    with pytest.raises(SystemExit, match="2 key"):
        logs_at_scale.reused_key()
