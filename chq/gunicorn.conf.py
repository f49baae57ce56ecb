"""gunicorn's settings for production, the tests' servers and the benchmarks:
`gunicorn -c chq/gunicorn.conf.py chq.wsgi`. The command line or the environment
(GUNICORN_CMD_ARGS) overrides any of them, e.g. `--workers=4 --bind=127.0.0.1:8000`.

Sync workers, behind nginx (deploy/nginx-chq.conf), as gunicorn's own documentation
asks of them: a sync worker reads a request in the worker itself, so four clients that
send headers and part of a body would hold four workers until `timeout`; nginx reads
every request whole before passing it on, and takes every answer whole, so a slow
client costs nginx a connection, never a worker (tests/operations/test_gunicorn_server.py).
Sync workers balance connections across workers by accepting one at a time; gthread
workers, tried for this, let one worker take every kept-alive connection and serve
them on one core (half the throughput in bench/verify.py, in some rounds).
"""

import multiprocessing

wsgi_app = "chq.wsgi"
bind = "127.0.0.1:8000"  # nginx passes to it; never expose a sync worker to clients directly
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "sync"
# A request still being computed after this many seconds restarts its worker.
timeout = 30
