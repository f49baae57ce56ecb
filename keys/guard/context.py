"""What the guard knows of one accepted call, on the request as `request.api_call`.

One typed object instead of attributes set one by one on the request: a view reads
`request.api_call.decision` (the key, its API type, whether the call is logged) and
`request.api_call.document_id`; CHQ's own views fill in what the call's document says
of its answer (counts, summary) before the guard records it.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.http import HttpRequest

from ..access import Decision
from ..quotas import Metered


@dataclass(slots=True)
class Call:
    decision: Decision
    # The key's last four characters, what the pane and a document show of it.
    key_last4: str
    # CHQ's "<api-id>-<direction>" of the type called; None for calls about the key itself.
    request_type: str | None = None
    # When the view began (time.perf_counter()), for the document's duration.
    started: float = 0.0
    # The id a logged call is stored under (None: not stored, unless a view gives it one).
    document_id: uuid.UUID | None = None
    # When a caller's own id was reserved (keys/chqapi/documents.py): the document's created_at.
    document_created_at: datetime | None = None
    # An export's TotalRecords and the count it answered, for its document.
    document_counts: tuple[int | None, int | None] = (None, None)
    # A handler's own answer in one line, for its document.
    document_summary: str | None = None
    # The document is stored already (an asynchronous call's, when queued): the guard must not store it again.
    document_stored: bool = False
    # What the call counted against (keys/quotas.py), for its answer's RateLimit headers; None: no limits.
    metered: Metered | None = None


def call_of(request: HttpRequest) -> Call | None:
    """The guard's context of this request; None when no guard accepted it."""
    return getattr(request, "api_call", None)
