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


def _calls(server, value, n=16, path="/chqapi/export/inventory"):
    statuses = [server.post(path, b"{}", {"ApiKey": value})[0] for _ in range(n)]
    reset_throttle(server)  # refusals count towards the block (limit 20 here)
    return statuses


def test_deactivation_by_a_command_is_obeyed_by_the_next_call_in_every_worker(server):
    value = server.manage("create_api_key", "--description", "fresh", "--all", "--quiet")
    # Every worker has answered, and cached, the key as allowed (501: no handler for this type).
    assert set(_calls(server, value)) == {501}
    server.manage("update_api_key", value, "--deactivate")
    assert set(_calls(server, value)) == {401}
    # A queryset update typed into `manage.py shell` is a door too.
    typed = f"import uuid; from keys.models import ApiKey; ApiKey.objects.with_value(uuid.UUID('{value}'))"
    server.manage("shell", "-c", typed + ".update(is_active=True)")
    assert set(_calls(server, value)) == {501}
    server.manage("remove_api_key", value, "--yes")
    assert set(_calls(server, value)) == {401}


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


def test_logged_calls_survive_killed_workers_and_are_stored_once(tmp_path):
    """The batched writer's journal: 30 logged calls answered, every worker killed with
    SIGKILL before storing them, then the replay command stores each exactly once."""
    crashing = servers.start(tmp_path, workers=2, extra_env={"KEYS_CALL_LOG_FLUSH_MS": "600000"})
    try:
        value = crashing.manage("create_api_key", "--description", "crash", "--all", "--logged", "--quiet")
        answers = [crashing.post("/chqapi/export/apidocument", b"{}", {"ApiKey": value}) for _ in range(30)]
        assert {status for status, _, _ in answers} == {200}
        ids = {headers["ApiDocumentId"] for _, _, headers in answers}
    finally:
        crashing.crash()
    count = "from keys.models import ApiDocument; print(ApiDocument.objects.count())"
    assert crashing.manage("shell", "-v", "0", "-c", count) == "0"
    assert "30 call(s) stored from journals" in crashing.manage("replay_api_call_spool")
    stored = crashing.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from keys.models import ApiDocument; print(*ApiDocument.objects.values_list('document_id', flat=True))",
    )
    assert {str(uuid.UUID(d)) for d in stored.split()} == ids
    assert "0 call(s) stored from journals" not in crashing.manage("replay_api_call_spool")  # nothing left to store
    assert crashing.manage("shell", "-v", "0", "-c", count) == "30"
