"""The /chqapi/ routes: every call passes the ApiKey guard, then goes to the
handler registered for its API type (501 when none is), and is answered in
CHQ's wire format (keys/chqapi/wire.py)."""

import time

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from ..guard import (
    ApiCall,
    ApiError,
    InvalidRequest,
    api_key_authenticated,
    api_key_required,
    error_response,
    parse_body,
    parse_json,
    registration_for,
)
from ..models import new_document_id
from . import documents, export_request
from .errors import post_only
from .exports import ExportResult, respond
from .wire import invalid, json_response, request_type, standard


def _dispatch(request: HttpRequest, direction: str, api_id: str, *, is_async: bool = False) -> HttpResponse:
    registration = registration_for(direction, api_id)
    context = request.api_call
    if registration is None:
        # The key checks passed: say so, so integrators can tell a bad key from a missing handler.
        name = context.decision.api_type_name or f"{direction}/{api_id}"
        return error_response(501, f"Your API key may call {name}, but this installation does not serve that API type.")
    try:
        body = parse_body(request)
        given = export_request.document_id(body)
        # Every accepted call is a document with an id the caller gets back, stored or not. The
        # request carries the id only once it is this call's: a 409's own record must not take it.
        document_id = given or context.document_id or new_document_id()
        call = ApiCall(request, direction, api_id, body, context.decision, is_async, document_id)
        if is_async or registration.asynchronous:
            document = documents.start(request, call)  # 409 when the id is taken
            context.document_id = document_id
            return json_response(standard(document))
        if given is not None:
            documents.take(request, given)  # 409 when the id is taken; the handler has not run
        context.document_id = document_id
        started_at, clock = timezone.now(), time.perf_counter()
        result = registration.handler(call)
    except InvalidRequest as exc:
        return invalid(exc.model_state)
    if isinstance(result, ExportResult):
        context.document_counts = (result.total, result.records_count)
        return respond(context.document_id, request_type(direction, api_id), result, started_at, clock)
    if isinstance(result, HttpResponseBase):  # streaming answers too
        return result
    context.document_summary = documents.summary(result)
    # A handler's own dict may hold dates, decimals or UUIDs: Django's encoder writes them.
    return json_response(result, encoder=DjangoJSONEncoder)


@post_only
@api_key_required("import")
def import_call(request: HttpRequest, api_id: str) -> HttpResponse:
    return _dispatch(request, "import", api_id)


@post_only
@api_key_required("export")
def export_call(request: HttpRequest, api_id: str) -> HttpResponse:
    return _dispatch(request, "export", api_id)


@post_only
@api_key_required("export")
def export_async_call(request: HttpRequest, api_id: str) -> HttpResponse:
    return _dispatch(request, "export", api_id, is_async=True)


def _about_a_document(request: HttpRequest, answer) -> HttpResponse:
    try:
        return answer(request.api_call.decision.key_id, documents.requested_id(parse_json(request)))
    except InvalidRequest as exc:
        return invalid(exc.model_state)
    except ApiError as exc:
        return error_response(exc.status, exc.message)


@post_only
@api_key_authenticated
def status_call(request: HttpRequest) -> HttpResponse:
    """The standard response for one of the key's documents: InProcess, Error, or its result."""
    return _about_a_document(request, documents.status)


@post_only
@api_key_authenticated
def getdata_call(request: HttpRequest) -> HttpResponse:
    """What one of the key's finished documents was asked and answered."""
    return _about_a_document(request, documents.getdata)
