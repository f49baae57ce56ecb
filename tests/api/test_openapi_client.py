"""A client generated from the OpenAPI document by openapi-python-client calls a real
server (gunicorn on a scratch database): with the `ApiKey` header the document
names as its security scheme it makes a typed call of API Document Export and
gets the items parsed into the generated model classes, dates as datetimes; the
generator's default header (Authorization: Bearer) is refused."""

import datetime as dt
import importlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests import servers

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "chq_generated_client"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = servers.start(tmp_path_factory.mktemp("openapi-client"), workers=1)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def document(server) -> dict:
    """The document as the running server serves it (its catalog, its URLconf, its settings)."""
    with urllib.request.urlopen(server.url + "/integration/api/openapi.json", timeout=30) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def generated(document, tmp_path_factory):
    """The client package generated from the document, imported."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / "openapi.json").write_text(json.dumps(document))
    # No post hooks: the generator's default runs ruff from PATH, which formatting alone needs.
    (folder / "config.json").write_text(json.dumps({"post_hooks": []}))
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(folder / "config.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The generator warns about what it cannot generate; a document it reads whole has no warnings.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_a_generated_client_makes_a_typed_call_with_the_documented_apikey_header(server, document, generated):
    key = server.manage("create_api_key", "--description", "generated client", "--all", "--logged", "--quiet")
    export = importlib.import_module(f"{PACKAGE}.api.common.export_apidocument")
    models = importlib.import_module(f"{PACKAGE}.models")

    # The header and its form come from the document's security scheme, not from this test.
    [requirement] = document["security"]
    [scheme_name] = requirement
    scheme = document["components"]["securitySchemes"][scheme_name]
    assert (scheme["type"], scheme["in"]) == ("apiKey", "header")
    client = generated.AuthenticatedClient(
        base_url=server.url, token=key, auth_header_name=scheme["name"], prefix="", raise_on_unexpected_status=True
    )
    request = models.ApiDocumentExportRequest(
        source="generated client",
        data=models.ApiDocumentExportRequestData(
            request=models.ApiDocumentExportRequestDataRequest(
                filters=[
                    models.ApiDocumentExportRequestFilter(
                        field=models.ApiDocumentExportRequestFilterField.APITYPE,
                        operator=models.ApiDocumentExportRequestFilterOperator.EQUAL,
                        value="apidocument-export",
                    )
                ],
                sort_descriptions=[
                    models.ApiDocumentExportRequestSortDescription(
                        name=models.ApiDocumentExportRequestSortDescriptionName.RECMODIFIED,
                        direction=models.ApiDocumentExportRequestSortDescriptionDirection.DESCENDING,
                    )
                ],
                top=5,
            )
        ),
    )
    first = export.sync(client=client, body=request)  # logged: the next call lists this one
    assert isinstance(first, models.ApiDocumentExportAnswer)
    answer = export.sync(client=client, body=request)
    assert isinstance(answer, models.ApiDocumentExportAnswer)
    envelope = answer.api_document
    assert envelope.api_request_type == "apidocument-export"
    assert envelope.total_records == envelope.records_count == 1
    assert isinstance(envelope.start_date_time, dt.datetime)
    [item] = envelope.response.api_documents
    assert isinstance(item, models.ApiDocument)
    assert item.api_document_id == first.api_document.api_document_id
    assert item.api_type == "apidocument-export"
    assert item.source == "generated client"
    assert item.status == models.ApiDocumentStatus.SUCCESSFUL
    assert isinstance(item.rec_created, dt.datetime)
    assert item.rec_created.tzinfo is not None

    # The generator's default, Authorization: Bearer, is not the documented scheme: refused.
    bearer = generated.AuthenticatedClient(base_url=server.url, token=key)
    refused = export.sync_detailed(client=bearer, body=request)
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Message)
    assert "ApiKey" in refused.parsed.message
