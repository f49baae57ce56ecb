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
    assert response.getheader("Content-Length") == str(len(json.dumps(answer)))
    assert response.status == 411, answer
    assert "Content-Length" in answer["Message"]
    # The same body with its length is served.
    status, _, _ = server.post(
        "/chqapi/export/apidocument", body, {"ApiKey": value, "Content-Type": "application/json"}
    )
    assert status == 200


def test_refused_keys_are_counted_across_all_workers(server):
    """4 workers, a limit of 20: the 21st guess is refused with 429 whichever worker takes it."""
    statuses = [server.post("/chqapi/export/inventory", b"{}", {"ApiKey": str(uuid.uuid4())})[0] for _ in range(60)]
    try:
        assert statuses[:20] == [401] * 20
        assert statuses[20:] == [429] * 40
    finally:
        reset_throttle(server)


def reset_throttle(server):
    """Forget refused keys, so that loopback is not blocked for the next test on this server."""
    assert "cleared" in server.manage("reset_api_throttle")


def statuses_of(server, value, n=16, path="/chqapi/export/inventory"):
    """The statuses of `n` calls with `value`, spread over the workers."""
    statuses = [server.post(path, b"{}", {"ApiKey": value})[0] for _ in range(n)]
    reset_throttle(server)  # refusals count towards the block (limit 20 here)
    return statuses


def test_deactivation_by_a_command_is_obeyed_by_the_next_call_in_every_worker(server):
    value = server.manage("create_api_key", "--description", "fresh", "--all", "--quiet")
    # Every worker has answered, and cached, the key as allowed (501: no handler for this type).
    assert set(statuses_of(server, value)) == {501}
    server.manage("update_api_key", value, "--deactivate")
    assert set(statuses_of(server, value)) == {401}
    # A queryset update typed into `manage.py shell` is a door too.
    typed = f"import uuid; from keys.models import ApiKey; ApiKey.objects.with_value(uuid.UUID('{value}'))"
    server.manage("shell", "-c", typed + ".update(is_active=True)")
    assert set(statuses_of(server, value)) == {501}
    server.manage("remove_api_key", value, "--yes")
    assert set(statuses_of(server, value)) == {401}


def test_api_answers_skip_the_browser_middleware_but_keep_security_headers(server):
    reset_throttle(server)
    status, _, headers = server.post("/chqapi/export/inventory", b"{}", {"ApiKey": "not-a-key"})
    assert status == 401
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in headers
    assert "Set-Cookie" not in headers
    import urllib.request

    with urllib.request.urlopen(server.url + "/accounts/login/", timeout=30) as page:
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_logged_calls_are_stored_before_their_answers_so_killed_workers_lose_none(tmp_path):
    """30 logged calls answered, then the master and every worker killed with SIGKILL at
    once: each answered call's document is in the database already, nothing to replay."""
    crashing = servers.start(tmp_path, workers=2)
    try:
        value = crashing.manage("create_api_key", "--description", "crash", "--all", "--logged", "--quiet")
        answers = [crashing.post("/chqapi/export/apidocument", b"{}", {"ApiKey": value}) for _ in range(30)]
        assert {status for status, _, _ in answers} == {200}
        ids = {headers["ApiDocumentId"] for _, _, headers in answers}
    finally:
        crashing.crash()
    stored = crashing.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from keys.models import ApiDocument; print(*ApiDocument.objects.values_list('document_id', flat=True))",
    )
    assert {str(uuid.UUID(d)) for d in stored.split()} == ids
    assert "0 spooled call(s) stored; 0 still waiting" in crashing.manage("replay_api_call_spool")


def test_a_streamed_export_cut_by_a_database_failure_is_an_error_document(tmp_path):
    """PostgreSQL ends the worker's connection while a 30,000-document export streams
    (pg_terminate_backend: what a server restart does to it): the caller gets no complete
    answer, and the export's own document says Error and how far it got, not Successful."""
    import socket
    import time

    with servers.scratch_postgres_database() as url:
        running = servers.start(tmp_path, workers=1, extra_env={"DATABASE_URL": url})
        try:
            value = running.manage("create_api_key", "--description", "stream", "--all", "--logged", "--quiet")
            running.manage(
                "shell",
                "-v",
                "0",
                "-c",
                "from keys.models import ApiKey; from tests.conftest import stored_documents; "
                "[stored_documents(k, 30000, source='x' * 200) for k in ApiKey.objects.all()]",
            )
            address = urllib.parse.urlsplit(running.url)
            body = json.dumps({"Data": {"Request": {"Top": 30000}}}).encode()
            with socket.socket() as sock:
                # A small window, set before connecting: the server must wait for the reader.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(30)
                sock.connect((address.hostname, address.port))
                head = (
                    f"POST /chqapi/export/apidocument HTTP/1.1\r\nHost: 127.0.0.1\r\nApiKey: {value}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                sock.sendall(head.encode() + body)
                received = sock.recv(4096)
                assert b" 200 " in received.split(b"\r\n", 1)[0]
                time.sleep(0.5)
                import psycopg

                with psycopg.connect(url, autocommit=True) as admin:  # the fault: the server ends its session
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                while chunk := sock.recv(65536):
                    received += chunk
            assert not received.endswith(b"0\r\n\r\n")  # no last chunk: the caller knows it is cut
            outcome = running.manage(
                "shell",
                "-v",
                "0",
                "-c",
                "from keys.models import ApiDocument; d = ApiDocument.objects.get(request_type='apidocument-export'); "
                "print(d.get_status_display(), d.status_code, d.error_message)",
            )
        finally:
            running.stop()
    assert outcome.startswith("Error 500 The answer broke off after "), outcome
