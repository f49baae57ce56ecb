"""Streamed answers that stay streamed under ASGI.

Django serves a StreamingHttpResponse whose content is a synchronous iterator under ASGI by
reading it whole into a list first (`StreamingHttpResponse.__aiter__`: "must consume
synchronous iterators"), so an API Document Export of a million rows, or the log viewer's CSV
of a month, would sit in the server's memory before its first byte went out. `pulled()` turns
such an iterator into an asynchronous one that takes each next piece in the request's own
sync thread (`thread_sensitive`: the thread that ran the view, whose database connection
holds the export's server-side cursor), one piece at a time. Under WSGI content is left as it
is. Used by the guard for every streamed answer it passes (keys/guard/bookkeeping.py), by
the CHQ API's middleware under ASGI (keys/chqapi/middleware.py) and by the pane's CSV
(keys/views.py).

How it fails: a client that leaves mid-stream cancels the async iterator; the sync one is
closed in the same thread (its cursor with it) when it can be, and Django closes the
response's own resources as it does under WSGI. The thread hop costs each piece a little
(pieces are hundreds of rows: API Document Export's 500, the CSV's 1,000).
"""

from collections.abc import AsyncIterator, Iterable, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest

_END = object()


def for_server(request: HttpRequest, content: Iterable) -> Iterable | AsyncIterator:
    """`content` as the server running `request` can send it piece by piece."""
    return pulled(iter(content)) if isinstance(request, ASGIRequest) else content


async def pulled(pieces: Iterator) -> AsyncIterator:
    """Each piece of `pieces`, taken in the request's sync thread when the server asks for it."""
    take = sync_to_async(next, thread_sensitive=True)
    try:
        while (piece := await take(pieces, _END)) is not _END:
            yield piece
    finally:
        if close := getattr(pieces, "close", None):
            await sync_to_async(close, thread_sensitive=True)()
