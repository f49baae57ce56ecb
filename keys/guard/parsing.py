"""Reading an accepted call's JSON body, once per request; a body that cannot be read
is an InvalidRequest (answered 400 with a ModelState, keys/guard/answers.py)."""

import json
from typing import Any

from django.http import HttpRequest


class InvalidRequest(Exception):
    """The request cannot be carried out; `model_state` maps each bad path to its messages."""

    def __init__(self, model_state: dict[str, list[str]]):
        super().__init__(model_state)
        self.model_state = model_state


def parse_body(request: HttpRequest) -> dict[str, Any]:
    """The JSON body as a dict; an empty body is an empty request. Parsed once per
    request: the handler and the call log (for `Source`) both ask."""
    if not hasattr(request, "_api_body"):
        try:
            request._api_body = _parse(request.body)
        except InvalidRequest as exc:
            request._api_body = exc
    if isinstance(request._api_body, InvalidRequest):
        raise request._api_body
    return request._api_body


def parse_json(request: HttpRequest) -> Any:
    """The JSON body whatever it holds (the status call takes a bare GUID string too)."""
    return _parse(request.body, object_only=False)


def _unreadable(message: str) -> InvalidRequest:
    # CHQ answers a body it cannot read as any invalid request: ModelState at "apiRequest".
    return InvalidRequest({"apiRequest": [message]})


def _parse(body: bytes, object_only: bool = True) -> Any:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise _unreadable("The request body is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise _unreadable(f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
    except RecursionError:
        raise _unreadable("The request body's JSON is nested too deeply.") from None
    except ValueError:  # an integer with more digits than Python converts (int_max_str_digits)
        raise _unreadable("The request body holds a number too long to read.") from None
    if object_only and not isinstance(data, dict):
        raise _unreadable("The request body must be a JSON object.")
    return data


def source_of(request: HttpRequest) -> str:
    """The body's `Source` as text (JSON for anything else), "" when the body cannot be read."""
    try:
        source = parse_body(request).get("Source", "")
    except InvalidRequest:
        return ""
    # Anything json.loads gave back, json.dumps can write again; the stored copy is cut to its column.
    return source if isinstance(source, str) else json.dumps(source)
