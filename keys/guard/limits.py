"""The request body's limits, checked before any other work (a refused call's body is never read)."""

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from ..conf import hot
from .answers import error_response


def too_large(request: HttpRequest) -> HttpResponse | None:
    """413 for a body over KEYS_MAX_BODY_BYTES, decided from Content-Length before any other work;
    411 for a chunked body, whose length is not known before it is read. Reads no body."""
    limit = hot.MAX_BODY_BYTES
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if not raw_length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django reads a body without Content-Length as empty; a call must never run on a body it did not get.
        return error_response(411, "Send the request body with a Content-Length header (chunked bodies are refused).")
    try:
        length = int(raw_length or 0)
    except ValueError:
        return error_response(400, "The Content-Length header is not a number.")
    if length < 0:
        return error_response(400, "The Content-Length header is not a number.")
    if length > limit:
        return error_response(413, f"The request body is larger than {limit} bytes.")
    return None


def unread(request: HttpRequest) -> HttpResponse | None:
    """Read the body of an accepted call, before its handler runs, so the handler never
    meets a half-read body. A refused call's body is never read: reading it was work
    for nothing, and refused traffic must stay cheap."""
    try:
        request.body  # noqa: B018
    except RequestDataTooBig:  # Django's own DATA_UPLOAD_MAX_MEMORY_SIZE, when it is the smaller limit
        return error_response(413, f"The request body is larger than {hot.MAX_BODY_BYTES} bytes.")
    return None
