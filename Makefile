# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1:8000

.PHONY: FORCE run test bootstrap lint pins bench bench-verify mutation clean

# The environment is rebuilt whenever the pins change.
$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "CHQ keys needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# A local .env with random secrets (never committed; see .env.example). An older .env
# gains the secrets it lacks and keeps the ones it has.
.env: FORCE
	@$(PYTHON) -m chq.dotenv

bootstrap: $(VENV)/.installed .env
	@chmod 600 .env
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py sync_api_types

# The demo login is made (and printed) by the first `make run`, not by `make test`.
# The web server and the task worker (asynchronous API documents), which bin/keep-running
# starts again 2 s after it exits; Ctrl-C stops both (the worker finishes the document
# it is running first). No autoreload for the worker: Django's reloader answers SIGTERM
# by killing its child outright, document and all; stop and start `make run` after
# changing a handler.
run: bootstrap
	$(PY) manage.py ensure_demo_admin
	@bin/keep-running $(PY) manage.py db_worker --interval 0.5 --no-reload & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(PY) manage.py runserver $(HOST)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# axe-core for the browser tests' accessibility checks, from its npm package (pinned in
# package.json; no lock file, which would record download addresses).
node_modules/axe-core/axe.min.js: package.json
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	test -f $@ && touch $@

# pytest exits 5 when it collects no test; that must fail loudly, not pass.
test: bootstrap lint node_modules/axe-core/axe.min.js
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# Re-resolve requirements.in into plain name==version pins.
pins:
	$(PYTHON) -m venv /tmp/chq-pins && /tmp/chq-pins/bin/pip install --quiet -r requirements.in
	{ echo "# Generated from requirements.in by 'make pins' (pip freeze). Plain name==version lines only."; \
	  /tmp/chq-pins/bin/pip freeze --exclude pip; } > requirements.txt
	rm -rf /tmp/chq-pins

bench: bootstrap
	$(PY) bench/pane_render.py

# The hot path against a bare Django view and drf-api-key (needs wrk: apt-get install wrk).
bench-verify: bootstrap
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) bench/verify.py

# Mutation testing of the access decision, the API guard and the services (not part of `make test`).
mutation: bootstrap
	$(PY) -m pip install --quiet -r requirements-mutation.txt
	rm -rf mutants
	DEBUG=true SECRET_KEY=mutation-only $(VENV)/bin/mutmut run --max-children 2 >/dev/null
	$(PY) bench/mutation_report.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles mutants node_modules
