"""The success answer of an export: CHQ's `{"ApiDocument": {..., "Response": {...}}}`.

An export handler returns an ExportResult (its collection's name, the count of
matching rows and the page of rows to send); the envelope, the counts and the
times are made here for every export alike.

An answer of more than STREAM_ABOVE rows (Top omitted means every matching
row) is streamed: rows are read from the database in chunks and written as
they come, so memory does not grow with the row count. Its ElapsedTime and EndDateTime come after
`Response` (JSON objects are unordered), because only then are they known.

An asynchronous export's answer is stored the same way, in pieces made as the rows
come (envelope_rows, then envelope_head), and is the same text as envelope()'s.
"""

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from .export_request import ExportRequest
from .wire import chq_datetime, json_response, timespan

# Up to this many rows are answered in one piece, with a Content-Length.
STREAM_ABOVE = 1000


@dataclass
class ExportResult:
    collection: str  # the Response group's name, such as "ApiDocuments"
    request: ExportRequest
    total: int  # TotalRecords: rows matching the filters, ignoring Top and Skip
    rows: Iterable[dict[str, Any]]  # the page: already skipped and cut to Top

    @property
    def records_count(self) -> int:
        return self.request.records_count(self.total)


def _head(document_id: uuid.UUID, request_type: str, result: ExportResult, started: Any) -> dict[str, Any]:
    return {
        # Upper case, as the reference's envelopes write it (GUIDs compare without regard to case).
        "ApiDocumentId": str(document_id).upper(),
        "Status": "Successful",
        "ApiRequestType": request_type,
        "TotalRecords": result.total,
        "RecordsCount": result.records_count,
        "StartDateTime": chq_datetime(started),
    }


def envelope(document_id: uuid.UUID, request_type: str, result: ExportResult, started_at, clock: float) -> dict:
    """The whole answer in memory (a small page, or an async document's stored result)."""
    rows = list(result.rows)
    head = _head(document_id, request_type, result, started_at)
    head["ElapsedTime"] = timespan(time.perf_counter() - clock)
    head["EndDateTime"] = chq_datetime(timezone.now())
    head["Response"] = {result.collection: rows}
    return {"ApiDocument": head}


# An asynchronous export's answer is stored in pieces of about this many characters.
PIECE_CHARS = 64 * 1024


def envelope_rows(result: ExportResult, size: int = PIECE_CHARS) -> Iterator[str]:
    """envelope()'s JSON text from its first row to its end, in pieces of about `size`
    characters, made as the rows come: with envelope_head() before them, the very text
    json.dumps(envelope(...)) gives, without ever holding more than one piece."""
    piece: list[str] = []
    length = 0
    separator = ""
    for row in result.rows:
        text = separator + json.dumps(row)
        separator = ", "
        piece.append(text)
        length += len(text)
        if length >= size:
            yield "".join(piece)
            piece, length = [], 0
    yield "".join(piece) + "]}}}"


def envelope_head(document_id: uuid.UUID, request_type: str, result: ExportResult, started_at, clock: float) -> str:
    """envelope()'s JSON text up to its first row. Made once the rows are written: it tells
    the time they took."""
    head = _head(document_id, request_type, result, started_at)
    head["ElapsedTime"] = timespan(time.perf_counter() - clock)
    head["EndDateTime"] = chq_datetime(timezone.now())
    return f'{{"ApiDocument": {json.dumps(head)[:-1]}, "Response": {{{json.dumps(result.collection)}: ['


def respond(document_id: uuid.UUID, request_type: str, result: ExportResult, started_at, clock: float) -> HttpResponse:
    if result.records_count <= STREAM_ABOVE:
        return json_response(envelope(document_id, request_type, result, started_at, clock))
    response = StreamingHttpResponse(
        _stream(document_id, request_type, result, started_at, clock), content_type="application/json"
    )
    response["X-Records-Count"] = str(result.records_count)
    return response


def _stream(document_id, request_type, result: ExportResult, started_at, clock: float) -> Iterator[bytes]:
    head = json.dumps(_head(document_id, request_type, result, started_at))
    yield f'{{"ApiDocument": {head[:-1]}, "Response": {{{json.dumps(result.collection)}: ['.encode()
    chunk: list[str] = []
    first = True
    for row in result.rows:
        chunk.append(("" if first else ",") + json.dumps(row))
        first = False
        if len(chunk) >= 200:
            yield "".join(chunk).encode()
            chunk = []
    tail = {"ElapsedTime": timespan(time.perf_counter() - clock), "EndDateTime": chq_datetime(timezone.now())}
    yield ("".join(chunk) + "]}, " + json.dumps(tail)[1:] + "}").encode()
