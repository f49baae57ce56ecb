"""Verification speed over real HTTP: gunicorn serving the app, clients on loopback.

Modes, each measured in the same run:
  baseline   GET /healthz           (one database round trip and one cache op, no key check)
  refused    POST /chqapi/export/inventory with an unknown key   (401)
  allowed    POST with an allowed, unlogged key                  (501: the guard alone, no handler)
  logged     POST with an allowed key, logging on                (one INSERT per call)

Prints requests/s and latency percentiles per mode and the ratio of each to the
baseline. Run: `.venv/bin/python bench/verify.py` (defaults: a scratch SQLite
database, 2 gunicorn workers, 4 client threads, 2,000 requests a mode).
DATABASE_URL=postgres://... and CACHE_URL=redis://... measure those instead;
with a Redis cache the decision cache is on (KEYS_DECISION_CACHE).
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import PYTHON, ROOT, free_port, manage

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
WORKERS = os.environ.get("BENCH_WORKERS", "2")


def make_keys(env: dict) -> dict[str, str]:
    code = """
from keys.models import ApiCallLog, ApiKey, ApiType
from keys.services import GrantSpec, api_key_create
ApiCallLog.objects.all().delete(); ApiKey.objects.all().delete()
inv = ApiType.objects.get(direction="export", api_id="inventory")
plain = api_key_create(description="bench plain", is_active=True, grants=[GrantSpec(inv.pk)])
logged = api_key_create(description="bench logged", is_active=True, grants=[GrantSpec(inv.pk, logged=True)])
print(plain.value, logged.value)
"""
    plain, logged = manage(env, "shell", "-c", code).split()[-2:]
    return {"plain": plain, "logged": logged}


def run_mode(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    per_client = REQUESTS // CLIENTS

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, codes = [], {}
        for _ in range(per_client):
            start = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            codes[response.status] = codes.get(response.status, 0) + 1
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(len(latencies) * 0.95) - 1] * 1000,
        "statuses": statuses,
    }


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="chq-verify-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chq.settings",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
        "KEYS_THROTTLE_REFUSALS": "0",  # the refused mode would otherwise measure 429s
        "LOG_LEVEL": "WARNING",
    }
    env.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'verify.sqlite3'}")
    env.setdefault("CONN_MAX_AGE", "60")
    manage(env, "migrate", "--no-input", "-v", "0")
    keys = make_keys(env)
    port = free_port()
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "chq.wsgi", "-b", f"127.0.0.1:{port}", "-w", WORKERS, "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps({"Source": "bench"}).encode()
        api = {"Content-Type": "application/json"}
        modes = {
            "baseline": ("GET", "/healthz", {}, None),
            "refused": (
                "POST",
                "/chqapi/export/inventory",
                api | {"ApiKey": "00000000-0000-4000-8000-000000000000"},
                body,
            ),
            "allowed": ("POST", "/chqapi/export/inventory", api | {"ApiKey": keys["plain"]}, body),
            "logged": ("POST", "/chqapi/export/inventory", api | {"ApiKey": keys["logged"]}, body),
        }
        for method, path, headers, data in modes.values():  # warm up every worker and connection
            conn = http.client.HTTPConnection("127.0.0.1", port)
            for _ in range(20):
                conn.request(method, path, body=data, headers=headers)
                conn.getresponse().read()
            conn.close()
        results = {name: run_mode(port, *spec) for name, spec in modes.items()}
    finally:
        server.terminate()
        server.wait(timeout=10)

    stored = manage(
        env, "shell", "-c", "from keys.models import ApiCallLog; print(ApiCallLog.objects.count())"
    ).split()[-1]
    database = env["DATABASE_URL"].split(":")[0]
    cache = env.get("CACHE_URL", env.get("REDIS_URL", "locmemcache://")).split(":")[0]
    print(f"gunicorn {WORKERS} workers, {CLIENTS} keep-alive clients, {REQUESTS} requests a mode")
    print(f"database {database}, cache {cache}")
    print(f"{'mode':<10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'vs baseline':>13}  statuses")
    base = results["baseline"]["rps"]
    for name, r in results.items():
        print(f"{name:<10}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p95']:>9.2f}{r['rps'] / base:>12.2f}x  {r['statuses']}")
    expected = REQUESTS // CLIENTS * CLIENTS + 20
    print(f"stored call logs: {stored} (expected {expected}: the logged mode and its warm-up)")
    wanted = {"baseline": 200, "refused": 401, "allowed": 501, "logged": 501}
    wrong = {name: r["statuses"] for name, r in results.items() if set(r["statuses"]) != {wanted[name]}}
    if wrong or int(stored) != expected:
        sys.exit(f"unexpected answers {wrong} or stored rows: the numbers above do not measure what they say")


if __name__ == "__main__":
    main()
