"""KEYS_LOG_READ_DATABASE: the pane's log viewer, its entry view, its CSV and usage read from the alias it
names (a read replica); the API's own reads (status, getdata, API Document Export) never do, because a
caller must find its document the moment it is answered. The replica here is a second database of its
own (tests/conftest.py, LOG_REPLICA), so each assertion can tell which database a page read."""

import uuid

import pytest
from django.core.checks import run_checks
from django.urls import reverse
from django.utils import timezone

from keys.models import ApiDocument, KeyUsage
from tests.api_calls import post
from tests.conftest import LOG_REPLICA

pytestmark = pytest.mark.django_db(databases=["default", LOG_REPLICA])


def document(key, api_type, *, source: str) -> dict:
    return {
        "document_id": uuid.uuid4(),
        "key_id": key.pk,
        "key_last4": "0000",
        "api_type": api_type,
        "api_type_name": api_type.name,
        "request_type": f"{api_type.api_id}-{api_type.direction}",
        "method": "POST",
        "path": "/chqapi/export/inventory",
        "source": source,
        "status_code": 200,
        "duration_ms": 1.0,
    }


@pytest.fixture
def replicated(make_key, inventory_export, settings):
    """A key (on both databases, as replication would have it) with one document only the primary holds
    (written a moment ago, not yet replicated) and one only the replica holds."""
    settings.KEYS_LOG_READ_DATABASE = LOG_REPLICA
    key = make_key(allowed_for_all=True, logged_for_all=True, description="replicated")
    key.save(using=LOG_REPLICA)
    inventory_export.save(using=LOG_REPLICA)
    primary = ApiDocument.objects.create(**document(key, inventory_export, source="primary only"))
    replica = ApiDocument.objects.using(LOG_REPLICA).create(**document(key, inventory_export, source="replica only"))
    return key, primary, replica


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def test_the_log_viewer_and_its_entry_read_the_replica(viewer_client, replicated, inventory_export):
    key, _primary, replica = replicated
    page = viewer_client.get(reverse("keys:logs", args=[key.pk])).content.decode()
    assert f'data-id="{replica.pk}"' in page
    assert "replica only" in page
    assert "primary only" not in page
    # The type filter's choices come from the replica's documents too, and its value is accepted.
    filtered = viewer_client.get(reverse("keys:logs", args=[key.pk]), {"api_type": inventory_export.pk})
    assert filtered.status_code == 200
    assert "replica only" in filtered.content.decode()
    entry = viewer_client.get(reverse("keys:log-entry", args=[key.pk, replica.pk]))
    assert entry.status_code == 200
    assert str(replica.document_id) in entry.content.decode()


def test_the_csv_reads_the_replica(viewer_client, replicated):
    key, primary, replica = replicated
    response = viewer_client.get(reverse("keys:logs-csv", args=[key.pk]))
    text = b"".join(response.streaming_content).decode()
    assert str(replica.document_id) in text
    assert str(primary.document_id) not in text


def test_usage_reads_the_replica(viewer_client, replicated, inventory_export):
    key, *_ = replicated
    today = timezone.localdate()
    KeyUsage.objects.using(LOG_REPLICA).create(key=key, api_type=inventory_export, day=today, succeeded=7)
    KeyUsage.objects.create(key=key, api_type=inventory_export, day=today, succeeded=1000)
    response = viewer_client.get(reverse("keys:usage", args=[key.pk]))
    assert response.status_code == 200
    assert "<strong>7 calls</strong> in the last 30 days" in response.content.decode()


def test_the_api_reads_its_own_writes_from_default(replicated):
    """Status and API Document Export answer from the primary: the document the replica has not yet
    received is there, and the replica's copy of another is not what they read."""
    key, primary, replica = replicated
    assert post("/chqapi/status", key.value, str(primary.document_id)).status_code == 200
    assert post("/chqapi/status", key.value, str(replica.document_id)).status_code == 404
    export = post("/chqapi/export/apidocument", key.value, {}).json()["ApiDocument"]
    assert export["TotalRecords"] == 1
    assert [item["APIDocumentId"] for item in export["Response"]["ApiDocuments"]] == [
        str(primary.document_id).upper()
    ]


def test_an_alias_that_is_not_in_databases_is_an_error(settings):
    settings.KEYS_LOG_READ_DATABASE = "replcia"
    errors = [e for e in run_checks() if e.id == "keys.E050"]
    assert [e.msg for e in errors] == ["KEYS_LOG_READ_DATABASE is 'replcia', which is not an alias in DATABASES."]
    assert "'default'" in errors[0].hint


def test_a_configured_alias_passes_the_check(settings):
    settings.KEYS_LOG_READ_DATABASE = LOG_REPLICA
    assert not [e for e in run_checks() if e.id == "keys.E050"]
