"""The batched call-log writer (keys/chqapi/writer.py): every logged call stored
exactly once, through a journal that outlives its process."""

import json
import os
import uuid
from pathlib import Path

import pytest
from django.test import Client

from keys.chqapi import writer as calllog
from keys.models import ApiDocument

pytestmark = pytest.mark.django_db(transaction=True)  # the writer thread has its own connection


@pytest.fixture
def batched(settings, migrated_data):
    settings.KEYS_CALL_LOG_WRITER = "batched"
    settings.KEYS_CALL_LOG_FLUSH_MS = 10_000  # the test flushes itself
    yield
    calllog.stop()  # its thread closes its own connection, so the test database can be dropped


def call(key, source="ERP"):
    body = json.dumps({"Source": source})
    return Client().post("/chqapi/export/apidocument", body, content_type="application/json", HTTP_APIKEY=str(key))


def journal_lines() -> int:
    return calllog.pending()


def test_rows_wait_in_the_journal_then_are_stored_once(batched, make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    ids = {call(key.value)["ApiDocumentId"] for _ in range(25)}
    assert journal_lines() == 25
    calllog.flush()
    assert {str(d) for d in ApiDocument.objects.values_list("document_id", flat=True)} == ids
    assert journal_lines() == 0
    calllog.flush()  # nothing queued: nothing written twice
    assert ApiDocument.objects.count() == 25


def test_a_batch_with_a_removed_key_keeps_every_row(batched, make_key):
    gone, kept = (
        make_key(allowed_for_all=True, logged_for_all=True),
        make_key(allowed_for_all=True, logged_for_all=True),
    )
    call(gone.value, "A")
    call(kept.value, "B")
    gone.delete()
    calllog.flush()
    rows = dict(ApiDocument.objects.values_list("source", "key_id"))
    assert rows == {"A": None, "B": kept.pk}


def test_journal_of_a_process_that_died_is_stored_exactly_once(settings, migrated_data, make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    folder = calllog.journal_dir()
    folder.mkdir(parents=True, exist_ok=True)
    row = {
        "document_id": str(uuid.uuid4()),
        "created_at": "2026-11-01T10:00:00+00:00",
        "key_id": key.pk,
        "key_last4": "abcd",
        "key_description": "",
        "api_type_id": None,
        "api_type_name": "API Document Export",
        "method": "POST",
        "path": "/chqapi/export/apidocument",
        "source": "crash",
        "status_code": 200,
        "duration_ms": 1.0,
        "client_address": "127.0.0.1",
        "request_body": "{}",
        "response_body": "{}",
        "truncated": False,
    }
    # Written by a process that is gone (no lock held); the same row twice, and a line cut short.
    Path(folder / "99999.1.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n" + '{"document_id": "cut')
    assert calllog.recover() == 2
    assert ApiDocument.objects.count() == 1
    stored = ApiDocument.objects.get()
    assert (stored.source, stored.created_at.isoformat()) == ("crash", "2026-11-01T10:00:00+00:00")
    assert not list(folder.glob("*.jsonl"))


def test_a_live_process_journal_is_left_to_it(batched, make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    call(key.value)
    assert calllog.orphans() == []  # this process holds its journal's lock
    assert calllog.recover() == 0
    assert journal_lines() == 1


def test_database_refusing_a_batch_spools_it(batched, make_key, monkeypatch):
    from keys.chqapi import spool

    key = make_key(allowed_for_all=True, logged_for_all=True)
    call(key.value)

    def refuse(rows):
        from django.db import OperationalError

        raise OperationalError("disk full")

    monkeypatch.setattr(calllog, "insert", refuse)
    calllog.flush()
    monkeypatch.undo()
    assert spool.pending() == 1
    assert journal_lines() == 0
    assert spool.replay() == (1, 0)
    assert ApiDocument.objects.count() == 1


def test_writer_is_made_again_after_a_fork(batched, make_key):
    key = make_key(allowed_for_all=True, logged_for_all=True)
    call(key.value)
    first = calllog.writer()
    assert first.pid == os.getpid()
    first.pid = -1  # as a forked child sees its parent's writer
    try:
        assert calllog.writer() is not first
    finally:
        first.stop()
