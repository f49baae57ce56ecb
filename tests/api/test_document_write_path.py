"""Every logged call's document is stored before its answer leaves (keys/calllog/writer.py),
proven against a real 4-worker gunicorn on SQLite and on PostgreSQL, with four clients
at once: status right after each answer, an ApiDocumentId taken once (before its
handler runs), racing clients, and as many documents as answered calls."""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import servers

IMPORT = "/chqapi/import/location"


def runs(folder) -> list[str]:
    """The document ids tests/counting_handler.py ran for, one line per run."""
    marks = folder / "runs"
    return marks.read_text().split() if marks.exists() else []


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"write-path-{request.param}")
    env = {"KEYS_HANDLER_MODULES": "tests.counting_handler", "COUNTING_HANDLER_DIR": str(tmp)}
    if request.param == "postgresql":
        with servers.scratch_postgres_database() as url:
            running = servers.start(tmp, workers=4, extra_env=env | {"DATABASE_URL": url})
            yield running, tmp
            running.stop()
    else:
        running = servers.start(tmp, workers=4, extra_env=env)
        yield running, tmp
        running.stop()


def new_key(server) -> str:
    return server.manage("create_api_key", "--description", "write path", "--all", "--logged", "--quiet")


def send_import(server, key: str, document_id: str | None = None, path: str = IMPORT) -> tuple[int, dict, dict]:
    """An import call (with `document_id` as its ApiDocumentId); its status, JSON answer and headers."""
    body = {"Source": "ERP", "Data": {"ApiDocumentId": document_id} if document_id else {}}
    status, raw, headers = server.post(path, json.dumps(body).encode(), {"ApiKey": key})
    return status, json.loads(raw), headers


def status_of(server, key: str, document_id: str) -> int:
    return server.post("/chqapi/status", json.dumps({"ApiDocumentId": document_id}).encode(), {"ApiKey": key})[0]


def total_records(server, key: str, api_type: str) -> int:
    body = {"Data": {"Request": {"Top": 1, "Filters": [{"Field": "ApiType", "Operator": "Equal", "Value": api_type}]}}}
    status, raw, _ = server.post("/chqapi/export/apidocument", json.dumps(body).encode(), {"ApiKey": key})
    assert status == 200, raw
    return json.loads(raw)["ApiDocument"]["TotalRecords"]


def test_status_finds_each_document_right_after_its_answer(server):
    running, _ = server
    key = new_key(running)

    def client(_: int) -> list[tuple[int, int]]:
        seen = []
        for _ in range(40):
            document_id = str(uuid.uuid4())
            answered, _, _ = send_import(running, key, document_id)
            seen.append((answered, status_of(running, key, document_id)))
        return seen

    with ThreadPoolExecutor(4) as pool:
        seen = [pair for one in pool.map(client, range(4)) for pair in one]
    assert seen == [(200, 200)] * 160
    assert total_records(running, key, "location-import") == 160


def test_an_id_used_again_at_once_is_409_and_its_handler_never_runs(server):
    running, folder = server
    key = new_key(running)
    before = len(runs(folder))
    answers = []
    for _ in range(10):
        document_id = str(uuid.uuid4())
        answers.append((send_import(running, key, document_id)[0], send_import(running, key, document_id)[0]))
    assert answers == [(200, 409)] * 10
    assert len(runs(folder)) - before == 10


def test_racing_clients_with_one_id_exactly_one_runs(server):
    running, folder = server
    key = new_key(running)
    for _ in range(5):
        document_id = str(uuid.uuid4())
        start = threading.Barrier(6)

        def racer(_: int, document_id=document_id, start=start) -> int:
            start.wait()
            return send_import(running, key, document_id)[0]

        with ThreadPoolExecutor(6) as pool:
            statuses = sorted(pool.map(racer, range(6)))
        assert statuses == [200, 409, 409, 409, 409, 409]
        assert runs(folder).count(document_id) == 1


def test_an_id_taken_by_one_key_is_refused_to_another(server):
    running, folder = server
    first, second = new_key(running), new_key(running)
    document_id = str(uuid.uuid4())
    assert send_import(running, first, document_id)[0] == 200
    status, answer, headers = send_import(running, second, document_id)
    assert status == 409, answer
    assert headers.get("ApiDocumentId") != document_id  # B's refused call is its own document
    assert status_of(running, second, document_id) == 404
    assert status_of(running, first, document_id) == 200
    assert runs(folder).count(document_id) == 1


def test_every_answered_logged_call_has_exactly_one_document(server):
    running, folder = server
    key = new_key(running)
    before = len(runs(folder))

    def client(_: int) -> list[str]:
        answered = []
        for _ in range(50):
            status, _, headers = send_import(running, key)
            if status == 200:
                answered.append(headers["ApiDocumentId"])
        return answered

    with ThreadPoolExecutor(4) as pool:
        answered = [d for one in pool.map(client, range(4)) for d in one]
    assert len(answered) == len(set(answered)) == 200
    assert len(runs(folder)) - before == 200
    assert total_records(running, key, "location-import") == 200
