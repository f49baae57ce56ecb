"""What a guarded API call costs, against the real limit, over real HTTP.

Three servers run side by side under the same gunicorn settings (production's
chq/gunicorn.conf.py: sync workers, BENCH_WORKERS of them; wrk calls gunicorn
directly, without production's nginx in front, so every row pays the same server
and only the application differs), production settings:
  - bare:    a bare Django project, one JsonResponse view, CommonMiddleware only
             (bench/baselines/bare.py): the limit, paying no database, no key.
  - drf:     Django REST framework + djangorestframework-api-key's HasAPIKey
             (bench/baselines/drf_api_key.py), on SQLite, twice: with
             persistent connections as the product has, and with Django's
             default CONN_MAX_AGE=0. "vs drf" is against the first.
  - product: this project, on a scratch SQLite database with no Redis (the
             embedded default), or DATABASE_URL / CACHE_URL when set.
  - bare-asgi, product-asgi: the bare view and the product under uvicorn
             (BENCH_ASGI_WORKERS processes; bench/baselines/bare_asgi.py, chq/asgi.py),
             the same request path under an ASGI server; its rows are held
             against the bare view under uvicorn.
wrk (-t1 -c8 by default) loads each row for BENCH_SECONDS; every row runs once
per round, BENCH_ROUNDS rounds, in alternating order, all in one run. Each row
says which status it must get; a row whose answers were anything else (or that
lost a connection) gets no ratio. The logged row's stored calls are counted
against its 2xx answers: every call stored exactly once, or the run fails.

Run: `make bench-verify` (installs bench/requirements.txt and needs `wrk`:
apt-get install wrk). Prints the table and writes BENCH_JSON (default
bench/verify-results.json).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import GUNICORN_CONFIG, PYTHON, ROOT, free_port, manage
from chq.dotenv import fresh_secrets

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WORKERS = os.environ.get("BENCH_WORKERS", "2")
# One uvicorn process per ASGI server: uvicorn 0.54's own --workers mode answered 178 req/s here
# with a 44 ms floor under every request (bare view and product alike: 729 req/s from one
# process), which hid any difference between the rows.
ASGI_WORKERS = os.environ.get("BENCH_ASGI_WORKERS", "1")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "8")
# BENCH_ONLY="logged,unknown": only the rows whose names contain one of these (and their bare views).
ONLY = [part for part in os.environ.get("BENCH_ONLY", "").split(",") if part]
OUTPUT = Path(os.environ.get("BENCH_JSON", ROOT / "bench" / "verify-results.json"))
BODY = json.dumps({"Source": "bench", "Data": {"Items": [{"Sku": "A-1", "Qty": 3}]}})


@dataclass
class Row:
    name: str
    server: str
    path: str
    expect: int
    headers: dict[str, str] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)
    limit: str = "bare"  # the server whose bare view this row is held against ("vs bare")

    @property
    def valid(self) -> bool:
        answered = (set(r["statuses"]) == {str(self.expect)} and not r["socket_errors"] for r in self.rounds)
        return bool(self.rounds) and all(answered)

    def median(self, name: str) -> float:
        return statistics.median(r[name] for r in self.rounds)


def start(name: str, app: str, env: dict, scratch: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-c", GUNICORN_CONFIG, app, f"--bind=127.0.0.1:{port}", f"--workers={WORKERS}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(scratch / f"{name}.log", "wb"),  # noqa: SIM115  (lives as long as the server)
    )
    return process, _answering(f"http://127.0.0.1:{port}")


def start_asgi(name: str, app: str, env: dict, scratch: Path) -> tuple[subprocess.Popen, str]:
    """`app` under uvicorn, BENCH_ASGI_WORKERS processes, as an ASGI deployment would run it."""
    port = free_port()
    # Django speaks no lifespan protocol.
    options = ["--lifespan=off", "--no-access-log", "--log-level=warning", f"--workers={ASGI_WORKERS}"]
    process = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", app, "--host=127.0.0.1", f"--port={port}", *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(scratch / f"{name}.log", "wb"),  # noqa: SIM115  (lives as long as the server)
    )
    return process, _answering(f"http://127.0.0.1:{port}")


def _answering(url: str) -> str:
    for _ in range(300):
        try:
            urllib.request.urlopen(urllib.request.Request(url + "/", data=b"{}"), timeout=1)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            time.sleep(0.1)
    return url


def wrk(url: str, row: Row) -> dict:
    env = os.environ | {"BENCH_BODY": BODY, "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in row.headers.items())}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS:g}s", "-s", str(ROOT / "bench" / "post.lua"), url + row.path],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.split("BENCH-RESULT ", 1)[1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("bench/verify.py needs wrk (apt-get install wrk)")
    scratch = Path(tempfile.mkdtemp(prefix="chq-verify-"))
    base_env = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CACHE_URL")
    } | fresh_secrets() | {"LOG_LEVEL": "WARNING"}
    product_env = base_env | {
        "DJANGO_SETTINGS_MODULE": "chq.settings",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{scratch / 'product.sqlite3'}"),
        "KEYS_SHARED_STATE_DIR": str(scratch / "var"),
        "STATIC_ROOT": str(scratch / "static"),
        "KEYS_HANDLER_MODULES": "bench.echo_handler",
        # Counted, never blocked: the refused rows must measure 401s, not 429s.
        "KEYS_THROTTLE_REFUSALS": "1000000000",
    }
    if os.environ.get("CACHE_URL"):
        product_env["CACHE_URL"] = os.environ["CACHE_URL"]
    drf_env = base_env | {"BENCH_DRF_DATABASE": str(scratch / "drf.sqlite3")}

    manage(product_env, "migrate", "--no-input", "-v", "0")
    manage(product_env, "collectstatic", "--no-input", "-v", "0")
    code = """
from keys.models import ApiDocument, ApiKey, ApiType
from keys.services import GrantSpec, api_key_create
ApiDocument.objects.all().delete(); ApiKey.objects.all().delete()
inv_export = ApiType.objects.get(direction="export", api_id="inventory")
inv_import = ApiType.objects.get(direction="import", api_id="inventory")
plain = api_key_create(description="bench plain", is_active=True, grants=[GrantSpec(inv_export.pk)])
logged = api_key_create(description="bench logged", is_active=True, grants=[GrantSpec(inv_import.pk, logged=True)])
unlogged = api_key_create(description="bench unlogged", is_active=True, grants=[GrantSpec(inv_import.pk)])
# A rate never reached: what counting a call against a key's limit costs, not a 429.
limited = api_key_create(description="bench limited", is_active=True, grants=[GrantSpec(inv_export.pk)])
limited.rate_per_second = 10_000_000
limited.save()
print(plain.value, logged.value, unlogged.value, limited.value)
"""
    plain, logged, unlogged, limited = manage(product_env, "shell", "-c", code).split()[-4:]
    drf_key = subprocess.run(
        [PYTHON, "-m", "bench.baselines.drf_api_key", "setup"],
        cwd=ROOT,
        env=drf_env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]

    servers = {
        "bare": start("bare", "bench.baselines.bare:application", base_env, scratch),
        "drf": start("drf", "bench.baselines.drf_api_key:application", drf_env, scratch),
        "drf-default": start(
            "drf-default", "bench.baselines.drf_api_key:application", drf_env | {"BENCH_DRF_CONN_MAX_AGE": "0"}, scratch
        ),
        "product": start("product", "chq.wsgi", product_env, scratch),
        # The same two under an ASGI server: the request path must hold its ratios there too.
        "bare-asgi": start_asgi("bare-asgi", "bench.baselines.bare_asgi:application", base_env, scratch),
        "product-asgi": start_asgi("product-asgi", "chq.asgi:application", product_env, scratch),
    }
    rows = [
        Row("bare Django view (the limit)", "bare", "/", 200),
        Row("DRF + drf-api-key HasAPIKey", "drf", "/", 200, {"Authorization": f"Api-Key {drf_key}"}),
        Row("allowed, not logged (501)", "product", "/chqapi/export/inventory", 501, {"ApiKey": plain}),
        Row("allowed, rate limit set (501)", "product", "/chqapi/export/inventory", 501, {"ApiKey": limited}),
        Row("allowed and logged (200)", "product", "/chqapi/import/inventory", 200, {"ApiKey": logged}),
        # The same path and handler with a key whose type is not logged: what logging itself costs.
        Row("  same call, not logged (200)", "product", "/chqapi/import/inventory", 200, {"ApiKey": unlogged}),
        Row(
            "refused: unknown key (401)",
            "product",
            "/chqapi/export/inventory",
            401,
            {"ApiKey": "00000000-0000-4000-8000-000000000000"},
        ),
        Row("refused: malformed key (401)", "product", "/chqapi/export/inventory", 401, {"ApiKey": "not-a-guid"}),
        Row("ASGI: bare view (uvicorn)", "bare-asgi", "/", 200, limit="bare-asgi"),
        Row(
            "ASGI: allowed (501)",
            "product-asgi",
            "/chqapi/export/inventory",
            501,
            {"ApiKey": plain},
            limit="bare-asgi",
        ),
        Row(
            "ASGI: refused: unknown key (401)",
            "product-asgi",
            "/chqapi/export/inventory",
            401,
            {"ApiKey": "00000000-0000-4000-8000-000000000000"},
            limit="bare-asgi",
        ),
        Row("  same, CONN_MAX_AGE=0 (default)", "drf-default", "/", 200, {"Authorization": f"Api-Key {drf_key}"}),
    ]
    if ONLY:  # a quick look at some rows, and the bare view each is held against (every ratio needs it)
        chosen = [r for r in rows if any(part in r.name for part in ONLY)]
        limits = {"bare"} | {r.limit for r in chosen}
        rows = [r for r in rows if r in chosen or (r.path == "/" and r.server == r.limit and r.server in limits)]
    try:
        for row in rows:  # warm every worker: connections, caches, imports
            wrk(servers[row.server][1], Row(row.name, row.server, row.path, row.expect, row.headers))
        stored_before = count_stored(product_env)
        for n in range(ROUNDS):
            for row in rows if n % 2 == 0 else rows[::-1]:
                row.rounds.append(wrk(servers[row.server][1], row))
        stored = count_stored(product_env) - stored_before
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=15)
    report(rows, stored, product_env)


def count_stored(env: dict) -> int:
    code = "from keys.models import ApiDocument; print(ApiDocument.objects.count())"
    return int(manage(env, "shell", "-c", code).split()[-1])


def report(rows: list[Row], stored: int, env: dict) -> None:
    database = env["DATABASE_URL"].split(":")[0]
    cache = env.get("CACHE_URL", "none").split(":")[0]
    worker = os.environ.get("GUNICORN_CMD_ARGS") or "chq/gunicorn.conf.py"
    print(f"gunicorn {WORKERS} workers per server ({worker}), ASGI rows uvicorn {ASGI_WORKERS} worker(s);", end="")
    print(f" wrk -t1 -c{CONNECTIONS}, {SECONDS:g} s a row", end="")
    print(f", {ROUNDS} rounds")
    print(f"product: database {database}, shared cache {cache}; medians of the rounds")
    by_name = {row.name: row for row in rows}
    limits = {row.server: row for row in rows if row.path == "/" and row.server == row.limit}
    skipped = Row("not run (BENCH_ONLY)", "", "", 0)  # valid is False for a row with no rounds: no ratio against it
    drf = by_name.get("DRF + drf-api-key HasAPIKey", skipped)
    drf_default = by_name.get("  same, CONN_MAX_AGE=0 (default)", skipped)
    header = (
        f"{'row':<32}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'vs bare':>9}{'vs drf':>8}{'vs drf*':>9}"
        "  statuses (all rounds)"
    )
    print(header)
    out = {"setup": {"database": database, "cache": cache, "workers": WORKERS, "seconds": SECONDS}, "rows": []}
    for row in rows:
        statuses: dict[str, int] = {}
        for r in row.rounds:
            for code, n in r["statuses"].items():
                statuses[code] = statuses.get(code, 0) + n
        rps, p50, p99 = row.median("rps"), row.median("p50_us") / 1000, row.median("p99_us") / 1000
        bare = limits[row.limit]
        ok = row.valid and bare.valid
        vs_bare = f"{rps / bare.median('rps'):.2f}x" if ok else "INVALID"
        vs_drf = f"{rps / drf.median('rps'):.2f}x" if ok and drf.valid else "-"
        vs_default = f"{rps / drf_default.median('rps'):.2f}x" if ok and drf_default.valid else "-"
        print(f"{row.name:<32}{rps:>8.0f}{p50:>8.2f}{p99:>8.2f}{vs_bare:>9}{vs_drf:>8}{vs_default:>9}  {statuses}")
        out["rows"].append(
            {
                "row": row.name,
                "expect": row.expect,
                "valid": row.valid,
                "rps": rps,
                "p50_ms": p50,
                "p99_ms": p99,
                "vs_bare": rps / bare.median("rps") if ok else None,
                "vs_drf": rps / drf.median("rps") if ok and drf.valid else None,
                "vs_drf_default": rps / drf_default.median("rps") if ok and drf_default.valid else None,
                "statuses": statuses,
                "rounds": row.rounds,
            }
        )
    print("vs drf: DRF + drf-api-key on persistent connections, as here; vs drf*: as installed (CONN_MAX_AGE=0)")
    logged = by_name.get("allowed and logged (200)", skipped)
    unlogged = by_name.get("  same call, not logged (200)", skipped)
    if logged.valid and unlogged.valid:
        cost = logged.median("rps") / unlogged.median("rps")
        out["logged_vs_same_call_unlogged"] = cost
        print(f"logged vs the same call unlogged: {cost:.2f}x")
    answered = sum(r["statuses"].get("200", 0) for r in logged.rounds)
    # wrk stops each row with up to one call per connection sent but its answer unread: the
    # server carried those out and stored them. Any fewer stored than answered is a loss.
    in_flight = int(CONNECTIONS) * ROUNDS
    complete = answered <= stored <= answered + in_flight
    out["logged_calls"] = {"answered_2xx": answered, "stored": stored, "in_flight_bound": in_flight}
    print(f"logged row: {answered} answered 2xx, {stored} stored (at most {in_flight} more: cut off in flight)")
    OUTPUT.write_text(json.dumps(out, indent=2))
    print(f"written to {OUTPUT}")
    if not all(r.valid for r in rows) or not complete:
        sys.exit("some row got answers it does not claim, or stored calls differ from answers: see above")


if __name__ == "__main__":
    main()
