"""gunicorn's settings for production, the tests' servers and the benchmarks:
`gunicorn -c chq/gunicorn.conf.py chq.wsgi`. The command line or the environment
(GUNICORN_CMD_ARGS) overrides any of them, e.g. `--workers=4 --bind=0.0.0.0:8000`.

Worker class: gthread with a read deadline (chq/gunicorn_worker.py), because a sync
worker is held for the whole worker timeout by any client that sends a partial
request, and four of those stopped the API (tests/test_gunicorn_server.py).
"""

import multiprocessing

wsgi_app = "chq.wsgi"
bind = "127.0.0.1:8000"
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "chq.gunicorn_worker.ThreadWorker"
# Each thread serves one request at a time; a slow client holds one for at most
# GUNICORN_READ_TIMEOUT seconds (default 10), so this many per worker are the
# margin before slow clients delay other calls at all.
threads = 16
# A request that is still being computed after this many seconds restarts its worker.
timeout = 30
keepalive = 5
