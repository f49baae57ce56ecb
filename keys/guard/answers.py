"""The guard's answers: the `ApiKey` header it reads, and every answer it makes itself
in one JSON shape, `{"Message": ...}` (CHQ's Response Example 5), or for a request that
cannot be carried out `{"Message": "The request is invalid.", "ModelState": {path: [...]}}`.

These are the shapes CHQ's wire format (keys/chqapi/wire.py) answers in too; they live
here because the guard answers in them for any view, and keys/guard never imports the
CHQ side.
"""

import functools
import itertools
import json
from typing import Any

from django.http import HttpResponse

HEADER = "ApiKey"
# request.headers builds a mapping of every header on each access; the one we need is read directly.
HEADER_META = "HTTP_APIKEY"

INVALID_REQUEST = "The request is invalid."
# A 401's WWW-Authenticate: the scheme a caller must use.
CHALLENGE = f'{HEADER} realm="chqapi"'


class ApiError(Exception):
    """Raise from a handler to answer `{"Message": message}` with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(data: Any, status: int = 200, encoder: type[json.JSONEncoder] | None = None) -> HttpResponse:
    # json.dumps directly: JsonResponse's DjangoJSONEncoder is slower, and these are plain values.
    # Bytes, not text: HttpResponse encodes text by a settings lookup per response (3 µs of a call's ~100).
    return _json_bytes(json.dumps(data, cls=encoder).encode(), status)


@functools.lru_cache(maxsize=256)
def _message_body(message: str) -> bytes:
    return json.dumps({"Message": message}).encode()


def message_response(message: str, status: int) -> HttpResponse:
    """CHQ's error answer `{"Message": ...}` (the reference's Response Example 5). The same few
    messages answer most refusals, so their JSON is made once (a bounded cache: some carry the
    caller's path)."""
    return _json_bytes(_message_body(message), status)


def _json_bytes(body: bytes, status: int) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json", status=status)
    if status >= 400:
        # A deliberate answer: keys.security records refusals (without the key), and failures are
        # logged where they happen; django.request need not build a log record for each.
        response._has_been_logged = True
    return response


def message_of(response: HttpResponse) -> str:
    """The `Message` of one of these answers ("" for any other): what a framework that answers
    in its own shape (DRF's and ninja's `{"detail": ...}`) shows of a guard's refusal."""
    try:
        return str(json.loads(response.content).get("Message", ""))
    except (ValueError, AttributeError):
        return ""


def error_response(status: int, message: str) -> HttpResponse:
    response = message_response(message, status)
    if status == 401:
        response["WWW-Authenticate"] = CHALLENGE
    return response


# An invalid request's answer lists this many problems and counts the rest: one entry per bad item
# made a 200 KB body of 100,000 bad filters a 9.7 MB answer, stored again by an async document.
# The first 20 are enough to correct a request by; the rest are most often the same mistake.
MAX_PROBLEMS = 20


def listed(model_state: dict[str, list[str]]) -> dict[str, list[str]]:
    """The ModelState an answer shows: the first MAX_PROBLEMS paths, and how many more there were."""
    if len(model_state) <= MAX_PROBLEMS:
        return model_state
    shown = {path: model_state[path] for path in itertools.islice(model_state, MAX_PROBLEMS)}
    more = f"{len(model_state) - MAX_PROBLEMS} more problems are not listed ({len(model_state)} in all)."
    shown["apiRequest"] = [*shown.get("apiRequest", ()), more]
    return shown


def invalid_body(model_state: dict[str, list[str]]) -> dict[str, Any]:
    """The body of the reference's API Document Export Response Example #2."""
    return {"Message": INVALID_REQUEST, "ModelState": listed(model_state)}


def invalid_message(model_state: dict[str, list[str]]) -> str:
    """An invalid request in one line, for a document's error message."""
    details = " ".join(f"{path}: {' '.join(texts)}" for path, texts in listed(model_state).items())
    return f"{INVALID_REQUEST} {details}"


def invalid(model_state: dict[str, list[str]]) -> HttpResponse:
    """400 in the shape of the reference's API Document Export Response Example #2."""
    return json_response(invalid_body(model_state), status=400)
