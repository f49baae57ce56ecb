"""The handler registry: which function serves an API type (`register`), so a host
project can serve more API types without touching the guard or the routes."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from ..access import Decision


@dataclass(frozen=True)
class ApiCall:
    """What a handler gets: the JSON body and the decision, and the request when the
    handler runs inside one (None when an asynchronous document runs in a task worker)."""

    request: HttpRequest | None
    direction: str
    api_id: str
    body: dict[str, Any]
    decision: Decision
    is_async: bool = False
    document_id: uuid.UUID | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[ApiCall], Any]


@dataclass(frozen=True)
class Registration:
    handler: Handler
    # An import registered as asynchronous always runs in the task worker (CHQ fixes each
    # import's mode); an export runs asynchronously when called at .../async.
    asynchronous: bool = False
    # For the OpenAPI document (keys/chqapi/openapi.py): the request body's and the 200 answer's
    # JSON schemas (dicts, or pydantic model classes), and the operation's summary.
    request_schema: Any = None
    response_schema: Any = None
    summary: str | None = None


_handlers: dict[tuple[str, str], Registration] = {}


def register(
    direction: str,
    api_id: str,
    *,
    asynchronous: bool = False,
    request_schema: Any = None,
    response_schema: Any = None,
    summary: str | None = None,
) -> Callable[[Handler], Handler]:
    """Serve `/chqapi/<direction>/<api_id>` with the decorated function.

    The function takes an ApiCall and returns an ExportResult (keys/chqapi/exports.py:
    answered in CHQ's export envelope), a dict (sent as JSON, 200) or an HttpResponse;
    it may raise ApiError for a 4xx answer, or InvalidRequest for CHQ's 400.
    `request_schema` and `response_schema` describe the body and the 200 answer in the
    OpenAPI document (keys/chqapi/openapi.py has helpers for the export shapes).
    """

    def decorator(handler: Handler) -> Handler:
        _handlers[(direction, api_id)] = Registration(handler, asynchronous, request_schema, response_schema, summary)
        return handler

    return decorator


def registration_for(direction: str, api_id: str) -> Registration | None:
    return _handlers.get((direction, api_id))


def handler_for(direction: str, api_id: str) -> Handler | None:
    found = _handlers.get((direction, api_id))
    return found.handler if found else None
