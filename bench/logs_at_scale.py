"""Issue 24's table: what the pages and API calls that read API documents cost when one key has
LOGS_SCALE of them (default 10,000,000), on PostgreSQL, over HTTP.

    DATABASE_URL=postgres://chq:chq@127.0.0.1:54330/chq_scale LOGS_SCALE=200000 .venv/bin/python bench/logs_at_scale.py

DATABASE_URL names a scratch database on a PostgreSQL server: the bench DROPS it and creates it
again (it refuses when that database holds keys it did not make), migrates it, and fills the
documents table of one key through the model (`bulk_create`, LOGS_BATCH rows at a time): a mix
of API types, statuses (a few errors, a few async documents still queued or running), sources
and status codes, created and modified over LOGS_DAYS (180) days, oldest first, as a busy key
writes them; plus its usage rows. Then `VACUUM (ANALYZE)`, gunicorn (2 sync workers of
chq/gunicorn.conf.py, production settings, as bench/verify.py), and LOGS_ROUNDS rounds (5) of
every row in turn, one request each, rows alternating, all in one run: the median of each, and
every status code it got (a row that got anything but its expected status has no median).
Each call's result is printed as it is measured, and each table as soon as its rows are done, so
a run that dies late keeps what it measured. A request that fails is counted in its row with what
it got: its 4xx/5xx status, "timeout" (no answer within LOGS_TIMEOUT seconds, 120) or "dropped"
(the server closed the connection, as gunicorn does when it kills a worker past its 30 s timeout).

LOGS_REUSE=1 keeps the database instead of refilling it (a fill of 10,000,000 takes half an
hour): it migrates it to the checkout's migrations first (so a table a new migration converts,
such as to a partitioned one, is measured as converted), then refuses unless it holds only the
bench's key with exactly LOGS_SCALE documents, and gives that key a new value under this run's
secrets. Every run purges a copy of the database (made by file copy, dropped after), never the
database itself, so a filled database stays reusable.

Rows: API Document Export Top 10 (no filter, ApiType, Status, Source Contains a,b, sorted
RecModified either way), Skip of a tenth of the table (1,000,000 at 10M), status of a document,
the pane's log viewer first page (no filter, each filter), usage, Django admin's document list
(all, one key, a status filter); the peak resident memory a gunicorn worker grew by while it
streamed an export of LOGS_MEMORY_ROWS rows and the log viewer's CSV of a month; and last the
time `manage.py purge_api_logs` takes to delete the older half of the table (5,000,000 at 10M),
on a copy of the database.

It measures whatever the checkout has (it uses no API beyond the model, the commands and HTTP).
"""

import contextlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import GUNICORN_CONFIG, PYTHON, ROOT, free_port
from chq.dotenv import fresh_secrets

SCALE = int(os.environ.get("LOGS_SCALE", "10000000"))
BATCH = int(os.environ.get("LOGS_BATCH", "5000"))
DAYS = int(os.environ.get("LOGS_DAYS", "180"))
ROUNDS = int(os.environ.get("LOGS_ROUNDS", "5"))
WORKERS = os.environ.get("BENCH_WORKERS", "2")
REUSE = os.environ.get("LOGS_REUSE", "") not in ("", "0")
TIMEOUT = float(os.environ.get("LOGS_TIMEOUT", "120"))
MEMORY_ROWS = [min(int(n), SCALE) for n in os.environ.get("LOGS_MEMORY_ROWS", "10000,100000").split(",")]
SKIP = SCALE // 10
DESCRIPTION = "logs at scale"
# (api_id, direction, share): a busy integration is mostly a few types.
TYPES = [
    ("location", "export", 30),
    ("inventory", "import", 25),
    ("sales-order", "export", 15),
    ("customer", "import", 10),
    ("sales-order", "import", 10),
    ("apidocument", "export", 5),
    ("purchase-order", "export", 5),
]
SOURCES = [("ERP", 40), ("WMS", 25), ("a", 10), ("b", 10), ("shop", 10), ("", 5)]
# (status, status code, is_async, share): 3 Successful, 4 Error, 0 InQueue, 2 InProcess.
OUTCOMES = [
    (3, 200, False, 90),
    (3, 200, True, 5),
    (4, 500, False, 2),
    (4, 400, False, 2),
    (0, 202, True, 0.5),
    (2, 202, True, 0.5),
]
ROW = b'<tr data-id="'  # a row of the log viewer's table
ITEM = b'"APIDocumentId"'  # an item of API Document Export's answer
ADMIN_ROW = b'class="field-created_at'  # a row of the admin's change list
REQUEST = '{"Source": "ERP", "Data": {"Items": [{"Sku": "A-100", "Qty": 3}, {"Sku": "B-7", "Qty": 1}]}}'
RESPONSE = '{"ApiDocument": {"Status": "Successful", "TotalRecords": 2, "RecordsCount": 2}}'


def _server_and_name(url: str) -> tuple[str, str]:
    """The maintenance database's URL on DATABASE_URL's server, and the name of DATABASE_URL's database."""
    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql", "pgsql") or not name:
        sys.exit("bench/logs_at_scale.py needs DATABASE_URL=postgres://user:password@host:port/scratch_database")
    return urllib.parse.urlunsplit(parts._replace(path="/postgres")), name


def scratch_database(url: str, *, reuse: bool = False) -> None:
    """Drop and create the database DATABASE_URL names, unless it holds keys of someone else;
    with `reuse`, keep it (refusing one that is not there, or holds keys of someone else)."""
    import psycopg

    server, name = _server_and_name(url)
    with psycopg.connect(server, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            with psycopg.connect(url) as existing:
                if existing.execute("SELECT to_regclass('keys_apikey')").fetchone()[0]:
                    others = existing.execute(
                        "SELECT count(*) FROM keys_apikey WHERE description <> %s", [DESCRIPTION]
                    ).fetchone()[0]
                    if others:
                        sys.exit(f"{name} holds {others} key(s) the bench did not make: name a scratch database.")
                elif reuse:
                    sys.exit(f"LOGS_REUSE: {name} holds no CHQ keys table: run once without LOGS_REUSE to fill it.")
        elif reuse:
            sys.exit(f"LOGS_REUSE: there is no database {name}: run once without LOGS_REUSE to fill it.")
        if reuse:
            return
        if exists:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def reused_key():
    """The bench's key of a filled database (LOGS_REUSE), with a new value under this run's secrets
    (the fill's secrets are gone, and with them the digest its value is looked up by); exits unless
    the database holds only that key, with exactly SCALE documents."""
    from keys.models import ApiDocument, ApiKey

    keys = list(ApiKey.objects.all())
    if len(keys) != 1 or keys[0].description != DESCRIPTION:
        sys.exit(f"LOGS_REUSE: the database holds {len(keys)} key(s), not only the bench's: run without LOGS_REUSE.")
    key = keys[0]
    count = ApiDocument.objects.filter(key=key).count()
    if count != SCALE:
        sys.exit(
            f"LOGS_REUSE: the bench's key has {count:,} documents, not LOGS_SCALE={SCALE:,}:"
            " set LOGS_SCALE to match, or run without LOGS_REUSE to refill it."
        )
    key.value = uuid.uuid4()
    key.save(update_fields=["value_digest", "value_sealed"])
    return key


def purge_copy(url: str) -> str:
    """A copy of DATABASE_URL's database to purge, so the filled one stays whole for LOGS_REUSE; its URL."""
    import psycopg

    server, name = _server_and_name(url)
    copy = f"{name}_purge"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        for attempt in range(10):
            try:
                # FILE_COPY copies the files whole (WAL_LOG, the default, writes every page to the WAL).
                admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}" STRATEGY FILE_COPY')
                break
            except psycopg.errors.ObjectInUse:  # an autovacuum worker in the original: it moves on
                time.sleep(attempt + 1)
        else:
            sys.exit(f"could not copy {name} to purge it: it stays in use")
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{copy}"))


def drop_database(url: str) -> None:
    import psycopg

    server, name = _server_and_name(url)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def weighted(choices: list[tuple], rng: random.Random, n: int) -> list[tuple]:
    return rng.choices(choices, weights=[c[-1] for c in choices], k=n)


def fill(key, api_types: dict) -> float:
    """SCALE documents of `key`, oldest first, spread evenly over DAYS days ending now; seconds taken."""
    from keys import partitions
    from keys.models import ApiDocument

    rng = random.Random(24)
    end = datetime.now(UTC)
    start = end - timedelta(days=DAYS)
    step = (end - start) / SCALE
    # On PostgreSQL, the days' partitions first, as an operator loading old documents would
    # (`api_log_partitions --since`): otherwise they all go to the DEFAULT partition.
    partitions.ensure(since=start.date())
    types = [(api_types[(api_id, direction)], share) for api_id, direction, share in TYPES]
    started = time.perf_counter()
    for first in range(0, SCALE, BATCH):
        count = min(BATCH, SCALE - first)
        rows = []
        for n, (api_type, _), (source, _), (status, code, is_async, _) in zip(
            range(first, first + count),
            weighted(types, rng, count),
            weighted(SOURCES, rng, count),
            weighted(OUTCOMES, rng, count),
            strict=True,
        ):
            created = start + step * n
            rows.append(
                ApiDocument(
                    created_at=created,
                    # An async document changes when its worker ends it; a sync one as it is written.
                    modified_at=created + timedelta(seconds=rng.uniform(1, 600)) if is_async else created,
                    key=key,
                    key_last4="beef",
                    key_description=DESCRIPTION,
                    api_type=api_type,
                    api_type_name=api_type.name,
                    request_type=f"{api_type.api_id}-{api_type.direction}",
                    method="POST",
                    path=f"/chqapi/{api_type.direction}/{api_type.api_id}" + ("/async" if is_async else ""),
                    source=source,
                    is_async=is_async,
                    status=status,
                    status_code=code,
                    duration_ms=rng.uniform(0.5, 40),
                    started_at=created if status else None,
                    ended_at=created if status in (3, 4) else None,
                    client_address="10.0.0.7",
                    request_body=REQUEST,
                    response_body=RESPONSE if status == 3 else "",
                    error_message="Sku B-7 is not known." if status == 4 else "",
                )
            )
        ApiDocument.objects.bulk_create(rows, batch_size=BATCH)
        if first and first % (BATCH * 200) == 0:
            done = first + count
            print(f"  {done:,} rows, {done / (time.perf_counter() - started):,.0f} rows/s", flush=True)
    return time.perf_counter() - started


def fill_usage(key, api_types: dict) -> None:
    """The key's usage rows of the last 30 days, as its calls would have counted them."""
    from django.utils import timezone

    from keys.models import KeyUsage

    today = timezone.localdate()
    per_day = SCALE // DAYS
    KeyUsage.objects.bulk_create(
        KeyUsage(
            key=key,
            api_type=api_types[(api_id, direction)],
            day=today - timedelta(days=d),
            succeeded=per_day * share // 100,
        )
        for d in range(30)
        for api_id, direction, share in TYPES
    )


def session_cookie(user) -> str:
    """A signed-in session for `user`, as a login would leave it: the `sessionid` cookie's value."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


@dataclass
class Row:
    name: str
    method: str
    path: str
    body: dict | str | None = None
    headers: dict = field(default_factory=dict)
    expect: int = 200
    # A page must show rows, not only answer 200: text every answer must hold ("200 without it" otherwise).
    shows: bytes = b""
    times: list[float] = field(default_factory=list)
    statuses: dict[int | str, int] = field(default_factory=dict)

    def call(self, base: str, timeout: float = TIMEOUT) -> int | str:
        """One request, read to its end; its time and status are counted in the row, and the status
        returned: the HTTP status, "timeout" (no byte for `timeout` seconds) or "dropped" (the
        connection closed before the answer's end, as when gunicorn kills a worker past its timeout)."""
        data = None if self.body is None else json.dumps(self.body).encode()
        headers = self.headers | ({"Content-Type": "application/json"} if data is not None else {})
        request = urllib.request.Request(base + self.path, data=data, headers=headers, method=self.method)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                found, tail = not self.shows, b""
                while piece := response.read(1 << 16):
                    found = found or self.shows in tail + piece
                    tail = piece[-len(self.shows) :] if self.shows else b""
                if response.length:  # http.client ends a short read of a Content-Length body quietly
                    raise http.client.IncompleteRead(b"", response.length)
                status = response.status if found else f"{response.status} without {self.shows.decode()}"
        except urllib.error.HTTPError as error:
            error.read()
            status = error.code
        except TimeoutError:
            status = "timeout"
        except urllib.error.URLError as error:
            status = "timeout" if isinstance(error.reason, TimeoutError) else "dropped"
        except (http.client.HTTPException, ConnectionError):
            status = "dropped"  # IncompleteRead, RemoteDisconnected, a reset
        self.times.append((time.perf_counter() - started) * 1000)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status

    @property
    def median(self) -> str:
        if set(self.statuses) != {self.expect}:
            return "-"
        return f"{statistics.median(self.times):,.1f}"


def where(name: str, value: str, operator: str = "Equal") -> dict:
    return {"Field": name, "Operator": operator, "Value": value}


def by(name: str, direction: str) -> dict:
    return {"Name": name, "Direction": direction}


def start_server(env: dict, scratch: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-c", GUNICORN_CONFIG, "chq.wsgi", f"--bind=127.0.0.1:{port}", f"-w{WORKERS}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(scratch / "gunicorn.log", "wb"),  # noqa: SIM115  (lives as long as the server)
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    return process, base


def workers_of(server: subprocess.Popen) -> list[int]:
    with open(f"/proc/{server.pid}/task/{server.pid}/children") as children:
        return [int(pid) for pid in children.read().split()]


def _status_kb(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(name + ":"))


def peak_growth_mb(server: subprocess.Popen, step) -> float:
    """How far the largest rise of a worker's resident memory went above its size before `step`
    (writing 5 to clear_refs resets a process's high-water mark, VmHWM)."""
    before = {}
    for pid in workers_of(server):
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
        before[pid] = _status_kb(pid, "VmRSS")
    step()
    grown = []
    for pid, rss in before.items():
        with contextlib.suppress(FileNotFoundError):  # killed past gunicorn's timeout: its row says so
            grown.append(_status_kb(pid, "VmHWM") - rss)
    return max(grown, default=0) / 1024


def main() -> None:
    url = os.environ.get("DATABASE_URL", "")
    scratch_database(url, reuse=REUSE)
    scratch = Path(tempfile.mkdtemp(prefix="chq-logs-at-scale-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "CACHE_URL")} | fresh_secrets()
    env |= {
        "DJANGO_SETTINGS_MODULE": "chq.settings",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
        "DATABASE_URL": url,
        "KEYS_SHARED_STATE_DIR": str(scratch / "var"),
        "STATIC_ROOT": str(scratch / "static"),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    from bench.common import django_in_process

    django_in_process("chq-logs-at-scale-")  # migrates: a reused database to this checkout's migrations
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.urls import reverse

    from keys.models import ApiDocument, ApiType
    from keys.services import api_key_create

    api_types = {(t.api_id, t.direction): t for t in ApiType.objects.all()}
    major, minor = divmod(connection.pg_version, 10000)
    if REUSE:
        print(f"PostgreSQL {major}.{minor}; reusing {SCALE:,} documents of one key", flush=True)
        key = reused_key()
    else:
        # Not logged: the bench's own export calls add no documents while it measures.
        key = api_key_create(description=DESCRIPTION, is_active=True, allowed_for_all=True)
        print(f"PostgreSQL {major}.{minor}; filling {SCALE:,} documents of one key over {DAYS} days", flush=True)
        seconds = fill(key, api_types)
        fill_usage(key, api_types)
    with connection.cursor() as cursor:
        # As a live table stands once autovacuum has been by: statistics, and the visibility map that
        # index-only scans need (autovacuum starting in the middle of the rounds would be noise).
        cursor.execute("VACUUM (ANALYZE) keys_apidocument")
        cursor.execute("ANALYZE")
        # Its partitions' too, once the table is partitioned (a partitioned table itself has no storage).
        cursor.execute(
            "SELECT pg_size_pretty(COALESCE(sum(pg_total_relation_size(relid)), pg_total_relation_size(%s)))"
            " FROM pg_partition_tree(%s)",
            ["keys_apidocument", "keys_apidocument"],
        )
        size = cursor.fetchone()[0]
    if not REUSE:
        print(f"filled in {seconds:,.0f} s ({SCALE / seconds:,.0f} rows/s)")
    print(f"keys_apidocument with its indexes: {size}", flush=True)

    viewer, _ = User.objects.get_or_create(username="bench-viewer")
    viewer.groups.add(Group.objects.get(name="Integration viewers"))
    if not (root := User.objects.filter(username="bench-root").first()):
        root = User.objects.create_superuser("bench-root", email="root@example.com")
    as_viewer = {"Cookie": f"sessionid={session_cookie(viewer)}"}
    as_root = {"Cookie": f"sessionid={session_cookie(root)}"}
    document_id = str(ApiDocument.objects.order_by("id").values_list("document_id", flat=True)[SCALE // 2])
    location = api_types[("location", "export")]
    day = (datetime.now(UTC) - timedelta(days=DAYS // 2)).date().isoformat()
    month = [(datetime.now(UTC) - timedelta(days=days)).date().isoformat() for days in (60, 31)]
    connection.close()

    api = {"ApiKey": str(key.value)}
    docs = "/chqapi/export/apidocument"
    logs = reverse("keys:logs", args=[key.pk])
    admin = reverse("admin:keys_apidocument_changelist")
    modified = "RecModified"

    def exporting(name: str, **request) -> Row:
        """An API Document Export row: Top 10 of the key's documents with `request`'s filters, sort, Skip."""
        return Row(name, "POST", docs, {"Data": {"Request": {"Top": 10} | request}}, api, shows=ITEM)

    rows = [
        exporting("Export Top 10, no filter"),
        exporting("  ApiType location-export", Filters=[where("ApiType", "location-export")]),
        exporting("  Status Equal 4 (Error)", Filters=[where("Status", "4")]),
        exporting("  Source Contains a,b", Filters=[where("Source", "a,b", "Contains")]),
        exporting("  RecModified Ascending", SortDescriptions=[by(modified, "Ascending")]),
        exporting("  RecModified Descending", SortDescriptions=[by(modified, "Descending")]),
        exporting(f"  Skip {SKIP:,}", Skip=SKIP),
        Row("status of a document", "POST", "/chqapi/status", {"ApiDocumentId": document_id}, api),
        Row("log viewer, first page", "GET", logs, headers=as_viewer, shows=ROW),
        Row("  one API type", "GET", f"{logs}?api_type={location.pk}", headers=as_viewer, shows=ROW),
        Row("  status code 500", "GET", f"{logs}?status=500", headers=as_viewer, shows=ROW),
        Row("  one day", "GET", f"{logs}?date_from={day}&date_to={day}", headers=as_viewer, shows=ROW),
        Row("usage", "GET", reverse("keys:usage", args=[key.pk]), headers=as_viewer, shows=b"Location"),
        Row("admin document list, all", "GET", admin, headers=as_root, shows=ADMIN_ROW),
        Row("  one key", "GET", f"{admin}?key__id__exact={key.pk}", headers=as_root, shows=ADMIN_ROW),
        Row("  status Error", "GET", f"{admin}?status__exact=4", headers=as_root, shows=ADMIN_ROW),
    ]
    server, base = start_server(env, scratch)
    print(f"gunicorn at {base}, log {scratch / 'gunicorn.log'}", flush=True)
    try:
        for row in rows:  # warm: each worker's first request pays imports and connections
            status = row.call(base)
            print(f"warm   {row.name:<40}{row.times[0]:>10,.1f} ms  {status}", flush=True)
            row.times.clear()
            row.statuses.clear()
        for n in range(1, ROUNDS + 1):
            for row in rows:
                status = row.call(base)
                print(f"round {n} {row.name:<40}{row.times[-1]:>10,.1f} ms  {status}", flush=True)
        print(f"\n{SCALE:,} documents of one key, PostgreSQL, gunicorn {WORKERS} sync workers, {ROUNDS} rounds")
        print(f"{'what':<40}{'median ms':>12}  statuses")
        for row in rows:
            print(f"{row.name:<40}{row.median:>12}  {row.statuses}")
        print(f"\n{'peak RSS rise of a worker':<40}{'MB':>12}  {'ms':>9}  statuses", flush=True)
        memory = [
            Row(f"export streamed, Top {count:,}", "POST", docs, {"Data": {"Request": {"Top": count}}}, api)
            for count in MEMORY_ROWS
        ]
        month_query = f"date_from={month[0]}&date_to={month[1]}"
        csv_path = reverse("keys:logs-csv", args=[key.pk])
        memory.append(
            Row(f"log viewer CSV, {month[0]}..{month[1]}", "GET", f"{csv_path}?{month_query}", headers=as_viewer)
        )
        for row in memory:
            mb = peak_growth_mb(server, lambda r=row: r.call(base))
            print(f"{row.name:<40}{mb:>12.1f}  {row.times[0]:>9,.0f}  {row.statuses}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)

    before = (datetime.now(UTC) - timedelta(days=DAYS // 2)).date().isoformat()
    copying = time.perf_counter()
    purged = purge_copy(url)
    print(f"\ncopied the database to purge in {time.perf_counter() - copying:,.0f} s", flush=True)
    started = time.perf_counter()
    try:
        out = subprocess.run(
            [PYTHON, "manage.py", "purge_api_logs", "--before", before, "--no-input", "--json"],
            cwd=ROOT,
            env=env | {"DATABASE_URL": purged},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        drop_database(purged)
    taken = time.perf_counter() - started
    deleted = json.loads(out)["deleted"]
    rate = deleted / taken
    print(f"purge_api_logs --before {before}: {deleted:,} documents in {taken:,.1f} s ({rate:,.0f} rows/s)")


if __name__ == "__main__":
    main()
