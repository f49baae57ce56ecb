"""Recording an accepted call once its answer is made: the key's usage, "last used",
and while logging is on the call's document (request, answer, outcome). Bookkeeping
can never change the answer; a streamed answer is recorded as it is sent."""

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .. import services, streams, usage
from ..clients import client_address
from .answers import invalid_message
from .context import Call
from .parsing import source_of

security_log = logging.getLogger("keys.security")
error_log = logging.getLogger("keys.api")


def finish(
    request: HttpRequest,
    call: Call,
    response: HttpResponse,
    sent: bytes | None,
    cut_short: tuple[int, str] | None = None,
) -> None:
    """Bookkeeping after the answer is made: it can never change the answer."""
    try:
        _bookkeep(request, call, response, sent, cut_short)
    except Exception:  # api_call_record spools what it cannot store; anything else is a bug to report
        security_log.exception("bookkeeping of API call %s failed", call.document_id)


def _error_message(response: HttpResponse) -> str:
    """A failed call's document says why: the answer's Message, and each ModelState entry."""
    if response.status_code < 400 or response.streaming:
        return ""
    try:
        answer = json.loads(response.content)
        return invalid_message(answer["ModelState"]) if "ModelState" in answer else str(answer.get("Message", ""))
    except (ValueError, AttributeError, KeyError, TypeError):
        return ""


def document_fields(request: HttpRequest, call: Call, document_id: uuid.UUID) -> dict[str, Any]:
    """What a logged call's document says of the call itself, whatever its outcome."""
    decision = call.decision
    return {
        "document_id": document_id,
        "request_type": call.request_type,
        "key_id": decision.key_id,
        "key_last4": call.key_last4,
        "key_description": decision.key_description,
        "api_type_id": decision.api_type_id,
        "api_type_name": decision.api_type_name,
        "method": request.method,
        "path": request.path,
        "source": source_of(request),
        "client_address": client_address(request),
        "request_body": request.body,
        "created_at": call.document_created_at,
    }


def _bookkeep(
    request: HttpRequest,
    call: Call,
    response: HttpResponse,
    sent: bytes | None,
    cut_short: tuple[int, str] | None,
) -> None:
    decision = call.decision
    # A streamed answer that did not reach its end is no success.
    status_code = cut_short[0] if cut_short is not None else response.status_code
    usage.count(decision.key_id, decision.api_type_id, usage.column_for(status_code))
    services.api_key_touch(key_id=decision.key_id, grant_id=decision.grant_id)
    # An asynchronous call's document is written when it is queued (keys/chqapi/documents.py).
    if not decision.logged or call.document_stored:
        return
    # Read from the answer only for a document: an unlogged 501 or 4xx must not parse its own body.
    error_message = cut_short[1] if cut_short is not None else _error_message(response)
    total, count = call.document_counts
    services.api_call_record(
        **document_fields(request, call, call.document_id),
        summary=call.document_summary,
        total_records=total,
        records_count=count,
        error_message=error_message,
        status_code=status_code,
        duration_ms=(time.perf_counter() - call.started) * 1000,
        response_body=response.content if sent is None else sent,
    )


# A streamed answer the client stopped reading (nginx's name for it: the client closed the request).
CLIENT_LEFT = 499


class _Recording:
    """What both kinds of streamed answer share: the first `keep` bytes kept for the
    document, the bytes sent, and one record however the stream ends."""

    def __init__(self, chunks, keep: int, record: Callable[[bytes, tuple[int, str] | None], None]):
        self.chunks, self.keep, self.record = chunks, keep, record
        self.kept = bytearray()
        self.sent = 0
        self.recorded = False

    def _keep(self, chunk: bytes) -> None:
        if len(self.kept) < self.keep:
            self.kept += chunk[: self.keep - len(self.kept)]

    def _broke(self, exc: Exception) -> tuple[int, str]:
        error_log.exception("API call: the streamed answer broke after %s bytes", self.sent)
        return 500, f"The answer broke off after {self.sent} bytes ({exc.__class__.__name__}); send the request again."

    def _record(self, cut_short: tuple[int, str] | None) -> None:
        if not self.recorded:
            self.recorded = True
            self.record(bytes(self.kept), cut_short)

    def close(self) -> None:
        self._record((CLIENT_LEFT, f"The client closed the connection after {self.sent} bytes of the answer."))


class _RecordedWhenSent(_Recording):
    """A streamed answer passed through, its first `keep` bytes kept for the document, and
    recorded once. The last chunk is held back until the document is stored, so the
    document is committed before the answer's last byte leaves (read your writes). A
    stream that breaks (the database stopped mid-export) is recorded as an Error saying
    how far it got, and the error goes on to the server, which cuts the connection, so
    the caller sees no complete answer either; a client that leaves is recorded when
    Django closes the response (it always does), as an Error too."""

    def __iter__(self):
        held = None
        try:
            for chunk in self.chunks:
                if held is not None:
                    yield held
                    self.sent += len(held)
                self._keep(chunk)
                held = chunk
        except Exception as exc:
            self._record(self._broke(exc))
            raise
        self._record(None)
        if held is not None:
            yield held
            self.sent += len(held)


class _RecordedWhenSentAsync(_Recording):
    """The same for an asynchronous stream (an async iterator, which ASGI sends as it comes
    instead of buffering it whole); the record's database work runs in a thread. Only
    `__aiter__`: Django serves content that is iterable at all as a synchronous stream."""

    async def __aiter__(self):
        held = None
        try:
            async for chunk in self.chunks:
                if held is not None:
                    yield held
                    self.sent += len(held)
                self._keep(chunk)
                held = chunk
        except Exception as exc:
            await sync_to_async(self._record)(self._broke(exc))
            raise
        await sync_to_async(self._record)(None)
        if held is not None:
            yield held
            self.sent += len(held)


def recorded(request: HttpRequest, call: Call, response: HttpResponse) -> None:
    """Record the call now, or for a streamed answer as it is sent (before its last chunk
    goes, or when the stream breaks or the client leaves)."""
    if not response.streaming:
        finish(request, call, response, None)
        return
    if not response.is_async:  # under ASGI, pulled piece by piece rather than read whole first
        response.streaming_content = streams.for_server(request, response.streaming_content)
    wrapper = _RecordedWhenSentAsync if response.is_async else _RecordedWhenSent
    response.streaming_content = wrapper(
        response.streaming_content,
        settings.KEYS_LOG_BODY_LIMIT + 1 if call.decision.logged else 0,
        lambda sent, cut_short: finish(request, call, response, sent, cut_short),
    )
