"""The life of an API document, and what status and getdata answer about one.

Asynchronous calls (an export at .../async, an import registered as
asynchronous) are written as a document InQueue and their task is queued
(keys/chqapi/tasks.py): with the database backend in the same transaction, so
the task row and the document commit together or not at all and a queued
document survives any restart; with any other backend once the document has
committed, and a queue that refuses it leaves the document Error. The task
worker moves it to InProcess, asks the access decision again by the document's
key id (keys/access.py: a key deactivated, expired, removed or denied the type
while the work waited is refused, Error with the reason, and the handler never
runs), runs the handler and stores the result as Successful or Error. A
document still InProcess KEYS_ASYNC_TIMEOUT_SECONDS after it started (its
worker was killed, say) is marked Error with a message saying so the next time
anyone asks about it; it is not run again, since the caller may already have
sent it again. A document InQueue for longer than KEYS_WORKER_STALE_SECONDS
while no task worker is alive (keys/worker.py) is still InProcess to its
caller, with an ErrorMessage saying that it waits for a worker and when one was
last seen: it runs when one starts, so nothing is given up.

Content: a document's request and response bodies are kept while its result
has not been delivered. After the first status or getdata answer that carries
the finished result they are cleared, unless the key's "logged" flag for the
type was on when the call came (`keep_content`). An export's answer is stored
in chunks (keys.models.ApiDocumentChunk): spooled to a temporary file as its
rows come, written in one transaction once they are read, and read back one
chunk at a time (streamed beyond STREAM_ABOVE rows), so neither the worker nor
the web worker holds an answer whole; it is the same JSON text either way.
"""

import itertools
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from .. import services
from ..access import decide_for_key_id
from ..calllog import writer
from ..clients import client_address
from ..guard import STATUS as REFUSAL_STATUS
from ..guard import ApiCall, ApiError, registration_for, source_of
from ..guard.bookkeeping import document_fields
from ..guard.context import Call
from ..models import ApiDocument, ApiDocumentChunk
from ..text import storable, storable_text
from ..worker import queue_in_database
from .export_request import InvalidRequest
from .exports import PIECE_CHARS, STREAM_ABOVE, ExportResult, envelope_head, envelope_rows
from .wire import chq_datetime, invalid_body, invalid_message, json_response, request_type, standard

log = logging.getLogger("keys.api")
Status = ApiDocument.Status

NOT_FOUND = (
    "This API key has no API document with that id. Synchronous calls are kept as documents only while logging "
    "is on for their API type; asynchronous ones always are."
)
NOT_RUN = "The work was not carried out: asked again when its turn came, the access check refused it. {message}"
TIMED_OUT = (
    "The work did not finish within {seconds} seconds of starting; its worker may have stopped. "
    "It will not be run again: send the request again (for an import, check first what it changed)."
)


DUPLICATE = "An API document with this ApiDocumentId exists already; send a new GUID, or none to have one made."


def reserve(request: HttpRequest, call: Call, document_id: uuid.UUID) -> None:
    """Take the caller's own ApiDocumentId for this logged call before its handler runs
    (keys/calllog/writer.py); ApiError 409 when any document has it already."""
    try:
        call.document_created_at = services.api_document_reserve(**document_fields(request, call, document_id))
    except writer.Taken:
        raise ApiError(409, DUPLICATE) from None


def take(request: HttpRequest, document_id: uuid.UUID) -> None:
    """A sync call's own ApiDocumentId, before its handler runs: 409 when any key's document
    has it. A logged call reserves it (its document stored InProcess, so a racing call with
    the same id is refused by the unique index); an unlogged call stores no document, so
    only a document stored already can have taken it."""
    call = request.api_call
    if call.decision.logged:
        reserve(request, call, document_id)
    elif ApiDocument.objects.filter(document_id=document_id).exists():
        raise ApiError(409, DUPLICATE)


QUEUE_DOWN = "The work could not be queued: the task queue did not answer. Send the request again."


def start(request: HttpRequest, call: ApiCall) -> ApiDocument:
    """Store an asynchronous call's document InQueue and queue its work (in one
    transaction when the queue is the database)."""
    from .tasks import run_document  # tasks imports this module

    decision = call.decision
    now = timezone.now()
    together = queue_in_database()
    try:
        with transaction.atomic():
            if not writer.claim(call.document_id, now):  # PostgreSQL's partitions: keys/calllog/writer.py
                raise ApiError(409, DUPLICATE)
            document = ApiDocument.objects.create(
                document_id=call.document_id,
                created_at=now,
                modified_at=now,
                key_id=decision.key_id,
                key_last4=request.api_call.key_last4,
                key_description=decision.key_description[:255],
                api_type_id=decision.api_type_id,
                api_type_name=(decision.api_type_name or request.path)[:150],
                request_type=request_type(call.direction, call.api_id)[:160],
                method=request.method,
                path=storable(request.path, 500),
                source=storable(source_of(request), 200),
                is_async=True,
                status=Status.IN_QUEUE,
                status_code=200,
                duration_ms=0.0,
                client_address=client_address(request),
                keep_content=decision.logged,
                # Kept whole, whatever KEYS_LOG_BODY_LIMIT says: the worker needs all of it.
                request_body=storable_text(request.body),
            )
            if together:
                run_document.enqueue(str(document.document_id))
    except IntegrityError:
        raise ApiError(409, DUPLICATE) from None
    request.api_call.document_stored = True  # the guard's bookkeeping must not store it again
    if not together:
        try:
            run_document.enqueue(str(document.document_id))
        except Exception:
            log.exception("API document %s: the task queue refused it", document.document_id)
            ApiDocument.objects.filter(pk=document.pk).update(
                status=Status.ERROR, status_code=503, error_message=QUEUE_DOWN, modified_at=timezone.now()
            )
            raise ApiError(503, QUEUE_DOWN) from None
    return document


def _direction_and_id(document: ApiDocument) -> tuple[str, str]:
    api_id, _, direction = document.request_type.rpartition("-")
    return direction, api_id


def run(document_id: str) -> None:
    """Carry out a queued document (in the task worker). Runs it at most once."""
    now = timezone.now()
    claimed = ApiDocument.objects.filter(document_id=document_id, status=Status.IN_QUEUE).update(
        status=Status.IN_PROCESS, started_at=now, modified_at=now
    )
    if not claimed:  # run already, or given up on
        return
    document = ApiDocument.objects.get(document_id=document_id)
    direction, api_id = _direction_and_id(document)
    registration = registration_for(direction, api_id)
    clock = time.perf_counter()
    outcome: dict[str, Any]
    try:
        # Asked again now, not taken from the document: the key may have been deactivated,
        # let expire, removed or denied the type since the call was queued.
        decision = decide_for_key_id(document.key_id, direction=direction, api_id=api_id)
        if not decision.allowed:
            raise ApiError(REFUSAL_STATUS[decision.reason], NOT_RUN.format(message=decision.message))
        if registration is None:
            raise ApiError(501, f"This installation no longer serves {document.request_type}.")
        body = json.loads(document.request_body or "{}")
        call = ApiCall(None, direction, api_id, body, decision, True, document.document_id)
        outcome = _succeeded(document, registration.handler(call), clock)
    except InvalidRequest as exc:
        outcome = _failed(400, invalid_message(exc.model_state), invalid_body(exc.model_state))
    except ApiError as exc:
        outcome = _failed(exc.status, exc.message, {"Message": exc.message})
    except Exception:
        log.exception("API document %s: the handler failed", document_id)
        message = "The server failed while carrying out the call."
        outcome = _failed(500, message, {"Message": message})
    finished = timezone.now()
    stored = ApiDocument.objects.filter(pk=document.pk, status=Status.IN_PROCESS).update(
        **outcome, ended_at=finished, modified_at=finished, duration_ms=(time.perf_counter() - clock) * 1000
    )
    if not stored:  # given up on meanwhile (timed out): an answer written for it is not wanted
        ApiDocumentChunk.objects.filter(document=document).delete()


COUNTS = {"TotalRecords": "total_records", "AcceptedRecords": "accepted_records", "ErrorRecords": "error_records"}
LINE_FIELDS = ("EntityNo", "EntityId", "Error", "Status")


def summary(answer: Any) -> dict[str, Any]:
    """What an import's answer tells about its document, in the standard response's own
    fields: TotalRecords, AcceptedRecords, ErrorRecords and Lines (each line gets an id,
    API Document Export's APIDocumentLineId)."""
    if not isinstance(answer, dict):
        return {}
    found: dict[str, Any] = {
        field: answer[name]
        for name, field in COUNTS.items()
        if isinstance(answer.get(name), int) and not isinstance(answer.get(name), bool)
    }
    lines = answer.get("Lines")
    if isinstance(lines, list):
        found["lines"] = [
            {"APIDocumentLineId": str(uuid.uuid4()), **{k: line[k] for k in LINE_FIELDS if k in line}}
            for line in lines
            if isinstance(line, dict)
        ]
    return found


# An export's answer up to this size is spooled in memory, beyond it in a temporary file.
SPOOL_IN_MEMORY = 1024 * 1024


def _store_export(document: ApiDocument, result: ExportResult, clock: float) -> None:
    """Write an export's answer into the document's chunks without holding it whole.

    The text is spooled to a temporary file while the rows are read, and copied into the
    chunks once their query is done, in one transaction, the head (seq 0, made last since
    it tells the elapsed time) with them. Written while the rows' query is still open, a
    chunk would fail on SQLite as soon as another connection had written since the query
    began (in WAL mode a stale reader cannot become a writer), or the write lock would be
    held for the whole export."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, mode="w+", encoding="utf-8") as spool:
        for piece in envelope_rows(result):
            spool.write(piece)
        head = envelope_head(document.document_id, document.request_type, result, document.started_at, clock)
        spool.seek(0)
        with transaction.atomic():
            seq = 1
            while piece := spool.read(PIECE_CHARS):
                ApiDocumentChunk.objects.create(document=document, seq=seq, text=piece)
                seq += 1
            ApiDocumentChunk.objects.create(document=document, seq=0, text=head)


def _succeeded(document: ApiDocument, result: Any, clock: float) -> dict[str, Any]:
    outcome: dict[str, Any] = {"status": Status.SUCCESSFUL, "status_code": 200}
    if isinstance(result, ExportResult):
        _store_export(document, result, clock)
        outcome.update(total_records=result.total, records_count=result.records_count)
        return outcome
    if isinstance(result, HttpResponse):
        answer = json.loads(result.content or b"null")
        outcome["status_code"] = result.status_code
    else:
        answer = result
        outcome.update(summary(answer))
    outcome["response_body"] = json.dumps(answer)
    return outcome


# An error message is sent again by every status call about its document: what is stored is
# cut, whatever made it (an invalid request's lists at most wire.MAX_PROBLEMS problems).
MAX_ERROR_MESSAGE = 4000


def _cut(message: str) -> str:
    return message if len(message) <= MAX_ERROR_MESSAGE else message[: MAX_ERROR_MESSAGE - 1] + "…"


def _failed(status_code: int, message: str, answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": Status.ERROR,
        "status_code": status_code,
        "error_message": _cut(message),
        "response_body": json.dumps({**answer, "Message": _cut(answer["Message"])}),
    }


def expire(document: ApiDocument | None = None) -> int:
    """Mark Error what has been InProcess longer than the timeout (one document, or all)."""
    seconds = settings.KEYS_ASYNC_TIMEOUT_SECONDS
    now = timezone.now()
    stale = ApiDocument.objects.filter(status=Status.IN_PROCESS, started_at__lt=now - timedelta(seconds=seconds))
    if document is not None:
        if document.status != Status.IN_PROCESS or document.started_at is None:
            return 0
        stale = stale.filter(pk=document.pk)
    elif not stale.exists():  # the usual case: a read, not a write that would wait for SQLite's lock
        return 0
    count = stale.update(
        status=Status.ERROR,
        status_code=504,
        error_message=TIMED_OUT.format(seconds=seconds),
        ended_at=now,
        modified_at=now,
    )
    if count and document is not None:
        document.refresh_from_db()
    return count


# --- status and getdata ------------------------------------------------------------------


ID_NAMES = ("apidocumentid", "documentid", "id")


def requested_id(body: Any) -> uuid.UUID:
    """The document a status or getdata call asks about: {"ApiDocumentId": ...} (the standard
    formats page), {"documentId": ...} (the import page), inside Data too, or a bare GUID string."""
    raw: Any = body
    if isinstance(body, dict):
        data = body.get("Data") if isinstance(body.get("Data"), dict) else body
        found = {name.lower(): value for name, value in data.items() if isinstance(name, str)}
        raw = next((found[name] for name in ID_NAMES if name in found), None)
        if raw is None:
            raise InvalidRequest({"apiRequest.ApiDocumentId": ['Send {"ApiDocumentId": "<GUID>"}.']})
    try:
        if not isinstance(raw, str):
            raise ValueError
        return uuid.UUID(raw.strip())
    except ValueError:
        raise InvalidRequest({"apiRequest.ApiDocumentId": ["The value is not a GUID."]}) from None


def find(key_id: int, document_id: uuid.UUID) -> ApiDocument:
    """The calling key's document; another key's is as unknown as one that does not exist."""
    # No ORDER BY (first() would sort by id): an id names one document, and on PostgreSQL a sort
    # over the partitions' probes costs more than the probes (keys/partitions.py).
    document = next(iter(ApiDocument.objects.filter(key_id=key_id, document_id=document_id).order_by()[:1]), None)
    if document is None:
        raise ApiError(404, NOT_FOUND)
    expire(document)
    explain_wait(document)
    return document


WAITING = (
    "Not started: the work waits in the queue for a task worker, and {seen}. "
    "It runs as soon as one starts; there is no need to send it again."
)


def explain_wait(document: ApiDocument) -> None:
    """Put in the (unsaved) error message of a document queued longer than
    KEYS_WORKER_STALE_SECONDS that no worker is alive to take: true only while it lasts."""
    from ..worker import seen

    bound = timedelta(seconds=settings.KEYS_WORKER_STALE_SECONDS)
    if document.status != Status.IN_QUEUE or document.created_at > timezone.now() - bound:
        return
    workers = seen()
    if workers is None or workers.alive:
        return
    last = workers.last_seen
    document.error_message = WAITING.format(
        seen=f"none has been seen since {chq_datetime(last)}" if last else "none has been seen at all"
    )


def _delivered(document: ApiDocument, *, chunked: bool = False) -> None:
    if document.keep_content:
        return
    if document.request_body or document.response_body:
        ApiDocument.objects.filter(pk=document.pk).update(request_body="", response_body="")
    if chunked:
        ApiDocumentChunk.objects.filter(document=document).delete()


def _stored(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:  # a body cut at KEYS_LOG_BODY_LIMIT
        return text


def _chunked(document: ApiDocument) -> bool:
    """Whether the document's answer is whole in its chunks (an asynchronous export's)."""
    return document.status == Status.SUCCESSFUL and ApiDocumentChunk.objects.filter(document=document, seq=0).exists()


def _answer(document: ApiDocument, pieces: Iterable[str]) -> HttpResponseBase:
    """JSON text made of `pieces`, and the content delivered: whole up to STREAM_ABOVE rows
    (with a Content-Length, like a synchronous export's), streamed beyond, and delivered
    only once the last piece is out (a caller cut off midway can ask again)."""
    if (document.records_count or 0) <= STREAM_ABOVE:
        body = "".join(pieces).encode()
        _delivered(document, chunked=True)
        return HttpResponse(body, content_type="application/json")

    def stream() -> Iterator[bytes]:
        for piece in pieces:
            yield piece.encode()
        _delivered(document, chunked=True)

    response = StreamingHttpResponse(stream(), content_type="application/json")
    response["X-Records-Count"] = str(document.records_count)
    return response


def status(key_id: int, document_id: uuid.UUID) -> HttpResponseBase:
    document = find(key_id, document_id)
    if not document.finished:
        return json_response(standard(document))
    if _chunked(document):  # an export's success envelope
        return _answer(document, document.answer_pieces())
    answer = _stored(document.response_body) if document.status == Status.SUCCESSFUL else None
    _delivered(document)
    if isinstance(answer, dict) and "ApiDocument" in answer:  # an export's success envelope, stored whole
        return json_response(answer)
    return json_response(standard(document))


GONE = (
    "This document's content was not kept: logging was off for its API type when it was called, "
    "and its result has been delivered."
)


def getdata(key_id: int, document_id: uuid.UUID) -> HttpResponseBase:
    """What a finished document was asked and answered, while that is kept."""
    document = find(key_id, document_id)
    if not document.finished:
        return json_response(standard(document))
    chunked = _chunked(document)
    if not document.keep_content and not (document.request_body or document.response_body or chunked):
        return json_response({"Message": GONE}, status=410)
    data = {
        "ApiDocumentId": str(document.document_id),
        "Status": document.get_status_display(),
        "ApiType": document.request_type,
        "Source": document.source,
        "Request": _stored(document.request_body),
        "Response": _stored(document.response_body),
        "Truncated": document.truncated,
    }
    if not chunked:
        _delivered(document)
        return json_response(data)
    # The same JSON, with the stored answer's text put in as it is read.
    del data["Response"], data["Truncated"]
    head = f'{json.dumps(data)[:-1]}, "Response": '
    tail = f', "Truncated": {json.dumps(document.truncated)}}}'
    return _answer(document, itertools.chain([head], document.answer_pieces(), [tail]))
