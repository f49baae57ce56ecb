"""The gunicorn worker production runs (chq/gunicorn.conf.py): gunicorn's gthread
worker, with a deadline on reading each request.

gthread alone does not protect against a slow client. Its main thread only waits
for a connection's first bytes; a worker thread then reads the headers and the
body with blocking reads and no timeout, so a client that sends its headers and
part of a body holds that thread for as long as it keeps the connection open
(and, unlike a sync worker, the worker's heartbeat goes on, so gunicorn never
kills it). Here every read of a request (headers and body) must finish within
READ_TIMEOUT seconds of the request's start, and every write within gunicorn's
`timeout` (30 s: the bound a sync worker put on a whole request) of its own
start. A slow client then costs one thread of one worker for at most
READ_TIMEOUT seconds and gets its connection closed (or, when the application
was already reading the body, a 400: keys/chqapi/errors.py), while the other
threads go on answering.

Failure mode: as many slow clients at once as there are threads in all workers
(workers x threads) still make other calls wait, for READ_TIMEOUT seconds at most.
"""

import logging
import math
import os
import time

from gunicorn.http.errors import NoMoreData
from gunicorn.workers import gthread

READ_TIMEOUT = float(os.environ.get("GUNICORN_READ_TIMEOUT", "10"))
log = logging.getLogger("gunicorn.error")


class RequestTooSlow(NoMoreData):
    """The request did not arrive within READ_TIMEOUT. A NoMoreData, so gunicorn closes the
    connection as it does when a client goes away (no traceback, no answer); an OSError, so
    a body read by the application fails as a cut-off body does (UnreadablePostError)."""

    def __str__(self) -> str:
        return str(self.buf)


class _ReadDeadline:
    """A client socket as gthread uses it, except that "blocking" means "within the deadline".

    gthread switches a connection to blocking mode in a worker thread at the start of
    every request (gthread.ThreadWorker.handle), and to non-blocking when it hands a
    kept-alive connection back to its poller; that switch is where the deadline starts.
    Everything else is the socket's own.
    """

    def __init__(self, sock, timeout: float, write_timeout: float):
        self._sock = sock
        self._timeout = timeout
        self._write_timeout = write_timeout
        self._deadline: float | None = None  # None: not serving a request (or gunicorn set its own timeout)

    def setblocking(self, flag: bool) -> None:
        if flag:
            self._deadline = time.monotonic() + self._timeout
            self._sock.settimeout(self._timeout)
        else:
            self._deadline = None
            self._sock.setblocking(False)

    def settimeout(self, timeout: float | None) -> None:
        # gunicorn's own bounded reads (draining a body, a graceful close) set their own timeout.
        self._deadline = None
        self._sock.settimeout(timeout)

    def _late(self) -> RequestTooSlow:
        if self._deadline != -math.inf:  # logged once; later reads of this request fail at once
            self._deadline = -math.inf
            log.info(
                "Closing a connection from %s: the request did not arrive within %g s", _peer(self._sock), self._timeout
            )
        return RequestTooSlow(f"the request did not arrive within {self._timeout:g} s")

    def _read(self, read, *args):
        if self._deadline is None:
            return read(*args)
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._late()
        self._sock.settimeout(remaining)
        try:
            return read(*args)
        except TimeoutError:
            raise self._late() from None

    def recv(self, size: int, *flags) -> bytes:
        return self._read(self._sock.recv, size, *flags)

    def recv_into(self, buffer, *args) -> int:
        return self._read(self._sock.recv_into, buffer, *args)

    def _writing(self) -> None:
        # An answer may take longer than the request's deadline to compute, and a large one to
        # send to a slow but honest client: each write gets its own, longer bound.
        if self._deadline is not None:
            self._sock.settimeout(self._write_timeout)

    def send(self, data, *flags) -> int:
        self._writing()
        return self._sock.send(data, *flags)

    def sendall(self, data, *flags) -> None:
        self._writing()
        self._sock.sendall(data, *flags)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        self._writing()
        return self._sock.sendfile(file, offset, count)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _peer(sock) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "a client that has gone"


class ThreadWorker(gthread.ThreadWorker):
    """gthread, with each accepted connection's socket under _ReadDeadline."""

    def enqueue_req(self, conn) -> None:
        # Called on the main thread for every new, kept-alive or deferred connection, before a thread reads it.
        # (TLS is the proxy's job here: gunicorn wraps the plain socket itself when it terminates TLS.)
        if not isinstance(conn.sock, _ReadDeadline) and not self.cfg.is_ssl:
            conn.sock = _ReadDeadline(conn.sock, READ_TIMEOUT, max(self.cfg.timeout, READ_TIMEOUT))
        super().enqueue_req(conn)
